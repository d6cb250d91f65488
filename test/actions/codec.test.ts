import { describe, expect, it } from "vitest";
import { ActionCodec } from "../../src/actions/codec.js";
import { getFormat, parseTextFormat, FORMATS } from "../../src/actions/format.js";
import { roundHalfEven, Normalizer } from "../../src/actions/normalize.js";
import { parseActionSpec, VLA0_SPEC } from "../../src/actions/spec.js";
import type { ActionStats } from "../../src/actions/stats.js";
import { VlaError } from "../../src/errors.js";
import { rng } from "../support/rng.js";

const spec = parseActionSpec(VLA0_SPEC);
const D = 7;
const H = 8;

function statsFor(lo: number[], hi: number[]): ActionStats {
  return {
    dims: lo.length,
    names: lo.map((_, i) => `d${i}`),
    count: 100,
    min: lo,
    max: hi,
    mean: lo.map((l, i) => (l + hi[i]!) / 2),
    std: lo.map(() => 1),
    q01: lo.map((l, i) => l + 0.1 * (hi[i]! - l)),
    q99: lo.map((l, i) => hi[i]! - 0.1 * (hi[i]! - l)),
  };
}

const lo = [-0.9, -0.5, -1.2, -0.1, -0.2, -0.3, -1];
const hi = [0.8, 0.5, 0.3, 0.1, 0.25, 0.35, 1];
const stats = statsFor(lo, hi);

describe("binning", () => {
  it("rounds half to even like torch.round", () => {
    expect([0.5, 1.5, 2.5, -0.5, -1.5, 2.4999, 2.5001].map(roundHalfEven)).toEqual([0, 2, 2, -0, -2, 2, 3]);
  });

  it("maps the bounds to bins 0 and B exactly and clamps outside", () => {
    const n = new Normalizer(spec, stats);
    for (let d = 0; d < D; d++) {
      expect(n.rawToBin(lo[d]!, d)).toBe(0);
      expect(n.rawToBin(hi[d]!, d)).toBe(1000);
      expect(n.rawToBin(lo[d]! - 5, d)).toBe(0);
      expect(n.rawToBin(hi[d]! + 5, d)).toBe(1000);
      expect(n.binToRaw(0, d)).toBeCloseTo(lo[d]!, 12);
      expect(n.binToRaw(1000, d)).toBeCloseTo(hi[d]!, 12);
    }
    // one bin is (hi-lo)/B wide: a value just under half a bin above lo stays in bin 0
    const w = (hi[0]! - lo[0]!) / 1000;
    expect(n.rawToBin(lo[0]! + 0.49 * w, 0)).toBe(0);
    expect(n.rawToBin(lo[0]! + 0.51 * w, 0)).toBe(1);
    expect(n.rawToBin(hi[0]! - 0.51 * w, 0)).toBe(999);
  });

  it("uses q01/q99 for quantile normalization and [-1,1] for none", () => {
    const s = parseActionSpec({ names: ["a", "b"], normalization: ["quantile", "none"] });
    const st = statsFor([0, 0], [10, 10]);
    const n = new Normalizer(s, st);
    expect(n.rawToBin(1, 0)).toBe(0); // q01 = 1
    expect(n.rawToBin(0, 0)).toBe(0); // clamped to q01
    expect(n.rawToBin(9, 0)).toBe(1000); // q99 = 9
    expect(n.rawToBin(-1, 1)).toBe(0);
    expect(n.rawToBin(0, 1)).toBe(500);
    expect(n.rawToBin(1, 1)).toBe(1000);
  });
});

describe("codec round trip", () => {
  for (const name of Object.keys(FORMATS)) {
    it(`raw -> text -> raw within (range/B)/2 per dimension, format ${name}`, () => {
      const codec = new ActionCodec(spec, getFormat(name), stats);
      const B = codec.bins;
      const r = rng(name.length * 1000 + 1);
      for (let trial = 0; trial < 300; trial++) {
        const raw = new Float32Array(H * D);
        for (let i = 0; i < raw.length; i++) {
          const d = i % D;
          // the gripper is binary: sample its extremes
          raw[i] = d === 6 ? (r() < 0.5 ? lo[d]! : hi[d]!) : lo[d]! + r() * (hi[d]! - lo[d]!);
        }
        const { text, bins } = codec.encodeRaw(raw);
        const back = codec.decode(text, "strict");
        if (!back.ok) throw new Error(back.error.message);
        expect(Array.from(back.bins)).toEqual(Array.from(bins));
        for (let i = 0; i < raw.length; i++) {
          const d = i % D;
          const tol = (hi[d]! - lo[d]!) / B / 2;
          // float32 storage adds ~1e-7 relative; allow that on top of the half-bin bound
          expect(Math.abs(back.raw![i]! - raw[i]!)).toBeLessThanOrEqual(tol + 1e-6);
        }
      }
    });
  }

  it("writes the VLA-0 text exactly", () => {
    const codec = new ActionCodec(spec, getFormat("vla0"), stats);
    const bins = Int32Array.from({ length: 56 }, (_, i) => (i * 37) % 1001);
    const text = codec.binsToText(bins);
    expect(text).toBe(Array.from(bins).join(" "));
    const padded = new ActionCodec(spec, getFormat("padded"), stats).binsToText(bins);
    expect(padded.split(" ")[1]).toBe("0037");
    const steps = new ActionCodec(spec, getFormat("steps"), stats).binsToText(bins);
    expect(steps.split(" | ")).toHaveLength(8);
    expect(steps.split(" | ")[0]!.split(" ")).toHaveLength(7);
  });

  it("snaps the gripper at exactly the threshold", () => {
    const codec = new ActionCodec(spec, getFormat("vla0"), stats);
    const bins = new Int32Array(56).fill(500);
    bins[6] = 500; // normalized 0 >= threshold 0 -> +1
    bins[13] = 499; // normalized -0.002 -> -1
    const n = codec.binsToNormalized(bins);
    expect(n[6]).toBe(1);
    expect(n[13]).toBe(-1);
    expect(n[0]).toBe(0);
    const raw = codec.binsToRaw(bins);
    expect(raw[6]).toBe(Math.fround(hi[6]!));
    expect(raw[13]).toBe(Math.fround(lo[6]!));
    const high = new ActionCodec(parseActionSpec({ ...VLA0_SPEC, gripper: { dims: ["gripper"], threshold: 0.5 } }), getFormat("vla0"), stats);
    bins[6] = 750; // exactly 0.5
    bins[13] = 749;
    const m = high.binsToNormalized(bins);
    expect([m[6], m[13]]).toEqual([1, -1]);
  });

  it("rejects wrong shapes and formats that cannot hold B", () => {
    const codec = new ActionCodec(spec, getFormat("vla0"), stats);
    expect(() => codec.encodeRaw(new Float32Array(55))).toThrow(/raw chunk has 55 values, expected H\*D = 8\*7 = 56/);
    expect(() => new ActionCodec(spec, parseTextFormat({ name: "w3", width: 3 }), stats)).toThrow(/width 3 but B=1000 needs 4 digits/);
    expect(() => parseTextFormat({ name: "bad", separator: "1" })).toThrow(VlaError);
    expect(() => getFormat("nope")).toThrow(/unknown text format 'nope'/);
    expect(() => new ActionCodec(spec, getFormat("vla0")).encodeRaw(new Float32Array(56))).toThrow(/needs dataset statistics/);
  });
});
