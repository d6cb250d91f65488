/**
 * Temporal ensembling: a stateful object per episode that turns a stream of
 * predicted chunks (H actions of D values each) into the actions executed.
 *
 * The loop a robot runs:
 *   if (ens.needsPrediction()) ens.push(model(obs));
 *   const action = ens.next();
 *
 * A prediction is due at time 0 and then every `executeK` executed actions
 * (executeK is clamped to H, as VLA-0 clamps `action_horizon`).
 *
 * Modes. Chunk j was pushed at time s_j and covers times s_j .. s_j+H-1; its
 * age is the number of chunks pushed after it. The action at time t is the
 * weighted mean, per dimension, over the chunks that cover t:
 *   none     only the newest chunk.
 *   vla0-v1  chunks with age < window; weight 1 for the newest, 0.5 for older.
 *   vla0-v2  chunks with age < window; weight w^age.
 *   act      chunks with age < window; weight exp(-k * i), i = 0 for the
 *            OLDEST covering chunk (ACT, Zhao et al. 2023; LeRobot's ensembler).
 * VLA-0 (NVlabs/vla0, roboverse/evals/libero/eval.py) computes the same thing
 * once per prediction by keeping each old chunk's unexecuted remainder; its
 * list of at most `window` chunks, trimmed oldest first, is exactly "age <
 * window" because every chunk has the same length H. test/actions/ensembler
 * checks this class against a transliteration of that loop.
 * Gripper dimensions are snapped after averaging: >= threshold -> +1, else -1.
 */
import { z } from "zod";
import { VlaError, formatZodIssues } from "../errors.js";

export const ENSEMBLE_MODES = ["none", "vla0-v1", "vla0-v2", "act"] as const;

export const EnsembleConfigSchema = z
  .object({
    mode: z.enum(ENSEMBLE_MODES).default("vla0-v1"),
    /** Most recent chunks that may contribute (VLA-0's ensemble_prediction). */
    window: z.number().int().min(1).default(8),
    /** Actions executed per prediction (VLA-0's action_horizon). */
    executeK: z.number().int().min(1).default(1),
    /** vla0-v2: weight w^age. */
    weight: z.number().gt(0).max(1).default(0.5),
    /** act: weight exp(-actK * i). */
    actK: z.number().min(0).default(0.01),
    /** Dimensions snapped to ±1 after averaging. */
    gripperDims: z.array(z.number().int().min(0)).default([]),
    gripperThreshold: z.number().default(0),
  })
  .strict();

export type EnsembleConfigInput = z.input<typeof EnsembleConfigSchema>;
export type EnsembleConfig = z.output<typeof EnsembleConfigSchema>;

export function parseEnsembleConfig(input: unknown): EnsembleConfig {
  const r = EnsembleConfigSchema.safeParse(input);
  if (!r.success) throw new VlaError("ENSEMBLE_INVALID", `invalid ensembling config:\n${formatZodIssues(r.error.issues)}`, `mode is one of ${ENSEMBLE_MODES.join(", ")}; window and executeK are integers >= 1`);
  return r.data;
}

interface StoredChunk {
  start: number;
  /** (H, D) row-major. */
  data: Float32Array;
}

export class TemporalEnsembler {
  readonly config: EnsembleConfig;
  readonly horizon: number;
  readonly dims: number;
  /** Actions per prediction after clamping to H. */
  readonly executeK: number;
  private chunks: StoredChunk[] = [];
  private t = 0;
  private lastPush = -1;

  constructor(config: EnsembleConfigInput, horizon: number, dims: number) {
    this.config = parseEnsembleConfig(config);
    if (!Number.isInteger(horizon) || horizon < 1 || !Number.isInteger(dims) || dims < 1) {
      throw new VlaError("ENSEMBLE_INVALID", `horizon and dims must be positive integers, got ${horizon} and ${dims}`);
    }
    for (const d of this.config.gripperDims) {
      if (d >= dims) throw new VlaError("ENSEMBLE_INVALID", `gripperDims: ${d} is out of range for ${dims} dimensions`);
    }
    this.horizon = horizon;
    this.dims = dims;
    this.executeK = Math.min(this.config.executeK, horizon);
  }

  /** Current time step (actions executed so far). */
  get time(): number {
    return this.t;
  }

  /** Chunks currently able to contribute. */
  get stored(): number {
    return this.chunks.length;
  }

  needsPrediction(): boolean {
    return this.lastPush < 0 || this.t - this.lastPush >= this.executeK;
  }

  push(chunk: ArrayLike<number>): void {
    const n = this.horizon * this.dims;
    if (chunk.length !== n) throw new VlaError("ENSEMBLE_SHAPE", `chunk has ${chunk.length} values, expected H*D = ${this.horizon}*${this.dims} = ${n}`, "pass one row-major (H, D) chunk");
    for (let i = 0; i < n; i++) {
      if (!Number.isFinite(chunk[i] as number)) throw new VlaError("ENSEMBLE_SHAPE", `chunk value ${i} (t=${Math.floor(i / this.dims)}, d=${i % this.dims}) is ${chunk[i]}`);
    }
    this.chunks.push({ start: this.t, data: Float32Array.from(chunk) });
    this.lastPush = this.t;
    const keep = this.config.mode === "none" ? 1 : this.config.window;
    // drop chunks too old for the window or already fully executed
    this.chunks = this.chunks.slice(-keep).filter((c) => c.start + this.horizon > this.t);
  }

  private weight(age: number, rankFromOldest: number): number {
    switch (this.config.mode) {
      case "none":
        return age === 0 ? 1 : 0;
      case "vla0-v1":
        return age === 0 ? 1 : 0.5;
      case "vla0-v2":
        return this.config.weight ** age;
      case "act":
        return Math.exp(-this.config.actK * rankFromOldest);
    }
  }

  /** The action (D values) for the current time step; advances time. */
  next(): Float32Array {
    if (this.needsPrediction()) {
      throw new VlaError("ENSEMBLE_SHAPE", `a prediction is due at t=${this.t} (executeK=${this.executeK}) but none was pushed`, "call push(chunk) when needsPrediction() is true");
    }
    const D = this.dims;
    const acc = new Float64Array(D);
    let total = 0;
    const newest = this.chunks.length - 1;
    const covering = this.chunks.filter((c) => this.t - c.start < this.horizon);
    covering.forEach((c, rank) => {
      const age = newest - this.chunks.indexOf(c);
      const w = this.weight(age, rank);
      if (w === 0) return;
      const off = (this.t - c.start) * D;
      for (let d = 0; d < D; d++) acc[d] = (acc[d] as number) + w * (c.data[off + d] as number);
      total += w;
    });
    const out = new Float32Array(D);
    for (let d = 0; d < D; d++) out[d] = (acc[d] as number) / total;
    for (const d of this.config.gripperDims) out[d] = (out[d] as number) >= this.config.gripperThreshold ? 1 : -1;
    this.t++;
    return out;
  }

  reset(): void {
    this.chunks = [];
    this.t = 0;
    this.lastPush = -1;
  }

  clone(): TemporalEnsembler {
    const c = new TemporalEnsembler(this.config, this.horizon, this.dims);
    c.chunks = this.chunks.map((x) => ({ start: x.start, data: Float32Array.from(x.data) }));
    c.t = this.t;
    c.lastPush = this.lastPush;
    return c;
  }
}
