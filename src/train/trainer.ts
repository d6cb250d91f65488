/**
 * The fine-tuning loop. Everything random is a function of (seed, step, micro-batch,
 * slot), so a run resumed from a checkpoint continues exactly as if it had never
 * stopped: same data order, masks, dropout and optimizer state.
 */
import fs from "node:fs";
import path from "node:path";
import { z } from "zod";
import { generateConstrained, type ActionAutomaton } from "../engine/automaton.js";
import type { DecoderModel, TrainBatch } from "../engine/decoder.js";
import { optimizerStep } from "../engine/params.js";
import { loadLanguageModel, type VlmModel } from "../engine/vlm.js";
import type { RgbImage } from "../data/episode.js";
import { VlaError } from "../errors.js";
import { buildTrainingExample, IGNORE_INDEX } from "../prompts/encode.js";
import { policyAutomaton } from "../policy/prompt.js";
import { loadTemplate } from "../prompts/template.js";
import { loadTokenizer, loadTokenizerDir, type TextTokenizer } from "../prompts/tokenizer.js";
import { actionSpecToJSON } from "../actions/spec.js";
import { keyedRandom } from "../rng.js";
import { readJsonLines } from "../io/json-file.js";
import { writePolicyFile } from "../policy/file.js";
import { latestCheckpoint, pruneCheckpoints, restoreCheckpoint, saveCheckpoint, VISION_WEIGHTS } from "./checkpoint.js";
import type { FinetuneConfig } from "./config.js";
import { buildTrainData, type TrainData, type TrainExample } from "./data.js";
import { lossCurvePng } from "./plot.js";

export interface TrainerIO {
  log: (line: string) => void;
  /** A one-line progress update (redrawn in place on a terminal). */
  progress: (line: string) => void;
}

export interface FinetuneResult {
  runDir: string;
  steps: number;
  losses: Array<{ step: number; loss: number }>;
  stopped: boolean;
  policyDir: string;
}

/** A metrics.jsonl line, as far as resuming reads it. */
const MetricsLineSchema = z.object({ step: z.number().int().min(0), loss: z.number().optional() }).passthrough();

export function learningRate(cfg: FinetuneConfig, step: number): number {
  const base = cfg.optimizer.lr;
  const w = cfg.schedule.warmupSteps;
  if (step <= w) return (base * step) / Math.max(1, w);
  const p = (step - w) / Math.max(1, cfg.steps - w);
  if (cfg.schedule.type === "linear") return base * (1 - p);
  if (cfg.schedule.type === "cosine") return base * 0.5 * (1 + Math.cos(Math.PI * p));
  return base;
}

/**
 * One micro-batch: pick examples by dataset weight, mask, pad to the longest (dynamic
 * padding). When the vision tower is trained, `images` holds each row's camera image
 * and the batch's `inject` is left for the trainer to fill with fresh features.
 */
function makeBatch(cfg: FinetuneConfig, data: TrainData, padId: number, maskId: number, step: number, micro: number): { batch: TrainBatch; images: RgbImage[] } {
  const rows: Array<{ input: Int32Array; labels: Int32Array; ex: TrainExample }> = [];
  const total = data.weights.reduce((a, b) => a + b, 0);
  for (let slot = 0; slot < cfg.batchSize; slot++) {
    const r = keyedRandom(cfg.seed, step, micro, slot);
    let u = r() * total;
    let source = 0;
    while (source < data.weights.length - 1 && u >= (data.weights[source] as number)) u -= data.weights[source++] as number;
    const list = data.train[source] as TrainExample[];
    const ex = list[Math.floor(r() * list.length)] as TrainExample;
    const t = buildTrainingExample(ex.encoded, cfg.maskActions.enabled ? { maskTokenId: maskId, augmentation: cfg.maskActions, random: r } : {});
    rows.push({ input: t.inputIds, labels: t.labels, ex });
  }
  const T = Math.max(...rows.map((x) => x.input.length)) - 1;
  const B = rows.length;
  const tokens = new Int32Array(B * T).fill(padId);
  const targets = new Int32Array(B * T).fill(IGNORE_INDEX);
  rows.forEach((x, b) => {
    // HF convention: position i predicts labels[i + 1]
    for (let i = 0; i < x.input.length - 1; i++) {
      tokens[b * T + i] = x.input[i] as number;
      targets[b * T + i] = x.labels[i + 1] as number;
    }
  });
  const batch: TrainBatch = { B, T, tokens, targets, dropoutSeed: (keyedRandom(cfg.seed, step, micro, 1 << 20)() * 2 ** 31) >>> 0 };
  if (rows.some((x) => x.ex.image)) {
    // vision-language: 3D positions (S, B*T) and the image features at their rows
    const S = (rows.find((x) => x.ex.image)?.ex.image?.positions.length ?? 0) / ((rows.find((x) => x.ex.image)?.ex.encoded.ids.length ?? 1) as number);
    const positions = new Int32Array(S * B * T);
    const injectRows: number[] = [];
    const inject: Float32Array[] = [];
    const deepstack: Float32Array[] = [];
    const images: RgbImage[] = [];
    rows.forEach((x, b) => {
      const img = x.ex.image;
      const L = x.ex.encoded.ids.length;
      for (let s = 0; s < S; s++)
        for (let i = 0; i < T; i++) {
          // past the sequence (padding) positions just continue; their targets are ignored
          const p = img ? (i < L ? (img.positions[s * L + i] as number) : (img.positions[s * L + L - 1] as number) + (i - L + 1)) : i;
          positions[s * B * T + b * T + i] = p;
        }
      if (img) {
        for (const r of img.injectRows) injectRows.push(b * T + r);
        if (img.rgb) images.push(img.rgb);
        else inject.push(img.inject);
        if (img.deepstack) deepstack.push(img.deepstack);
      }
    });
    Object.assign(batch, { positions, injectRows: Int32Array.from(injectRows), inject: concat(inject) });
    if (deepstack.length > 0) {
      // (K, rows, C) per example -> (K, all rows, C): layer by layer, examples in batch order
      const K = (deepstack[0]?.length ?? 0) / Math.max(1, inject[0]?.length ?? 1);
      const out = new Float32Array(deepstack.reduce((a, d) => a + d.length, 0));
      let o = 0;
      for (let k = 0; k < K; k++)
        for (const d of deepstack) {
          const per = d.length / K;
          out.set(d.subarray(k * per, (k + 1) * per), o);
          o += per;
        }
      batch.deepstack = out;
    }
    return { batch, images };
  }
  return { batch, images: [] };
}

function concat(parts: readonly Float32Array[]): Float32Array {
  const out = new Float32Array(parts.reduce((a, f) => a + f.length, 0));
  let o = 0;
  for (const f of parts) {
    out.set(f, o);
    o += f.length;
  }
  return out;
}

/** An example's image features: precomputed (frozen tower) or from the tower's current weights. */
async function exampleFeatures(ex: TrainExample, vlm: VlmModel | undefined): Promise<Float32Array | undefined> {
  const img = ex.image;
  if (!img) return undefined;
  if (img.inject) return img.inject;
  if (!vlm) throw new VlaError("CONFIG_INVALID", "examples carry camera images but the model has no vision tower");
  return (await vlm.imageFeatures([img.rgb])).features;
}

/**
 * Mean absolute error of a decoded chunk (H x D normalized values, row-major by timestep) against its
 * target: over the whole chunk, and over its first timestep alone — the action a policy executes now.
 * A chunk's loss and L1 can look fine while the one step executed is off; this shows that step alone.
 */
export function chunkL1(decoded: ArrayLike<number>, target: ArrayLike<number>, dims: number): { all: number; first: number } {
  if (decoded.length !== target.length || dims < 1 || decoded.length < dims || decoded.length % dims !== 0) {
    throw new VlaError("DATA_INVALID", `chunk of ${decoded.length} values against a target of ${target.length} with ${dims} dimensions`, "this is a bug: please report it");
  }
  let all = 0;
  let first = 0;
  for (let i = 0; i < decoded.length; i++) {
    const e = Math.abs((decoded[i] as number) - (target[i] as number));
    all += e;
    if (i < dims) first += e;
  }
  return { all: all / decoded.length, first: first / dims };
}

async function evaluate(model: DecoderModel, vlm: VlmModel | undefined, data: TrainData, automaton: ActionAutomaton, tok: TextTokenizer, cfg: FinetuneConfig): Promise<{ valLoss: number; l1: number; l1First: number; parsed: number; samples: number }> {
  const val = data.val.length > 0 ? data.val : data.train.flat();
  const picks = Array.from({ length: Math.min(cfg.evalSamples, val.length) }, (_, i) => val[Math.floor((i * val.length) / Math.min(cfg.evalSamples, val.length))] as TrainExample);
  let lossSum = 0;
  let kept = 0;
  let l1 = 0;
  let l1First = 0;
  let parsed = 0;
  for (const ex of picks) {
    const t = buildTrainingExample(ex.encoded);
    const T = t.inputIds.length - 1;
    const img = ex.image;
    const L = ex.encoded.ids.length;
    const S = img ? img.positions.length / L : 0;
    const cut = (n: number): Int32Array | undefined => {
      if (!img) return undefined;
      const out = new Int32Array(S * n);
      for (let s = 0; s < S; s++) out.set(img.positions.subarray(s * L, s * L + n), s * n);
      return out;
    };
    const inject = await exampleFeatures(ex, vlm);
    const extras = (n: number) => (img && inject ? { positions: cut(n) as Int32Array, injectRows: img.injectRows, inject, ...(img.deepstack ? { deepstack: img.deepstack } : {}) } : {});
    const r = model.loss({ B: 1, T, tokens: t.inputIds.slice(0, T), targets: t.labels.slice(1), ...extras(T) });
    lossSum += r.loss * r.kept;
    kept += r.kept;
    const prompt = Array.from(ex.encoded.ids.slice(0, ex.encoded.answerStart));
    const g = await generateConstrained(model, prompt, automaton, { maxTokens: 4 * data.codec.grammar.count * (data.codec.grammar.maxDigits + 3), ...extras(prompt.length) });
    const d = data.codec.decode(tok.decode(Array.from(g.tokens)), "strict");
    if (d.ok) {
      parsed++;
      const e = chunkL1(d.normalized, ex.target, data.spec.dims);
      l1 += e.all;
      l1First += e.first;
    }
  }
  return { valLoss: kept > 0 ? lossSum / kept : 0, l1: parsed > 0 ? l1 / parsed : NaN, l1First: parsed > 0 ? l1First / parsed : NaN, parsed, samples: picks.length };
}

export async function finetune(cfg: FinetuneConfig, io: TrainerIO, options: { resume?: boolean; signal?: AbortSignal } = {}): Promise<FinetuneResult> {
  const runDir = path.resolve(cfg.output);
  fs.mkdirSync(runDir, { recursive: true });
  const existing = latestCheckpoint(runDir);
  if (existing && !options.resume) throw new VlaError("CONFIG_INVALID", `${runDir} already has checkpoints (${path.basename(existing)})`, "pass --resume to continue it, or choose another --output");
  const template = loadTemplate(cfg.template);
  const tok = cfg.tokenizer ? loadTokenizer(cfg.tokenizer) : loadTokenizerDir(cfg.model);
  // frozen base weights keep the checkpoint's storage type (dtype auto: bf16 stays bf16); trained ones are f32
  const { model, vlm, dispose } = loadLanguageModel(cfg.model, { threads: cfg.threads, dtype: cfg.dtype, device: cfg.device, ...(cfg.isa ? { isa: cfg.isa } : {}), trainBase: !cfg.lora.enabled, trainVision: cfg.vision.train });
  try {
    if (tok.vocabSize > model.config.native.vocabSize) throw new VlaError("CONFIG_INVALID", `tokenizer has ${tok.vocabSize} tokens but the model's vocab_size is ${model.config.native.vocabSize}`);
    if (cfg.vision.train && !vlm) throw new VlaError("CONFIG_INVALID", `vision.train is set but ${cfg.model} has no vision tower`, "train a vision-language model (Qwen2.5-VL), or set vision.train to false");
    const tower = cfg.vision.train ? vlm : undefined;
    tower?.vision.setTrainable(true);
    if (cfg.lora.enabled) model.enableLora({ rank: cfg.lora.rank, alpha: cfg.lora.alpha, targets: cfg.lora.targets as "all-linear", dropout: cfg.lora.dropout, seed: cfg.seed });
    else model.setTrainBase(true);
    const data = await buildTrainData(cfg, tok, template, io.log, vlm, io.progress);
    io.log(`${data.train.reduce((a, l) => a + l.length, 0)} train / ${data.val.length} val examples; ${data.spec.horizon}x${data.spec.dims} actions, ${model.numParams.toLocaleString()} parameters, ${cfg.lora.enabled ? `LoRA r=${cfg.lora.rank}` : "full fine-tuning"}`);
    let start = 0;
    if (existing && options.resume) {
      const st = restoreCheckpoint(existing, model, tower);
      start = st.step;
      io.log(`resumed from ${existing} at step ${start}`);
    }
    fs.writeFileSync(path.join(runDir, "config.json"), JSON.stringify(cfg, null, 2) + "\n");
    const metricsFile = path.join(runDir, "metrics.jsonl");
    const losses: Array<{ step: number; loss: number }> = [];
    if (start > 0 && fs.existsSync(metricsFile)) {
      // keep the history up to the checkpoint; drop lines a killed run wrote after it (the last may be cut off)
      const kept = readJsonLines(metricsFile, MetricsLineSchema, { what: "training metrics", code: "CHECKPOINT_INVALID", hint: `fix or delete the named line of ${metricsFile} (the loss history before the checkpoint is read from it), then resume` }, { allowTruncatedLast: true }).rows.filter((r) => r.value.step <= start);
      fs.writeFileSync(metricsFile, kept.map((r) => JSON.stringify(r.value) + "\n").join(""));
      for (const { value: m } of kept) if (m.loss !== undefined) losses.push({ step: m.step, loss: m.loss });
    } else fs.writeFileSync(metricsFile, "");
    const padId = tok.requireId(tok.eosToken ?? "<|endoftext|>");
    const maskId = tok.singleTokenId("?");
    const automaton = policyAutomaton(tok, template, data.codec.grammar);
    const templateText = fs.readFileSync(template.source, "utf8");
    const save = (step: number): string => {
      const dir = saveCheckpoint(runDir, step, model, cfg, data.spec, data.stats, { name: template.name, text: templateText }, data.format, tower);
      pruneCheckpoints(runDir, cfg.keepCheckpoints);
      fs.writeFileSync(path.join(runDir, "loss.png"), lossCurvePng(losses));
      return dir;
    };
    const t0 = performance.now();
    let tokens = 0;
    let stopped = false;
    let step = start;
    for (step = start + 1; step <= cfg.steps; step++) {
      if (options.signal?.aborted) {
        stopped = true;
        step--;
        break;
      }
      const micro = Array.from({ length: cfg.gradAccum }, (_, k) => makeBatch(cfg, data, padId, maskId, step, k));
      const kept = micro.reduce((a, m) => a + m.batch.targets.filter((x) => x >= 0).length, 0);
      let lossSum = 0;
      for (const { batch: b, images } of micro) {
        // a trained tower: features from its current weights, and the gradient back into it
        const through = tower && images.length > 0 ? tower : undefined;
        if (through) b.inject = (await through.imageFeatures(images, { train: true })).features;
        const r = await model.forwardBackward(b, { lossScale: 1 / Math.max(1, kept), injectGrad: through !== undefined });
        if (through) {
          if (!r.dInject) throw new VlaError("TRAIN_DIVERGED", "the language model returned no gradient for the image features", "this is a bug: please report it");
          await through.backwardImages(r.dInject);
        }
        lossSum += r.loss * r.kept;
        tokens += b.B * b.T;
      }
      const loss = lossSum / Math.max(1, kept);
      if (!Number.isFinite(loss)) {
        throw new VlaError("TRAIN_DIVERGED", `loss became ${loss} at step ${step}`, `lower the learning rate (optimizer.lr = ${cfg.optimizer.lr}) or resume from the last checkpoint with a smaller one`);
      }
      const lr = learningRate(cfg, step);
      // one step, one clipping norm over everything trained: the language model and (if trained) the tower
      const gradNorm = optimizerStep(tower ? [model.params, tower.vision.params] : [model.params], { ...cfg.optimizer, lr });
      losses.push({ step, loss });
      const elapsed = (performance.now() - t0) / 1000;
      const line: Record<string, number> = { step, loss, lr, gradNorm, tokens, tokensPerSec: tokens / elapsed, elapsedSec: elapsed };
      if (cfg.evalEvery > 0 && step % cfg.evalEvery === 0) Object.assign(line, await evaluate(model, vlm, data, automaton, tok, cfg));
      fs.appendFileSync(metricsFile, JSON.stringify(line) + "\n");
      const eta = ((cfg.steps - step) * elapsed) / Math.max(1, step - start);
      if (step % cfg.logEvery === 0 || step === cfg.steps) io.progress(`step ${step}/${cfg.steps}  loss ${loss.toFixed(4)}  lr ${lr.toExponential(2)}  ${(tokens / elapsed).toFixed(0)} tok/s  ETA ${eta.toFixed(0)}s${line.l1 !== undefined ? `  val L1 ${Number(line.l1).toFixed(4)}${data.spec.horizon > 1 ? ` (first step ${Number(line.l1First).toFixed(4)})` : ""}` : ""}`);
      if (cfg.checkpointEvery > 0 && step % cfg.checkpointEvery === 0 && step < cfg.steps) save(step);
    }
    const last = Math.min(step, cfg.steps);
    const ckpt = save(last);
    io.log(`${stopped ? "stopped; " : ""}checkpoint ${ckpt}`);
    // a servable policy: policy.json pointing at the base model and this checkpoint
    const policyDir = path.join(runDir, "policy");
    writePolicyFile(policyDir, {
      model: path.resolve(cfg.model),
      ...(model.lora ? { adapter: path.join(ckpt, "adapter") } : { weights: path.join(ckpt, "model.safetensors") }),
      ...(tower ? { visionWeights: path.join(ckpt, VISION_WEIGHTS) } : {}),
      spec: actionSpecToJSON(data.spec) as Record<string, unknown>,
      stats: data.stats,
      template: cfg.template,
      format: data.format,
      tokenizer: cfg.tokenizer ?? path.resolve(cfg.model),
      ...(cfg.history > 0 ? { history: cfg.history } : {}),
      ...(data.cameras ? { cameras: data.cameras } : {}),
    });
    return { runDir, steps: last, losses, stopped, policyDir };
  } finally {
    dispose();
  }
}
