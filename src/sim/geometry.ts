/**
 * Sizes of everything in the tabletop world (metres, radians) and the
 * axis-aligned rectangle tests the physics is built from.
 *
 * Frame: x to the right, y away from the front camera, z up; the table top is
 * the plane z = 0. The gripper's position is its fingertip point: the centre
 * between the two fingers' lower ends.
 */

/** The table is the square [-TABLE_HALF, TABLE_HALF]^2; blocks never leave it. */
export const TABLE_HALF = 0.35;
/** The gripper's x and y are clamped to [-WORKSPACE_HALF, WORKSPACE_HALF]. */
export const WORKSPACE_HALF = 0.3;
/** The fingertips' height is clamped to [0, Z_MAX]. */
export const Z_MAX = 0.25;

/** Blocks are axis-aligned cubes of side 2 * BLOCK_HALF. */
export const BLOCK_HALF = 0.03;
export const BLOCK_SIZE = 2 * BLOCK_HALF;
/** Target zones are flat squares of side 2 * ZONE_HALF drawn on the table. */
export const ZONE_HALF = 0.05;

/** One finger is a box: half-extents along the finger axis and across it, and its height. */
export const FINGER_HALF_ALONG = 0.006;
export const FINGER_HALF_ACROSS = 0.012;
export const FINGER_HEIGHT = 0.05;
/** Finger centre distance from the gripper axis: open, closed on nothing, closed on a block. */
export const FINGER_OPEN = 0.045;
export const FINGER_CLOSED = 0.007;
export const FINGER_HOLDING = BLOCK_HALF + FINGER_HALF_ALONG;

/**
 * Grasp window, in the gripper's frame (u along the finger axis, v across):
 * closing grasps a block whose centre has |u| < GRASP_TOL_ALONG and
 * |v| < GRASP_TOL_ACROSS, when the fingers cover at least GRASP_MIN_COVER of
 * its height and the fingertips are no more than GRASP_BELOW below its bottom.
 */
export const GRASP_TOL_ALONG = 0.02;
export const GRASP_TOL_ACROSS = 0.025;
export const GRASP_MIN_COVER = 0.02;
export const GRASP_BELOW = 0.005;

/** Motion is integrated in sub-steps no longer than this, so a finger cannot skip through a block. */
export const SUBSTEP = 0.01;
export const YAW_SUBSTEP = 0.1;
/** Two surfaces closer than this touch (resting, stacking). */
export const CONTACT_EPS = 1e-4;

/** An axis-aligned rectangle on the table plane: centre and half-extents. */
export interface Rect {
  cx: number;
  cy: number;
  hx: number;
  hy: number;
}

/** Penetration depths along x and y; both > 0 means the rectangles overlap. */
export function penetration(a: Rect, b: Rect): { px: number; py: number } {
  return { px: a.hx + b.hx - Math.abs(a.cx - b.cx), py: a.hy + b.hy - Math.abs(a.cy - b.cy) };
}

export function overlaps(a: Rect, b: Rect): boolean {
  const { px, py } = penetration(a, b);
  return px > 1e-9 && py > 1e-9;
}

/**
 * The smallest move of `b` that separates it from `a` (along x or y, away
 * from a's centre), or undefined when they do not overlap.
 */
export function separation(a: Rect, b: Rect): { dx: number; dy: number } | undefined {
  const { px, py } = penetration(a, b);
  if (px <= 1e-9 || py <= 1e-9) return undefined;
  if (px <= py) return { dx: b.cx >= a.cx ? px : -px, dy: 0 };
  return { dx: 0, dy: b.cy >= a.cy ? py : -py };
}

export function blockRect(x: number, y: number): Rect {
  return { cx: x, cy: y, hx: BLOCK_HALF, hy: BLOCK_HALF };
}

/** Bounding rectangle of a finger centred at (x, y) whose axis is turned by `yaw`. */
export function fingerRect(x: number, y: number, yaw: number): Rect {
  const c = Math.abs(Math.cos(yaw));
  const s = Math.abs(Math.sin(yaw));
  return { cx: x, cy: y, hx: c * FINGER_HALF_ALONG + s * FINGER_HALF_ACROSS, hy: s * FINGER_HALF_ALONG + c * FINGER_HALF_ACROSS };
}

export const clamp = (x: number, lo: number, hi: number) => Math.min(hi, Math.max(lo, x));
