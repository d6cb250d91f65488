/**
 * The vlatext and llama.cpp contestants of bench/vs-hf.ts, one job per process (so each
 * has its own peak RSS), and the GGUF export they share. The driver passes every setting;
 * run alone only to debug one job:
 *
 *   npx tsx bench/vs-hf-worker.ts train  --model DIR --inputs FILE --mode lora|full [--dtype f32|bf16] --threads N --warmup W --steps S
 *   npx tsx bench/vs-hf-worker.ts decode --model DIR --inputs FILE [--dtype f32|bf16] --threads N --new 64 --reps R
 *   npx tsx bench/vs-hf-worker.ts llamacpp --gguf FILE --inputs FILE --threads N --new 64 --reps R
 *   npx tsx bench/vs-hf-worker.ts export --model DIR --out DIR
 *
 * Progress goes to stderr; the last stdout line is the job's JSON result (bench/vs-hf-lib.ts).
 */
import fs from "node:fs";
import path from "node:path";
import { parseArgs } from "node:util";
import { DecoderModel } from "../src/engine/decoder.js";
import { parseDecoderConfig } from "../src/engine/config.js";
import { loadPeftAdapter } from "../src/io/adapter-export.js";
import { byteLevelVocab, writeDecoderGguf, type DecoderConfig } from "../src/io/gguf-decoder.js";
import type { GgmlType } from "../src/io/gguf.js";
import { readSafetensorsHeader } from "../src/io/safetensors.js";
import { median, readInputs, rssKiB, type DecodeResult, type TrainResult } from "./vs-hf-lib.js";

const BASELINE_KIB = rssKiB("VmRSS");
const log = (msg: string): void => void process.stderr.write(`${msg}\n`);
const emit = (o: unknown): void => void process.stdout.write(`${JSON.stringify(o)}\n`);

const { positionals, values: a } = parseArgs({
  allowPositionals: true,
  options: {
    model: { type: "string" },
    inputs: { type: "string" },
    gguf: { type: "string" },
    out: { type: "string" },
    mode: { type: "string", default: "lora" },
    dtype: { type: "string", default: "f32" },
    threads: { type: "string", default: "2" },
    warmup: { type: "string", default: "2" },
    steps: { type: "string", default: "5" },
    new: { type: "string", default: "64" },
    reps: { type: "string", default: "3" },
    lr: { type: "string", default: "1e-4" },
  },
});
const threads = Number(a.threads);
const need = (v: string | undefined, flag: string): string => {
  if (!v) throw new Error(`--${flag} is required`);
  return v;
};

/**
 * Load with `{ dtype: "bf16" }` (frozen base weights kept bf16 in memory). The option
 * counts as supported only when the engine reports bf16 tensors afterwards (params.info()
 * entries with dtype "bf16"); an engine that throws on it, or ignores it, is reported as
 * such: never an f32 run under a bf16 label.
 */
function loadModel(dir: string, dtype: string): DecoderModel | { unsupported: string } {
  if (dtype === "f32") return DecoderModel.load(dir, { threads });
  if (dtype !== "bf16") throw new Error(`--dtype must be f32 or bf16, got ${dtype}`);
  const options: { threads: number; dtype: "bf16" } = { threads, dtype: "bf16" };
  let model: DecoderModel;
  try {
    model = DecoderModel.load(dir, options);
  } catch (e) {
    return { unsupported: `not supported by this engine build: DecoderModel.load(dir, { dtype: "bf16" }) threw: ${(e as Error).message.split("\n")[0]}` };
  }
  const info = model.params.info();
  const bf16 = info.filter((t) => t.dtype === "bf16").length;
  if (bf16 === 0) {
    model.dispose();
    const why = info.some((t) => t.dtype !== undefined) ? "but reports no tensor stored as bf16" : "but params.info() reports no dtypes, so its weights are f32";
    return { unsupported: `not supported by this engine build: DecoderModel.load accepted { dtype: "bf16" } ${why}` };
  }
  log(`${bf16} of ${info.length} parameter tensors stored as bf16`);
  return model;
}

async function train(): Promise<void> {
  const dir = need(a.model, "model");
  const inp = readInputs(need(a.inputs, "inputs"));
  const warmup = Number(a.warmup);
  const steps = Number(a.steps);
  const t0 = performance.now();
  const model = loadModel(dir, a.dtype);
  if (!(model instanceof DecoderModel)) return emit(model);
  if (a.mode === "lora") {
    // the same initial adapter as the HF+PEFT run (B = 0): the loss curves must agree
    model.loadAdapter(loadPeftAdapter(path.join(dir, "lora-init")));
  } else if (a.mode === "full") {
    model.setTrainBase(true);
  } else {
    throw new Error(`--mode must be lora or full, got ${a.mode}`);
  }
  const trainable = a.mode === "lora" ? model.loraInfo().reduce((s, t) => s + t.shape.reduce((x, y) => x * y, 1), 0) : model.numParams;
  log(`loaded in ${((performance.now() - t0) / 1000).toFixed(1)}s: ${trainable} trainable parameters`);
  const batch = { B: inp.B, T: inp.T, tokens: Int32Array.from(inp.tokens), targets: Int32Array.from(inp.targets) };
  const losses: number[] = [];
  const gradNorms: number[] = [];
  const stepSeconds: number[] = [];
  for (let s = 0; s < warmup + steps; s++) {
    const ts = performance.now();
    const r = await model.forwardBackward(batch);
    const norm = model.optimizerStep({ lr: Number(a.lr), weightDecay: 0.01, maxGradNorm: 1, beta1: 0.9, beta2: 0.999, eps: 1e-8 });
    stepSeconds.push((performance.now() - ts) / 1000);
    losses.push(r.loss);
    gradNorms.push(norm);
    log(`step ${s + 1}/${warmup + steps}${s < warmup ? " (warm-up)" : ""}: loss ${r.loss.toFixed(6)}, grad norm ${norm.toFixed(4)}, ${stepSeconds[s]!.toFixed(2)}s`);
  }
  const seconds = stepSeconds.slice(warmup).reduce((x, y) => x + y, 0);
  model.dispose();
  const out: TrainResult = {
    tokensPerSec: (inp.B * inp.T * steps) / seconds,
    seconds,
    stepSeconds,
    losses,
    gradNorms,
    peakRssKiB: rssKiB("VmHWM"),
    baselineRssKiB: BASELINE_KIB,
    trainable,
    setup: `${a.dtype === "bf16" ? "bf16 base weights, f32 LoRA and AdamW" : "f32"}; forwardBackward + optimizerStep; ${threads} threads`,
    versions: { node: process.version },
  };
  emit(out);
}

async function decode(): Promise<void> {
  const inp = readInputs(need(a.inputs, "inputs"));
  const n = Number(a.new);
  const model = loadModel(need(a.model, "model"), a.dtype);
  if (!(model instanceof DecoderModel)) return emit(model);
  model.generate(inp.prompt, { maxNew: 4 });
  const rates: number[] = [];
  let tokens: number[] | undefined;
  for (let r = 0; r < Number(a.reps); r++) {
    const t0 = performance.now();
    const got = model.generate(inp.prompt, { maxNew: n });
    const dt = (performance.now() - t0) / 1000;
    rates.push(got.length / dt);
    if (tokens && got.join() !== tokens.join()) throw new Error("vlatext generate gave different tokens on two greedy runs");
    tokens = got;
    log(`run ${r + 1}/${a.reps}: ${got.length} tokens in ${dt.toFixed(2)}s (${rates[r]!.toFixed(1)} tokens/s)`);
  }
  // the engine alone: the KV cache and an argmax, without generate()'s candidate list
  const cache = model.newCache(inp.prompt.length + n);
  const t0 = performance.now();
  let logits = cache.feed(Int32Array.from(inp.prompt));
  const fed: number[] = [];
  for (let s = 0; s < n; s++) {
    let best = 0;
    for (let v = 1; v < logits.length; v++) if ((logits[v] as number) > (logits[best] as number)) best = v;
    fed.push(best);
    if (s + 1 < n) logits = cache.feed(Int32Array.of(best));
  }
  const feedTokensPerSec = n / ((performance.now() - t0) / 1000);
  if (fed.join() !== tokens!.join()) throw new Error("KvCache.feed + argmax and generate() disagree on the greedy tokens");
  model.dispose();
  const out: DecodeResult = {
    tokensPerSec: median(rates),
    rates,
    tokens: tokens!,
    feedTokensPerSec,
    peakRssKiB: rssKiB("VmHWM"),
    baselineRssKiB: BASELINE_KIB,
    setup: `DecoderModel.generate (KV cache, greedy), ${a.dtype} weights, ${threads} threads`,
    versions: { node: process.version },
  };
  emit(out);
}

async function llamacpp(): Promise<void> {
  const file = need(a.gguf, "gguf");
  const inp = readInputs(need(a.inputs, "inputs"));
  const n = Number(a.new);
  const { getLlama } = await import("node-llama-cpp");
  const base = rssKiB("VmRSS");
  const llama = await getLlama({ gpu: false, build: "never", logLevel: "error" as never, maxThreads: threads });
  const model = await llama.loadModel({ modelPath: file });
  // llama.cpp's defaults otherwise (f16 KV cache, its choice of flash attention): its best CPU path
  const contextOptions = { contextSize: inp.prompt.length + n + 64, batchSize: 512, threads: { ideal: threads, min: threads } };
  let ctx = await model.createContext(contextOptions);
  let seq = ctx.getSequence();
  const run = async (count: number): Promise<{ tokens: number[]; seconds: number }> => {
    await seq.clearHistory();
    const tokens: number[] = [];
    const t0 = performance.now();
    // evaluate() yields a token after the prompt's batch, then one per step; stopping after
    // the count-th means the same work as generate(): one prefill and count - 1 single steps
    for await (const t of seq.evaluate(inp.prompt as never, { temperature: 0 })) {
      tokens.push(t);
      if (tokens.length >= count) break;
    }
    return { tokens, seconds: (performance.now() - t0) / 1000 };
  };
  await run(4);
  const rates: number[] = [];
  let tokens: number[] | undefined;
  for (let r = 0; r < Number(a.reps); r++) {
    const got = await run(n);
    rates.push(got.tokens.length / got.seconds);
    if (tokens && got.tokens.join() !== tokens.join()) throw new Error("llama.cpp gave different tokens on two greedy runs");
    tokens = got.tokens;
    log(`run ${r + 1}/${a.reps}: ${got.tokens.length} tokens in ${got.seconds.toFixed(2)}s (${rates[r]!.toFixed(1)} tokens/s)`);
  }
  const actualThreads = ctx.currentThreads;
  await ctx.dispose();
  ctx = await model.createContext({ ...contextOptions, flashAttention: false, experimentalKvCacheKeyType: "F32", experimentalKvCacheValueType: "F32" });
  seq = ctx.getSequence();
  const exactTokens = (await run(n)).tokens;
  log(`f32 KV cache, no flash attention: ${exactTokens.filter((t, i) => t === tokens![i]).length} of ${n} tokens as with the defaults`);
  const info = llama.systemInfo.replace(/\s+\|\s*$/, "");
  await ctx.dispose();
  await model.dispose();
  await llama.dispose();
  const pkg = JSON.parse(fs.readFileSync(path.join(path.dirname(new URL(import.meta.url).pathname), "..", "node_modules", "node-llama-cpp", "package.json"), "utf8")) as { version: string };
  const out: DecodeResult = {
    tokensPerSec: median(rates),
    rates,
    tokens: tokens!,
    exactTokens,
    peakRssKiB: rssKiB("VmHWM"),
    baselineRssKiB: base,
    setup: `node-llama-cpp ${pkg.version} sequence.evaluate (temperature 0), llama.cpp defaults (f16 KV cache), ${actualThreads} threads`,
    versions: { nodeLlamaCpp: pkg.version, llamaCppSystemInfo: info },
  };
  emit(out);
}

/** f32 views of a safetensors file's F32 tensors (copied when not 4-byte aligned). */
function readF32Tensors(file: string): Map<string, Float32Array> {
  const h = readSafetensorsHeader(file);
  const buf = fs.readFileSync(file);
  const out = new Map<string, Float32Array>();
  for (const [name, e] of h.tensors) {
    if (e.dtype !== "F32") throw new Error(`${file}: tensor ${name} is ${e.dtype}; the bench builds f32 models`);
    const at = buf.byteOffset + h.dataStart + e.begin;
    const count = (e.end - e.begin) / 4;
    out.set(name, at % 4 === 0 ? new Float32Array(buf.buffer, at, count) : new Float32Array(buf.buffer.slice(at, at + 4 * count)));
  }
  return out;
}

/** The model directory as GGUF f32, f16 and bf16 (vlatext's own export, src/io/gguf-decoder.ts). */
function exportGguf(): void {
  const dir = need(a.model, "model");
  const outDir = need(a.out, "out");
  const t0 = performance.now();
  const json: unknown = JSON.parse(fs.readFileSync(path.join(dir, "config.json"), "utf8"));
  const c = parseDecoderConfig(json, path.join(dir, "config.json"));
  const n = c.native;
  const cfg: DecoderConfig = {
    arch: c.family,
    vocabSize: n.vocabSize,
    hiddenSize: n.hiddenSize,
    numLayers: n.numLayers,
    numHeads: n.numHeads,
    numKvHeads: n.numKvHeads,
    headDim: n.headDim,
    intermediateSize: n.intermediateSize,
    rmsNormEps: n.rmsNormEps,
    ropeTheta: n.ropeTheta,
    maxPositions: Number((json as { max_position_embeddings?: number }).max_position_embeddings ?? 4096),
    tieEmbeddings: n.tieEmbeddings,
  };
  const weights = readF32Tensors(path.join(dir, "model.safetensors"));
  const vocab = byteLevelVocab(cfg.vocabSize);
  const files: Record<string, string> = {};
  const bytes: Record<string, number> = {};
  for (const type of ["f32", "f16", "bf16"] as GgmlType[]) {
    const file = path.join(outDir, `model-${type}.gguf`);
    writeDecoderGguf(file, cfg, weights, vocab, type);
    files[type] = file;
    bytes[type] = fs.statSync(file).size;
    log(`wrote ${file} (${(bytes[type] / 2 ** 20).toFixed(0)} MiB)`);
  }
  emit({ files, bytes, arch: cfg.arch, seconds: (performance.now() - t0) / 1000 });
}

const jobs: Record<string, () => Promise<void> | void> = { train, decode, llamacpp, export: exportGguf };
const job = jobs[positionals[0] ?? ""];
if (!job) {
  log(`usage: npx tsx bench/vs-hf-worker.ts ${Object.keys(jobs).join("|")} [options] (see the comment at the top of this file)`);
  process.exitCode = 2;
} else {
  await job();
}
