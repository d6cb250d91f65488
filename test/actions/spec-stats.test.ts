import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { VlaError } from "../../src/errors.js";
import { parseActionSpec, VLA0_SPEC, actionSpecToJSON } from "../../src/actions/spec.js";
import { StatsAccumulator, loadStats, quantileSorted, saveStats, parseStats } from "../../src/actions/stats.js";
import { rng } from "../support/rng.js";

function codeOf(f: () => unknown): string | undefined {
  try {
    f();
  } catch (e) {
    if (e instanceof VlaError) return `${e.code}: ${e.message}`;
    throw e;
  }
  return undefined;
}

describe("action spec", () => {
  it("applies VLA-0 defaults and derives per-dimension fields", () => {
    const s = parseActionSpec({ names: ["a", "b", "g"], gripper: { dims: ["g"] } });
    expect(s).toMatchObject({ dims: 3, horizon: 8, bins: 1000, normalization: ["minmax", "minmax", "minmax"], isGripper: [false, false, true], gripperThreshold: 0 });
    expect(parseActionSpec(actionSpecToJSON(s))).toEqual(s);
    expect(parseActionSpec(VLA0_SPEC).dims).toBe(7);
  });

  it("rejects B=0 naming the field", () => {
    const msg = codeOf(() => parseActionSpec({ ...VLA0_SPEC, bins: 0 }));
    expect(msg).toMatch(/^SPEC_INVALID/);
    expect(msg).toMatch(/bins: bins must be at least 1/);
  });

  it("rejects per-dimension normalization of the wrong length, unknown grippers, duplicates and unknown keys", () => {
    expect(codeOf(() => parseActionSpec({ names: ["a", "b"], normalization: ["minmax"] }))).toMatch(/normalization: has 1 entries but there are 2 dimensions/);
    expect(codeOf(() => parseActionSpec({ names: ["a"], gripper: { dims: ["grip"] } }))).toMatch(/gripper\.dims\.0: 'grip' is not one of names/);
    expect(codeOf(() => parseActionSpec({ names: ["a", "a"] }))).toMatch(/names\.1: duplicate dimension name 'a'/);
    expect(codeOf(() => parseActionSpec({ names: ["a"], horizn: 8 }))).toMatch(/horizn/);
    expect(codeOf(() => parseActionSpec({ names: ["a"], normalization: "zscore" }))).toMatch(/normalization/);
  });
});

describe("statistics", () => {
  it("matches a two-pass computation and numpy-style quantiles", () => {
    const r = rng(7);
    const D = 3;
    const N = 1001;
    const acc = new StatsAccumulator(D, ["x", "y", "z"]);
    const cols: number[][] = [[], [], []];
    for (let i = 0; i < N; i++) {
      const row = [r() * 10 - 5, r() * 1e-3, 42].map(Math.fround);
      acc.push(row);
      row.forEach((v, d) => cols[d]!.push(Math.fround(v)));
    }
    const s = acc.finalize();
    expect(s.count).toBe(N);
    for (let d = 0; d < D; d++) {
      const c = cols[d]!;
      const mean = c.reduce((a, b) => a + b, 0) / N;
      const std = Math.sqrt(c.reduce((a, b) => a + (b - mean) ** 2, 0) / N);
      // Welford vs two-pass in float64: agree to ~1e-12 relative
      expect(s.mean[d]).toBeCloseTo(mean, 9);
      expect(s.std[d]).toBeCloseTo(std, 9);
      const sorted = [...c].sort((a, b) => a - b);
      expect(s.min[d]).toBe(sorted[0]);
      expect(s.max[d]).toBe(sorted[N - 1]);
      // N-1 = 1000 makes q*(N-1) integral: q01 is exactly sorted[10], q99 sorted[990]
      expect(s.q01[d]).toBe(sorted[10]);
      expect(s.q99[d]).toBe(sorted[990]);
    }
    expect(s.std[2]).toBe(0);
  });

  it("interpolates quantiles linearly like numpy", () => {
    // numpy.quantile([1,2,3,4], 0.01) = 1.03 ; 0.99 -> 3.97
    expect(quantileSorted([1, 2, 3, 4], 0.01)).toBeCloseTo(1.03, 12);
    expect(quantileSorted([1, 2, 3, 4], 0.99)).toBeCloseTo(3.97, 12);
    expect(quantileSorted([5], 0.5)).toBe(5);
  });

  it("pushRows equals push per row, and rejects bad rows naming them", () => {
    const a = new StatsAccumulator(2);
    const b = new StatsAccumulator(2);
    const rows = new Float32Array([1, 2, 3, 4, 5, 6]);
    a.pushRows(rows, 3);
    for (let i = 0; i < 3; i++) b.push(rows.subarray(i * 2, i * 2 + 2));
    expect(a.finalize()).toEqual(b.finalize());
    expect(codeOf(() => a.push([1]))).toMatch(/STATS_MISMATCH: row 3 has 1 values, expected 2/);
    expect(codeOf(() => a.push([1, NaN]))).toMatch(/STATS_INVALID: row 3, dimension 1 \(dim1\) is NaN/);
    expect(codeOf(() => new StatsAccumulator(2).finalize())).toMatch(/STATS_EMPTY/);
  });

  it("saves atomically and loads with a dimension check", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "vlatext-stats-"));
    const acc = new StatsAccumulator(2, ["a", "b"]);
    acc.push([0, 1]);
    acc.push([2, 3]);
    const s = acc.finalize();
    const file = path.join(dir, "sub", "stats.json");
    saveStats(file, s);
    expect(fs.readdirSync(path.dirname(file))).toEqual(["stats.json"]);
    expect(loadStats(file, 2)).toEqual(s);
    expect(codeOf(() => loadStats(file, 7))).toMatch(/STATS_MISMATCH: statistics in .*stats\.json have 2 dimensions \(dims\) but the action spec has 7/);
    expect(codeOf(() => loadStats(path.join(dir, "nope.json")))).toMatch(/FILE_NOT_FOUND/);
    expect(codeOf(() => parseStats({ ...s, q99: [1] }, "x.json"))).toMatch(/q99: has 1 entries but dims is 2/);
  });
});
