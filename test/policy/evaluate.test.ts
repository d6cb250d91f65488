/**
 * Closed-loop evaluation (src/policy/evaluate.ts), the one implementation demo, eval and
 * --sweep share: its counts are checked against actors whose outcome is known (the
 * scripted expert succeeds, standing still never does), the in-process and HTTP actors
 * agree episode for episode, and `vlatext eval --sim` reports them.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { main } from "../../src/cli/main.js";
import { evaluateClosedLoop, policyActor, type Actor } from "../../src/policy/evaluate.js";
import { Policy } from "../../src/policy/policy.js";
import { httpActor } from "../../src/serve/client.js";
import { startServer } from "../../src/serve/server.js";
import { TabletopEnv } from "../../src/sim/env.js";
import { ScriptedExpert } from "../../src/sim/expert.js";
import { TASKS } from "../../src/sim/tasks.js";
import { bufferIO } from "../support/io.js";
import { writeTinyVlmPolicy } from "../support/tiny-vlm-policy.js";

describe("closed-loop evaluation", () => {
  it("counts what happens: the scripted expert succeeds, standing still fails every episode at its step limit", async () => {
    const env = new TabletopEnv({ size: 32, cameras: [] });
    let expert: ScriptedExpert | undefined;
    let current = "";
    const oracle: Actor = {
      async act(session) {
        if (session !== current) {
          current = session;
          expert = new ScriptedExpert(env.task, env.world, 7);
        }
        return { actions: [Array.from(expert!.act(env.world))], generatedTokens: 3 };
      },
    };
    const good = await evaluateClosedLoop(oracle, { env, families: ["reach", "pick"], episodes: 3, seed: 10 });
    expect(good.families.map((f) => [f.family, f.episodes])).toEqual([
      ["reach", 3],
      ["pick", 3],
    ]);
    expect(good.successRate).toBeGreaterThanOrEqual(0.8);
    expect(good.successes).toBe(good.families.reduce((a, f) => a + f.successes, 0));
    expect(good.successRate).toBeCloseTo(good.successes / 6, 12);
    // one action per request: requests = steps taken
    expect(good.requests).toBe(good.families.reduce((a, f) => a + f.meanSteps * f.episodes, 0));
    expect(good.tokensPerChunk).toBe(3);

    const still: Actor = { act: async () => ({ actions: [[0, 0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0, 0]], generatedTokens: 10 }) };
    const bad = await evaluateClosedLoop(still, { env, families: ["reach"], episodes: 2, seed: 10 });
    expect(bad.successes).toBe(0);
    expect(bad.successRate).toBe(0);
    expect(bad.families[0]!.meanSteps).toBe(TASKS.reach.maxSteps);
    expect(bad.requests).toBe(2 * Math.ceil(TASKS.reach.maxSteps / 2));
    expect(bad.generatedTokens).toBe(10 * bad.requests);
    await expect(evaluateClosedLoop({ act: async () => ({ actions: [], generatedTokens: 0 }) }, { env, families: ["reach"], episodes: 1 })).rejects.toThrow(/returned no actions/);
  });

  it("a policy in this process and the same policy over HTTP give the same episodes", async () => {
    const policy = Policy.load(writeTinyVlmPolicy({ patchSize: 28, initStd: 0.125 }));
    const srv = await startServer(policy);
    try {
      const o = { families: ["reach", "push"] as const, episodes: 2, size: 56, seed: 3 };
      const trace = (into: Array<[string, boolean, number]>) => (e: { family: string; success: boolean; steps: number }) => into.push([e.family, e.success, e.steps]);
      const a: Array<[string, boolean, number]> = [];
      const b: Array<[string, boolean, number]> = [];
      const local = await evaluateClosedLoop(policyActor(policy), { ...o, onEpisode: trace(a) });
      const remote = await evaluateClosedLoop(httpActor(srv.url), { ...o, onEpisode: trace(b) });
      expect(b).toEqual(a);
      expect({ ...remote, seconds: 0 }).toEqual({ ...local, seconds: 0 });
      expect(local.requests).toBeGreaterThan(0);
      // executeK = 4: a chunk per 4 steps (the last may end the episode early)
      for (const f of local.families) expect(local.requests).toBeGreaterThanOrEqual(Math.ceil(f.meanSteps / 4));
      expect(local.tokensPerChunk).toBeGreaterThan(56); // 56 numbers and their separators
    } finally {
      await srv.close();
      policy.dispose();
    }
  });

  it("vlatext eval --sim prints the report (in process, or --url with a token file), and names bad flags", async () => {
    const dir = writeTinyVlmPolicy({ patchSize: 28 });
    const io = bufferIO();
    expect(await main(["eval", "--sim", "--model", dir, "--episodes", "1", "--families", "reach", "--size", "56"], io)).toBe(0);
    expect(io.stdout()).toMatch(/reach\s+1\s+[01]\s+\d+% \[\d+, \d+\]/);
    expect(io.stdout()).toMatch(/overall: \d+% \[\d+, \d+\] \(95% Wilson interval\) of 1 episodes, \d+ requests \([\d.]+ tokens\/chunk\)/);
    expect(io.stderr()).not.toMatch(/\r/);

    const policy = Policy.load(dir);
    const srv = await startServer(policy, { token: "tok-123" });
    try {
      const tokenFile = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "vlatext-token-")), "token");
      fs.writeFileSync(tokenFile, "tok-123\n", { mode: 0o600 });
      const remote = bufferIO();
      expect(await main(["eval", "--sim", "--url", srv.url, "--token-file", tokenFile, "--episodes", "1", "--families", "reach", "--size", "56", "--json"], remote)).toBe(0);
      const report = JSON.parse(remote.stdout()) as { episodes: number; tokensPerChunk: number };
      expect(report.episodes).toBe(1);
      const denied = bufferIO();
      expect(await main(["eval", "--sim", "--url", srv.url, "--episodes", "1", "--families", "reach"], denied)).toBe(1);
      expect(denied.stderr()).toMatch(/error \[DATA_INVALID\]: the server answered 401 UNAUTHORIZED/);
    } finally {
      await srv.close();
      policy.dispose();
    }
    // --cameras: the environment renders those cameras and the policy gets them tiled in top, front, wrist order
    const cams = bufferIO();
    expect(await main(["eval", "--sim", "--model", dir, "--episodes", "1", "--families", "reach", "--size", "56", "--cameras", "wrist,top", "--json"], cams)).toBe(0);
    const viaCli = JSON.parse(cams.stdout()) as { successes: number; requests: number; generatedTokens: number };
    const direct = Policy.load(dir);
    try {
      const r = await evaluateClosedLoop(policyActor(direct), { episodes: 1, families: ["reach"], env: new TabletopEnv({ size: 56, cameras: ["top", "wrist"] }) });
      expect([viaCli.successes, viaCli.requests, viaCli.generatedTokens]).toEqual([r.successes, r.requests, r.generatedTokens]);
    } finally {
      direct.dispose();
    }
    const badCam = bufferIO();
    expect(await main(["eval", "--sim", "--model", "x", "--cameras", "top,side"], badCam)).toBe(1);
    expect(badCam.stderr()).toMatch(/--cameras: unknown camera 'side'/);
    const bad = bufferIO();
    expect(await main(["eval", "--sim", "--model", "x", "--families", "fly"], bad)).toBe(1);
    expect(bad.stderr()).toMatch(/unknown task family 'fly'/);
    const none = bufferIO();
    expect(await main(["eval", "--model", "x"], none)).toBe(1);
    expect(none.stderr()).toMatch(/pass --sim/);
  });
});
