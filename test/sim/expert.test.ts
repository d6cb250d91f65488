import { describe, expect, it } from "vitest";
import { TabletopEnv } from "../../src/sim/env.js";
import { ScriptedExpert } from "../../src/sim/expert.js";
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
});
