/**
 * Temporal ensembling: one stateful object per episode turns the stream of
 * predicted chunks (H actions of D values each) into the actions executed.
 *
 * The loop a robot runs:
 *   if (ens.needsPrediction()) ens.push(model(obs));
 *   const action = ens.next();
 *
 * A prediction is due at time 0 and then every K = min(executeK, H) executed
 * actions (VLA-0 clamps `action_horizon = min(action_horizon, len(chunk))`).
 *
 * Semantics. Chunk j is pushed at time s_j and covers times s_j .. s_j+H-1;
 * its age is the number of chunks pushed after it (the newest has age 0). The
 * action at time t is, per dimension, the weighted mean over the chunks with
 * age < window that cover t:
 *   none     the newest chunk only (window is ignored).
 *   vla0-v1  weight 1 for age 0, 0.5 for every older chunk.
 *   vla0-v2  weight w^age.
 *   act      weight exp(-actK * i), i = 0 for the OLDEST covering chunk,
 *            1 for the next, ... (ACT, Zhao et al. 2023; LeRobot's
 *            ACTTemporalEnsembler). ACT predicts every step (executeK = 1);
 *            executeK > 1 works the same way.
 * Then each dimension in gripperDims is snapped: mean >= gripperThreshold ->
 * +1, else -1.
 *
 * Equivalence with VLA-0 (NVlabs/vla0, roboverse/evals/libero/eval.py,
 * eval_run). Once per prediction VLA-0 appends the new chunk to a list, pops
 * the list's oldest entry if it holds more than `ensemble_prediction` (=
 * window) entries, drops the old entries whose stored remainder is <= K long,
 * cuts K actions off the front of the others, and averages position by position
 * (old entry i weighs 0.5 in v1, w^(len(list)-i-1) in v2, the newest 1).
 * (a) Each list entry is the remainder of a chunk from time t on, so "entry
 *     covers position p" is "chunk covers t+p".
 * (b) An entry is dropped exactly when it no longer covers the current time,
 *     and all chunks have length H, so older chunks run out first. The list is
 *     therefore always the most recent predictions in order, with no gaps, and
 *     len(list)-i-1 is entry i's age. A dropped entry still counts in len(list)
 *     in the round that drops it, which keeps the ages right.
 * (c) The list grows by at most one per prediction, so one pop keeps it at
 *     <= window entries: exactly the chunks with age < window.
 * test/actions/ensembler.test.ts checks this class against a line-by-line
 * transliteration of that loop (test/support/ensemble-ref.ts).
 * VLA-0 snaps its last dimension with `> 0 -> 1 else -1`, so a mean of exactly
 * 0 (common in v1: (1 - 0.5 - 0.5) / 2) goes to -1 there but to +1 here with
 * the default threshold 0. Set gripperThreshold to Number.MIN_VALUE (5e-324)
 * to reproduce VLA-0 exactly (for doubles, x > 0 <=> x >= Number.MIN_VALUE).
 */
import { z } from "zod";
import { VlaError, formatZodIssues } from "../errors.js";

export const ENSEMBLE_MODES = ["none", "vla0-v1", "vla0-v2", "act"] as const;
export type EnsembleMode = (typeof ENSEMBLE_MODES)[number];

export const EnsembleConfigSchema = z
  .object({
    mode: z.enum(ENSEMBLE_MODES),
    /** How many most recent chunks may contribute (VLA-0's ensemble_prediction). */
    window: z.number().int().min(1).default(8),
    /** Actions executed per prediction (VLA-0's action_horizon); clamped to H. */
    executeK: z.number().int().min(1).default(1),
    /** vla0-v2: a chunk of age a weighs weight^a. */
    weight: z.number().gt(0).max(1).default(0.5),
    /** act: the i-th oldest covering chunk weighs exp(-actK * i). */
    actK: z.number().min(0).default(0.01),
    /** Dimensions snapped to ±1 after averaging. */
    gripperDims: z.array(z.number().int().min(0)).default([]),
    /** mean >= gripperThreshold -> +1, else -1. */
    gripperThreshold: z.number().default(0),
  })
  .strict();

export type EnsembleConfigInput = z.input<typeof EnsembleConfigSchema>;
export type EnsembleConfig = z.output<typeof EnsembleConfigSchema>;

export function parseEnsembleConfig(input: unknown): EnsembleConfig {
  const r = EnsembleConfigSchema.safeParse(input);
  if (!r.success) {
    throw new VlaError(
      "ENSEMBLE_INVALID",
      `invalid ensembling config:\n${formatZodIssues(r.error.issues)}`,
      `mode is one of ${ENSEMBLE_MODES.join(", ")}; window and executeK are integers >= 1; 0 < weight <= 1; actK >= 0`,
    );
  }
  return r.data;
}

/**
 * Weight of a chunk that covers the current step. age: chunks pushed after it;
 * rank: its position among the covering chunks, oldest first.
 */
export function ensembleWeight(config: EnsembleConfig, age: number, rank: number): number {
  switch (config.mode) {
    case "none":
      return 1; // only the newest chunk is kept
    case "vla0-v1":
      return age === 0 ? 1 : 0.5;
    case "vla0-v2":
      return config.weight ** age;
    case "act":
      return Math.exp(-config.actK * rank);
  }
}

interface StoredChunk {
  /** Time step at which it was pushed. */
  start: number;
  /** (H, D) row-major; never written after push, so clones may share it. */
  data: Float32Array;
}

export class TemporalEnsembler {
  readonly config: EnsembleConfig;
  /** H: actions per chunk. */
  readonly horizon: number;
  /** D: values per action. */
  readonly dims: number;
  /** K: actions executed per prediction, min(config.executeK, H). */
  readonly executeK: number;
  /** Chunks with age < window that may still cover a step, oldest first. */
  private chunks: StoredChunk[] = [];
  private t = 0;
  /** Time of the last push; -1 before the first. */
  private lastPush = -1;

  constructor(config: EnsembleConfigInput, horizon: number, dims: number) {
    this.config = parseEnsembleConfig(config);
    if (!Number.isInteger(horizon) || horizon < 1) {
      throw new VlaError("ENSEMBLE_INVALID", `horizon must be an integer >= 1, got ${horizon}`, "pass H, the number of actions per predicted chunk");
    }
    if (!Number.isInteger(dims) || dims < 1) {
      throw new VlaError("ENSEMBLE_INVALID", `dims must be an integer >= 1, got ${dims}`, "pass D, the number of values per action");
    }
    for (const d of this.config.gripperDims) {
      if (d >= dims) {
        throw new VlaError("ENSEMBLE_INVALID", `gripperDims: ${d} is out of range for ${dims} dimensions`, `use indices 0..${dims - 1}`);
      }
    }
    this.horizon = horizon;
    this.dims = dims;
    this.executeK = Math.min(this.config.executeK, horizon);
  }

  /** Actions executed so far in this episode. */
  get time(): number {
    return this.t;
  }

  /** Chunks currently stored (at most window; 1 for "none"). */
  get stored(): number {
    return this.chunks.length;
  }

  /** True at time 0 and whenever K actions were executed since the last push. */
  needsPrediction(): boolean {
    return this.lastPush < 0 || this.t - this.lastPush >= this.executeK;
  }

  /** Add the chunk predicted at the current time: H*D values, row-major (H, D). */
  push(chunk: ArrayLike<number>): void {
    if (!this.needsPrediction()) {
      throw new VlaError(
        "ENSEMBLE_STATE",
        `push at t=${this.t}: no prediction is due (last push at t=${this.lastPush}, executeK=${this.executeK})`,
        "push only when needsPrediction() is true, then call next()",
      );
    }
    const H = this.horizon;
    const D = this.dims;
    if (chunk.length !== H * D) {
      throw new VlaError("ENSEMBLE_SHAPE", `chunk has ${chunk.length} values, expected H*D = ${H}*${D} = ${H * D}`, "pass one row-major (H, D) chunk");
    }
    const data = Float32Array.from(chunk);
    for (let i = 0; i < data.length; i++) {
      if (!Number.isFinite(data[i])) {
        throw new VlaError("ENSEMBLE_SHAPE", `chunk value ${i} (t=${Math.floor(i / D)}, d=${i % D}) is ${chunk[i]}`, "the policy produced a non-finite action");
      }
    }
    this.chunks.push({ start: this.t, data });
    const window = this.config.mode === "none" ? 1 : this.config.window;
    // keep age < window, and only chunks that still cover t (VLA-0 drops the rest)
    this.chunks = this.chunks.slice(-window).filter((c) => c.start + H > this.t);
    this.lastPush = this.t;
  }

  /** The action (D values) for the current time step; advances time by one. */
  next(): Float32Array {
    if (this.needsPrediction()) {
      throw new VlaError(
        "ENSEMBLE_STATE",
        `a prediction is due at t=${this.t} (executeK=${this.executeK}) but none was pushed`,
        "call push(chunk) whenever needsPrediction() is true",
      );
    }
    const D = this.dims;
    const sum = new Float64Array(D);
    let total = 0;
    let rank = 0; // among covering chunks, oldest first
    const newest = this.chunks.length - 1;
    for (const [j, c] of this.chunks.entries()) {
      const row = this.t - c.start;
      if (row >= this.horizon) continue; // ran out before t
      const w = ensembleWeight(this.config, newest - j, rank++);
      for (let d = 0; d < D; d++) sum[d]! += w * c.data[row * D + d]!;
      total += w;
    }
    // total >= 1: the newest chunk covers t (t - lastPush < K <= H) and weighs 1 (act: the oldest does)
    const out = new Float32Array(D);
    for (let d = 0; d < D; d++) out[d] = sum[d]! / total;
    for (const d of this.config.gripperDims) out[d] = sum[d]! / total >= this.config.gripperThreshold ? 1 : -1;
    this.t++;
    return out;
  }

  /** Start a new episode: time 0, nothing stored. */
  reset(): void {
    this.chunks = [];
    this.t = 0;
    this.lastPush = -1;
  }

  /** An independent copy (e.g. to look ahead without disturbing the episode). */
  clone(): TemporalEnsembler {
    const copy = new TemporalEnsembler(this.config, this.horizon, this.dims);
    copy.chunks = [...this.chunks];
    copy.t = this.t;
    copy.lastPush = this.lastPush;
    return copy;
  }
}
