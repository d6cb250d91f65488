/** Wilson and Newcombe intervals against a slow, obvious inversion of the score test and published values. */
import { describe, expect, it } from "vitest";
import { Z95, formatDifference, formatInterval, rateDifference, wilson } from "../../src/policy/interval.js";

/** The Wilson interval by definition: every p whose score test |k/n - p| <= z sqrt(p(1-p)/n) accepts, found by bisection. */
function scoreInversion(k: number, n: number, z = Z95): [number, number] {
  const phat = k / n;
  const accepts = (p: number) => Math.abs(phat - p) <= z * Math.sqrt((p * (1 - p)) / n);
  const edge = (inside: number, outside: number) => {
    let a = inside;
    let b = outside;
    for (let i = 0; i < 200; i++) {
      const m = (a + b) / 2;
      if (accepts(m)) a = m;
      else b = m;
    }
    return a;
  };
  return [k === 0 ? 0 : edge(phat, 0), k === n ? 1 : edge(phat, 1)];
}

describe("wilson", () => {
  it("is the inversion of the score test (tolerance 1e-9: the bisection's)", () => {
    for (const n of [1, 2, 5, 10, 50, 100, 300]) {
      for (const k of new Set([0, 1, Math.floor(n / 3), Math.floor(n / 2), n - 1, n])) {
        if (k < 0 || k > n) continue;
        const w = wilson(k, n);
        const [lo, hi] = scoreInversion(k, n);
        expect(w.rate).toBe(k / n);
        expect(w.lo).toBeCloseTo(lo, 9);
        expect(w.hi).toBeCloseTo(hi, 9);
        expect(w.lo).toBeLessThanOrEqual(w.rate);
        expect(w.hi).toBeGreaterThanOrEqual(w.rate);
      }
    }
  });

  it("matches published values and handles the ends", () => {
    // Newcombe (1998) Table I: 0/10 -> [0, 0.2775], 10/10 -> [0.7225, 1], 81/263 -> [0.2553, 0.3662]
    expect(wilson(0, 10).hi).toBeCloseTo(0.2775, 4);
    expect(wilson(10, 10).lo).toBeCloseTo(0.7225, 4);
    expect(wilson(81, 263).lo).toBeCloseTo(0.2553, 4);
    expect(wilson(81, 263).hi).toBeCloseTo(0.3662, 4);
    expect(wilson(0, 0)).toEqual({ rate: 0, lo: 0, hi: 1 });
    expect(() => wilson(3, 2)).toThrow(/0 <= successes <= trials, got 3\/2/);
    expect(() => wilson(1.5, 2)).toThrow(/integers/);
    expect(formatInterval(wilson(29, 50))).toBe("58% [44, 71]");
  });

  it("Newcombe's difference interval reproduces his worked example", () => {
    // Newcombe (1998) Table II, example (a): 56/70 vs 48/80, method 10 -> 0.0524 to 0.3339
    const d = rateDifference({ successes: 48, trials: 80 }, { successes: 56, trials: 70 });
    expect(d.rate).toBeCloseTo(0.2, 12);
    expect(d.lo).toBeCloseTo(0.0524, 4);
    expect(d.hi).toBeCloseTo(0.3339, 4);
    expect(formatDifference(d)).toBe("+20 [+5, +33] pts");
    // the same rates: an interval around zero
    const same = rateDifference({ successes: 30, trials: 50 }, { successes: 30, trials: 50 });
    expect(same.lo).toBeLessThan(0);
    expect(same.hi).toBeGreaterThan(0);
  });
});
