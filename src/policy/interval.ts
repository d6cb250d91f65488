/**
 * Confidence intervals for closed-loop success rates: Wilson's score interval for one
 * rate (it stays inside [0, 1] and keeps its coverage at 0/n and n/n, where the normal
 * approximation collapses to a point), and Newcombe's hybrid score interval for the
 * difference of two independent rates, built from the two Wilson intervals (Newcombe
 * 1998, method 10). A difference whose interval excludes zero is what a sweep calls real.
 */
import { VlaError } from "../errors.js";

/** z for a two-sided 95% interval. */
export const Z95 = 1.959963984540054;

export interface Interval {
  /** The point estimate (successes / trials; 0 when there are no trials). */
  rate: number;
  lo: number;
  hi: number;
}

/** Wilson score interval of `successes` out of `trials` (trials 0: the whole of [0, 1]). */
export function wilson(successes: number, trials: number, z = Z95): Interval {
  if (!Number.isInteger(successes) || !Number.isInteger(trials) || successes < 0 || trials < 0 || successes > trials) {
    throw new VlaError("DATA_INVALID", `a success count needs integers 0 <= successes <= trials, got ${successes}/${trials}`, "pass the counts of a closed-loop evaluation");
  }
  if (trials === 0) return { rate: 0, lo: 0, hi: 1 };
  const p = successes / trials;
  const z2 = z * z;
  const denom = 1 + z2 / trials;
  const centre = (p + z2 / (2 * trials)) / denom;
  const half = (z / denom) * Math.sqrt((p * (1 - p)) / trials + z2 / (4 * trials * trials));
  // the ends are exact at 0/n and n/n; clamp the rounding
  return { rate: p, lo: successes === 0 ? 0 : Math.max(0, centre - half), hi: successes === trials ? 1 : Math.min(1, centre + half) };
}

/** Newcombe's interval for rate(b) - rate(a), a and b independent. */
export function rateDifference(a: { successes: number; trials: number }, b: { successes: number; trials: number }, z = Z95): Interval {
  const wa = wilson(a.successes, a.trials, z);
  const wb = wilson(b.successes, b.trials, z);
  const d = wb.rate - wa.rate;
  return {
    rate: d,
    lo: d - Math.sqrt((wb.rate - wb.lo) ** 2 + (wa.hi - wa.rate) ** 2),
    hi: d + Math.sqrt((wb.hi - wb.rate) ** 2 + (wa.rate - wa.lo) ** 2),
  };
}

/** "58% [44, 71]": a rate and its interval in whole percent. */
export function formatInterval(i: Interval): string {
  return `${(100 * i.rate).toFixed(0)}% [${(100 * i.lo).toFixed(0)}, ${(100 * i.hi).toFixed(0)}]`;
}

/** "+12 [-3, +27] pts": a difference of rates in percentage points. */
export function formatDifference(i: Interval): string {
  const s = (x: number) => `${x >= 0 ? "+" : ""}${(100 * x).toFixed(0)}`;
  return `${s(i.rate)} [${s(i.lo)}, ${s(i.hi)}] pts`;
}
