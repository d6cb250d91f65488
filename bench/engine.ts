/**
 * Engine benchmark: the linear layer's GEMM at model shapes, every path on 1 and all threads,
 * beside OpenBLAS and PyTorch in the same run (bench/kernels.ts), then training and
 * decoding throughput of a ~20M-parameter Llama-style model, with node-llama-cpp
 * decoding the same weights (GGUF, f32) as the reference, all in the same run.
 * Run: npx tsx bench/engine.ts [--quick] [--filter=SUBSTRING]
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { getLlama, type Token } from "node-llama-cpp";
import { DecoderModel } from "../src/engine/decoder.js";
import { parseDecoderConfig } from "../src/engine/config.js";
import { byteLevelVocab, writeDecoderGguf, type DecoderConfig } from "../src/io/gguf-decoder.js";
import { randomDecoderWeights } from "../test/support/ref-decoder.js";
import { hfConfigJson } from "../test/support/tiny-models.js";
import { runKernelBench } from "./kernels.js";

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), "..");
// the GEMM table (bench/kernels.ts); `--quick` shortens it, `--filter=SUBSTRING` picks shapes
runKernelBench(root, process.argv.slice(2).filter((a) => a === "--quick" || a.startsWith("--filter=")));

const cfg: DecoderConfig = { arch: "llama", vocabSize: 8192, hiddenSize: 384, numLayers: 10, numHeads: 6, numKvHeads: 2, headDim: 64, intermediateSize: 1024, rmsNormEps: 1e-5, ropeTheta: 10000, maxPositions: 1024, tieEmbeddings: true };
const weights = randomDecoderWeights(cfg, 1, 0.05);
const model = new DecoderModel(parseDecoderConfig(hfConfigJson(cfg)));
for (const [n, d] of weights) model.setParam(n, d);
console.log(`== ~20M-parameter model: ${(model.numParams / 1e6).toFixed(1)}M params (V=8192, C=384, L=10, GQA 6/2, F=1024), ${os.cpus().length} cores\n`);

async function trainRate(mode: "lora" | "full", B: number, T: number, steps: number): Promise<number> {
  if (mode === "lora") model.enableLora({ rank: 16, alpha: 32, targets: "all-linear" });
  else model.setTrainBase(true);
  const tokens = Int32Array.from({ length: B * T }, (_, i) => (i * 7919) % cfg.vocabSize);
  const targets = Int32Array.from({ length: B * T }, (_, i) => (i * 104729) % cfg.vocabSize);
  await model.forwardBackward({ B, T, tokens, targets });
  model.optimizerStep({ lr: 1e-4 });
  const t0 = performance.now();
  for (let s = 0; s < steps; s++) {
    await model.forwardBackward({ B, T, tokens, targets });
    model.optimizerStep({ lr: 1e-4 });
  }
  return (B * T * steps) / ((performance.now() - t0) / 1000);
}

const loraTps = await trainRate("lora", 4, 128, 3);
const fullTps = await trainRate("full", 4, 128, 3);
console.log(`training (forward + backward + AdamW, B=4 T=128): LoRA r=16 ${loraTps.toFixed(0)} tokens/s, full fine-tune ${fullTps.toFixed(0)} tokens/s`);

const plain = new DecoderModel(parseDecoderConfig(hfConfigJson(cfg)));
for (const [n, d] of weights) plain.setParam(n, d);
const prompt = Array.from({ length: 32 }, (_, i) => (i * 31) % 256);
const newTokens = 64;
plain.generate(prompt, { maxNew: 4 });
let t0 = performance.now();
const ours = plain.generate(prompt, { maxNew: newTokens });
const oursTps = ours.length / ((performance.now() - t0) / 1000);

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "vlatext-bench-"));
const gguf = path.join(dir, "m.gguf");
writeDecoderGguf(gguf, cfg, weights, byteLevelVocab(cfg.vocabSize));
const llama = await getLlama({ gpu: false, build: "never", logLevel: "error" as never });
const lm = await llama.loadModel({ modelPath: gguf });
const ctx = await lm.createContext({ contextSize: 256, threads: os.cpus().length });
const seq = ctx.getSequence();
let theirs = 0;
t0 = performance.now();
for await (const tok of seq.evaluate(prompt as Token[], { temperature: 0 })) {
  void tok;
  if (++theirs >= newTokens) break;
}
const theirTps = theirs / ((performance.now() - t0) / 1000);
console.log(`greedy decode (32-token prompt + ${newTokens} new, batch 1): vlatext ${oursTps.toFixed(1)} tokens/s, node-llama-cpp ${theirTps.toFixed(1)} tokens/s (ratio ${(oursTps / theirTps).toFixed(2)}x)`);
await ctx.dispose();
await lm.dispose();
await llama.dispose();
model.dispose();
plain.dispose();
