/**
 * `vlatext pretrain`: make the tiny default model see. The tiny Qwen2.5-VL-architecture
 * model is created from its seed (moments-sensor tower, see models/tiny-default.ts), then
 * trained whole — vision tower and language model — on image-text questions about
 * toy-world scenes (models/pretrain-tasks.ts; none of them the action task). The result is
 * a plain Hugging Face directory (one model.safetensors under HF names) that transformers'
 * from_pretrained loads, plus pretrain.json: the resolved config, the time it took, the
 * held-out answer accuracy per question kind and the weights' SHA-256.
 *
 * Deterministic: every random choice is a function of (seed, step, slot), the data of the
 * seed, and the native kernels reduce in a fixed order, so the same config gives the same
 * bytes (the test checks a few steps; README gives the command and its time).
 */
import { createHash } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { z } from "zod";
import type { RgbImage } from "../data/episode.js";
import { pickToken, type TrainBatch } from "../engine/decoder.js";
import { optimizerStep } from "../engine/params.js";
import { loadLanguageModel, type VlmModel } from "../engine/vlm.js";
import { VlaError, formatZodIssues } from "../errors.js";
import { writeFileAtomic } from "../io/atomic.js";
import { writeSafetensors } from "../io/safetensors.js";
import { OFFSET_UNIT, QUESTION_KINDS, sceneFrames, sceneQuestions, type QuestionKind, type SceneFrame } from "../models/pretrain-tasks.js";
import { createTinyDefaultModel } from "../models/tiny-default.js";
import { renderChat } from "../prompts/chat.js";
import { encodeSegments, type EncodedPrompt } from "../prompts/encode.js";
import { loadTokenizerDir, type TextTokenizer } from "../prompts/tokenizer.js";
import { keyedRandom } from "../rng.js";
import { WORKSPACE_HALF } from "../sim/geometry.js";
import { SceneOptionsSchema } from "../sim/scene.js";
import { CameraListSchema } from "../sim/camera.js";
import { TASK_FAMILIES, type TaskFamilyName } from "../sim/tasks.js";
import { VISION_STAGE_DEFAULTS, frameFeatures, trainVisionStage, warmupCosine, type VisionStageResult } from "./pretrain-vision.js";
import type { TrainerIO } from "./trainer.js";

export const PretrainConfigSchema = z
  .object({
    /** The model directory to write (created; must not hold another model). */
    output: z.string().min(1),
    seed: z.number().int().min(0).default(0),
    /** Language-stage steps; 0 runs the vision stage alone (a tower for `vision.from`, the language model untrained). */
    steps: z.number().int().min(0).default(24000),
    batchSize: z.number().int().min(1).default(16),
    lr: z.number().positive().default(3e-3),
    warmupSteps: z.number().int().min(0).default(100),
    /** Expert episodes whose frames are the training scenes (families in turn). */
    episodes: z.number().int().min(1).default(8000),
    /** Keep every n-th frame of each episode. */
    every: z.number().int().min(1).default(5),
    /** The question kinds asked (models/pretrain-tasks.ts). */
    questions: z.array(z.enum(QUESTION_KINDS)).min(1).default([...QUESTION_KINDS]),
    /** Task families whose expert episodes give the scenes (in turn). */
    families: z.array(z.enum(TASK_FAMILIES as [TaskFamilyName, ...TaskFamilyName[]])).min(1).default([...TASK_FAMILIES]),
    /** Block and zone counts of the scenes (the simulator's scene options; default 1-3 blocks, 0-1 zones). */
    scene: SceneOptionsSchema.default({ blocks: [1, 3], zones: [0, 1] }),
    /** Held-out episodes (seeds of their own) for the accuracy in pretrain.json. */
    evalEpisodes: z.number().int().min(0).default(30),
    imageSize: z.number().int().min(28).default(56),
    /** The cameras tiled left to right, in CAMERA_NAMES order whatever order they are named in (default top, front). */
    cameras: CameraListSchema,
    /**
     * The vision stage (src/train/pretrain-vision.ts), before the language model learns anything:
     * the tower, from `init`, trained with a linear read-out on the scenes' geometry. steps 0 skips
     * it (the tower stays the moments sensor it is created as: the earlier default's path).
     */
    vision: z
      .object({
        steps: z.number().int().min(0).default(VISION_STAGE_DEFAULTS.steps),
        batchSize: z.number().int().min(1).default(VISION_STAGE_DEFAULTS.batchSize),
        lr: z.number().positive().default(VISION_STAGE_DEFAULTS.lr),
        warmupSteps: z.number().int().min(0).default(VISION_STAGE_DEFAULTS.warmupSteps),
        /** How the tower starts: Gaussian weights, or the moments sensor (models/tiny-default.ts). */
        init: z.enum(["random", "moments"]).default(VISION_STAGE_DEFAULTS.init),
        /**
         * A model directory made by pretrain whose trained tower to take instead of running the stage
         * (same vision config and language-model width); the language stage then runs on it.
         */
        from: z.string().min(1).optional(),
      })
      .strict()
      .default(VISION_STAGE_DEFAULTS),
    /**
     * Train the vision tower in the language stage too. Off (the default): the tower stays what the vision
     * stage made of it (or the moments sensor without that stage) and its features are computed once per
     * frame; the language model learns to read it (the demo fine-tunes with the tower frozen as well).
     * Training the moments sensor end to end here measured worse (final loss 0.88 against 0.70, README).
     */
    trainVision: z.boolean().default(false),
    model: z
      .object({ hiddenSize: z.number().int().min(16).multipleOf(16).default(64), layers: z.number().int().min(1).default(2), visionHidden: z.number().int().min(16).default(128), visionDepth: z.number().int().min(1).default(2), patchSize: z.number().int().min(7).default(28) })
      .strict()
      .default({ hiddenSize: 64, layers: 2, visionHidden: 128, visionDepth: 2, patchSize: 28 }),
    threads: z.number().int().min(0).default(0),
    logEvery: z.number().int().min(1).default(100),
  })
  .strict();
export type PretrainConfig = z.output<typeof PretrainConfigSchema>;

export function parsePretrainConfig(input: unknown, source = "pretrain config"): PretrainConfig {
  const r = PretrainConfigSchema.safeParse(input);
  if (!r.success) throw new VlaError("CONFIG_INVALID", `invalid ${source}:\n${formatZodIssues(r.error.issues)}`, "fix or remove the named key(s); `vlatext pretrain --help` lists them");
  // steps 0 runs the vision stage alone: refused where that stage does not run either (no steps, or a tower taken from vision.from)
  if (r.data.steps === 0 && (r.data.vision.steps === 0 || r.data.vision.from !== undefined)) {
    throw new VlaError("CONFIG_INVALID", `invalid ${source}: steps 0 and ${r.data.vision.from !== undefined ? "vision.from (the vision stage skipped)" : "vision.steps 0"} train nothing`, "give the language stage steps (--steps), the vision stage steps (--vision-steps), or both");
  }
  return r.data;
}

/** The system prompt of every pretraining question. */
export const PRETRAIN_SYSTEM = "Answer the question about the picture.";

/** A question about the frame's image, encoded with the model's chat template (answer included). */
export function encodeQuestion(tok: TextTokenizer, question: string, answer: string, imageTokens: number): EncodedPrompt {
  const segs = renderChat(tok, { system: PRETRAIN_SYSTEM, user: [{ type: "image", index: 0 }, { type: "text", text: question, role: "instruction" }] }, { addVisionId: false, answer });
  return encodeSegments(tok, segs, { imageTokens: [imageTokens] });
}

interface Row {
  frame: SceneFrame;
  kind: QuestionKind;
  enc: EncodedPrompt;
}

/**
 * A batch of rows padded to the longest: loss on the answer and the end-of-turn token
 * after it; positions and image rows from the tower's layout (one image per row).
 */
function batchOf(rows: readonly Row[], vlm: VlmModel, padId: number): { batch: TrainBatch; images: RgbImage[] } {
  const T = Math.max(...rows.map((r) => r.enc.ids.length)) - 1;
  const B = rows.length;
  const tokens = new Int32Array(B * T).fill(padId);
  const targets = new Int32Array(B * T).fill(-100);
  const positions = new Int32Array(3 * B * T);
  const injectRows: number[] = [];
  rows.forEach((r, b) => {
    const L = r.enc.ids.length;
    const answerEnd = r.enc.endIndex >= 0 ? r.enc.endIndex : r.enc.answerEnd - 1;
    for (let i = 0; i < L - 1; i++) {
      tokens[b * T + i] = r.enc.ids[i] as number;
      // position i predicts token i + 1: the answer tokens and the end-of-turn token
      if (i + 1 >= r.enc.answerStart && i + 1 <= answerEnd) targets[b * T + i] = r.enc.ids[i + 1] as number;
    }
    const layout = vlm.imageLayout(r.frame.image.height, r.frame.image.width);
    const mm = vlm.multimodalInputs(L, r.enc.imageStarts, [layout]);
    for (let s = 0; s < 3; s++) for (let i = 0; i < T; i++) positions[s * B * T + b * T + i] = i < L ? (mm.positions[s * L + i] as number) : (mm.positions[s * L + L - 1] as number) + (i - L + 1);
    for (const k of mm.injectRows) injectRows.push(b * T + k);
  });
  return { batch: { B, T, tokens, targets, positions, injectRows: Int32Array.from(injectRows) }, images: rows.map((r) => r.frame.image) };
}

/**
 * Losses of the first steps, kept in pretrain.json: the warmup's learning rate does not depend on
 * the step count, so a short run of the same config must give them bit for bit, and a test can
 * tell in seconds whether the code still makes the shipped bytes.
 */
export const FIRST_LOSSES = 20;

/**
 * The kernels a backend description names ("cpu (2 threads, avx512bf16)" -> "cpu avx512bf16"):
 * the bytes depend on them (vector widths change the order of sums), not on the thread count.
 */
export function kernelPath(backend: string): string {
  const m = /^(\w+)\s*\((.*)\)\s*$/.exec(backend);
  if (!m) return backend;
  return [m[1], ...(m[2] as string).split(",").map((x) => x.trim()).filter((x) => !/^\d+ threads?$/.test(x))].join(" ");
}

export interface PretrainResult {
  dir: string;
  losses: Array<{ step: number; loss: number }>;
  /** Held-out exact-match accuracy (greedy answer = the true answer) per question kind. */
  accuracy: Partial<Record<QuestionKind, number>>;
  /** Held-out error of the greedy answers to the coordinate questions. */
  numericError: Partial<Record<QuestionKind, NumericError>>;
  seconds: number;
  sha256: string;
}

/** Held-out exact match: one teacher-forced pass; the greedy answer is right iff every answer token is the argmax. */
async function exactMatch(rows: readonly Row[], vlm: VlmModel, padId: number): Promise<Partial<Record<QuestionKind, number>>> {
  const hits = new Map<QuestionKind, { n: number; ok: number }>();
  const V = vlm.decoder.config.native.vocabSize;
  for (let i = 0; i < rows.length; i += 32) {
    const part = rows.slice(i, i + 32);
    const { batch, images } = batchOf(part, vlm, padId);
    batch.inject = (await vlm.imageFeatures(images)).features;
    const logits = vlm.decoder.logits(batch);
    part.forEach((r, b) => {
      let ok = true;
      for (let t = 0; t < batch.T && ok; t++) {
        const want = batch.targets[b * batch.T + t] as number;
        if (want < 0) continue;
        const o = (b * batch.T + t) * V;
        ok = pickToken(logits.subarray(o, o + V), undefined, 0, Math.random) === want;
      }
      const h = hits.get(r.kind) ?? { n: 0, ok: 0 };
      h.n++;
      if (ok) h.ok++;
      hits.set(r.kind, h);
    });
  }
  return Object.fromEntries(QUESTION_KINDS.filter((k) => hits.has(k)).map((k) => [k, (hits.get(k)?.ok ?? 0) / (hits.get(k)?.n ?? 1)]));
}

/** Question kinds whose answers are integers (coordinates), and what one unit of each is in centimetres. */
export const NUMERIC_KINDS: Partial<Record<QuestionKind, number>> = { block: (200 * WORKSPACE_HALF) / 99, zone: (200 * WORKSPACE_HALF) / 99, gripper: (200 * WORKSPACE_HALF) / 99, offset: 100 * OFFSET_UNIT };

/** How far off the model's own answers are, per numeric question kind. */
export interface NumericError {
  /** Mean absolute error per number, in the answer's units (for gripper: x and y only). */
  meanAbsUnits: number;
  /** The same in centimetres. */
  meanAbsCm: number;
  /** Answers that were not as many integers as the true one. */
  malformed: number;
  questions: number;
}

/**
 * Held-out error of the model's greedy answers to the coordinate questions: each prompt (its
 * image included) is prefilled in a KV cache and the answer decoded greedily until the end of
 * the turn, then read as integers. Exact match says nothing about a model that is one unit
 * off everywhere; this says how far off it is (what a policy built on it can hope for).
 */
async function numericErrors(rows: readonly Row[], vlm: VlmModel, tok: TextTokenizer, eosId: number): Promise<Partial<Record<QuestionKind, NumericError>>> {
  const acc = new Map<QuestionKind, { sum: number; n: number; malformed: number; questions: number }>();
  const model = vlm.decoder;
  const ints = (s: string): number[] => (s.match(/-?\d+/g) ?? []).map(Number);
  const numeric = rows.filter((r) => NUMERIC_KINDS[r.kind] !== undefined);
  const C = model.config.native.hiddenSize;
  for (let i = 0; i < numeric.length; i += 64) {
    const part = numeric.slice(i, i + 64);
    const feats = await vlm.imageFeatures(part.map((r) => r.frame.image));
    let offset = 0;
    for (const r of part) {
      const layout = vlm.imageLayout(r.frame.image.height, r.frame.image.width);
      const rowFeatures = feats.features.subarray(offset * C, (offset + layout.tokens) * C);
      offset += layout.tokens;
      const L = r.enc.answerStart;
      const mm = vlm.multimodalInputs(L, r.enc.imageStarts, [layout]);
      const endId = r.enc.endIndex >= 0 ? (r.enc.ids[r.enc.endIndex] as number) : -1;
      const truth = ints(tok.decode(Array.from(r.enc.ids.slice(L, r.enc.answerEnd))));
      const cache = model.newCache(L + 16);
      let logits = cache.feed(Int32Array.from(r.enc.ids.slice(0, L)), { positions: mm.positions, injectRows: mm.injectRows, inject: rowFeatures });
      let next = Math.max(...Array.from(mm.positions)) + 1;
      const out: number[] = [];
      for (let k = 0; k < 16; k++) {
        const best = pickToken(logits, undefined, 0, Math.random);
        if (best === endId || best === eosId) break;
        out.push(best);
        logits = cache.feed(Int32Array.of(best), { positions: Int32Array.of(next, next, next) });
        next++;
      }
      const got = ints(tok.decode(out));
      const a = acc.get(r.kind) ?? { sum: 0, n: 0, malformed: 0, questions: 0 };
      a.questions++;
      // the gripper's height is in other units than its plan position: x and y only
      const used = r.kind === "gripper" ? 2 : truth.length;
      if (got.length !== truth.length) a.malformed++;
      else for (let d = 0; d < used; d++) (a.sum += Math.abs((got[d] as number) - (truth[d] as number))), a.n++;
      acc.set(r.kind, a);
    }
  }
  return Object.fromEntries(
    [...acc].map(([k, a]) => {
      const units = a.n > 0 ? a.sum / a.n : NaN;
      return [k, { meanAbsUnits: units, meanAbsCm: units * (NUMERIC_KINDS[k] as number), malformed: a.malformed, questions: a.questions }];
    }),
  );
}

/** The rows of every question about every frame (held-out evaluation). */
function allRows(frames: readonly SceneFrame[], tok: TextTokenizer, imageTokens: number, asked: ReadonlySet<QuestionKind>): Row[] {
  return frames.flatMap((frame) => sceneQuestions(frame.world).filter((q) => asked.has(q.kind)).map((q) => ({ frame, kind: q.kind, enc: encodeQuestion(tok, q.question, q.answer, imageTokens) })));
}

/** The held-out scenes of a config: episodes on seeds of their own, every 4n-th frame. */
function heldOutFrames(cfg: PretrainConfig): SceneFrame[] {
  return sceneFrames({ episodes: cfg.evalEpisodes, seed: cfg.seed + 1_000, size: cfg.imageSize, every: 4 * cfg.every, families: cfg.families, scene: cfg.scene, cameras: cfg.cameras });
}

/** The held-out report of a model directory made by pretrain (exact match and numeric error), on the config's held-out scenes. */
export async function pretrainHeldOut(dir: string, cfg: PretrainConfig): Promise<{ accuracy: Partial<Record<QuestionKind, number>>; numericError: Partial<Record<QuestionKind, NumericError>> }> {
  const heldOut = heldOutFrames({ ...cfg, evalEpisodes: Math.max(1, cfg.evalEpisodes) });
  const tok = loadTokenizerDir(dir);
  const loaded = loadLanguageModel(dir, { threads: cfg.threads, dtype: "f32" });
  try {
    const vlm = loaded.vlm;
    if (!vlm) throw new VlaError("CONFIG_INVALID", `${dir} has no vision tower`, "pass a directory made by vlatext pretrain");
    const imageTokens = vlm.imageLayout(heldOut[0]?.image.height ?? cfg.imageSize, heldOut[0]?.image.width ?? 2 * cfg.imageSize).tokens;
    const rows = allRows(heldOut, tok, imageTokens, new Set(cfg.questions));
    const padId = tok.requireId(tok.eosToken ?? "<|endoftext|>");
    return { accuracy: await exactMatch(rows, vlm, padId), numericError: await numericErrors(rows, vlm, tok, padId) };
  } finally {
    loaded.dispose();
  }
}

export async function pretrain(cfg: PretrainConfig, io: TrainerIO): Promise<PretrainResult> {
  const out = path.resolve(cfg.output);
  if (fs.existsSync(path.join(out, "model.safetensors")) && !fs.existsSync(path.join(out, "pretrain.json"))) throw new VlaError("CONFIG_INVALID", `${out} holds a model that pretrain did not write`, "choose another --output");
  const t0 = performance.now();
  const work = `${out}.tmp-${process.pid}`;
  fs.rmSync(work, { recursive: true, force: true });
  io.log(`scenes: ${cfg.episodes} expert episodes (every ${cfg.every}th frame), ${cfg.evalEpisodes} held out`);
  const world = { families: cfg.families, scene: cfg.scene };
  const frames = sceneFrames({ episodes: cfg.episodes, seed: cfg.seed, size: cfg.imageSize, every: cfg.every, cameras: cfg.cameras, ...world });
  const heldOut = cfg.evalEpisodes > 0 ? heldOutFrames(cfg) : [];
  const m = cfg.model;
  const visionStage = cfg.vision.steps > 0 || cfg.vision.from !== undefined;
  // the tower starts as the moments sensor, calibrated on these scenes (every 8th frame), or random for the vision stage
  const sensor = visionStage ? cfg.vision.init : "moments";
  createTinyDefaultModel(work, { seed: cfg.seed, hiddenSize: m.hiddenSize, layers: m.layers, visionHidden: m.visionHidden, visionDepth: m.visionDepth, patchSize: m.patchSize, sensor, calibration: sensor === "moments" ? frames.filter((_, i) => i % 8 === 0).map((f) => f.image) : [], initStd: 1 / Math.sqrt(m.hiddenSize) });
  const tok = loadTokenizerDir(work);
  const loaded = loadLanguageModel(work, { threads: cfg.threads, dtype: "f32", trainBase: true, trainVision: cfg.trainVision || visionStage });
  const vlm = loaded.vlm;
  let disposed = false;
  const dispose = (): void => {
    if (!disposed) loaded.dispose();
    disposed = true;
  };
  if (!vlm) throw new VlaError("CONFIG_INVALID", "the tiny default model has no vision tower", "this is a bug: please report it");
  try {
    const model = vlm.decoder;
    const kernels = kernelPath(model.backend);
    let vision: VisionStageResult | undefined;
    if (cfg.vision.from !== undefined) {
      const file = path.join(path.resolve(cfg.vision.from), "model.safetensors");
      if (!fs.existsSync(file)) throw new VlaError("FILE_NOT_FOUND", `vision.from: ${file} does not exist`, "name a model directory made by vlatext pretrain");
      vlm.loadVisionWeights(file);
      io.log(`vision stage skipped: the tower of ${cfg.vision.from}`);
    } else if (visionStage) {
      io.log(`vision stage: ${cfg.vision.steps} steps of ${cfg.vision.batchSize} frames, the tower from ${cfg.vision.init} weights`);
      vision = await trainVisionStage(vlm, frames, heldOut, { seed: cfg.seed, steps: cfg.vision.steps, batchSize: cfg.vision.batchSize, lr: cfg.vision.lr, warmupSteps: cfg.vision.warmupSteps, logEvery: cfg.logEvery }, io);
      io.log(`vision stage: loss ${vision.finalLoss.toFixed(4)}; held-out linear read-out RMS error ${Object.entries(vision.heldOut).map(([g, e]) => `${g} ${e.toFixed(2)}${g === "flags" ? "" : " cm"}`).join(", ")} (${vision.seconds.toFixed(0)} s)`);
    }
    model.setTrainBase(true);
    if (cfg.trainVision) vlm.vision.setTrainable(true);
    const imageTokens = vlm.imageLayout(frames[0]?.image.height ?? cfg.imageSize, frames[0]?.image.width ?? 2 * cfg.imageSize).tokens;
    const asked = new Set(cfg.questions);
    const questions = frames.map((f) => sceneQuestions(f.world).filter((q) => asked.has(q.kind)));
    io.log(`${frames.length} frames, ${questions.reduce((a, q) => a + q.length, 0)} questions; ${imageTokens} image tokens per frame; ${(model.numParams + vlm.vision.paramInfo().reduce((a, p) => a + p.shape.reduce((x, y) => x * y, 1), 0)).toLocaleString()} parameters`);
    const padId = tok.requireId(tok.eosToken ?? "<|endoftext|>");
    // a frozen tower: every frame's features once
    const C = model.config.native.hiddenSize;
    const frozen = new Map<SceneFrame, Float32Array>();
    if (!cfg.trainVision && cfg.steps > 0) {
      const f = await frameFeatures(vlm, frames);
      frames.forEach((x, k) => frozen.set(x, f[k] as Float32Array));
    }
    const cache = new Map<string, EncodedPrompt>();
    const losses: Array<{ step: number; loss: number }> = [];
    const tTrain = performance.now();
    for (let step = 1; step <= cfg.steps; step++) {
      const rows: Row[] = [];
      for (let slot = 0; slot < cfg.batchSize; slot++) {
        const r = keyedRandom(cfg.seed, step, slot);
        const f = Math.floor(r() * frames.length);
        // a kind first (each kind the frame can answer equally often), then one of its questions
        const qs = questions[f] as ReturnType<typeof sceneQuestions>;
        const kinds = [...new Set(qs.map((x) => x.kind))];
        const kind = kinds[Math.floor(r() * kinds.length)] as QuestionKind;
        const ofKind = qs.filter((x) => x.kind === kind);
        const q = ofKind[Math.floor(r() * ofKind.length)] as (typeof qs)[number];
        const key = `${q.question}\n${q.answer}`;
        let enc = cache.get(key);
        if (!enc) cache.set(key, (enc = encodeQuestion(tok, q.question, q.answer, imageTokens)));
        rows.push({ frame: frames[f] as SceneFrame, kind: q.kind, enc });
      }
      const { batch, images } = batchOf(rows, vlm, padId);
      const kept = batch.targets.filter((x) => x >= 0).length;
      if (cfg.trainVision) batch.inject = (await vlm.imageFeatures(images, { train: true })).features;
      else {
        batch.inject = new Float32Array(rows.length * imageTokens * C);
        rows.forEach((r, b) => batch.inject?.set(frozen.get(r.frame) as Float32Array, b * imageTokens * C));
      }
      const r = await model.forwardBackward(batch, { lossScale: 1 / Math.max(1, kept), injectGrad: cfg.trainVision });
      if (cfg.trainVision) {
        if (!r.dInject) throw new VlaError("TRAIN_DIVERGED", "the language model returned no gradient for the image features", "this is a bug: please report it");
        await vlm.backwardImages(r.dInject);
      }
      if (!Number.isFinite(r.loss)) throw new VlaError("TRAIN_DIVERGED", `pretraining loss became ${r.loss} at step ${step}`, `lower --lr (now ${cfg.lr})`);
      optimizerStep(cfg.trainVision ? [model.params, vlm.vision.params] : [model.params], { lr: warmupCosine(cfg, step), beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, maxGradNorm: 1 });
      losses.push({ step, loss: r.loss });
      if (step % cfg.logEvery === 0 || step === cfg.steps) {
        const recent = losses.slice(-cfg.logEvery);
        const el = (performance.now() - tTrain) / 1000;
        io.progress(`step ${step}/${cfg.steps}  loss ${(recent.reduce((a, l) => a + l.loss, 0) / recent.length).toFixed(4)}  ETA ${(((cfg.steps - step) * el) / step).toFixed(0)}s`);
      }
    }
    // an untrained language model (steps 0) is not measured
    const heldOutRows = heldOut.length > 0 && cfg.steps > 0 ? allRows(heldOut, tok, imageTokens, asked) : [];
    const accuracy = heldOutRows.length > 0 ? await exactMatch(heldOutRows, vlm, padId) : {};
    const numericError = heldOutRows.length > 0 ? await numericErrors(heldOutRows, vlm, tok, padId) : {};
    // one file under Hugging Face's names: the language model's "model.*" as "model.language_model.*", the tower's "visual.*" as "model.visual.*"
    const tensors = [
      ...model.paramInfo().map((p) => ({ name: p.name.startsWith("model.") ? `model.language_model.${p.name.slice(6)}` : p.name, shape: p.shape, data: model.getParam(p.name) })),
      ...vlm.visionTensors().map((t) => ({
        name: t.name.startsWith("model.") ? t.name : `model.${t.name}`,
        // the tower keeps the patch embedding as a matrix (Cv, 3*T*P*P); HF's is the 3D convolution (Cv, 3, T, P, P), same bytes
        shape: t.name.endsWith("patch_embed.proj.weight") ? convShape(t.shape, vlm.processor.patchSize) : t.shape,
        data: t.data,
      })),
    ];
    dispose();
    writeSafetensors(path.join(work, "model.safetensors"), tensors);
    const sha256 = createHash("sha256").update(fs.readFileSync(path.join(work, "model.safetensors"))).digest("hex");
    const seconds = (performance.now() - t0) / 1000;
    const tail = losses.slice(-Math.min(100, losses.length));
    writeFileAtomic(path.join(work, "pretrain.json"), JSON.stringify({ config: { ...cfg, output: undefined }, finalLoss: tail.reduce((a, l) => a + l.loss, 0) / Math.max(1, tail.length), ...(vision ? { vision: { finalLoss: vision.finalLoss, heldOutReadoutRmse: vision.heldOut, seconds: Math.round(vision.seconds), firstLosses: vision.losses.slice(0, FIRST_LOSSES) } } : {}), heldOutExactMatch: accuracy, heldOutNumericError: numericError, seconds: Math.round(seconds), sha256, kernels, firstLosses: losses.slice(0, FIRST_LOSSES).map((l) => l.loss) }, null, 2) + "\n");
    fs.rmSync(out, { recursive: true, force: true });
    fs.renameSync(work, out);
    return { dir: out, losses, accuracy, numericError, seconds, sha256 };
  } catch (e) {
    dispose();
    fs.rmSync(work, { recursive: true, force: true });
    throw e;
  }
}

/** The patch embedding (Cv, 3*T*P*P) as HF's 3D convolution's shape (Cv, 3, T, P, P), T read from the matrix. */
function convShape(shape: readonly number[], P: number): number[] {
  const [cv, k] = [shape[0] as number, shape[1] as number];
  const T = k / (3 * P * P);
  if (!Number.isInteger(T)) throw new Error(`patch embedding of shape [${shape.join(", ")}] is not (Cv, 3*T*${P}*${P})`);
  return [cv, 3, T, P, P];
}
