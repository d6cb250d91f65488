/**
 * Export a decoder-only language model (Llama / Qwen2 / Qwen3 families, HF
 * tensor names) to GGUF so llama.cpp can run it: the independent
 * implementation our engine is checked against.
 *
 * llama.cpp's `llama` architecture rotates interleaved pairs (2i, 2i+1) while
 * HF rotates halves (i, i + hd/2), so q/k rows are permuted per head on export
 * (as llama.cpp's own converter does); `qwen2`/`qwen3` use the half rotation
 * (NEOX) and need no permutation.
 */
import { VlaError } from "../errors.js";
import { writeGguf, type GgmlType, type GgufTensorIn, type GgufValue } from "./gguf.js";

export interface DecoderConfig {
  arch: "llama" | "qwen2" | "qwen3";
  vocabSize: number;
  hiddenSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  intermediateSize: number;
  rmsNormEps: number;
  ropeTheta: number;
  maxPositions: number;
  tieEmbeddings: boolean;
}

/** GPT-2's byte -> printable unicode map (how byte-level BPE vocabularies spell bytes). */
export function bytesToUnicode(): string[] {
  const bs: number[] = [];
  for (let b = 33; b <= 126; b++) bs.push(b);
  for (let b = 161; b <= 172; b++) bs.push(b);
  for (let b = 174; b <= 255; b++) bs.push(b);
  const cs = [...bs];
  let n = 0;
  for (let b = 0; b < 256; b++) {
    if (!bs.includes(b)) {
      bs.push(b);
      cs.push(256 + n);
      n++;
    }
  }
  const out = new Array<string>(256);
  bs.forEach((b, i) => (out[b] = String.fromCodePoint(cs[i] as number)));
  return out;
}

export interface GgufVocab {
  tokens: string[];
  tokenTypes: number[];
  merges: string[];
  bosId: number;
  eosId: number;
}

/** A minimal byte-level vocabulary of exactly `size` tokens (>= 257): 256 bytes, merges, one control token last. */
export function byteLevelVocab(size: number): GgufVocab {
  if (size < 257) throw new VlaError("FILE_INVALID", `a byte-level vocabulary needs at least 257 tokens, got ${size}`);
  const tokens = bytesToUnicode();
  const merges: string[] = [];
  const letters = "etaoinshrdlu".split("");
  outer: for (const a of ["Ġ", ...letters]) {
    for (const b of letters) {
      if (tokens.length >= size - 1) break outer;
      if (tokens.includes(a + b)) continue;
      merges.push(`${a} ${b}`);
      tokens.push(a + b);
    }
  }
  while (tokens.length < size - 1) tokens.push(`<|extra_${tokens.length}|>`);
  const types = tokens.map((t) => (t.startsWith("<|extra_") ? 3 : 1));
  tokens.push("<|endoftext|>");
  types.push(3);
  return { tokens, tokenTypes: types, merges, bosId: size - 1, eosId: size - 1 };
}

/** Rows of a (NH*hd, C) projection reordered from half-rotation to interleaved pairs, per head. */
export function permuteForInterleavedRope(w: Float32Array, heads: number, headDim: number, cols: number): Float32Array {
  const out = new Float32Array(w.length);
  const half = headDim / 2;
  for (let h = 0; h < heads; h++) {
    for (let j = 0; j < half; j++) {
      for (let k = 0; k < 2; k++) {
        const src = h * headDim + k * half + j;
        const dst = h * headDim + 2 * j + k;
        out.set(w.subarray(src * cols, (src + 1) * cols), dst * cols);
      }
    }
  }
  return out;
}

/**
 * Write `weights` (HF names, row-major f32) as a GGUF llama.cpp can load. `type` is the
 * storage of every matrix (f32, or f16 / bf16 rounded to nearest even, as llama.cpp's
 * convert_hf_to_gguf.py --outtype writes them); norms and biases stay f32.
 */
export function writeDecoderGguf(file: string, cfg: DecoderConfig, weights: ReadonlyMap<string, Float32Array>, vocab: GgufVocab, type: GgmlType = "f32"): void {
  if (vocab.tokens.length !== cfg.vocabSize) throw new VlaError("FILE_INVALID", `vocabulary has ${vocab.tokens.length} tokens but vocab_size is ${cfg.vocabSize}`);
  const a = cfg.arch;
  const u32 = (v: number): GgufValue => ({ type: "u32", value: v });
  const f32 = (v: number): GgufValue => ({ type: "f32", value: v });
  const metadata: Array<[string, GgufValue]> = [
    ["general.architecture", { type: "string", value: a }],
    ["general.name", { type: "string", value: `vlatext-tiny-${a}` }],
    ["general.alignment", u32(32)],
    [`${a}.context_length`, u32(cfg.maxPositions)],
    [`${a}.embedding_length`, u32(cfg.hiddenSize)],
    [`${a}.block_count`, u32(cfg.numLayers)],
    [`${a}.feed_forward_length`, u32(cfg.intermediateSize)],
    [`${a}.attention.head_count`, u32(cfg.numHeads)],
    [`${a}.attention.head_count_kv`, u32(cfg.numKvHeads)],
    [`${a}.attention.key_length`, u32(cfg.headDim)],
    [`${a}.attention.value_length`, u32(cfg.headDim)],
    [`${a}.rope.dimension_count`, u32(cfg.headDim)],
    [`${a}.attention.layer_norm_rms_epsilon`, f32(cfg.rmsNormEps)],
    [`${a}.rope.freq_base`, f32(cfg.ropeTheta)],
    [`${a}.vocab_size`, u32(cfg.vocabSize)],
    ["tokenizer.ggml.model", { type: "string", value: "gpt2" }],
    ["tokenizer.ggml.pre", { type: "string", value: "default" }],
    ["tokenizer.ggml.tokens", { type: "array", itemType: "string", value: vocab.tokens }],
    ["tokenizer.ggml.token_type", { type: "array", itemType: "i32", value: vocab.tokenTypes }],
    ["tokenizer.ggml.merges", { type: "array", itemType: "string", value: vocab.merges }],
    ["tokenizer.ggml.bos_token_id", u32(vocab.bosId)],
    ["tokenizer.ggml.eos_token_id", u32(vocab.eosId)],
    ["tokenizer.ggml.add_bos_token", { type: "bool", value: false }],
  ];
  const C = cfg.hiddenSize;
  const get = (name: string, shape: number[]): Float32Array => {
    const w = weights.get(name);
    const n = shape.reduce((x, y) => x * y, 1);
    if (!w) throw new VlaError("FILE_INVALID", `missing tensor ${name}`, "the model's weights must include every tensor of its architecture");
    if (w.length !== n) throw new VlaError("FILE_INVALID", `tensor ${name} has ${w.length} values, expected shape [${shape}] (${n})`);
    return w;
  };
  const tensors: GgufTensorIn[] = [];
  const add = (gg: string, hf: string, shape: number[], t: GgmlType = type, f?: (w: Float32Array) => Float32Array): void => {
    const w = get(hf, shape);
    tensors.push({ name: gg, shape, type: shape.length === 1 ? "f32" : t, data: f ? f(w) : w });
  };
  const hd = cfg.headDim;
  const permute = a === "llama";
  add("token_embd.weight", "model.embed_tokens.weight", [cfg.vocabSize, C]);
  for (let l = 0; l < cfg.numLayers; l++) {
    const p = `model.layers.${l}`;
    add(`blk.${l}.attn_norm.weight`, `${p}.input_layernorm.weight`, [C]);
    add(`blk.${l}.attn_q.weight`, `${p}.self_attn.q_proj.weight`, [cfg.numHeads * hd, C], type, permute ? (w) => permuteForInterleavedRope(w, cfg.numHeads, hd, C) : undefined);
    add(`blk.${l}.attn_k.weight`, `${p}.self_attn.k_proj.weight`, [cfg.numKvHeads * hd, C], type, permute ? (w) => permuteForInterleavedRope(w, cfg.numKvHeads, hd, C) : undefined);
    add(`blk.${l}.attn_v.weight`, `${p}.self_attn.v_proj.weight`, [cfg.numKvHeads * hd, C]);
    if (a === "qwen2") {
      add(`blk.${l}.attn_q.bias`, `${p}.self_attn.q_proj.bias`, [cfg.numHeads * hd]);
      add(`blk.${l}.attn_k.bias`, `${p}.self_attn.k_proj.bias`, [cfg.numKvHeads * hd]);
      add(`blk.${l}.attn_v.bias`, `${p}.self_attn.v_proj.bias`, [cfg.numKvHeads * hd]);
    }
    if (a === "qwen3") {
      add(`blk.${l}.attn_q_norm.weight`, `${p}.self_attn.q_norm.weight`, [hd]);
      add(`blk.${l}.attn_k_norm.weight`, `${p}.self_attn.k_norm.weight`, [hd]);
    }
    add(`blk.${l}.attn_output.weight`, `${p}.self_attn.o_proj.weight`, [C, cfg.numHeads * hd]);
    add(`blk.${l}.ffn_norm.weight`, `${p}.post_attention_layernorm.weight`, [C]);
    add(`blk.${l}.ffn_gate.weight`, `${p}.mlp.gate_proj.weight`, [cfg.intermediateSize, C]);
    add(`blk.${l}.ffn_up.weight`, `${p}.mlp.up_proj.weight`, [cfg.intermediateSize, C]);
    add(`blk.${l}.ffn_down.weight`, `${p}.mlp.down_proj.weight`, [C, cfg.intermediateSize]);
  }
  add("output_norm.weight", "model.norm.weight", [C]);
  if (!cfg.tieEmbeddings) add("output.weight", "lm_head.weight", [cfg.vocabSize, C]);
  writeGguf(file, metadata, tensors);
}
