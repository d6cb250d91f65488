/**
 * The vision stage of `vlatext pretrain`: teach the tiny model's vision tower to see before
 * its language model learns to talk about what it sees (as a real VLM pairs a separately
 * pretrained vision encoder with its language model). The tower is trained with a linear
 * read-out of its image tokens on the geometry of toy-world scenes (models/pretrain-tasks.ts,
 * sceneTargets: where the gripper and each block and zone are, what is held; never an action),
 * least squares over the targets a scene has. The read-out is thrown away; what stays is a
 * tower whose tokens hold the scene *linearly*, which is what a 64-wide language model can read.
 *
 * Measured (README): the moments sensor's tokens give a block's offset from the gripper to
 * 4.9-5.3 cm by a linear read-out (0.6-0.8 cm by a 512-wide MLP: the information is there, but
 * not in a form the language model reads); after this stage (tower width 128) a linear read-out
 * gives 1.6 cm for a block, 1.9 cm for its offset and 1.0 cm for the gripper, held-out.
 *
 * Deterministic: frames are drawn with keyedRandom(seed, step, slot), the read-out is updated
 * in float64 in a fixed order, and the tower's kernels reduce in a fixed order.
 */
import type { VlmModel } from "../engine/vlm.js";
import { VlaError } from "../errors.js";
import { SCENE_TARGETS, sceneTargets, type SceneFrame } from "../models/pretrain-tasks.js";
import { keyedRandom } from "../rng.js";
import type { TrainerIO } from "./trainer.js";

/**
 * The vision stage's defaults, those the shipped default (models/tiny-vlm) was made with (README:
 * what they measured). 10000 steps from random weights, held-out linear read-out RMS of the tower's
 * tokens at width 64: block 2.15 cm, offset 2.6 cm, gripper 1.3 cm; at width 128 (the default):
 * 1.63, 1.91, 0.96 cm. Fine-tuned from that model, the demo's recipe reached 50/50 and the VLA-0
 * recipe 27/50 against 10/50 from the earlier moments-sensor default (one seed each).
 */
export const VISION_STAGE_DEFAULTS = { steps: 10000, batchSize: 64, lr: 2e-3, warmupSteps: 100, init: "random" as "random" | "moments" };

export interface VisionStageOptions {
  seed: number;
  steps: number;
  batchSize: number;
  lr: number;
  warmupSteps: number;
  logEvery: number;
}

export interface VisionStageResult {
  /** Mean loss of the last logEvery steps (mean squared error over the targets a scene has, in target units). */
  finalLoss: number;
  losses: number[];
  /** Held-out root-mean-square error per target group, in centimetres (positions) or units (flags), of a least-squares read-out fitted on the training frames. */
  heldOut: Record<string, number>;
  seconds: number;
}

/** Cosine schedule with linear warmup, both pretraining stages' learning rate at `step` (1-based). */
export function warmupCosine(o: { lr: number; warmupSteps: number; steps: number }, step: number): number {
  if (step <= o.warmupSteps) return (o.lr * step) / Math.max(1, o.warmupSteps);
  return o.lr * 0.5 * (1 + Math.cos((Math.PI * (step - o.warmupSteps)) / Math.max(1, o.steps - o.warmupSteps)));
}

type SceneTargets = ReturnType<typeof sceneTargets>;

/**
 * The read-out's loss on a batch of features (B rows of D) and its gradients: the mean over the
 * targets the scenes have of (w . f + b - y)^2, so loss = sum m (p - y)^2 / sum m; dW, db and the
 * features' gradient dF (float32, for the tower's backward). Checked against finite differences.
 */
export function readoutLoss(r: { w: Float64Array; b: Float64Array; K: number; D: number }, feats: Float32Array, targets: readonly SceneTargets[]): { loss: number; dW: Float64Array; db: Float64Array; dF: Float32Array } {
  const { K, D } = r;
  const B = targets.length;
  if (feats.length !== B * D) throw new VlaError("DATA_INVALID", `the read-out got ${feats.length} feature values for ${B} scenes of ${D}`);
  let count = 0;
  for (const t of targets) for (const m of t.mask) count += m;
  const dW = new Float64Array(K * D);
  const db = new Float64Array(K);
  const dF = new Float32Array(B * D);
  let loss = 0;
  if (count === 0) return { loss, dW, db, dF };
  for (let b = 0; b < B; b++) {
    const t = targets[b] as SceneTargets;
    const fo = b * D;
    for (let k = 0; k < K; k++) {
      if ((t.mask[k] as number) === 0) continue;
      const wo = k * D;
      let p = r.b[k] as number;
      for (let d = 0; d < D; d++) p += (r.w[wo + d] as number) * (feats[fo + d] as number);
      const e = p - (t.value[k] as number);
      loss += e * e;
      const g = (2 * e) / count;
      db[k] = (db[k] as number) + g;
      for (let d = 0; d < D; d++) {
        dW[wo + d] = (dW[wo + d] as number) + g * (feats[fo + d] as number);
        dF[fo + d] = (dF[fo + d] as number) + g * (r.w[wo + d] as number);
      }
    }
  }
  return { loss: loss / count, dW, db, dF };
}

/** A linear map (K x D) plus bias with its own Adam moments, in float64. */
export class Readout {
  readonly w: Float64Array;
  readonly b: Float64Array;
  private readonly mw: Float64Array;
  private readonly vw: Float64Array;
  private readonly mb: Float64Array;
  private readonly vb: Float64Array;
  private t = 0;
  constructor(
    readonly K: number,
    readonly D: number,
  ) {
    this.w = new Float64Array(K * D);
    this.b = new Float64Array(K);
    this.mw = new Float64Array(K * D);
    this.vw = new Float64Array(K * D);
    this.mb = new Float64Array(K);
    this.vb = new Float64Array(K);
  }
  /** Adam (beta 0.9 / 0.999, eps 1e-8), no weight decay. */
  step(gw: Float64Array, gb: Float64Array, lr: number): void {
    this.t++;
    const c1 = 1 - 0.9 ** this.t;
    const c2 = 1 - 0.999 ** this.t;
    const upd = (p: Float64Array, g: Float64Array, m: Float64Array, v: Float64Array) => {
      for (let i = 0; i < p.length; i++) {
        const gi = g[i] as number;
        m[i] = 0.9 * (m[i] as number) + 0.1 * gi;
        v[i] = 0.999 * (v[i] as number) + 0.001 * gi * gi;
        p[i] = (p[i] as number) - (lr * ((m[i] as number) / c1)) / (Math.sqrt((v[i] as number) / c2) + 1e-8);
      }
    };
    upd(this.w, gw, this.mw, this.vw);
    upd(this.b, gb, this.mb, this.vb);
  }
}

/**
 * Train the tower of `vlm` (made trainable here, frozen again at the end) on `frames` with a
 * linear read-out; `heldOut` frames measure it. The tower's weights are changed in place.
 */
export async function trainVisionStage(vlm: VlmModel, frames: readonly SceneFrame[], heldOut: readonly SceneFrame[], o: VisionStageOptions, io: TrainerIO): Promise<VisionStageResult> {
  if (frames.length === 0) throw new VlaError("CONFIG_INVALID", "the vision stage has no frames", "raise --episodes");
  const t0 = performance.now();
  const K = SCENE_TARGETS.length;
  const first = frames[0] as SceneFrame;
  const tokens = vlm.imageLayout(first.image.height, first.image.width).tokens;
  const C = vlm.decoder.config.native.hiddenSize;
  const D = tokens * C;
  const targets = frames.map((f) => sceneTargets(f.world));
  const readout = new Readout(K, D);
  vlm.vision.setTrainable(true);
  const losses: number[] = [];
  const B = o.batchSize;
  try {
    for (let step = 1; step <= o.steps; step++) {
      const picks: number[] = [];
      for (let slot = 0; slot < B; slot++) picks.push(Math.floor(keyedRandom(o.seed, step, slot)() * frames.length));
      const feats = (await vlm.imageFeatures(picks.map((i) => (frames[i] as SceneFrame).image), { train: true })).features;
      const g = readoutLoss(readout, feats, picks.map((i) => targets[i] as SceneTargets));
      if (!Number.isFinite(g.loss)) throw new VlaError("TRAIN_DIVERGED", `vision stage loss became ${g.loss} at step ${step}`, `lower the vision learning rate (now ${o.lr})`);
      losses.push(g.loss);
      const dF = g.dF;
      await vlm.backwardImages(dF);
      const lr = warmupCosine(o, step);
      vlm.vision.optimizerStep({ lr, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, maxGradNorm: 1 });
      readout.step(g.dW, g.db, lr);
      if (step % o.logEvery === 0 || step === o.steps) {
        const recent = losses.slice(-o.logEvery);
        const el = (performance.now() - t0) / 1000;
        io.progress(`vision step ${step}/${o.steps}  loss ${(recent.reduce((a, x) => a + x, 0) / recent.length).toFixed(4)}  ETA ${(((o.steps - step) * el) / step).toFixed(0)}s`);
      }
    }
  } finally {
    vlm.vision.setTrainable(false);
  }
  const tail = losses.slice(-o.logEvery);
  return { finalLoss: tail.reduce((a, x) => a + x, 0) / Math.max(1, tail.length), losses, heldOut: heldOut.length > 0 ? await readoutError(vlm, frames, heldOut) : {}, seconds: (performance.now() - t0) / 1000 };
}

/** Frozen features of frames, (frames, tokens * C), in batches. */
export async function frameFeatures(vlm: VlmModel, frames: readonly SceneFrame[]): Promise<Float32Array[]> {
  const out: Float32Array[] = [];
  // 64 frames a call keeps the tower's activations small; a frame's features do not depend on its batch
  // while every product has more rows than the GEMV path takes (5+ frames: checked, 37, 64 and 256 agree bit for bit)
  for (let i = 0; i < frames.length; i += 64) {
    const part = frames.slice(i, i + 64);
    const f = (await vlm.imageFeatures(part.map((x) => x.image))).features;
    const per = f.length / part.length;
    part.forEach((_, k) => out.push(f.slice(k * per, (k + 1) * per)));
  }
  return out;
}

/**
 * How well the tower's tokens hold the scene linearly: a ridge read-out fitted (normal equations,
 * float64) on up to 4000 training frames, its RMS error on the held-out frames per target group.
 */
export async function readoutError(vlm: VlmModel, train: readonly SceneFrame[], heldOut: readonly SceneFrame[]): Promise<Record<string, number>> {
  const fit = train.filter((_, i) => i % Math.max(1, Math.ceil(train.length / 4000)) === 0);
  const Xa = await frameFeatures(vlm, fit);
  const Xb = await frameFeatures(vlm, heldOut);
  const D = (Xa[0] as Float32Array).length + 1;
  const K = SCENE_TARGETS.length;
  const Ya = fit.map((f) => sceneTargets(f.world));
  const Yb = heldOut.map((f) => sceneTargets(f.world));
  const out: Record<string, { se: number; n: number }> = {};
  for (let k = 0; k < K; k++) {
    // per target: only the frames that have it
    const rows = Xa.map((x, i) => ({ x, t: Ya[i] as ReturnType<typeof sceneTargets> })).filter((r) => (r.t.mask[k] as number) > 0);
    if (rows.length < D) continue;
    const A = new Float64Array(D * D);
    const r = new Float64Array(D);
    const xr = new Float64Array(D);
    for (const row of rows) {
      for (let d = 0; d < D - 1; d++) xr[d] = row.x[d] as number;
      xr[D - 1] = 1;
      const y = row.t.value[k] as number;
      for (let i = 0; i < D; i++) {
        const xi = xr[i] as number;
        r[i] = (r[i] as number) + xi * y;
        for (let j = 0; j <= i; j++) A[i * D + j] = (A[i * D + j] as number) + xi * (xr[j] as number);
      }
    }
    for (let i = 0; i < D; i++) {
      A[i * D + i] = (A[i * D + i] as number) + 1e-3 * rows.length;
      for (let j = 0; j < i; j++) A[j * D + i] = A[i * D + j] as number;
    }
    const w = solveSpd(A, r, D);
    const spec = SCENE_TARGETS[k] as (typeof SCENE_TARGETS)[number];
    const acc = (out[spec.group] ??= { se: 0, n: 0 });
    Xb.forEach((x, i) => {
      const t = Yb[i] as ReturnType<typeof sceneTargets>;
      if (!((t.mask[k] as number) > 0)) return;
      let p = w[D - 1] as number;
      for (let d = 0; d < D - 1; d++) p += (w[d] as number) * (x[d] as number);
      acc.se += ((p - (t.value[k] as number)) * spec.unit) ** 2;
      acc.n++;
    });
  }
  return Object.fromEntries(Object.entries(out).map(([g, a]) => [g, Math.sqrt(a.se / Math.max(1, a.n))]));
}

/** Solve A x = r for a symmetric positive definite A (n x n, row-major) by Cholesky, in float64. */
function solveSpd(A: Float64Array, r: Float64Array, n: number): Float64Array {
  const L = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j <= i; j++) {
      let s = A[i * n + j] as number;
      for (let k = 0; k < j; k++) s -= (L[i * n + k] as number) * (L[j * n + k] as number);
      L[i * n + j] = i === j ? Math.sqrt(Math.max(s, 1e-12)) : s / (L[j * n + j] as number);
    }
  }
  const y = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let s = r[i] as number;
    for (let k = 0; k < i; k++) s -= (L[i * n + k] as number) * (y[k] as number);
    y[i] = s / (L[i * n + i] as number);
  }
  const x = new Float64Array(n);
  for (let i = n - 1; i >= 0; i--) {
    let s = y[i] as number;
    for (let k = i + 1; k < n; k++) s -= (L[k * n + i] as number) * (x[k] as number);
    x[i] = s / (L[i * n + i] as number);
  }
  return x;
}
