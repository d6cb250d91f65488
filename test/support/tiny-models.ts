/** Tiny random decoder models shared by the engine tests. */
import fs from "node:fs";
import path from "node:path";
import type { DecoderConfig } from "../../src/io/gguf-decoder.js";
import { writeSafetensors } from "../../src/io/safetensors.js";
import type { Weights } from "./ref-decoder.js";

export type TinyConfig = ReturnType<typeof tinyConfig>;

export function tinyConfig(arch: DecoderConfig["arch"], tie: boolean, over: Partial<DecoderConfig> = {}): DecoderConfig {
  return { arch, vocabSize: 272, hiddenSize: 64, numLayers: 2, numHeads: 4, numKvHeads: 2, headDim: 16, intermediateSize: 96, rmsNormEps: 1e-6, ropeTheta: 10000, maxPositions: 256, tieEmbeddings: tie, ...over };
}

/** The config.json Hugging Face would write for this model. */
export function hfConfigJson(c: DecoderConfig): Record<string, unknown> {
  return {
    architectures: [c.arch === "llama" ? "LlamaForCausalLM" : c.arch === "qwen2" ? "Qwen2ForCausalLM" : "Qwen3ForCausalLM"],
    model_type: c.arch,
    vocab_size: c.vocabSize,
    hidden_size: c.hiddenSize,
    num_hidden_layers: c.numLayers,
    num_attention_heads: c.numHeads,
    num_key_value_heads: c.numKvHeads,
    head_dim: c.headDim,
    intermediate_size: c.intermediateSize,
    rms_norm_eps: c.rmsNormEps,
    rope_theta: c.ropeTheta,
    max_position_embeddings: c.maxPositions,
    tie_word_embeddings: c.tieEmbeddings,
    hidden_act: "silu",
    torch_dtype: "float32",
  };
}

/** Write an HF-style directory (config.json + model.safetensors). */
export function writeHfDir(dir: string, c: DecoderConfig, w: Weights, shapes: Map<string, number[]>): void {
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, "config.json"), JSON.stringify(hfConfigJson(c), null, 2));
  writeSafetensors(
    path.join(dir, "model.safetensors"),
    [...w].map(([name, data]) => ({ name, shape: shapes.get(name) ?? [data.length], data })),
  );
}
