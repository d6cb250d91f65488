/**
 * Per-dimension affine maps between raw robot units and normalized [-1, 1],
 * and the quantization of raw values to integer bins 0..B.
 *
 * Binning follows VLA-0 exactly: bin = round_half_even((clamp(a) - lo) / (hi - lo) * B)
 * and a = bin / B * (hi - lo) + lo, with (lo, hi) = (min, max) for `minmax`,
 * (q01, q99) for `quantile` and (-1, 1) for `none`.
 */
import { VlaError } from "../errors.js";
import type { ActionSpec } from "./spec.js";
import type { ActionStats } from "./stats.js";

/** Round half to even, as torch.round / numpy.round do. */
export function roundHalfEven(x: number): number {
  const r = Math.round(x);
  // Math.round rounds .5 up; move exact halves that landed on an odd integer down.
  if (Math.abs(x % 1) === 0.5 && r % 2 !== 0) return r - 1;
  return r;
}

export class Normalizer {
  /** (D) lower bound per dimension in raw units. */
  readonly lo: Float64Array;
  /** (D) upper bound per dimension in raw units. */
  readonly hi: Float64Array;
  readonly dims: number;
  readonly bins: number;

  constructor(
    readonly spec: ActionSpec,
    stats?: ActionStats,
  ) {
    const D = spec.dims;
    this.dims = D;
    this.bins = spec.bins;
    if (stats && stats.dims !== D) {
      throw new VlaError("STATS_MISMATCH", `statistics have ${stats.dims} dimensions but the action spec has ${D} (${spec.names.join(", ")})`, "use statistics of this dataset's action feature");
    }
    this.lo = new Float64Array(D);
    this.hi = new Float64Array(D);
    for (let d = 0; d < D; d++) {
      const kind = spec.normalization[d];
      if (kind === "none") {
        this.lo[d] = -1;
        this.hi[d] = 1;
        continue;
      }
      if (!stats) {
        throw new VlaError("STATS_INVALID", `dimension ${spec.names[d]} uses '${kind}' normalization, which needs dataset statistics`, "compute them with `vlatext dataset stats` or set normalization to 'none'");
      }
      this.lo[d] = (kind === "minmax" ? stats.min[d] : stats.q01[d]) as number;
      this.hi[d] = (kind === "minmax" ? stats.max[d] : stats.q99[d]) as number;
    }
  }

  /** Raw value of dimension d -> bin in 0..B (clamped to the bounds first). */
  rawToBin(x: number, d: number): number {
    const lo = this.lo[d] as number;
    const hi = this.hi[d] as number;
    if (!(hi > lo)) return 0; // constant dimension: every value is lo
    const c = Math.min(hi, Math.max(lo, x));
    return roundHalfEven(((c - lo) / (hi - lo)) * this.bins);
  }

  /** Bin of dimension d -> raw value. */
  binToRaw(b: number, d: number): number {
    const lo = this.lo[d] as number;
    const hi = this.hi[d] as number;
    return (b / this.bins) * (hi - lo) + lo;
  }

  /** Raw -> normalized [-1, 1] (clamped). */
  normalize(x: number, d: number): number {
    const lo = this.lo[d] as number;
    const hi = this.hi[d] as number;
    if (!(hi > lo)) return 0;
    const c = Math.min(hi, Math.max(lo, x));
    return (2 * (c - lo)) / (hi - lo) - 1;
  }

  /** Normalized [-1, 1] -> raw. */
  denormalize(u: number, d: number): number {
    const lo = this.lo[d] as number;
    const hi = this.hi[d] as number;
    return ((u + 1) / 2) * (hi - lo) + lo;
  }

  /** (N, D) raw rows -> (N, D) normalized rows. */
  normalizeRows(raw: Float32Array): Float32Array {
    const out = new Float32Array(raw.length);
    for (let i = 0; i < raw.length; i++) out[i] = this.normalize(raw[i] as number, i % this.dims);
    return out;
  }

  denormalizeRows(norm: Float32Array): Float32Array {
    const out = new Float32Array(norm.length);
    for (let i = 0; i < norm.length; i++) out[i] = this.denormalize(norm[i] as number, i % this.dims);
    return out;
  }
}

/** Normalized [-1, 1] -> bin in 0..B. */
export function normToBin(u: number, bins: number): number {
  const c = Math.min(1, Math.max(-1, u));
  return roundHalfEven(((c + 1) / 2) * bins);
}

/** Bin in 0..B -> normalized [-1, 1]. */
export function binToNorm(b: number, bins: number): number {
  return (2 * b) / bins - 1;
}
