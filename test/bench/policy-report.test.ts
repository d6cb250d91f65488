/** The policy benchmark's plot: bars at the pooled rate, whiskers at the Wilson interval, a dot per seed. */
import { describe, expect, it } from "vitest";
import { policyPlotSvg, type BenchCell } from "../../bench/policy-report.js";
import { wilson } from "../../src/policy/interval.js";

describe("policy benchmark plot", () => {
  it("draws each measured setting's rate and interval, and says which were not measured", () => {
    const cells: BenchCell[] = [
      { setting: "recipe", change: "r", perSeed: [{ seed: 0, successes: 45, trials: 50, families: [] }, { seed: 1, successes: 40, trials: 50, families: [] }], successes: 85, trials: 100 },
      { setting: "history-frames", change: "h", perSeed: [], successes: 0, trials: 0, note: "not supported" },
    ];
    const svg = policyPlotSvg(cells);
    expect(svg).toMatch(/^<svg [^>]*>[\s\S]*<\/svg>\n$/);
    const left = 130;
    const plotW = 640 - left - 70;
    const w = wilson(85, 100);
    // the bar ends at the pooled rate; the whisker spans the interval
    expect(svg).toContain(`width="${(w.rate * plotW).toFixed(1)}"`);
    expect(svg).toContain(`x1="${(left + w.lo * plotW).toFixed(1)}" y1="47" x2="${(left + w.hi * plotW).toFixed(1)}"`);
    expect(svg.match(/<circle /g)).toHaveLength(2);
    expect(svg).toContain(`cx="${(left + 0.9 * plotW).toFixed(1)}"`);
    expect(svg).toMatch(/history-frames<\/text>\n<text [^>]*>not measured/);
  });
});
