/**
 * The simulator's action: a 7-DoF end-effector delta
 * [dx, dy, dz, droll, dpitch, dyaw, gripper] in metres, radians and a
 * gripper command, as a policy emits it.
 *
 * - dx, dy, dz are clamped to +-MAX_DELTA_POS per step.
 * - droll and dpitch are checked (finite) and ignored: the gripper always
 *   points straight down, so they exist only to keep the 7-DoF layout that
 *   real datasets use. The expert always sends 0 for them.
 * - dyaw is clamped to +-MAX_DELTA_YAW per step; the resulting yaw is clamped
 *   to +-YAW_LIMIT. Yaw turns the fingers (visible in both cameras) but does
 *   not affect grasping: blocks are cubes and the fingers square them up.
 * - gripper > 0 closes, gripper <= 0 opens (the expert sends exactly +1 / -1;
 *   a decoded policy output near either end picks the same side).
 */
import { VlaError } from "../errors.js";

export const ACTION_DIMS = 7;
/** Dimension names as datasets store them (the toy-sim recipe uses the same names). */
export const ACTION_NAMES = ["x", "y", "z", "roll", "pitch", "yaw", "gripper"] as const;
/** What each dimension means, for error messages. */
const DIM_MEANING = ["dx", "dy", "dz", "droll", "dpitch", "dyaw", "gripper"] as const;

export const MAX_DELTA_POS = 0.05;
export const MAX_DELTA_YAW = 0.25;
export const YAW_LIMIT = Math.PI / 2;

export const GRIPPER_OPEN = -1;
export const GRIPPER_CLOSE = 1;

/** A validated, clamped action. */
export interface SimAction {
  dx: number;
  dy: number;
  dz: number;
  dyaw: number;
  close: boolean;
}

const clamp = (x: number, lim: number) => Math.min(lim, Math.max(-lim, x));

/**
 * Check a raw 7-vector and clamp it to the per-step limits. A wrong length or
 * a non-finite value is a SIM_INVALID error naming the dimension.
 */
export function parseAction(raw: ArrayLike<number>): SimAction {
  if (raw.length !== ACTION_DIMS) {
    throw new VlaError("SIM_INVALID", `action has ${raw.length} values, expected ${ACTION_DIMS} [${DIM_MEANING.join(", ")}]`, "pass one 7-DoF delta per step");
  }
  for (let d = 0; d < ACTION_DIMS; d++) {
    const v = raw[d];
    if (typeof v !== "number" || !Number.isFinite(v)) {
      throw new VlaError("SIM_INVALID", `action dimension ${d} (${DIM_MEANING[d]}) is ${String(v)}`, "every action value must be a finite number; check the policy's decoding");
    }
  }
  const at = (d: number) => raw[d] as number;
  return {
    dx: clamp(at(0), MAX_DELTA_POS),
    dy: clamp(at(1), MAX_DELTA_POS),
    dz: clamp(at(2), MAX_DELTA_POS),
    dyaw: clamp(at(5), MAX_DELTA_YAW),
    close: at(6) > 0,
  };
}
