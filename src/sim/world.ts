/**
 * The tabletop world: a gripper, 2-4 cubes and 1-2 flat target zones, with
 * kinematic rules instead of dynamics (sizes in geometry.ts):
 *
 * - Motion: each step moves the gripper by the clamped delta, integrated in
 *   sub-steps of at most SUBSTEP; the fingertips stay inside the workspace.
 * - Support: the fingers (and a held block) cannot sink into a block or the
 *   table that was below them: they stop on its top.
 * - Pushes: a finger (or a held block) that moves into a block it overlaps
 *   in height shoves it out along the shorter axis of overlap; a shoved block
 *   shoves the blocks it then overlaps, and carries the blocks stacked on it.
 *   Blocks never leave the table.
 * - Grasp: closing grasps the block whose centre lies between the fingers
 *   (window in geometry.ts) and squares it up between them; a held block
 *   (and anything stacked on it) moves with the gripper.
 * - Release: opening drops the held block straight down onto the highest
 *   block its footprint overlaps, or onto the table. Blocks never topple.
 *
 * Blocks are axis-aligned; gripper yaw turns the fingers but a grasp ignores
 * it. Everything is deterministic: the same state and actions give the same
 * result on every platform.
 */
import { z } from "zod";
import { VlaError, formatZodIssues } from "../errors.js";
import type { SimAction } from "./action.js";
import { YAW_LIMIT } from "./action.js";
import { COLOR_NAMES, type ColorName } from "./colors.js";
import {
  BLOCK_HALF,
  BLOCK_SIZE,
  CONTACT_EPS,
  FINGER_CLOSED,
  FINGER_HEIGHT,
  FINGER_HOLDING,
  FINGER_OPEN,
  GRASP_BELOW,
  GRASP_MIN_COVER,
  GRASP_TOL_ACROSS,
  GRASP_TOL_ALONG,
  SUBSTEP,
  TABLE_HALF,
  WORKSPACE_HALF,
  YAW_SUBSTEP,
  Z_MAX,
  blockRect,
  clamp,
  fingerRect,
  overlaps,
  separation,
  type Rect,
} from "./geometry.js";

export interface Block {
  color: ColorName;
  x: number;
  y: number;
  /** Height of the block's bottom face. */
  z: number;
}

export interface Zone {
  color: ColorName;
  x: number;
  y: number;
}

export interface GripperState {
  /** Fingertip point (metres). */
  x: number;
  y: number;
  z: number;
  /** Turn of the finger axis about z (radians; 0 = fingers along x). */
  yaw: number;
  closed: boolean;
  /** Index of the held block, or -1. */
  held: number;
}

export interface WorldState {
  gripper: GripperState;
  blocks: Block[];
  zones: Zone[];
}

const Num = z.number().finite();
const Color = z.enum(COLOR_NAMES as [ColorName, ...ColorName[]]);
const WorldStateSchema = z
  .object({
    gripper: z.object({ x: Num, y: Num, z: Num, yaw: Num, closed: z.boolean(), held: z.number().int().min(-1) }).strict(),
    blocks: z.array(z.object({ color: Color, x: Num, y: Num, z: Num.min(0) }).strict()).min(1).max(COLOR_NAMES.length),
    zones: z.array(z.object({ color: Color, x: Num, y: Num }).strict()).max(COLOR_NAMES.length),
  })
  .strict()
  .superRefine((s, ctx) => {
    if (s.gripper.held >= s.blocks.length) ctx.addIssue({ code: "custom", path: ["gripper", "held"], message: `is ${s.gripper.held} but there are ${s.blocks.length} blocks` });
    if (s.gripper.held >= 0 && !s.gripper.closed) ctx.addIssue({ code: "custom", path: ["gripper", "held"], message: "an open gripper cannot hold a block" });
    const names = [...s.blocks.map((b) => b.color), ...s.zones.map((zn) => zn.color)];
    if (new Set(names).size !== names.length) ctx.addIssue({ code: "custom", path: ["blocks"], message: `block and zone colours must all differ, got [${names.join(", ")}]` });
  });

export class World {
  readonly gripper: GripperState;
  readonly blocks: Block[];
  readonly zones: Zone[];
  /** Held block position minus fingertip position, fixed at grasp time. */
  private heldOffset = { x: 0, y: 0, z: 0 };

  /** Build a world from a state (validated; the state is copied). */
  constructor(state: WorldState) {
    const r = WorldStateSchema.safeParse(state);
    if (!r.success) throw new VlaError("SIM_INVALID", `invalid world state:\n${formatZodIssues(r.error.issues)}`, "fix the named field(s)");
    this.gripper = { ...r.data.gripper };
    this.blocks = r.data.blocks.map((b) => ({ ...b }));
    this.zones = r.data.zones.map((zn) => ({ ...zn }));
    const h = this.blocks[this.gripper.held];
    if (h) this.heldOffset = { x: h.x - this.gripper.x, y: h.y - this.gripper.y, z: h.z - this.gripper.z };
  }

  /** A deep copy of the current state. */
  snapshot(): WorldState {
    return { gripper: { ...this.gripper }, blocks: this.blocks.map((b) => ({ ...b })), zones: this.zones.map((zn) => ({ ...zn })) };
  }

  /** Proprioceptive state (S = 5): fingertip x, y, z, yaw, and 1 when open / 0 when closed. */
  state(): Float32Array {
    const g = this.gripper;
    return Float32Array.of(g.x, g.y, g.z, g.yaw, g.closed ? 0 : 1);
  }

  blockTop(i: number): number {
    return this.block(i).z + BLOCK_SIZE;
  }

  block(i: number): Block {
    const b = this.blocks[i];
    if (!b) throw new VlaError("SIM_INVALID", `block index ${i} is out of range (the world has ${this.blocks.length} blocks)`, "use an index from world.blocks");
    return b;
  }

  /** Where block i rests: "table", the index of the block under it, or "air" (held or falling). */
  restingOn(i: number): "table" | "air" | number {
    const b = this.block(i);
    if (this.gripper.held === i) return "air";
    if (b.z < CONTACT_EPS) return "table";
    const r = blockRect(b.x, b.y);
    for (const [k, o] of this.blocks.entries()) {
      if (k !== i && Math.abs(o.z + BLOCK_SIZE - b.z) < CONTACT_EPS && overlaps(blockRect(o.x, o.y), r)) return k;
    }
    return "air";
  }

  /** Distance of each finger's centre from the gripper axis (open, closed, or closed on a block). */
  fingerOffset(): number {
    const g = this.gripper;
    return !g.closed ? FINGER_OPEN : g.held >= 0 ? FINGER_HOLDING : FINGER_CLOSED;
  }

  /** Centres of the two fingers at fingertip (x, y). */
  fingerCenters(x = this.gripper.x, y = this.gripper.y): [[number, number], [number, number]] {
    const off = this.fingerOffset();
    const c = Math.cos(this.gripper.yaw) * off;
    const s = Math.sin(this.gripper.yaw) * off;
    return [
      [x - c, y - s],
      [x + c, y + s],
    ];
  }

  /** Apply one validated action: move (in sub-steps), then open or close. */
  step(a: SimAction): void {
    const n = Math.max(1, Math.ceil(Math.max(Math.abs(a.dx), Math.abs(a.dy), Math.abs(a.dz)) / SUBSTEP), Math.ceil(Math.abs(a.dyaw) / YAW_SUBSTEP));
    for (let k = 0; k < n; k++) this.substep(a.dx / n, a.dy / n, a.dz / n, a.dyaw / n);
    if (a.close && !this.gripper.closed) this.close();
    else if (!a.close && this.gripper.closed) this.open();
  }

  private substep(dx: number, dy: number, dz: number, dyaw: number): void {
    const g = this.gripper;
    g.yaw = clamp(g.yaw + dyaw, -YAW_LIMIT, YAW_LIMIT);
    const attached = this.attached();
    const nx = clamp(g.x + dx, -WORKSPACE_HALF, WORKSPACE_HALF);
    const ny = clamp(g.y + dy, -WORKSPACE_HALF, WORKSPACE_HALF);
    const nz = Math.max(clamp(g.z + dz, 0, Z_MAX), this.floorAt(nx, ny, attached));
    if (g.held >= 0) this.moveStack(g.held, nx - g.x, ny - g.y, nz - g.z);
    g.x = nx;
    g.y = ny;
    g.z = nz;
    this.resolvePushes(attached);
    this.settle(attached);
  }

  /** Indices of the held block and everything stacked on it (they move with the gripper). */
  private attached(): Set<number> {
    const g = this.gripper;
    return g.held >= 0 ? new Set([g.held, ...this.ridersOf(g.held)]) : new Set();
  }

  /** Blocks resting on block i, directly or through other blocks. */
  private ridersOf(i: number, out: number[] = []): number[] {
    const b = this.block(i);
    const r = blockRect(b.x, b.y);
    for (const [k, o] of this.blocks.entries()) {
      if (k === i || out.includes(k)) continue;
      if (Math.abs(o.z - (b.z + BLOCK_SIZE)) < CONTACT_EPS && overlaps(blockRect(o.x, o.y), r)) {
        out.push(k);
        this.ridersOf(k, out);
      }
    }
    return out;
  }

  /** Move block i and the blocks stacked on it. */
  private moveStack(i: number, dx: number, dy: number, dz: number): void {
    for (const k of [i, ...this.ridersOf(i)]) {
      const b = this.blocks[k] as Block;
      b.x += dx;
      b.y += dy;
      b.z += dz;
    }
  }

  /**
   * The lowest fingertip height allowed at (nx, ny): the fingers stop on the
   * table or on a block that was below them, and so does a held block.
   */
  private floorAt(nx: number, ny: number, attached: Set<number>): number {
    const g = this.gripper;
    let floor = 0;
    const below = (rect: Rect, bottom: number, lift: number) => {
      for (const [k, b] of this.blocks.entries()) {
        const top = b.z + BLOCK_SIZE;
        if (!attached.has(k) && top <= bottom + CONTACT_EPS && overlaps(rect, blockRect(b.x, b.y))) floor = Math.max(floor, top + lift);
      }
    };
    for (const [fx, fy] of this.fingerCenters(nx, ny)) below(fingerRect(fx, fy, g.yaw), g.z, 0);
    const h = this.blocks[g.held];
    if (h) {
      const off = this.heldOffset;
      floor = Math.max(floor, -off.z);
      below(blockRect(nx + off.x, ny + off.y), h.z, -off.z);
    }
    return floor;
  }

  /** Fingers and the held block shove the free blocks they overlap (in plan and in height). */
  private resolvePushes(attached: Set<number>): void {
    const g = this.gripper;
    const pushers: Array<{ rect: Rect; bottom: number; top: number }> = this.fingerCenters().map(([fx, fy]) => ({ rect: fingerRect(fx, fy, g.yaw), bottom: g.z, top: g.z + FINGER_HEIGHT }));
    const h = this.blocks[g.held];
    if (h) pushers.push({ rect: blockRect(h.x, h.y), bottom: h.z, top: h.z + BLOCK_SIZE });
    for (const p of pushers) {
      for (const [k, b] of this.blocks.entries()) {
        if (attached.has(k) || b.z >= p.top - CONTACT_EPS || b.z + BLOCK_SIZE <= p.bottom + CONTACT_EPS) continue;
        const sep = separation(p.rect, blockRect(b.x, b.y));
        if (sep) this.shove(k, sep.dx, sep.dy, attached, 0);
      }
    }
  }

  /** Shove block i (with its stack), keep it on the table, and pass the shove on to blocks it now overlaps. */
  private shove(i: number, dx: number, dy: number, attached: Set<number>, depth: number): void {
    const b = this.block(i);
    const lim = TABLE_HALF - BLOCK_HALF;
    this.moveStack(i, clamp(b.x + dx, -lim, lim) - b.x, clamp(b.y + dy, -lim, lim) - b.y, 0);
    if (depth >= this.blocks.length) return;
    const riders = this.ridersOf(i);
    for (const [k, o] of this.blocks.entries()) {
      if (k === i || attached.has(k) || riders.includes(k)) continue;
      if (o.z >= b.z + BLOCK_SIZE - CONTACT_EPS || o.z + BLOCK_SIZE <= b.z + CONTACT_EPS) continue;
      const sep = separation(blockRect(b.x, b.y), blockRect(o.x, o.y));
      if (sep) this.shove(k, sep.dx, sep.dy, attached, depth + 1);
    }
  }

  /** Free blocks fall (with their stacks) onto the highest support under their footprint. */
  private settle(attached: Set<number>): void {
    const order = this.blocks.map((_, k) => k).filter((k) => !attached.has(k));
    order.sort((a, b) => (this.blocks[a] as Block).z - (this.blocks[b] as Block).z);
    for (const i of order) {
      const b = this.blocks[i] as Block;
      const r = blockRect(b.x, b.y);
      let support = 0;
      for (const [k, o] of this.blocks.entries()) {
        const top = o.z + BLOCK_SIZE;
        if (k !== i && top <= b.z + CONTACT_EPS && overlaps(blockRect(o.x, o.y), r)) support = Math.max(support, top);
      }
      if (b.z > support) this.moveStack(i, 0, 0, support - b.z);
    }
  }

  private close(): void {
    const g = this.gripper;
    g.closed = true;
    const c = Math.cos(g.yaw);
    const s = Math.sin(g.yaw);
    let best = -1;
    let bestU = 0;
    let bestScore = Infinity;
    for (const [k, b] of this.blocks.entries()) {
      const rx = b.x - g.x;
      const ry = b.y - g.y;
      const u = rx * c + ry * s;
      const v = -rx * s + ry * c;
      const covered = g.z <= b.z + BLOCK_SIZE - GRASP_MIN_COVER && g.z >= b.z - GRASP_BELOW;
      if (covered && Math.abs(u) < GRASP_TOL_ALONG && Math.abs(v) < GRASP_TOL_ACROSS && Math.abs(u) + Math.abs(v) < bestScore) {
        best = k;
        bestU = u;
        bestScore = Math.abs(u) + Math.abs(v);
      }
    }
    if (best < 0) return;
    this.moveStack(best, -bestU * c, -bestU * s, 0); // the closing fingers centre the block between them
    g.held = best;
    const b = this.blocks[best] as Block;
    this.heldOffset = { x: b.x - g.x, y: b.y - g.y, z: b.z - g.z };
  }

  private open(): void {
    const g = this.gripper;
    g.closed = false;
    g.held = -1;
    this.settle(new Set());
  }
}
