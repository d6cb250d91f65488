/**
 * Per-dimension statistics (min, max, mean, std, q01, q99) computed in one
 * streaming pass. Mean and variance use Welford's update in float64; the
 * quantiles are exact (numpy's default linear interpolation) from the values
 * kept in float32 columns, so memory is 4 bytes per value.
 */
import fs from "node:fs";
import path from "node:path";
import { z } from "zod";
import { VlaError, formatZodIssues } from "../errors.js";
import { readJsonFile } from "../io/json-file.js";

export interface ActionStats {
  dims: number;
  names: string[];
  count: number;
  min: number[];
  max: number[];
  mean: number[];
  std: number[];
  q01: number[];
  q99: number[];
}

const finite = z.number().refine(Number.isFinite, "must be a finite number");

export const ActionStatsSchema = z
  .object({
    dims: z.number().int().min(1),
    names: z.array(z.string()),
    count: z.number().int().min(1),
    min: z.array(finite),
    max: z.array(finite),
    mean: z.array(finite),
    std: z.array(finite),
    q01: z.array(finite),
    q99: z.array(finite),
  })
  .strict()
  .superRefine((s, ctx) => {
    for (const key of ["names", "min", "max", "mean", "std", "q01", "q99"] as const) {
      if (s[key].length !== s.dims) {
        ctx.addIssue({ code: "custom", path: [key], message: `has ${s[key].length} entries but dims is ${s.dims}` });
      }
    }
    for (let d = 0; d < Math.min(s.min.length, s.max.length); d++) {
      if ((s.min[d] as number) > (s.max[d] as number)) ctx.addIssue({ code: "custom", path: ["min", d], message: `min > max for dimension ${d}` });
    }
  });

/** Growable float32 column. */
class Column {
  private buf = new Float32Array(1024);
  length = 0;
  push(v: number): void {
    if (this.length === this.buf.length) {
      const next = new Float32Array(this.buf.length * 2);
      next.set(this.buf);
      this.buf = next;
    }
    this.buf[this.length++] = v;
  }
  sorted(): Float32Array {
    return this.buf.slice(0, this.length).sort();
  }
}

/** numpy.quantile(x, q) with the default 'linear' method, on sorted x. */
export function quantileSorted(sorted: ArrayLike<number>, q: number): number {
  const n = sorted.length;
  if (n === 0) return NaN;
  const pos = q * (n - 1);
  const lo = Math.floor(pos);
  const hi = Math.min(lo + 1, n - 1);
  const frac = pos - lo;
  const a = sorted[lo] as number;
  const b = sorted[hi] as number;
  return a + (b - a) * frac;
}

export class StatsAccumulator {
  readonly dims: number;
  readonly names: string[];
  private count = 0;
  private readonly min: Float64Array;
  private readonly max: Float64Array;
  private readonly mean: Float64Array;
  private readonly m2: Float64Array;
  private readonly columns: Column[];

  constructor(dims: number, names?: string[]) {
    if (!Number.isInteger(dims) || dims < 1) throw new VlaError("STATS_INVALID", `dims must be a positive integer, got ${dims}`);
    if (names && names.length !== dims) throw new VlaError("STATS_INVALID", `got ${names.length} names for ${dims} dims`, "pass one name per dimension");
    this.dims = dims;
    this.names = names ?? Array.from({ length: dims }, (_, i) => `dim${i}`);
    this.min = new Float64Array(dims).fill(Infinity);
    this.max = new Float64Array(dims).fill(-Infinity);
    this.mean = new Float64Array(dims);
    this.m2 = new Float64Array(dims);
    this.columns = Array.from({ length: dims }, () => new Column());
  }

  /** Add one row of `dims` values. Non-finite values are rejected, naming the row and dimension. */
  push(row: ArrayLike<number>): void {
    if (row.length !== this.dims) {
      throw new VlaError("STATS_MISMATCH", `row ${this.count} has ${row.length} values, expected ${this.dims}`, "every row must have one value per dimension");
    }
    this.count++;
    for (let d = 0; d < this.dims; d++) {
      const x = row[d] as number;
      if (!Number.isFinite(x)) {
        throw new VlaError("STATS_INVALID", `row ${this.count - 1}, dimension ${d} (${this.names[d]}) is ${x}`, "clean the data: statistics need finite values");
      }
      if (x < (this.min[d] as number)) this.min[d] = x;
      if (x > (this.max[d] as number)) this.max[d] = x;
      const delta = x - (this.mean[d] as number);
      this.mean[d] = (this.mean[d] as number) + delta / this.count;
      this.m2[d] = (this.m2[d] as number) + delta * (x - (this.mean[d] as number));
      this.columns[d]?.push(x);
    }
  }

  /** Add `count` rows stored row-major in `rows` (count * dims values). */
  pushRows(rows: Float32Array | Float64Array, count: number): void {
    if (rows.length < count * this.dims) {
      throw new VlaError("STATS_MISMATCH", `pushRows got ${rows.length} values for ${count} rows of ${this.dims}`);
    }
    for (let r = 0; r < count; r++) this.push(rows.subarray(r * this.dims, (r + 1) * this.dims));
  }

  get rows(): number {
    return this.count;
  }

  finalize(): ActionStats {
    if (this.count === 0) throw new VlaError("STATS_EMPTY", "no rows were added", "statistics need at least one row of data");
    const q01: number[] = [];
    const q99: number[] = [];
    for (const col of this.columns) {
      const s = col.sorted();
      q01.push(quantileSorted(s, 0.01));
      q99.push(quantileSorted(s, 0.99));
    }
    return {
      dims: this.dims,
      names: [...this.names],
      count: this.count,
      min: Array.from(this.min),
      max: Array.from(this.max),
      mean: Array.from(this.mean),
      // population std (numpy's default ddof=0), as LeRobot computes it
      std: Array.from(this.m2, (m) => Math.sqrt(m / this.count)),
      q01,
      q99,
    };
  }
}

/** Validate statistics from JSON; with expectedDims, a dimension-count mismatch names both counts. */
export function parseStats(input: unknown, source: string, expectedDims?: number): ActionStats {
  const r = ActionStatsSchema.safeParse(input);
  if (!r.success) throw new VlaError("STATS_INVALID", `invalid statistics in ${source}:\n${formatZodIssues(r.error.issues)}`, "regenerate them with `vlatext dataset stats`");
  if (expectedDims !== undefined && r.data.dims !== expectedDims) {
    throw new VlaError(
      "STATS_MISMATCH",
      `statistics in ${source} have ${r.data.dims} dimensions (dims) but the action spec has ${expectedDims}`,
      "use statistics computed for this dataset's action feature, or fix the spec's names",
    );
  }
  return r.data;
}

export function saveStats(file: string, stats: ActionStats): void {
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.tmp`);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(tmp, JSON.stringify(stats, null, 2) + "\n");
  fs.renameSync(tmp, file);
}

export function loadStats(file: string, expectedDims?: number): ActionStats {
  const json = readJsonFile(file, z.unknown(), { what: "statistics file", code: "STATS_INVALID", hint: "regenerate it with `vlatext dataset stats <dataset> --out <file>`", missingHint: "compute it with `vlatext dataset stats <dataset> --out <file>`" });
  return parseStats(json, file, expectedDims);
}
