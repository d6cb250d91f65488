/**
 * Task families: what to do in a scene, how to say it, and when it is done.
 *
 * - reach: bring the fingertips to the block (within REACH_XY in plan, at most
 *   REACH_ABOVE above its top).
 * - pick: hold the block with its bottom above PICK_HEIGHT.
 * - place: the block rests, released, on the other block (centre over its
 *   top face) or on the table with its centre inside the zone.
 * - push: the block rests on the table with its centre inside the zone. Only
 *   scenes where an L-shaped push (one axis, then the other) has a clear path
 *   are used, so every push task is solvable by pushing.
 *
 * The registry TASKS is a typed constant map; the family name is the key.
 */
import { BLOCK_HALF, FINGER_CLOSED, FINGER_HALF_ACROSS, FINGER_HALF_ALONG, ZONE_HALF, blockRect, overlaps, type Rect } from "./geometry.js";
import type { SimRng } from "./rng.js";
import type { World } from "./world.js";

export const REACH_XY = 0.025;
export const REACH_ABOVE = 0.04;
export const PICK_HEIGHT = 0.1;

export interface ReachSpec {
  family: "reach";
  block: number;
}
export interface PickSpec {
  family: "pick";
  block: number;
}
export interface PlaceSpec {
  family: "place";
  block: number;
  /** Put it on this block, or in this zone (exactly one is set). */
  onto: { block: number } | { zone: number };
}
export interface PushSpec {
  family: "push";
  block: number;
  zone: number;
}
export type TaskSpec = ReachSpec | PickSpec | PlaceSpec | PushSpec;
type SpecOf = { reach: ReachSpec; pick: PickSpec; place: PlaceSpec; push: PushSpec };

export interface TaskFamily<S extends TaskSpec> {
  /** Episode step limit in the rollout environment. */
  maxSteps: number;
  /** A task for this scene, or undefined when the scene cannot host one (then sample another scene). */
  sample(world: World, rng: SimRng): S | undefined;
  /** The instruction, in one of a few phrasings. */
  instruction(world: World, spec: S, rng: SimRng): string;
  success(world: World, spec: S): boolean;
}

const fill = (template: string, words: Record<string, string>) => template.replace(/\{(\w+)\}/g, (_, k: string) => words[k] ?? `{${k}}`);
const blockName = (w: World, i: number) => w.block(i).color;
const zoneName = (w: World, i: number) => (w.zones[i] ?? { color: "?" }).color;

/** Centre of block i inside zone j, block on the table and free. */
function inZone(w: World, i: number, j: number): boolean {
  const b = w.block(i);
  const zn = w.zones[j];
  return zn !== undefined && w.restingOn(i) === "table" && Math.abs(b.x - zn.x) <= ZONE_HALF && Math.abs(b.y - zn.y) <= ZONE_HALF;
}

/** Half-extents of the closed, empty fingers at yaw 0 (the pusher): along x and along y. */
export const PUSHER_HALF_X = FINGER_CLOSED + FINGER_HALF_ALONG;
export const PUSHER_HALF_Y = FINGER_HALF_ACROSS;
/** Room kept clear behind the block for the pusher to come down, and beside the path. */
const PUSH_BACK = 2 * PUSHER_HALF_X + 0.03;
const PUSH_MARGIN = 0.015;

/** The plan-view area one straight push of block i from (x0, y0) to (x1, y1) sweeps, pusher included. */
function pushSweep(x0: number, y0: number, x1: number, y1: number): Rect {
  const alongX = y0 === y1;
  const s = alongX ? Math.sign(x1 - x0) : Math.sign(y1 - y0);
  // extend the swept block square backwards by the pusher's room
  const bx0 = alongX ? x0 - s * PUSH_BACK : x0;
  const by0 = alongX ? y0 : y0 - s * PUSH_BACK;
  const m = BLOCK_HALF + PUSH_MARGIN;
  return { cx: (bx0 + x1) / 2, cy: (by0 + y1) / 2, hx: Math.abs(x1 - bx0) / 2 + m, hy: Math.abs(y1 - by0) / 2 + m };
}

/**
 * The axis order ("xy": push along x first) whose two straight pushes of
 * block i to zone j cross no other block, or undefined when neither is clear.
 */
export function pushOrder(w: World, i: number, j: number): "xy" | "yx" | undefined {
  const b = w.block(i);
  const zn = w.zones[j];
  if (!zn) return undefined;
  const others = w.blocks.filter((_, k) => k !== i).map((o) => blockRect(o.x, o.y));
  for (const order of ["xy", "yx"] as const) {
    const corner = order === "xy" ? [zn.x, b.y] : [b.x, zn.y];
    const legs: Rect[] = [];
    if (corner[0] !== b.x || corner[1] !== b.y) legs.push(pushSweep(b.x, b.y, corner[0] as number, corner[1] as number));
    legs.push(pushSweep(corner[0] as number, corner[1] as number, zn.x, zn.y));
    if (legs.every((leg) => others.every((o) => !overlaps(leg, o)))) return order;
  }
  return undefined;
}

export const TASKS: { readonly [K in keyof SpecOf]: TaskFamily<SpecOf[K]> } = {
  reach: {
    maxSteps: 50,
    sample: (w, rng) => ({ family: "reach", block: rng.int(w.blocks.length) }),
    instruction: (w, s, rng) => fill(rng.pick(["reach the {b} block", "move the gripper to the {b} block", "go to the {b} block"]), { b: blockName(w, s.block) }),
    success: (w, s) => {
      const b = w.block(s.block);
      const g = w.gripper;
      return Math.hypot(g.x - b.x, g.y - b.y) < REACH_XY && g.z <= w.blockTop(s.block) + REACH_ABOVE;
    },
  },
  pick: {
    maxSteps: 70,
    sample: (w, rng) => ({ family: "pick", block: rng.int(w.blocks.length) }),
    instruction: (w, s, rng) => fill(rng.pick(["pick up the {b} block", "lift the {b} block", "grasp the {b} block and lift it"]), { b: blockName(w, s.block) }),
    success: (w, s) => w.gripper.held === s.block && w.block(s.block).z > PICK_HEIGHT,
  },
  place: {
    maxSteps: 130,
    sample: (w, rng) => {
      const block = rng.int(w.blocks.length);
      const ontoBlock = w.zones.length === 0 || rng.chance(0.5);
      if (!ontoBlock) return { family: "place", block, onto: { zone: rng.int(w.zones.length) } };
      if (w.blocks.length < 2) return undefined;
      return { family: "place", block, onto: { block: (block + 1 + rng.int(w.blocks.length - 1)) % w.blocks.length } };
    },
    instruction: (w, s, rng) =>
      "block" in s.onto
        ? fill(rng.pick(["put the {b} block on the {o} block", "stack the {b} block on the {o} block", "place the {b} block on top of the {o} block"]), { b: blockName(w, s.block), o: blockName(w, s.onto.block) })
        : fill(rng.pick(["put the {b} block in the {z} zone", "place the {b} block in the {z} square", "move the {b} block into the {z} zone"]), { b: blockName(w, s.block), z: zoneName(w, s.onto.zone) }),
    success: (w, s) => {
      if ("zone" in s.onto) return inZone(w, s.block, s.onto.zone);
      const b = w.block(s.block);
      const o = w.block(s.onto.block);
      return w.restingOn(s.block) === s.onto.block && Math.abs(b.x - o.x) <= BLOCK_HALF && Math.abs(b.y - o.y) <= BLOCK_HALF;
    },
  },
  push: {
    maxSteps: 160,
    sample: (w, rng) => {
      if (w.zones.length === 0) return undefined;
      const spec: PushSpec = { family: "push", block: rng.int(w.blocks.length), zone: rng.int(w.zones.length) };
      return pushOrder(w, spec.block, spec.zone) ? spec : undefined;
    },
    instruction: (w, s, rng) => fill(rng.pick(["push the {b} block to the {z} zone", "slide the {b} block into the {z} zone", "push the {b} block into the {z} square"]), { b: blockName(w, s.block), z: zoneName(w, s.zone) }),
    success: (w, s) => inZone(w, s.block, s.zone),
  },
};

export type TaskFamilyName = keyof typeof TASKS;
export const TASK_FAMILIES = Object.keys(TASKS) as TaskFamilyName[];

/** Success of any task (dispatches on its family). */
export function taskSuccess(world: World, spec: TaskSpec): boolean {
  return familyOf(spec).success(world, spec);
}

export function taskInstruction(world: World, spec: TaskSpec, rng: SimRng): string {
  return familyOf(spec).instruction(world, spec, rng);
}

/** The family of a spec, typed against the spec (the registry's correlated union). */
function familyOf<K extends TaskFamilyName>(spec: SpecOf[K]): TaskFamily<SpecOf[K]> {
  return TASKS[spec.family as K] as TaskFamily<SpecOf[K]>;
}
