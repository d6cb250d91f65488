/**
 * Chunk <-> integers <-> text. A codec is an action spec (H, D, B,
 * normalization, grippers), a text format and (for raw units) statistics.
 *
 * Chunks are row-major (H, D) Float32Arrays. "Normalized" means [-1, 1] per
 * dimension; "raw" means robot units. Decoding snaps gripper dimensions to
 * the extremes: normalized value >= threshold -> +1 (raw hi), else -1 (raw lo).
 */
import { VlaError } from "../errors.js";
import { ActionGrammar } from "./grammar.js";
import { Normalizer, binToNorm, normToBin } from "./normalize.js";
import { parseLenient, parseStrict, type LenientDiagnostics, type StrictParseError } from "./parser.js";
import type { ActionSpec } from "./spec.js";
import type { ActionStats } from "./stats.js";
import type { TextFormat } from "./format.js";

export type ParseMode = "strict" | "lenient";

export type DecodeResult =
  | { ok: true; bins: Int32Array; normalized: Float32Array; raw: Float32Array | undefined; diagnostics: LenientDiagnostics | undefined }
  | { ok: false; error: StrictParseError };

export class ActionCodec {
  readonly grammar: ActionGrammar;
  readonly bins: number;
  readonly horizon: number;
  readonly dims: number;
  /** Present when statistics (or all-`none` normalization) allow raw units. */
  readonly normalizer: Normalizer | undefined;

  constructor(
    readonly spec: ActionSpec,
    readonly format: TextFormat,
    stats?: ActionStats,
  ) {
    this.grammar = new ActionGrammar(spec, format);
    this.bins = this.grammar.bins;
    this.horizon = spec.horizon;
    this.dims = spec.dims;
    const needsStats = spec.normalization.some((n) => n !== "none");
    const binSpec = { ...spec, bins: this.bins };
    this.normalizer = stats || !needsStats ? new Normalizer(binSpec, stats) : undefined;
  }

  private checkShape(chunk: ArrayLike<number>, what: string): void {
    const n = this.horizon * this.dims;
    if (chunk.length !== n) {
      throw new VlaError("CODEC_SHAPE", `${what} has ${chunk.length} values, expected H*D = ${this.horizon}*${this.dims} = ${n}`, "pass a row-major (H, D) array");
    }
  }

  private requireNormalizer(): Normalizer {
    if (!this.normalizer) throw new VlaError("STATS_INVALID", "raw-unit encoding needs dataset statistics for this spec", "construct the codec with stats, or use the normalized methods");
    return this.normalizer;
  }

  /** (H, D) raw chunk -> bins (VLA-0's binning, from raw units). */
  rawToBins(raw: ArrayLike<number>): Int32Array {
    this.checkShape(raw, "raw chunk");
    const n = this.requireNormalizer();
    const out = new Int32Array(raw.length);
    for (let i = 0; i < raw.length; i++) out[i] = n.rawToBin(raw[i] as number, i % this.dims);
    return out;
  }

  /** (H, D) normalized chunk -> bins. */
  normalizedToBins(norm: ArrayLike<number>): Int32Array {
    this.checkShape(norm, "normalized chunk");
    const out = new Int32Array(norm.length);
    for (let i = 0; i < norm.length; i++) out[i] = normToBin(norm[i] as number, this.bins);
    return out;
  }

  /** Bins -> text in this format. */
  binsToText(bins: ArrayLike<number>): string {
    this.checkShape(bins, "bins");
    const g = this.grammar;
    let out = "";
    for (let i = 0; i < bins.length; i++) {
      const s = String(bins[i]);
      out += g.width !== undefined ? s.padStart(g.width, "0") : s;
      if (i < bins.length - 1) out += g.separatorAfter(i);
    }
    return out;
  }

  /** Bins -> normalized chunk, grippers snapped. */
  binsToNormalized(bins: ArrayLike<number>): Float32Array {
    const out = new Float32Array(bins.length);
    for (let i = 0; i < bins.length; i++) {
      const d = i % this.dims;
      const u = binToNorm(bins[i] as number, this.bins);
      out[i] = this.spec.isGripper[d] ? (u >= this.spec.gripperThreshold ? 1 : -1) : u;
    }
    return out;
  }

  /** Bins -> raw chunk, grippers snapped to their raw extremes. */
  binsToRaw(bins: ArrayLike<number>): Float32Array {
    const n = this.requireNormalizer();
    const out = new Float32Array(bins.length);
    for (let i = 0; i < bins.length; i++) {
      const d = i % this.dims;
      const b = bins[i] as number;
      if (this.spec.isGripper[d]) {
        out[i] = binToNorm(b, this.bins) >= this.spec.gripperThreshold ? (n.hi[d] as number) : (n.lo[d] as number);
      } else {
        out[i] = n.binToRaw(b, d);
      }
    }
    return out;
  }

  encodeRaw(raw: ArrayLike<number>): { bins: Int32Array; text: string } {
    const bins = this.rawToBins(raw);
    return { bins, text: this.binsToText(bins) };
  }

  encodeNormalized(norm: ArrayLike<number>): { bins: Int32Array; text: string } {
    const bins = this.normalizedToBins(norm);
    return { bins, text: this.binsToText(bins) };
  }

  /** Text -> chunk. Never throws on bad text: strict mode returns an error value. */
  decode(text: string, mode: ParseMode = "strict"): DecodeResult {
    let bins: Int32Array;
    let diagnostics: LenientDiagnostics | undefined;
    if (mode === "strict") {
      const r = parseStrict(text, this.grammar);
      if (!r.ok) return r;
      bins = r.bins;
    } else {
      const r = parseLenient(text, this.grammar);
      bins = r.bins;
      diagnostics = r.diagnostics;
    }
    return {
      ok: true,
      bins,
      normalized: this.binsToNormalized(bins),
      raw: this.normalizer ? this.binsToRaw(bins) : undefined,
      diagnostics,
    };
  }
}
