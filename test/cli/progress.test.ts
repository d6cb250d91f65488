/** Progress output: one line redrawn on a terminal; in a log, a line every few seconds or percent, never one per item. */
import { describe, expect, it } from "vitest";
import { progressReporter } from "../../src/cli/progress.js";

function capture(isTTY: boolean) {
  let text = "";
  let now = 0;
  const p = progressReporter({ isTTY, err: (t) => (text += t) }, { intervalMs: 5000, step: 0.1, now: () => now });
  return { p, text: () => text, advance: (ms: number) => (now += ms) };
}

describe("progress reporter", () => {
  it("in a log: 4000 quick items give a line per 10% (and the last), each a line of its own", () => {
    const c = capture(false);
    for (let i = 1; i <= 4000; i++) {
      c.advance(1);
      c.p.update(`episode ${i}/4000`, i / 4000);
    }
    c.p.done();
    const lines = c.text().split("\n").filter(Boolean);
    expect(c.text()).not.toMatch(/\r/);
    expect(lines.length).toBeLessThanOrEqual(12);
    expect(lines[lines.length - 1]).toBe("episode 4000/4000");
  });

  it("in a log: slow work without a total prints a line every intervalMs, and the last state before a log line", () => {
    const c = capture(false);
    for (let step = 1; step <= 100; step++) {
      c.advance(1000);
      c.p.update(`step ${step}`);
    }
    c.p.log("checkpoint saved");
    const lines = c.text().split("\n").filter(Boolean);
    expect(lines.length).toBeGreaterThanOrEqual(20);
    expect(lines.length).toBeLessThanOrEqual(23);
    expect(lines.slice(-2)).toEqual(["step 100", "checkpoint saved"]);
  });

  it("on a terminal: one line redrawn in place, ended before other output", () => {
    const c = capture(true);
    for (let i = 1; i <= 50; i++) {
      c.advance(200);
      c.p.update(`item ${i}`, i / 50);
    }
    c.p.log("done");
    expect(c.text().split("\n")).toHaveLength(3); // the redrawn line, "done", ""
    expect(c.text()).toMatch(/\ritem 50\x1b\[K\ndone\n$/);
  });
});
