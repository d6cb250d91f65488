/**
 * Chunk latency and mask time per token for a small random-weight policy (real Qwen
 * tokenizer, 151k vocabulary), with and without jump-forward and the sparse LM head,
 * side by side in one run (ratios against the first row). Run: npx tsx bench/serve.ts
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { VLA0_SPEC } from "../src/actions/spec.js";
import { generateConstrained } from "../src/engine/automaton.js";
import { writeSafetensors } from "../src/io/safetensors.js";
import { loadTokenizer } from "../src/prompts/tokenizer.js";
import { writePolicyFile } from "../src/policy/file.js";
import { Policy } from "../src/policy/policy.js";
import { randomDecoderWeights } from "../test/support/ref-decoder.js";
import { hfConfigJson, tinyConfig } from "../test/support/tiny-models.js";
import { TINY_STATS } from "../test/support/tiny-policy.js";

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "vlatext-bench-policy-"));
const V = loadTokenizer("qwen").vocabSize;
const c = tinyConfig("qwen2", true, { vocabSize: V, hiddenSize: 256, numLayers: 4, numHeads: 4, numKvHeads: 2, headDim: 64, intermediateSize: 768, maxPositions: 4096 });
const w = randomDecoderWeights(c, 1, 0.05);
fs.writeFileSync(path.join(dir, "config.json"), JSON.stringify(hfConfigJson(c)));
const C = c.hiddenSize;
const shape = (n: string, d: Float32Array): number[] => (d.length === C ? [C] : n.includes("embed") ? [V, C] : n.endsWith("bias") ? [d.length] : n.includes("down_proj") || n.includes("o_proj") ? [C, d.length / C] : [d.length / C, C]);
writeSafetensors(path.join(dir, "model.safetensors"), [...w].map(([n, d]) => ({ name: n, shape: shape(n, d), data: d })));
writePolicyFile(dir, { spec: VLA0_SPEC as unknown as Record<string, unknown>, stats: TINY_STATS, template: "vla0", tokenizer: "qwen" });
const policy = Policy.load(dir);
const prompt = policy.promptIds({ images: [], instruction: "put the red block on the green block" });
console.log(`policy: ${(policy.model.numParams / 1e6).toFixed(1)}M params (V=${V}, C=256, L=4), prompt ${prompt.length} tokens, ${os.cpus().length} cores\n`);
console.log(["jump-forward".padEnd(14), "sparse head".padEnd(12), "chunk ms".padStart(10), "tokens".padStart(8), "model calls".padStart(12), "forced".padStart(8), "mask us/token".padStart(15), "head ms".padStart(9)].join(""));
const rows: Array<[boolean, number]> = [[false, 0], [false, 64], [true, 0], [true, 64]];
let baseMs = 0;
for (const [jump, sparse] of rows) {
  await generateConstrained(policy.model, prompt, policy.automaton, { jumpForward: jump, sparseMax: sparse }); // warm
  let ms = 0;
  let tokens = 0;
  let calls = 0;
  let forced = 0;
  let mask = 0;
  let head = 0;
  const n = 8;
  for (let i = 0; i < n; i++) {
    const r = await generateConstrained(policy.model, prompt, policy.automaton, { jumpForward: jump, sparseMax: sparse, temperature: 1, seed: i });
    ms += r.totalMs;
    tokens += r.tokens.length + 1;
    calls += r.modelCalls;
    forced += r.forced;
    mask += r.maskMs;
    head += r.headMs;
  }
  if (!jump && sparse === 0) baseMs = ms / n;
  console.log([String(jump).padEnd(14), (sparse > 0 ? `<= ${sparse}` : "off").padEnd(12), `${(ms / n).toFixed(1)}`.padStart(10), (tokens / n).toFixed(0).padStart(8), (calls / n).toFixed(0).padStart(12), (forced / n).toFixed(0).padStart(8), ((1000 * mask) / tokens).toFixed(2).padStart(15), (head / n).toFixed(1).padStart(9), `   ${(baseMs / (ms / n)).toFixed(2)}x`].join(""));
}
// No published figure is comparable (VLA-0's latencies are for Qwen2.5-VL-3B on a GPU); the reference is this run's first row.
console.log("\n(ratios are against jump-forward off, sparse head off, measured in this run; a 4-layer random model on the CPU, not comparable with VLA-0's GPU figures)");
policy.dispose();
