/**
 * The scenes behind the golden renders: two seeded scenes straight from
 * TabletopEnv.reset, and one hand-built state (a block carried above a stack,
 * gripper turned, two zones) that covers held blocks, stacking and yaw.
 */
import { TabletopEnv } from "../../../src/sim/env.js";
import { World } from "../../../src/sim/world.js";

export const GOLDEN_SIZE = 64;
export const GOLDEN_CAMERAS = ["top", "front"] as const;

export function goldenScenes(): Array<{ name: string; world: World }> {
  const env = new TabletopEnv({ size: GOLDEN_SIZE, cameras: [] });
  env.reset(1, "place");
  const seed1 = new World(env.world.snapshot());
  env.reset(7, "push");
  const seed7 = new World(env.world.snapshot());
  const carry = new World({
    gripper: { x: 0.1, y: 0.05, z: 0.16, yaw: 0.4, closed: true, held: 2 },
    blocks: [
      { color: "green", x: -0.1, y: 0.1, z: 0 },
      { color: "purple", x: -0.095, y: 0.105, z: 0.06 },
      { color: "red", x: 0.1, y: 0.05, z: 0.148 },
    ],
    zones: [
      { color: "yellow", x: 0.15, y: -0.15 },
      { color: "blue", x: -0.15, y: -0.12 },
    ],
  });
  return [
    { name: "seed1", world: seed1 },
    { name: "seed7", world: seed7 },
    { name: "carry", world: carry },
  ];
}
