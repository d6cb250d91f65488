import { describe, expect, it } from "vitest";
import { BLOCK_SIZE } from "../../src/sim/geometry.js";
import { SimRng } from "../../src/sim/rng.js";
import { TASKS, TASK_FAMILIES, pushOrder, taskInstruction, taskSuccess, type TaskSpec } from "../../src/sim/tasks.js";
import { makeWorld } from "./helpers.js";

describe("success checks", () => {
  it("reach: fingertips over the block and low enough", () => {
    const spec: TaskSpec = { family: "reach", block: 0 };
    expect(taskSuccess(makeWorld([["red", 0.1, 0.1]], { x: 0.1, y: 0.11, z: BLOCK_SIZE + 0.02 }), spec)).toBe(true);
    expect(taskSuccess(makeWorld([["red", 0.1, 0.1]], { x: 0.1, y: 0.11, z: 0.012 }), spec)).toBe(true); // open fingers around it
    expect(taskSuccess(makeWorld([["red", 0.1, 0.1]], { x: 0.14, y: 0.1, z: BLOCK_SIZE + 0.02 }), spec)).toBe(false); // 4 cm off
    expect(taskSuccess(makeWorld([["red", 0.1, 0.1]], { x: 0.1, y: 0.1, z: BLOCK_SIZE + 0.06 }), spec)).toBe(false); // too high
    expect(taskSuccess(makeWorld([["red", 0.1, 0.1], ["blue", -0.1, 0]], { x: -0.1, y: 0, z: 0.08 }), spec)).toBe(false); // the other block
  });

  it("pick: the named block held with its bottom above 10 cm", () => {
    const spec: TaskSpec = { family: "pick", block: 1 };
    const held = (z: number, which: number) => makeWorld([["red", 0, 0, which === 0 ? z : 0], ["blue", 0.15, 0, which === 1 ? z : 0]], { x: which === 0 ? 0 : 0.15, y: 0, z: z + 0.012, closed: true, held: which });
    expect(taskSuccess(held(0.12, 1), spec)).toBe(true);
    expect(taskSuccess(held(0.05, 1), spec)).toBe(false); // not high enough
    expect(taskSuccess(held(0.12, 0), spec)).toBe(false); // the wrong block
    expect(taskSuccess(makeWorld([["red", 0, 0], ["blue", 0, 0, BLOCK_SIZE]]), { family: "pick", block: 1 })).toBe(false); // high but stacked, not held
  });

  it("place on a block: released, resting on it, centre over its top", () => {
    const spec: TaskSpec = { family: "place", block: 0, onto: { block: 1 } };
    expect(taskSuccess(makeWorld([["red", 0.01, 0, BLOCK_SIZE], ["blue", 0, 0]]), spec)).toBe(true);
    expect(taskSuccess(makeWorld([["red", 0.01, 0, BLOCK_SIZE], ["blue", 0, 0]], { x: 0.01, y: 0, z: BLOCK_SIZE + 0.012, closed: true, held: 0 }), spec)).toBe(false); // still held
    expect(taskSuccess(makeWorld([["red", 0.1, 0], ["blue", 0, 0]]), spec)).toBe(false); // beside it
    expect(taskSuccess(makeWorld([["red", 0.04, 0, BLOCK_SIZE], ["blue", 0, 0]]), spec)).toBe(false); // centre off the top face
    expect(taskSuccess(makeWorld([["red", 0, 0, BLOCK_SIZE], ["blue", 0.2, 0], ["green", 0, 0]]), spec)).toBe(false); // on the wrong block
  });

  it("place in a zone and push: block centre inside the zone, on the table, free", () => {
    for (const spec of [{ family: "place", block: 0, onto: { zone: 0 } }, { family: "push", block: 0, zone: 0 }] as TaskSpec[]) {
      const zones: Array<["yellow", number, number]> = [["yellow", 0.1, 0.1]];
      expect(taskSuccess(makeWorld([["red", 0.14, 0.06]], {}, zones), spec)).toBe(true); // centre just inside (zone half 0.05)
      expect(taskSuccess(makeWorld([["red", 0.16, 0.1]], {}, zones), spec)).toBe(false); // centre outside
      expect(taskSuccess(makeWorld([["red", 0.1, 0.1, 0.05]], { x: 0.1, y: 0.1, z: 0.062, closed: true, held: 0 }, zones), spec)).toBe(false); // held above it
      expect(taskSuccess(makeWorld([["red", 0.1, 0.1, BLOCK_SIZE], ["blue", 0.1, 0.1]], {}, zones), spec)).toBe(false); // on a block, not the table
    }
  });
});

describe("task sampling", () => {
  it("the registry holds the four families", () => {
    expect(TASK_FAMILIES).toEqual(["reach", "pick", "place", "push"]);
  });

  it("instructions name the colours of the block and its target", () => {
    const w = makeWorld([["red", 0, 0], ["blue", 0.15, 0]], {}, [["yellow", -0.15, 0.15]]);
    const rng = new SimRng(1);
    for (let i = 0; i < 10; i++) {
      expect(taskInstruction(w, { family: "place", block: 0, onto: { block: 1 } }, rng)).toMatch(/^(put|stack|place) the red block (on|on top of) the blue block$/);
      expect(taskInstruction(w, { family: "push", block: 1, zone: 0 }, rng)).toMatch(/^(push|slide) the blue block (to|into) the yellow (zone|square)$/);
    }
    const phrasings = new Set(Array.from({ length: 30 }, () => taskInstruction(w, { family: "pick", block: 0 }, rng)));
    expect(phrasings.size).toBe(3);
  });

  it("push tasks need a clear L-shaped path; a blocked one is not sampled", () => {
    // zone straight to the right of red, blue in between: x-first is blocked, y-first has no y leg, so neither is clear
    const blocked = makeWorld([["red", -0.15, 0], ["blue", 0, 0]], {}, [["yellow", 0.15, 0]]);
    expect(pushOrder(blocked, 0, 0)).toBeUndefined();
    const rng = new SimRng(0);
    for (let i = 0; i < 20; i++) {
      const s = TASKS.push.sample(blocked, rng);
      if (s) expect(s.block).toBe(1); // only blue (whose path is clear) may be chosen
    }
    // with blue out of the way along x, going y-first around it is fine
    const detour = makeWorld([["red", -0.15, -0.1], ["blue", 0, -0.1]], {}, [["yellow", 0.15, 0.1]]);
    expect(pushOrder(detour, 0, 0)).toBe("yx");
  });
});
