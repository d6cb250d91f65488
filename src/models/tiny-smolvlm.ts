/**
 * A tiny random SmolVLM2-architecture model saved as a normal Hugging Face directory:
 * config.json (SmolVLMForConditionalGeneration, transformers 5's keys), preprocessor_config.json
 * (SmolVLMImageProcessor), model.safetensors (HF names: model.text_model.*,
 * model.vision_model.*, model.connector.*), and a byte-level BPE tokenizer trained here on
 * the project's prompt text with SmolVLM2's special tokens (<image>,
 * <fake_token_around_image>, <global-img>, <row_r_col_c>, <end_of_utterance>) and
 * transformers' SmolVLM chat template (prompts/chat-templates/smolvlm.jinja). For tests and
 * experiments: no npm package ships SmolVLM2's own tokenizer, and nothing downloads.
 */
import fs from "node:fs";
import path from "node:path";
import { writeSafetensors } from "../io/safetensors.js";
import { promptsDir } from "../prompts/template.js";
import { Rng } from "../rng.js";
import { saveBpeTokenizer, trainBpe } from "./bpe.js";
import { tokenizerCorpus } from "./tiny-default.js";

export interface TinySmolVlmOptions {
  seed?: number;
  vocabSize?: number;
  hiddenSize?: number;
  layers?: number;
  visionHidden?: number;
  visionDepth?: number;
  /** Tile side (vision image_size) and patch size in pixels; scale factor of the pixel shuffle. */
  tileSize?: number;
  patchSize?: number;
  scaleFactor?: number;
  /** Split images into tiles plus a global image (SmolVLM2's default), with this longest edge. */
  split?: boolean;
  longestEdge?: number;
}

const MAX_GRID = 6;

/** SmolVLM2's special tokens, in the order they get ids after the BPE vocabulary. */
export function smolVlmSpecials(): string[] {
  const rc: string[] = [];
  for (let r = 1; r <= MAX_GRID; r++) for (let c = 1; c <= MAX_GRID; c++) rc.push(`<row_${r}_col_${c}>`);
  return ["<|endoftext|>", "<|im_start|>", "<end_of_utterance>", "<fake_token_around_image>", "<image>", "<global-img>", ...rc];
}

export function createTinySmolVlmModel(dir: string, options: TinySmolVlmOptions = {}): string {
  const o: Required<TinySmolVlmOptions> = { seed: 0, vocabSize: 768, hiddenSize: 64, layers: 2, visionHidden: 32, visionDepth: 2, tileSize: 32, patchSize: 8, scaleFactor: 2, split: true, longestEdge: 64, ...options };
  fs.mkdirSync(dir, { recursive: true });
  const corpus = tokenizerCorpus();
  const bpe = trainBpe([...corpus, ...corpus], o.vocabSize);
  const specials = smolVlmSpecials();
  saveBpeTokenizer(dir, bpe, fs.readFileSync(path.join(promptsDir(), "chat-templates", "smolvlm.jinja"), "utf8"), specials, { eos: "<end_of_utterance>" });
  const V = bpe.vocab.size + specials.length;
  const id = (s: string): number => bpe.vocab.size + specials.indexOf(s);
  const C = o.hiddenSize;
  const heads = 4;
  const text = {
    model_type: "llama",
    vocab_size: V,
    hidden_size: C,
    intermediate_size: 2 * C,
    num_hidden_layers: o.layers,
    num_attention_heads: heads,
    num_key_value_heads: 2,
    head_dim: C / heads,
    hidden_act: "silu",
    max_position_embeddings: 4096,
    rms_norm_eps: 1e-5,
    rope_parameters: { rope_theta: 100000, rope_type: "default" },
    tie_word_embeddings: false,
    bos_token_id: id("<|im_start|>"),
    eos_token_id: id("<end_of_utterance>"),
    pad_token_id: id("<|endoftext|>"),
  };
  const vision = { model_type: "smolvlm_vision", hidden_size: o.visionHidden, intermediate_size: 2 * o.visionHidden, num_hidden_layers: o.visionDepth, num_attention_heads: 2, num_channels: 3, image_size: o.tileSize, patch_size: o.patchSize, hidden_act: "gelu_pytorch_tanh", layer_norm_eps: 1e-6 };
  const config = { architectures: ["SmolVLMForConditionalGeneration"], model_type: "smolvlm", image_token_id: id("<image>"), scale_factor: o.scaleFactor, tie_word_embeddings: false, pad_token_id: text.pad_token_id, text_config: text, vision_config: vision };
  fs.writeFileSync(path.join(dir, "config.json"), JSON.stringify(config, null, 2) + "\n");
  const pp = {
    image_processor_type: "SmolVLMImageProcessor",
    processor_class: "SmolVLMProcessor",
    do_resize: true,
    size: { longest_edge: o.split ? o.longestEdge : o.tileSize },
    max_image_size: { longest_edge: o.tileSize },
    do_image_splitting: o.split,
    resample: 1,
    do_rescale: true,
    rescale_factor: 1 / 255,
    do_normalize: true,
    image_mean: [0.5, 0.5, 0.5],
    image_std: [0.5, 0.5, 0.5],
  };
  fs.writeFileSync(path.join(dir, "preprocessor_config.json"), JSON.stringify(pp, null, 2) + "\n");
  const r = new Rng(o.seed);
  const tensors: Array<{ name: string; shape: number[]; data: Float32Array }> = [];
  const mat = (name: string, shape: number[], std: number) => tensors.push({ name, shape, data: Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => r.gaussian(std)) });
  const fill = (name: string, n: number, v: number) => tensors.push({ name, shape: [n], data: new Float32Array(n).fill(v) });
  const hd = C / heads;
  const F = 2 * C;
  mat("model.text_model.embed_tokens.weight", [V, C], 0.02);
  for (let l = 0; l < o.layers; l++) {
    const p = `model.text_model.layers.${l}.`;
    fill(p + "input_layernorm.weight", C, 1);
    mat(p + "self_attn.q_proj.weight", [heads * hd, C], 0.02);
    mat(p + "self_attn.k_proj.weight", [2 * hd, C], 0.02);
    mat(p + "self_attn.v_proj.weight", [2 * hd, C], 0.02);
    mat(p + "self_attn.o_proj.weight", [C, heads * hd], 0.02);
    fill(p + "post_attention_layernorm.weight", C, 1);
    mat(p + "mlp.gate_proj.weight", [F, C], 0.02);
    mat(p + "mlp.up_proj.weight", [F, C], 0.02);
    mat(p + "mlp.down_proj.weight", [C, F], 0.02);
  }
  fill("model.text_model.norm.weight", C, 1);
  mat("lm_head.weight", [V, C], 0.02);
  const Cv = o.visionHidden;
  const Fv = 2 * Cv;
  const side = o.tileSize / o.patchSize;
  const vs = 0.05;
  mat("model.vision_model.embeddings.patch_embedding.weight", [Cv, 3, o.patchSize, o.patchSize], vs);
  fill("model.vision_model.embeddings.patch_embedding.bias", Cv, 0);
  mat("model.vision_model.embeddings.position_embedding.weight", [side * side, Cv], vs);
  for (let b = 0; b < o.visionDepth; b++) {
    const p = `model.vision_model.encoder.layers.${b}.`;
    for (const n of ["layer_norm1", "layer_norm2"]) fill(`${p}${n}.weight`, Cv, 1), fill(`${p}${n}.bias`, Cv, 0);
    for (const n of ["q_proj", "k_proj", "v_proj", "out_proj"]) mat(`${p}self_attn.${n}.weight`, [Cv, Cv], vs), fill(`${p}self_attn.${n}.bias`, Cv, 0);
    mat(p + "mlp.fc1.weight", [Fv, Cv], vs);
    fill(p + "mlp.fc1.bias", Fv, 0);
    mat(p + "mlp.fc2.weight", [Cv, Fv], vs);
    fill(p + "mlp.fc2.bias", Cv, 0);
  }
  fill("model.vision_model.post_layernorm.weight", Cv, 1);
  fill("model.vision_model.post_layernorm.bias", Cv, 0);
  mat("model.connector.modality_projection.proj.weight", [C, Cv * o.scaleFactor * o.scaleFactor], 0.05);
  writeSafetensors(path.join(dir, "model.safetensors"), tensors);
  return dir;
}
