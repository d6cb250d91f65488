/**
 * The embedded default: a tiny Qwen2.5-VL-architecture model that is created on the
 * spot (seeded random weights) and saved as a normal Hugging Face directory:
 * config.json (Qwen2_5_VLForConditionalGeneration), model.safetensors (HF names),
 * tokenizer.json / tokenizer_config.json (a byte-level BPE trained here on the
 * project's own instruction and prompt text, digits kept single), chat template.
 * No download anywhere.
 */
import fs from "node:fs";
import path from "node:path";
import { writeSafetensors } from "../io/safetensors.js";
import { promptsDir, listTemplates } from "../prompts/template.js";
import { Rng } from "../rng.js";
import { QWEN_VL_SPECIALS, saveBpeTokenizer, trainBpe } from "./bpe.js";

export interface TinyDefaultOptions {
  seed?: number;
  vocabSize?: number;
  hiddenSize?: number;
  layers?: number;
  visionHidden?: number;
  visionDepth?: number;
}

/** Text the tokenizer is trained on: every prompt template and the simulator's instruction phrasings. */
export function tokenizerCorpus(): string[] {
  const colors = ["red", "green", "blue", "yellow", "orange", "purple"];
  const out: string[] = [];
  for (const name of listTemplates()) out.push(fs.readFileSync(path.join(promptsDir(), `${name}.txt`), "utf8"));
  for (const a of colors) {
    for (const p of ["reach the {b} block", "move the gripper to the {b} block", "go to the {b} block", "pick up the {b} block", "lift the {b} block", "grasp the {b} block and lift it"]) out.push(p.replace("{b}", a));
    for (const b of colors) {
      if (a === b) continue;
      for (const p of ["put the {b} block on the {z} block", "put the {b} block in the {z} zone", "push the {b} block to the {z} zone", "slide the {b} block into the {z} zone", "push the {b} block into the {z} square"]) out.push(p.replace("{b}", a).replace("{z}", b));
    }
  }
  out.push("0 1 2 3 4 5 6 7 8 9 10 100 1000 State: Task:");
  return out;
}

export function qwen25vlConfig(o: Required<TinyDefaultOptions>, vocab: number): Record<string, unknown> {
  const heads = 4;
  const headDim = o.hiddenSize / heads;
  const q = headDim / 2; // mrope sections (temporal, height, width) must sum to head_dim / 2
  const t = Math.round(q / 4);
  const hw = (q - t) / 2;
  const ids = Object.fromEntries(QWEN_VL_SPECIALS.map((s, i) => [s, vocab + i]));
  return {
    architectures: ["Qwen2_5_VLForConditionalGeneration"],
    model_type: "qwen2_5_vl",
    vocab_size: vocab + QWEN_VL_SPECIALS.length,
    hidden_size: o.hiddenSize,
    intermediate_size: o.hiddenSize * 2,
    num_hidden_layers: o.layers,
    num_attention_heads: heads,
    num_key_value_heads: 2,
    max_position_embeddings: 4096,
    rms_norm_eps: 1e-6,
    rope_theta: 10000,
    rope_scaling: { type: "mrope", rope_type: "default", mrope_section: [t, Math.floor(hw), Math.ceil(hw)] },
    tie_word_embeddings: true,
    hidden_act: "silu",
    torch_dtype: "float32",
    bos_token_id: ids["<|endoftext|>"],
    eos_token_id: ids["<|im_end|>"],
    vision_start_token_id: ids["<|vision_start|>"],
    vision_end_token_id: ids["<|vision_end|>"],
    image_token_id: ids["<|image_pad|>"],
    video_token_id: ids["<|video_pad|>"],
    vision_config: {
      depth: o.visionDepth,
      hidden_size: o.visionHidden,
      intermediate_size: o.visionHidden * 2,
      num_heads: 2,
      out_hidden_size: o.hiddenSize,
      patch_size: 14,
      spatial_merge_size: 2,
      temporal_patch_size: 2,
      window_size: 112,
      fullatt_block_indexes: [o.visionDepth - 1],
      tokens_per_second: 2,
      hidden_act: "silu",
      in_chans: 3,
    },
  };
}

/** Create the tiny default model directory (idempotent for a seed). */
export function createTinyDefaultModel(dir: string, options: TinyDefaultOptions = {}): string {
  const o: Required<TinyDefaultOptions> = { seed: 0, vocabSize: 1024, hiddenSize: 64, layers: 2, visionHidden: 32, visionDepth: 2, ...options };
  fs.mkdirSync(dir, { recursive: true });
  const corpus = tokenizerCorpus();
  const bpe = trainBpe([...corpus, ...corpus], o.vocabSize);
  saveBpeTokenizer(dir, bpe, fs.readFileSync(path.join(promptsDir(), "chat-templates", "qwen2-vl.jinja"), "utf8"));
  const config = qwen25vlConfig(o, bpe.vocab.size);
  fs.writeFileSync(path.join(dir, "config.json"), JSON.stringify(config, null, 2) + "\n");
  const V = config.vocab_size as number;
  const C = o.hiddenSize;
  const F = C * 2;
  const hd = C / 4;
  const r = new Rng(o.seed);
  const tensors: Array<{ name: string; shape: number[]; data: Float32Array }> = [];
  const mat = (name: string, shape: number[], std: number) => tensors.push({ name, shape, data: Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => r.gaussian(std)) });
  const ones = (name: string, n: number) => tensors.push({ name, shape: [n], data: new Float32Array(n).fill(1) });
  const zeros = (name: string, n: number) => tensors.push({ name, shape: [n], data: new Float32Array(n) });
  const std = 0.02;
  mat("model.language_model.embed_tokens.weight", [V, C], std);
  for (let l = 0; l < o.layers; l++) {
    const p = `model.language_model.layers.${l}.`;
    ones(p + "input_layernorm.weight", C);
    mat(p + "self_attn.q_proj.weight", [4 * hd, C], std);
    zeros(p + "self_attn.q_proj.bias", 4 * hd);
    mat(p + "self_attn.k_proj.weight", [2 * hd, C], std);
    zeros(p + "self_attn.k_proj.bias", 2 * hd);
    mat(p + "self_attn.v_proj.weight", [2 * hd, C], std);
    zeros(p + "self_attn.v_proj.bias", 2 * hd);
    mat(p + "self_attn.o_proj.weight", [C, 4 * hd], std);
    ones(p + "post_attention_layernorm.weight", C);
    mat(p + "mlp.gate_proj.weight", [F, C], std);
    mat(p + "mlp.up_proj.weight", [F, C], std);
    mat(p + "mlp.down_proj.weight", [C, F], std);
  }
  ones("model.language_model.norm.weight", C);
  const vc = config.vision_config as { hidden_size: number; intermediate_size: number; depth: number };
  const Cv = vc.hidden_size;
  const Fv = vc.intermediate_size;
  mat("model.visual.patch_embed.proj.weight", [Cv, 3, 2, 14, 14], std);
  for (let b = 0; b < vc.depth; b++) {
    const p = `model.visual.blocks.${b}.`;
    ones(p + "norm1.weight", Cv);
    mat(p + "attn.qkv.weight", [3 * Cv, Cv], std);
    zeros(p + "attn.qkv.bias", 3 * Cv);
    mat(p + "attn.proj.weight", [Cv, Cv], std);
    zeros(p + "attn.proj.bias", Cv);
    ones(p + "norm2.weight", Cv);
    mat(p + "mlp.gate_proj.weight", [Fv, Cv], std);
    zeros(p + "mlp.gate_proj.bias", Fv);
    mat(p + "mlp.up_proj.weight", [Fv, Cv], std);
    zeros(p + "mlp.up_proj.bias", Fv);
    mat(p + "mlp.down_proj.weight", [Cv, Fv], std);
    zeros(p + "mlp.down_proj.bias", Cv);
  }
  ones("model.visual.merger.ln_q.weight", Cv);
  mat("model.visual.merger.mlp.0.weight", [4 * Cv, 4 * Cv], std);
  zeros("model.visual.merger.mlp.0.bias", 4 * Cv);
  mat("model.visual.merger.mlp.2.weight", [C, 4 * Cv], std);
  zeros("model.visual.merger.mlp.2.bias", C);
  writeSafetensors(path.join(dir, "model.safetensors"), tensors);
  return dir;
}
