import { describe, expect, it } from "vitest";
import { VlaError } from "../../src/errors.js";
import { BLOCK_SIZE, WORKSPACE_HALF, Z_MAX } from "../../src/sim/geometry.js";
import { World } from "../../src/sim/world.js";
import { makeWorld, move, moveTo } from "./helpers.js";

describe("grasp", () => {
  it("closing around a block at low height grasps it", () => {
    const w = makeWorld([["red", 0, 0]], { x: 0, y: 0, z: 0.012 });
    move(w, 0, 0, 0, true);
    expect(w.gripper.held).toBe(0);
    expect(w.restingOn(0)).toBe("air");
  });

  it("does not grasp when the gripper stays open, is too high, or is beside the block", () => {
    const open = makeWorld([["red", 0, 0]], { x: 0, y: 0, z: 0.012 });
    move(open, 0, 0, 0.05, false, 2);
    expect(open.gripper.held).toBe(-1);
    expect(open.block(0).z).toBe(0);

    const high = makeWorld([["red", 0, 0]], { x: 0, y: 0, z: 0.1 });
    move(high, 0, 0, 0, true);
    expect(high.gripper.closed).toBe(true);
    expect(high.gripper.held).toBe(-1);

    const beside = makeWorld([["red", 0, 0]], { x: 0, y: 0.05, z: 0.012 });
    move(beside, 0, 0, 0, true);
    expect(beside.gripper.held).toBe(-1);
  });

  it("the tolerance window: 1.5 cm off along the fingers still grasps (and centres the block), 3 cm across does not", () => {
    const near = makeWorld([["red", 0, 0]], { x: 0.015, y: 0, z: 0.012 });
    move(near, 0, 0, 0, true);
    expect(near.gripper.held).toBe(0);
    expect(near.block(0).x).toBeCloseTo(0.015, 9); // squared up between the fingers
    const across = makeWorld([["red", 0, 0]], { x: 0, y: 0.03, z: 0.012 });
    move(across, 0, 0, 0, true);
    expect(across.gripper.held).toBe(-1);
  });

  it("coming down open, the fingers clear a block 0.8 cm off along them, not 1 cm off (a finger lands on its top); across, 2 cm off clears", () => {
    // open fingers' inner faces are FINGER_OPEN - FINGER_HALF_ALONG = 3.9 cm from the axis: 0.9 cm beyond the block's side
    const down = (x: number, y: number) => {
      const w = makeWorld([["red", 0, 0]], { x, y, z: 0.1 });
      moveTo(w, x, y, 0.012, false);
      return w;
    };
    const clear = down(0.008, 0);
    expect(clear.gripper.z).toBeCloseTo(0.012, 9);
    move(clear, 0, 0, 0, true);
    expect(clear.gripper.held).toBe(0);
    const onTop = down(0.01, 0);
    expect(onTop.gripper.z).toBeCloseTo(BLOCK_SIZE, 9);
    move(onTop, 0, 0, 0, true);
    expect(onTop.gripper.held).toBe(-1);
    expect(down(0, 0.02).gripper.z).toBeCloseTo(0.012, 9);
  });

  it("closing in the air and then lowering onto a block does not grasp it", () => {
    const w = makeWorld([["red", 0, 0]], { x: 0, y: 0, z: 0.15 });
    move(w, 0, 0, 0, true);
    moveTo(w, 0, 0, 0.012, true);
    expect(w.gripper.held).toBe(-1);
    expect(w.gripper.z).toBeCloseTo(BLOCK_SIZE, 9); // closed fingers stop on the block's top
  });
});

describe("carry, release, stacking", () => {
  it("a held block follows the gripper and falls to the table when released", () => {
    const w = makeWorld([["red", 0, 0]], { x: 0, y: 0, z: 0.012 });
    move(w, 0, 0, 0, true);
    move(w, 0, 0, 0.05, true, 2);
    expect(w.block(0).z).toBeCloseTo(0.1, 9);
    move(w, 0.04, -0.03, 0, true, 2);
    expect(w.block(0).x).toBeCloseTo(0.08, 9);
    expect(w.block(0).y).toBeCloseTo(-0.06, 9);
    move(w, 0, 0, 0, false);
    expect(w.gripper.held).toBe(-1);
    expect(w.block(0)).toMatchObject({ z: 0 });
    expect(w.block(0).x).toBeCloseTo(0.08, 9);
    expect(w.restingOn(0)).toBe("table");
  });

  it("a block released over another lands on it; lowering a held block stops on the one below", () => {
    const w = makeWorld([["red", 0, 0], ["blue", 0.15, 0]], { x: 0.15, y: 0, z: 0.012 });
    move(w, 0, 0, 0, true);
    expect(w.gripper.held).toBe(1);
    moveTo(w, 0.15, 0, 0.15, true);
    moveTo(w, 0.005, 0, 0.15, true);
    moveTo(w, 0.005, 0, 0.0, true); // pressing down: the held block rests on red's top
    expect(w.block(1).z).toBeCloseTo(BLOCK_SIZE, 9);
    move(w, 0, 0, 0, false);
    expect(w.restingOn(1)).toBe(0);
    expect(w.block(1).z).toBeCloseTo(BLOCK_SIZE, 9);
    expect(w.block(0)).toMatchObject({ x: 0, y: 0, z: 0 });
  });

  it("picking the bottom block of a stack carries the top one; releasing puts both down", () => {
    const w = makeWorld([["red", 0, 0], ["blue", 0, 0, BLOCK_SIZE]], { x: 0, y: 0, z: 0.012 });
    move(w, 0, 0, 0, true);
    expect(w.gripper.held).toBe(0);
    move(w, 0.05, 0, 0.05, true);
    expect(w.block(1).z).toBeCloseTo(0.05 + BLOCK_SIZE, 9);
    expect(w.block(1).x).toBeCloseTo(0.05, 9);
    move(w, 0, 0, 0, false);
    expect(w.block(0).z).toBe(0);
    expect(w.restingOn(1)).toBe(0);
  });
});

describe("pushes and bounds", () => {
  it("a closed gripper at table height moving into a block pushes it along the motion", () => {
    const w = makeWorld([["red", 0, 0]], { x: -0.1, y: 0, z: 0.012, closed: true });
    move(w, 0.05, 0, 0, true, 4); // gripper ends at x = 0.1
    const b = w.block(0);
    // pusher half-width 0.013 + block half 0.03: the block's centre sits 0.043 ahead of the gripper
    expect(b.x).toBeCloseTo(0.1 + 0.043, 9);
    expect(b.y).toBe(0);
    expect(b.z).toBe(0);
  });

  it("the gripper passing above a block does not move it; an open finger clips and shoves it", () => {
    const above = makeWorld([["red", 0, 0]], { x: -0.1, y: 0, z: 0.07 });
    move(above, 0.05, 0, 0, false, 4);
    expect(above.block(0)).toMatchObject({ x: 0, y: 0 });
    // fingers along x, 0.012 across: at y = 0.025 a finger overlaps the block's side by 0.017 and drives it along x
    const clip = makeWorld([["red", 0, 0]], { x: -0.09, y: 0.025, z: 0.012 });
    move(clip, 0.05, 0, 0, false, 4);
    expect(clip.block(0).x).toBeGreaterThan(0);
    expect(clip.block(0).y).toBe(0);
    // grazing (0.002 overlap across) slides the block sideways instead
    const graze = makeWorld([["red", 0, 0]], { x: -0.09, y: 0.04, z: 0.012 });
    move(graze, 0.05, 0, 0, false, 4);
    expect(graze.block(0).x).toBeLessThan(0.002); // at most the first sub-step's sliver
    expect(graze.block(0).y).toBeCloseTo(-0.002, 9);
  });

  it("a pushed block pushes the block in front of it", () => {
    const w = makeWorld([["red", 0, 0], ["blue", 0.07, 0]], { x: -0.1, y: 0, z: 0.012, closed: true });
    move(w, 0.05, 0, 0, true, 4);
    expect(w.block(0).x).toBeCloseTo(0.143, 9);
    expect(w.block(1).x).toBeCloseTo(0.143 + BLOCK_SIZE, 9);
  });

  it("the gripper is clamped to the workspace; blocks stay on the table", () => {
    const w = makeWorld([["red", 0.2, 0]], { x: 0.1, y: 0, z: 0.012, closed: true });
    move(w, 0.05, 0.05, -0.05, true, 10);
    expect(w.gripper.x).toBe(WORKSPACE_HALF);
    expect(w.gripper.y).toBe(WORKSPACE_HALF);
    expect(w.gripper.z).toBe(0);
    move(w, 0, 0, 0.05, true, 10);
    expect(w.gripper.z).toBe(Z_MAX);
    expect(Math.abs(w.block(0).x)).toBeLessThanOrEqual(0.35 - 0.03 + 1e-12);
  });

  it("yaw turns the fingers and is clamped", () => {
    const w = makeWorld([["red", 0, 0]], {});
    w.step({ dx: 0, dy: 0, dz: 0, dyaw: 0.25, close: false });
    expect(w.gripper.yaw).toBeCloseTo(0.25, 12);
    const [[x0, y0], [x1, y1]] = w.fingerCenters();
    expect(Math.atan2(y1 - y0, x1 - x0)).toBeCloseTo(0.25, 12);
    for (let i = 0; i < 10; i++) w.step({ dx: 0, dy: 0, dz: 0, dyaw: 0.25, close: false });
    expect(w.gripper.yaw).toBeCloseTo(Math.PI / 2, 12);
  });
});

describe("world state", () => {
  it("state() is (x, y, z, yaw, open) and snapshot() round-trips through the constructor", () => {
    const w = makeWorld([["red", 0, 0]], { x: 0.1, y: -0.1, z: 0.05 });
    expect(Array.from(w.state())).toEqual(Array.from(Float32Array.of(0.1, -0.1, 0.05, 0, 1)));
    const copy = new World(w.snapshot());
    move(w, 0.01, 0, 0, true);
    expect(copy.gripper.x).toBe(0.1);
    expect(copy.state()[4]).toBe(1);
    expect(w.state()[4]).toBe(0);
  });

  it("rejects invalid states with SIM_INVALID naming the field", () => {
    const bad = (f: () => unknown, msg: RegExp) => {
      try {
        f();
        expect.unreachable();
      } catch (e) {
        expect(e).toBeInstanceOf(VlaError);
        expect((e as VlaError).code).toBe("SIM_INVALID");
        expect((e as VlaError).message).toMatch(msg);
      }
    };
    bad(() => makeWorld([["red", 0, 0]], { held: 0 }), /gripper\.held: an open gripper cannot hold/);
    bad(() => makeWorld([["red", 0, 0]], { closed: true, held: 3 }), /gripper\.held: is 3 but there are 1 blocks/);
    bad(() => makeWorld([["red", 0, 0], ["red", 0.2, 0]]), /colours must all differ/);
    bad(() => makeWorld([["red", Number.NaN, 0]]), /blocks\.0\.x/);
  });
});
