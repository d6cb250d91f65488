import { describe, expect, it } from "vitest";
import { VlaError } from "../../src/errors.js";
import { MAX_DELTA_POS, parseAction } from "../../src/sim/action.js";
import { TabletopEnv } from "../../src/sim/env.js";
import { ScriptedExpert } from "../../src/sim/expert.js";
import { TASK_FAMILIES } from "../../src/sim/tasks.js";

function simError(f: () => unknown): VlaError {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(VlaError);
    expect((e as VlaError).code).toBe("SIM_INVALID");
    return e as VlaError;
  }
  throw new Error("expected a SIM_INVALID error");
}

describe("action validation", () => {
  it("names the non-finite dimension", () => {
    expect(simError(() => parseAction([0, 0, Number.NaN, 0, 0, 0, 1])).message).toMatch(/action dimension 2 \(dz\) is NaN/);
    expect(simError(() => parseAction([0, 0, 0, 0, 0, Infinity, 1])).message).toMatch(/dimension 5 \(dyaw\) is Infinity/);
    expect(simError(() => parseAction([0, 0, 0, 0, 0, 0, Number.NaN])).message).toMatch(/dimension 6 \(gripper\)/);
    expect(simError(() => parseAction([0, 0, 0])).message).toMatch(/action has 3 values, expected 7/);
  });

  it("clamps deltas, ignores roll and pitch, reads the gripper by sign", () => {
    expect(parseAction([0.2, -0.3, 0.01, 5, -5, 9, 0.4])).toEqual({ dx: MAX_DELTA_POS, dy: -MAX_DELTA_POS, dz: 0.01, dyaw: 0.25, close: true });
    expect(parseAction([0, 0, 0, 0, 0, 0, -0.2]).close).toBe(false);
    expect(parseAction([0, 0, 0, 0, 0, 0, 0]).close).toBe(false);
  });

  it("env.step validates too, and refuses to run before reset or after the episode ends", () => {
    const env = new TabletopEnv({ cameras: [] });
    simError(() => env.step([0, 0, 0, 0, 0, 0, -1]));
    env.reset(3, "reach");
    expect(simError(() => env.step([0, Number.NaN, 0, 0, 0, 0, -1])).message).toMatch(/dimension 1 \(dy\)/);
    let r;
    do r = env.step([0, 0, 0, 0, 0, 0, -1]);
    while (!r.done);
    expect(r.success).toBe(false);
    expect(r.steps).toBe(env.maxSteps("reach"));
    expect(simError(() => env.step([0, 0, 0, 0, 0, 0, -1])).message).toMatch(/after the episode ended/);
    // stepAfterEnd (a recording's settle frames) moves the world on only after the end
    const z = env.world.gripper.z;
    expect(env.stepAfterEnd([0, 0, 0.01, 0, 0, 0, -1]).state[2]).toBeCloseTo(z + 0.01, 5);
    env.reset(3, "reach");
    expect(simError(() => env.stepAfterEnd([0, 0, 0, 0, 0, 0, -1])).message).toMatch(/before the episode ended/);
  });

  it("rejects bad options", () => {
    expect(simError(() => new TabletopEnv({ size: 4 })).message).toMatch(/size/);
    expect(simError(() => new TabletopEnv({ tasks: [] })).message).toMatch(/tasks/);
    expect(simError(() => new TabletopEnv({ maxSteps: { pick: 0 } })).message).toMatch(/maxSteps\.pick/);
  });
});

describe("TabletopEnv", () => {
  it("observations: two 64x64 RGB cameras, 5-dim state, instruction naming the target's colour", () => {
    const env = new TabletopEnv();
    const obs = env.reset(11, "pick");
    for (const cam of ["top", "front"] as const) {
      const img = obs.images[cam];
      expect(img?.width).toBe(64);
      expect(img?.height).toBe(64);
      expect(img?.data.length).toBe(64 * 64 * 3);
    }
    expect(obs.state.length).toBe(5);
    expect(obs.task.family).toBe("pick");
    expect(obs.instruction).toContain(env.world.block(obs.task.block).color);
  });

  it("is deterministic per seed: same scene, instruction, frames and trajectory; other seeds differ", () => {
    const run = (seed: number) => {
      const env = new TabletopEnv({ size: 32 });
      const obs = env.reset(seed);
      const expert = new ScriptedExpert(env.task, env.world, seed);
      const frames = [Buffer.from(obs.images.top?.data ?? []).toString("base64")];
      const states: number[] = [];
      let r;
      do {
        r = env.step(expert.act(env.world));
        frames.push(Buffer.from(r.obs.images.front?.data ?? []).toString("base64"));
        states.push(...r.obs.state);
      } while (!r.done);
      return { instruction: obs.instruction, task: obs.task, frames, states, steps: r.steps };
    };
    const a = run(42);
    expect(run(42)).toEqual(a);
    const b = run(43);
    expect(b.frames[0]).not.toEqual(a.frames[0]);
  });

  it("reset(seed) without a family draws from the configured families", () => {
    const env = new TabletopEnv({ cameras: [], tasks: ["push", "reach"] });
    const seen = new Set<string>();
    for (let s = 0; s < 20; s++) seen.add(env.reset(s).task.family);
    expect([...seen].sort()).toEqual(["push", "reach"]);
    const drawn = env.reset(4);
    const again = env.reset(4, drawn.task.family);
    expect(again.task).toEqual(drawn.task);
    expect(again.instruction).toBe(drawn.instruction);
  });

  it("every family fits the default scenes, and the step limit ends an idle episode", () => {
    const env = new TabletopEnv({ cameras: [], maxSteps: { place: 3 } });
    for (const fam of TASK_FAMILIES) expect(env.reset(5, fam).task.family).toBe(fam);
    env.reset(5, "place");
    const steps = [1, 2, 3].map(() => env.step([0, 0, 0, 0, 0, 0, -1]));
    expect(steps.map((r) => r.done)).toEqual([false, false, true]);
  });
});
