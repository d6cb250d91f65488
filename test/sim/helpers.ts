/** Hand-built worlds and actions for the simulator tests. */
import { parseAction } from "../../src/sim/action.js";
import type { ColorName } from "../../src/sim/colors.js";
import { World, type WorldState } from "../../src/sim/world.js";

export function makeWorld(blocks: Array<[ColorName, number, number, number?]>, gripper: Partial<WorldState["gripper"]> = {}, zones: Array<[ColorName, number, number]> = []): World {
  return new World({
    gripper: { x: 0, y: -0.2, z: 0.2, yaw: 0, closed: false, held: -1, ...gripper },
    blocks: blocks.map(([color, x, y, z]) => ({ color, x, y, z: z ?? 0 })),
    zones: zones.map(([color, x, y]) => ({ color, x, y })),
  });
}

/** Step with [dx, dy, dz, 0, 0, 0, close ? 1 : -1], `times` times. */
export function move(w: World, dx: number, dy: number, dz: number, close: boolean, times = 1): void {
  for (let i = 0; i < times; i++) w.step(parseAction([dx, dy, dz, 0, 0, 0, close ? 1 : -1]));
}

/** Move the gripper to (x, y, z) in straight steps of at most 0.05, keeping the gripper command. */
export function moveTo(w: World, x: number, y: number, z: number, close: boolean): void {
  for (let i = 0; i < 100; i++) {
    const g = w.gripper;
    const d = [x - g.x, y - g.y, z - g.z];
    if (Math.max(...d.map(Math.abs)) < 1e-9) return;
    move(w, d[0] as number, d[1] as number, d[2] as number, close);
  }
}
