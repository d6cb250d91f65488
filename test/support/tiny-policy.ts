/** A tiny random-weight policy directory with the real Qwen tokenizer (for server tests). */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { VLA0_SPEC } from "../../src/actions/spec.js";
import type { ActionStats } from "../../src/actions/stats.js";
import { writeSafetensors } from "../../src/io/safetensors.js";
import { loadTokenizer } from "../../src/prompts/tokenizer.js";
import { randomDecoderWeights } from "./ref-decoder.js";
import { hfConfigJson, tinyConfig, type TinyConfig } from "./tiny-models.js";

export const TINY_STATS: ActionStats = {
  dims: 7,
  names: ["x", "y", "z", "roll", "pitch", "yaw", "gripper"],
  count: 100,
  min: [-0.9, -0.8, -0.7, -0.3, -0.3, -0.5, -1],
  max: [0.9, 0.8, 0.7, 0.3, 0.3, 0.5, 1],
  mean: [0, 0, 0, 0, 0, 0, 0],
  std: [0.3, 0.3, 0.3, 0.1, 0.1, 0.2, 1],
  q01: [-0.8, -0.7, -0.6, -0.25, -0.25, -0.4, -1],
  q99: [0.8, 0.7, 0.6, 0.25, 0.25, 0.4, 1],
};

/**
 * model: the decoder's size (default: 1 layer of width 32, 2048 positions). A wider,
 * deeper one makes a chunk take long enough to watch it stream or cancel it.
 */
export function writeTinyPolicy(seed = 1, extra: Record<string, unknown> = {}, model: Partial<TinyConfig> = {}): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "vlatext-policy-"));
  const V = loadTokenizer("qwen").vocabSize;
  const c = tinyConfig("qwen2", true, { vocabSize: V, hiddenSize: 32, numLayers: 1, numHeads: 2, numKvHeads: 1, headDim: 16, intermediateSize: 48, maxPositions: 2048, ...model });
  const w = randomDecoderWeights(c, seed, 0.3);
  fs.writeFileSync(path.join(dir, "config.json"), JSON.stringify(hfConfigJson(c)));
  const C = c.hiddenSize;
  const shape = (n: string, d: Float32Array): number[] => (d.length === C ? [C] : n.includes("embed") ? [V, C] : n.endsWith("bias") ? [d.length] : n.includes("down_proj") || n.includes("o_proj") ? [C, d.length / C] : [d.length / C, C]);
  writeSafetensors(path.join(dir, "model.safetensors"), [...w].map(([n, d]) => ({ name: n, shape: shape(n, d), data: d })));
  fs.writeFileSync(path.join(dir, "policy.json"), JSON.stringify({ spec: VLA0_SPEC, stats: TINY_STATS, template: "vla0", tokenizer: "qwen", ensemble: { mode: "vla0-v1", executeK: 4 }, ...extra }, null, 2));
  return dir;
}
