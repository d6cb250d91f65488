/**
 * The perspective cameras and the world -> screen projection.
 * `top` looks straight down at the table; `front` looks at it from the front
 * and above, so the gripper's height shows against the blocks. Together they
 * fix the gripper's 3D position; they are the default pair (DEFAULT_CAMERAS).
 * `wrist` rides on the gripper (VLA-0's LIBERO setting tiles a third-person and
 * a wrist camera): on the gripper's axis, 9 cm above the fingertips, it looks
 * straight down between the fingers (the rail, palm and stem it sits in are not
 * drawn in its view), so a block under the fingertips fills much of its image
 * and its offset from the fingers shows at a few millimetres per pixel.
 */
import { z } from "zod";

export type Vec3 = readonly [number, number, number];

export interface CameraSpec {
  eye: Vec3;
  target: Vec3;
  /** World direction that appears upwards in the image. */
  up: Vec3;
  /** Vertical field of view, degrees. */
  fovYDeg: number;
  /**
   * "gripper": eye, target and up are in the gripper's frame (origin at the fingertip
   * point, x along the finger axis, y across, z up; it turns with the yaw) and the view
   * moves with the gripper. Absent: fixed in the world.
   */
  mount?: "gripper";
}

export const CAMERAS = {
  top: { eye: [0, 0, 1.0], target: [0, 0, 0], up: [0, 1, 0], fovYDeg: 38 },
  front: { eye: [0, -0.65, 0.6], target: [0, 0.02, 0.1], up: [0, 0, 1], fovYDeg: 52 },
  wrist: { eye: [0, 0, 0.09], target: [0, 0, 0], up: [0, 1, 0], fovYDeg: 75, mount: "gripper" },
} as const satisfies Record<string, CameraSpec>;

export type CameraName = keyof typeof CAMERAS;
/** Every camera, in the order images are always tiled (left to right). */
export const CAMERA_NAMES = Object.keys(CAMERAS) as CameraName[];
/** The cameras rendered, recorded and tiled unless a run names others. */
export const DEFAULT_CAMERAS: readonly CameraName[] = ["top", "front"];

/** `cameras` without repeats, in CAMERA_NAMES order (the one tiling order). */
export function cameraOrder(cameras: ReadonlyArray<CameraName>): CameraName[] {
  return CAMERA_NAMES.filter((c) => cameras.includes(c));
}

export const CameraNameSchema = z.enum(CAMERA_NAMES as [CameraName, ...CameraName[]]);

/** A config's camera list: at least one, each once, put in CAMERA_NAMES order whatever order it is named in (default DEFAULT_CAMERAS). */
export const CameraListSchema = z
  .array(CameraNameSchema)
  .min(1)
  .refine((c) => new Set(c).size === c.length, "name each camera once")
  .default([...DEFAULT_CAMERAS])
  .transform((c) => cameraOrder(c));

/** The pose the gripper-mounted cameras ride on. */
export interface MountPose {
  x: number;
  y: number;
  z: number;
  yaw: number;
}

/** A camera's spec in world coordinates: itself when fixed, placed on the gripper's pose when mounted. */
export function placeCamera(spec: CameraSpec, pose: MountPose): CameraSpec {
  if (spec.mount !== "gripper") return spec;
  const c = Math.cos(pose.yaw);
  const s = Math.sin(pose.yaw);
  const turn = (v: Vec3): Vec3 => [v[0] * c - v[1] * s, v[0] * s + v[1] * c, v[2]];
  const at = (v: Vec3): Vec3 => {
    const r = turn(v);
    return [pose.x + r[0], pose.y + r[1], pose.z + r[2]];
  };
  return { eye: at(spec.eye), target: at(spec.target), up: turn(spec.up), fovYDeg: spec.fovYDeg };
}

/** A camera ready to project: orthonormal right/up/forward axes and the focal factor. */
export interface View {
  eye: Vec3;
  right: Vec3;
  up: Vec3;
  forward: Vec3;
  /** 1 / tan(fovY / 2) */
  focal: number;
  width: number;
  height: number;
}

const sub = (a: Vec3, b: Vec3): Vec3 => [a[0] - b[0], a[1] - b[1], a[2] - b[2]];
const cross = (a: Vec3, b: Vec3): Vec3 => [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]];
const unit = (a: Vec3): Vec3 => {
  const n = Math.hypot(a[0], a[1], a[2]);
  return [a[0] / n, a[1] / n, a[2] / n];
};

export function makeView(spec: CameraSpec, width: number, height: number): View {
  const forward = unit(sub(spec.target, spec.eye));
  const right = unit(cross(forward, spec.up));
  const up = cross(right, forward);
  return { eye: spec.eye, right, up, forward, focal: 1 / Math.tan((spec.fovYDeg * Math.PI) / 360), width, height };
}

/**
 * Project a world point into `out` at offset o: screen x, screen y (pixels,
 * y down, pixel centres at +0.5) and 1/depth (larger is nearer).
 */
export function project(v: View, x: number, y: number, z: number, out: Float64Array, o: number): void {
  const px = x - v.eye[0];
  const py = y - v.eye[1];
  const pz = z - v.eye[2];
  const d = px * v.forward[0] + py * v.forward[1] + pz * v.forward[2];
  const cx = px * v.right[0] + py * v.right[1] + pz * v.right[2];
  const cy = px * v.up[0] + py * v.up[1] + pz * v.up[2];
  const s = v.focal / d;
  out[o] = (1 + (cx * s * v.height) / v.width) * 0.5 * v.width;
  out[o + 1] = (1 - cy * s) * 0.5 * v.height;
  out[o + 2] = 1 / d;
}
