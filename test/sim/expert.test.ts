import { describe, expect, it } from "vitest";
import { TabletopEnv } from "../../src/sim/env.js";
import { ExpertOptionsSchema, ScriptedExpert } from "../../src/sim/expert.js";
import { recordEpisode } from "../../src/sim/generate.js";
import { mixSeed } from "../../src/sim/rng.js";
import { TASK_FAMILIES, taskSuccess, type TaskFamilyName } from "../../src/sim/tasks.js";

/** Seeds per family; the expert must solve at least 98% of them. */
const SEEDS = 100;
const REQUIRED = 0.98;

function runExpert(env: TabletopEnv, seed: number, family: TaskFamilyName, noise?: number) {
  env.reset(seed, family);
  const expert = new ScriptedExpert(env.task, env.world, mixSeed(seed, 1), noise === undefined ? {} : { noise, pauseProb: 0 });
  const actions: number[][] = [];
  let r;
  do {
    const a = expert.act(env.world);
    actions.push(Array.from(a));
    r = env.step(a);
  } while (!r.done);
  return { success: r.success, steps: r.steps, actions };
}

describe("scripted expert", () => {
  const env = new TabletopEnv({ cameras: [] }); // no rendering: the expert reads the world state
  for (const family of TASK_FAMILIES) {
    it(`solves >= ${REQUIRED * 100}% of ${SEEDS} seeded '${family}' episodes within the step limit`, () => {
      let solved = 0;
      const lengths: number[] = [];
      for (let seed = 0; seed < SEEDS; seed++) {
        const r = runExpert(env, seed, family);
        if (r.success) solved++;
        lengths.push(r.steps);
        if (r.success) expect(taskSuccess(env.world, env.task)).toBe(true);
      }
      expect(solved / SEEDS).toBeGreaterThanOrEqual(REQUIRED);
      // demonstrations stay short: the median episode is well inside the step limit
      lengths.sort((a, b) => a - b);
      expect(lengths[SEEDS >> 1]).toBeLessThan(env.maxSteps(family) / 2);
    });
  }

  it("actions stay inside the per-step limits, with roll = pitch = yaw = 0 and gripper exactly +-1", () => {
    for (const family of TASK_FAMILIES) {
      for (const a of runExpert(env, 7, family).actions) {
        for (const d of [0, 1, 2]) expect(Math.abs(a[d] as number)).toBeLessThan(0.05);
        expect([a[3], a[4], a[5]]).toEqual([0, 0, 0]);
        expect([1, -1]).toContain(a[6]);
      }
    }
  });

  it("noise is seeded: the same seed repeats exactly, a noiseless expert acts differently", () => {
    expect(runExpert(env, 3, "place").actions).toEqual(runExpert(env, 3, "place").actions);
    const clean = runExpert(env, 3, "place", 0);
    expect(clean.success).toBe(true);
    expect(clean.actions).not.toEqual(runExpert(env, 3, "place").actions);
  });

  it("executionNoise (DART): the recording keeps the clean command, the world moves by a perturbed copy", () => {
    const sigma = 0.008;
    const record = (executionNoise: number) => recordEpisode(env, 11, "reach", ExpertOptionsSchema.parse({ noise: 0, pauseProb: 0, executionNoise }));
    // the gripper moves by the executed delta: with executionNoise 0 exactly the recorded action, else off by ~sigma
    const residuals = (ep: ReturnType<typeof record>) => {
      const out: number[] = [];
      for (let t = 0; t + 1 < ep.length; t++) {
        const z0 = ep.states[t * 5 + 2] as number;
        const z1 = ep.states[(t + 1) * 5 + 2] as number;
        if (z0 < 0.03 || z1 < 0.03) continue; // near the table the motion is clipped
        for (const d of [0, 1, 2]) out.push((ep.states[(t + 1) * 5 + d] as number) - (ep.states[t * 5 + d] as number) - (ep.actions[t * 7 + d] as number));
      }
      return out;
    };
    const clean = record(0);
    for (const r of residuals(clean)) expect(Math.abs(r)).toBeLessThan(1e-6);
    const dart = record(sigma);
    expect(dart.success).toBe(true);
    const res = residuals(dart);
    const std = Math.sqrt(res.reduce((a, r) => a + r * r, 0) / res.length);
    expect(std).toBeGreaterThan(0.7 * sigma);
    expect(std).toBeLessThan(1.3 * sigma);
    // labels stay the expert's own speed-limited commands (noise-free: |move| <= speed), though the path differs
    for (let t = 0; t < dart.length; t++) expect(Math.hypot(dart.actions[t * 7] as number, dart.actions[t * 7 + 1] as number, dart.actions[t * 7 + 2] as number)).toBeLessThanOrEqual(0.02 + 1e-6);
    expect(Array.from(dart.states)).not.toEqual(Array.from(clean.states));
  });
});
