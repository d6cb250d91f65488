/**
 * Scripted experts, one per task family. Each is a reactive rule on the
 * current world state (it re-decides every step, so a slip, a shoved block or
 * a dropped block is recovered from) that names a target fingertip position
 * and a gripper command; the action moves towards the target at most SPEED
 * per step, plus seeded Gaussian noise, with occasional short pauses.
 *
 * Motion pattern for every family: rise to a travel height above every free
 * block, travel, then descend; never move sideways low unless pushing.
 * Experts send droll = dpitch = dyaw = 0.
 */
import { z } from "zod";
import { VlaError, formatZodIssues } from "../errors.js";
import { ACTION_DIMS, GRIPPER_CLOSE, GRIPPER_OPEN } from "./action.js";
import { BLOCK_HALF, BLOCK_SIZE } from "./geometry.js";
import { SimRng } from "./rng.js";
import { PUSHER_HALF_X, PUSHER_HALF_Y, pushOrder, type TaskFamilyName, type TaskSpec } from "./tasks.js";
import type { World } from "./world.js";

export const ExpertOptionsSchema = z
  .object({
    /** Largest fingertip move per step (metres). */
    speed: z.number().positive().max(0.05).default(0.02),
    /** Std of the Gaussian noise added to dx, dy, dz (metres); recorded and executed. */
    noise: z.number().min(0).max(0.02).default(0.003),
    /**
     * Std of Gaussian noise added to dx, dy, dz of the executed action only (metres; see execute()).
     * DART-style data: the recording visits states off the expert's path, labelled with the action
     * that recovers from them.
     */
    executionNoise: z.number().min(0).max(0.02).default(0),
    /** Chance per step of starting a pause (no motion, gripper unchanged). */
    pauseProb: z.number().min(0).max(0.5).default(0.03),
    /** A pause lasts 1..maxPause steps. */
    maxPause: z.number().int().min(1).max(10).default(3),
  })
  .strict();
export type ExpertOptions = z.input<typeof ExpertOptionsSchema>;

/** Fingertip height above a block's bottom when grasping it. */
const GRASP_Z = 0.012;
/** Travel height: this far above the highest free block top (and at least MIN_TRAVEL). */
const CLEARANCE = 0.04;
const MIN_TRAVEL = 0.1;
/** See travelTo. */
const LOW_SLACK = 0.015;
/** Fingertip height to lift a picked block to. */
const LIFT_Z = 0.18;
/** Fingertip height while pushing (fingers cover 0.012..0.062, the block 0..0.06). */
const PUSH_Z = 0.012;
/** Gap left between pusher and block before pushing starts. */
const PUSH_GAP = 0.015;
/** Stop pushing along an axis once the block is this close to the zone centre on it. */
const PUSH_TOL = 0.01;
/** A finished axis is pushed again only if the block ends up this far off the zone centre on it. */
const PUSH_REOPEN = 0.03;

interface Command {
  target: [number, number, number];
  close: boolean;
}

type Rule<S extends TaskSpec> = (w: World, spec: S, memo: Memo) => Command;

/** What an expert remembers between steps: the push plan and which push axes are finished. */
interface Memo {
  order?: "xy" | "yx";
  done?: [boolean, boolean];
}

const hold = (w: World, close: boolean, dz = 0): Command => ({ target: [w.gripper.x, w.gripper.y, w.gripper.z + dz], close });

/** Highest top among the blocks the gripper is not holding. */
function maxFreeTop(w: World): number {
  let top = 0;
  for (const [k, b] of w.blocks.entries()) if (k !== w.gripper.held) top = Math.max(top, b.z + BLOCK_SIZE);
  return top;
}

/**
 * Go to (x, y) at travel height `travel`: straight up first when low, then
 * across. Returns undefined once within `near` of (x, y) (time to come down);
 * while already low, it stays down unless more than `near + LOW_SLACK` away, so
 * noise during a descent does not send the gripper back up.
 */
function travelTo(w: World, x: number, y: number, travel: number, near: number): Command | undefined {
  const g = w.gripper;
  const d = Math.hypot(x - g.x, y - g.y);
  const low = g.z < travel - 0.01;
  if (d <= near || (low && d <= near + LOW_SLACK)) return undefined;
  if (low) return { target: [g.x, g.y, travel], close: g.closed };
  return { target: [x, y, travel], close: g.closed };
}

/** Open, come down around block i and close on it. */
function approachAndGrasp(w: World, i: number): Command {
  const g = w.gripper;
  if (g.held >= 0 && g.held !== i) return hold(w, false, 0.02);
  if (g.closed) return hold(w, false, 0.01);
  const b = w.block(i);
  const travel = Math.max(MIN_TRAVEL, maxFreeTop(w) + CLEARANCE);
  const go = travelTo(w, b.x, b.y, travel, 0.02);
  if (go) return go;
  const gz = b.z + GRASP_Z;
  const ready = Math.abs(g.z - gz) < 0.006 && Math.hypot(b.x - g.x, b.y - g.y) < 0.01;
  return { target: [b.x, b.y, gz], close: ready };
}

const reach: Rule<Extract<TaskSpec, { family: "reach" }>> = (w, s) => {
  const b = w.block(s.block);
  const travel = Math.max(MIN_TRAVEL, maxFreeTop(w) + CLEARANCE);
  return travelTo(w, b.x, b.y, travel, 0.02) ?? { target: [b.x, b.y, w.blockTop(s.block) + 0.02], close: false };
};

const pick: Rule<Extract<TaskSpec, { family: "pick" }>> = (w, s) => (w.gripper.held === s.block ? hold(w, true, LIFT_Z - w.gripper.z) : approachAndGrasp(w, s.block));

const place: Rule<Extract<TaskSpec, { family: "place" }>> = (w, s) => {
  const g = w.gripper;
  if (g.held !== s.block) return approachAndGrasp(w, s.block);
  const b = w.block(s.block);
  const dest = "block" in s.onto ? w.block(s.onto.block) : w.zones[s.onto.zone];
  if (!dest) throw new VlaError("SIM_INVALID", `place task names zone ${JSON.stringify(s.onto)} but the world has ${w.zones.length} zones`, "sample tasks with TASKS.place.sample");
  const bottom = "block" in s.onto ? w.blockTop(s.onto.block) : 0;
  const off = b.z - g.z; // held block bottom relative to the fingertips
  const ex = dest.x - b.x;
  const ey = dest.y - b.y;
  const exy = Math.hypot(ex, ey);
  if (exy > 0.03) {
    const carry = Math.max(MIN_TRAVEL, maxFreeTop(w) + CLEARANCE) - off;
    if (b.z < maxFreeTop(w) + 0.02) return { target: [g.x, g.y, carry], close: true };
    return { target: [g.x + ex, g.y + ey, carry], close: true };
  }
  const release = b.z - bottom < 0.008 && exy < 0.012;
  return { target: [g.x + ex, g.y + ey, bottom + 0.004 - off], close: !release };
};

const push: Rule<Extract<TaskSpec, { family: "push" }>> = (w, s, memo) => {
  const g = w.gripper;
  const travel = Math.max(MIN_TRAVEL, maxFreeTop(w) + CLEARANCE);
  if (g.held >= 0) return hold(w, false, 0.02);
  if (!g.closed) return g.z >= travel - 0.01 ? hold(w, true) : { target: [g.x, g.y, travel], close: false };
  const b = w.block(s.block);
  const zn = w.zones[s.zone];
  if (!zn) throw new VlaError("SIM_INVALID", `push task names zone ${s.zone} but the world has ${w.zones.length} zones`, "sample tasks with TASKS.push.sample");
  memo.order ??= pushOrder(w, s.block, s.zone) ?? "xy";
  memo.done ??= [false, false];
  const axes = memo.order === "xy" ? ([0, 1] as const) : ([1, 0] as const);
  const pos = [b.x, b.y];
  const err = [zn.x - b.x, zn.y - b.y];
  // An axis is finished within PUSH_TOL and reopened only if the block drifts well off it.
  for (const k of axes) memo.done[k] = Math.abs(err[k] as number) <= (memo.done[k] ? PUSH_REOPEN : PUSH_TOL);
  const a = axes.find((k) => !memo.done?.[k]);
  if (a === undefined) return hold(w, true);
  const o = 1 - a;
  const dir = Math.sign(err[a] as number);
  const contact = BLOCK_HALF + (a === 0 ? PUSHER_HALF_X : PUSHER_HALF_Y);
  const gp = [g.x, g.y];
  const behind = dir * ((pos[a] as number) - (gp[a] as number));
  const target: [number, number, number] = [0, 0, PUSH_Z];
  target[o] = pos[o] as number;
  const low = g.z < PUSH_Z + 0.015;
  if (low && behind > contact - 0.005 && behind < contact + PUSH_GAP + 0.02 && Math.abs((gp[o] as number) - (pos[o] as number)) < 0.02) {
    target[a] = (gp[a] as number) + (err[a] as number); // in place behind the block: push it by the remaining error
    return { target, close: true };
  }
  target[a] = (pos[a] as number) - dir * (contact + PUSH_GAP);
  return travelTo(w, target[0], target[1], travel, 0.015) ?? { target, close: true };
};

const RULES: { readonly [K in TaskFamilyName]: Rule<Extract<TaskSpec, { family: K }>> } = { reach, pick, place, push };

/** A scripted expert for one episode. */
export class ScriptedExpert {
  private readonly rng: SimRng;
  private readonly opts: z.output<typeof ExpertOptionsSchema>;
  private readonly memo: Memo = {};
  private pause = 0;
  private lastClose: boolean;

  constructor(
    private readonly spec: TaskSpec,
    world: World,
    seed: number,
    options: ExpertOptions = {},
  ) {
    const r = ExpertOptionsSchema.safeParse(options);
    if (!r.success) throw new VlaError("SIM_INVALID", `invalid expert options:\n${formatZodIssues(r.error.issues)}`, "fix the named field(s)");
    this.opts = r.data;
    this.rng = new SimRng(seed);
    this.lastClose = world.gripper.closed;
  }

  /** The next action (A = 7) for the world as it is now. */
  act(world: World): Float32Array {
    const out = new Float32Array(ACTION_DIMS);
    if (this.pause === 0 && this.rng.chance(this.opts.pauseProb)) this.pause = this.rng.intIn(1, this.opts.maxPause);
    if (this.pause > 0) {
      this.pause--;
      out[6] = this.lastClose ? GRIPPER_CLOSE : GRIPPER_OPEN;
      return out;
    }
    const cmd = this.rule(world);
    const g = world.gripper;
    let dx = cmd.target[0] - g.x;
    let dy = cmd.target[1] - g.y;
    let dz = cmd.target[2] - g.z;
    const n = Math.hypot(dx, dy, dz);
    if (n > this.opts.speed) {
      dx *= this.opts.speed / n;
      dy *= this.opts.speed / n;
      dz *= this.opts.speed / n;
    }
    out[0] = dx + this.rng.gaussian(this.opts.noise);
    out[1] = dy + this.rng.gaussian(this.opts.noise);
    out[2] = dz + this.rng.gaussian(this.opts.noise);
    out[6] = cmd.close ? GRIPPER_CLOSE : GRIPPER_OPEN;
    this.lastClose = cmd.close;
    return out;
  }

  /**
   * The action to execute for the recorded action `label` (from act()): `label` itself, or a copy
   * with executionNoise added to dx, dy, dz. The gripper command is never perturbed.
   */
  execute(label: Float32Array): Float32Array {
    if (this.opts.executionNoise === 0) return label;
    const out = Float32Array.from(label);
    for (let d = 0; d < 3; d++) out[d] = (out[d] as number) + this.rng.gaussian(this.opts.executionNoise);
    return out;
  }

  private rule(w: World): Command {
    const s = this.spec;
    switch (s.family) {
      case "reach":
        return RULES.reach(w, s, this.memo);
      case "pick":
        return RULES.pick(w, s, this.memo);
      case "place":
        return RULES.place(w, s, this.memo);
      case "push":
        return RULES.push(w, s, this.memo);
    }
  }
}
