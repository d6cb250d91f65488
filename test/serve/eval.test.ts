/**
 * `vlatext eval --sim` end to end: a (random-weight) policy served over real HTTP,
 * driven closed loop in the simulator, one session per episode. Success is not
 * expected from random weights; the test checks the loop runs and reports.
 */
import { describe, expect, it } from "vitest";
import { main } from "../../src/cli/main.js";
import { evaluateInSim } from "../../src/serve/eval.js";
import { Policy } from "../../src/policy/policy.js";
import { startServer } from "../../src/serve/server.js";
import { bufferIO } from "../support/io.js";
import { writeTinyPolicy } from "../support/tiny-policy.js";

describe("closed-loop evaluation", () => {
  it("runs episodes through the server and reports success per family", async () => {
    const policy = Policy.load(writeTinyPolicy(3));
    const srv = await startServer(policy);
    try {
      const seen: Array<[string, number]> = [];
      const report = await evaluateInSim({ url: srv.url, families: ["reach", "push"], episodes: 2, onEpisode: (f, _e, _ok, steps) => seen.push([f, steps]) });
      expect(report.families.map((f) => f.family)).toEqual(["reach", "push"]);
      expect(report.episodes).toBe(4);
      expect(seen).toHaveLength(4);
      for (const [, steps] of seen) expect(steps).toBeGreaterThan(0);
      // each request executes executeK = 4 actions (policy.json), so requests ~ steps / 4
      const totalSteps = seen.reduce((a, [, s]) => a + s, 0);
      expect(report.requests).toBeGreaterThanOrEqual(Math.ceil(totalSteps / 4));
      expect(report.successRate).toBeGreaterThanOrEqual(0);
    } finally {
      await srv.close();
      policy.dispose();
    }
  });

  it("vlatext eval --sim prints a table, and names bad flags", async () => {
    const io = bufferIO();
    expect(await main(["eval", "--sim", "--model", writeTinyPolicy(4), "--episodes", "1", "--families", "reach"], io)).toBe(0);
    expect(io.stdout()).toMatch(/reach\s+1\s+[01]\s+\d+%/);
    expect(io.stdout()).toMatch(/overall: [\d.]+% of 1 episodes/);
    const bad = bufferIO();
    expect(await main(["eval", "--sim", "--model", "x", "--families", "fly"], bad)).toBe(1);
    expect(bad.stderr()).toMatch(/unknown task family 'fly'/);
    const none = bufferIO();
    expect(await main(["eval", "--model", "x"], none)).toBe(1);
    expect(none.stderr()).toMatch(/pass --sim/);
  });
});
