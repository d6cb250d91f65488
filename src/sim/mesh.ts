/**
 * The world as flat-shaded triangles: table, zones, a drop shadow under the
 * gripper, blocks, and the gripper (two fingers, the rail joining them, the
 * palm and a short stem). Each triangle carries its final colour: base colour
 * times (AMBIENT + DIFFUSE * max(0, face normal . light)); the light is
 * directional, so shading does not depend on the camera.
 */
import { AMBIENT, BACKGROUND_RGB, COLORS, DIFFUSE, GRIPPER_BODY_RGB, GRIPPER_FINGER_RGB, LIGHT_DIR, SHADOW_RGB, TABLE_RGB, zoneRgb, type Rgb } from "./colors.js";
import { BLOCK_HALF, BLOCK_SIZE, FINGER_HALF_ACROSS, FINGER_HALF_ALONG, FINGER_HEIGHT, TABLE_HALF, ZONE_HALF, blockRect, overlaps } from "./geometry.js";
import type { World } from "./world.js";

export { BACKGROUND_RGB };

/** Growable triangle list: positions (N, 3 vertices, 3) and shaded colours (N, 3). */
export class TriangleList {
  positions = new Float64Array(256 * 9);
  colors = new Uint8Array(256 * 3);
  count = 0;
  /** Triangles [0, bodyStart) are the world without the gripper's rail, palm and stem (what the wrist camera, which sits in them, sees). */
  bodyStart = 0;

  clear(): void {
    this.count = 0;
    this.bodyStart = 0;
  }

  /** Add triangle (a, b, c), counter-clockwise seen from its front side. */
  add(ax: number, ay: number, az: number, bx: number, by: number, bz: number, cx: number, cy: number, cz: number, rgb: Rgb): void {
    if (this.count * 9 >= this.positions.length) {
      const p = new Float64Array(this.positions.length * 2);
      p.set(this.positions);
      this.positions = p;
      const c = new Uint8Array(this.colors.length * 2);
      c.set(this.colors);
      this.colors = c;
    }
    const p = this.positions;
    const o = this.count * 9;
    p[o] = ax;
    p[o + 1] = ay;
    p[o + 2] = az;
    p[o + 3] = bx;
    p[o + 4] = by;
    p[o + 5] = bz;
    p[o + 6] = cx;
    p[o + 7] = cy;
    p[o + 8] = cz;
    // flat shading by the face normal (b - a) x (c - a)
    const ux = bx - ax, uy = by - ay, uz = bz - az;
    const vx = cx - ax, vy = cy - ay, vz = cz - az;
    const nx = uy * vz - uz * vy, ny = uz * vx - ux * vz, nz = ux * vy - uy * vx;
    const len = Math.hypot(nx, ny, nz) || 1;
    const lambert = Math.max(0, (nx * LIGHT_DIR[0] + ny * LIGHT_DIR[1] + nz * LIGHT_DIR[2]) / len);
    const shade = AMBIENT + DIFFUSE * lambert;
    const co = this.count * 3;
    this.colors[co] = Math.min(255, Math.round(rgb[0] * shade));
    this.colors[co + 1] = Math.min(255, Math.round(rgb[1] * shade));
    this.colors[co + 2] = Math.min(255, Math.round(rgb[2] * shade));
    this.count++;
  }

  /** Horizontal square facing up, centred at (x, y) at height z. */
  flatSquare(x: number, y: number, z: number, half: number, rgb: Rgb): void {
    this.add(x - half, y - half, z, x + half, y - half, z, x + half, y + half, z, rgb);
    this.add(x - half, y - half, z, x + half, y + half, z, x - half, y + half, z, rgb);
  }

  /**
   * Box with half-extents (a along its turned x axis, b along its turned y
   * axis), from height z0 to z1, turned by `yaw` about its centre (x, y).
   * The bottom face is left out: every camera looks from above the table.
   */
  box(x: number, y: number, z0: number, z1: number, a: number, b: number, yaw: number, rgb: Rgb): void {
    const c = Math.cos(yaw);
    const s = Math.sin(yaw);
    // corners k = (sx, sy) in {-,+}^2 in counter-clockwise order seen from above
    const cxs = [-a * c + b * s, a * c + b * s, a * c - b * s, -a * c - b * s];
    const cys = [-a * s - b * c, a * s - b * c, a * s + b * c, -a * s + b * c];
    const X = (k: number) => x + (cxs[k] as number);
    const Y = (k: number) => y + (cys[k] as number);
    this.add(X(0), Y(0), z1, X(1), Y(1), z1, X(2), Y(2), z1, rgb);
    this.add(X(0), Y(0), z1, X(2), Y(2), z1, X(3), Y(3), z1, rgb);
    for (let k = 0; k < 4; k++) {
      const n = (k + 1) % 4;
      // side from corner k to corner n, counter-clockwise seen from outside
      this.add(X(k), Y(k), z0, X(n), Y(n), z0, X(n), Y(n), z1, rgb);
      this.add(X(k), Y(k), z0, X(n), Y(n), z1, X(k), Y(k), z1, rgb);
    }
  }
}

/** Small lifts that keep coplanar layers apart in the z-buffer. */
const ZONE_LIFT = 0.0008;
const SHADOW_LIFT = 0.0016;
const SHADOW_HALF = 0.016;
const RAIL_HALF_ACROSS = 0.005;
const RAIL_HEIGHT = 0.006;
const PALM_HALF_ALONG = 0.03;
const PALM_HALF_ACROSS = 0.016;
const PALM_HEIGHT = 0.02;
const STEM_HALF = 0.012;
const STEM_HEIGHT = 0.15;

/** Fill `tris` with the world's triangles. */
export function buildMesh(world: World, tris: TriangleList): void {
  tris.clear();
  tris.flatSquare(0, 0, 0, TABLE_HALF, TABLE_RGB);
  for (const zn of world.zones) tris.flatSquare(zn.x, zn.y, ZONE_LIFT, ZONE_HALF, zoneRgb(zn.color));
  const g = world.gripper;
  // drop shadow straight below the gripper, on the highest free block top under it or the table
  let support = 0;
  const under = { cx: g.x, cy: g.y, hx: 1e-6, hy: 1e-6 };
  for (const [k, b] of world.blocks.entries()) {
    const top = b.z + BLOCK_SIZE;
    if (k !== g.held && top <= g.z + 1e-6 && overlaps(blockRect(b.x, b.y), under)) support = Math.max(support, top);
  }
  tris.flatSquare(g.x, g.y, support + (support > 0 ? ZONE_LIFT : SHADOW_LIFT), SHADOW_HALF, SHADOW_RGB);
  for (const b of world.blocks) tris.box(b.x, b.y, b.z, b.z + BLOCK_SIZE, BLOCK_HALF, BLOCK_HALF, 0, COLORS[b.color]);
  const off = world.fingerOffset();
  for (const [fx, fy] of world.fingerCenters()) tris.box(fx, fy, g.z, g.z + FINGER_HEIGHT, FINGER_HALF_ALONG, FINGER_HALF_ACROSS, g.yaw, GRIPPER_FINGER_RGB);
  const zTop = g.z + FINGER_HEIGHT;
  tris.bodyStart = tris.count;
  tris.box(g.x, g.y, zTop, zTop + RAIL_HEIGHT, off + FINGER_HALF_ALONG, RAIL_HALF_ACROSS, g.yaw, GRIPPER_BODY_RGB);
  tris.box(g.x, g.y, zTop + RAIL_HEIGHT, zTop + RAIL_HEIGHT + PALM_HEIGHT, PALM_HALF_ALONG, PALM_HALF_ACROSS, g.yaw, GRIPPER_BODY_RGB);
  const zPalm = zTop + RAIL_HEIGHT + PALM_HEIGHT;
  tris.box(g.x, g.y, zPalm, zPalm + STEM_HEIGHT, STEM_HALF, STEM_HALF, g.yaw, GRIPPER_BODY_RGB);
}
