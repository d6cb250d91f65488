/**
 * Seeded scene sampling: 2-4 blocks and 1-2 zones in distinct colours, placed
 * in the central square [-SPREAD, SPREAD]^2 so that blocks stand apart (the
 * open fingers fit between any two) and start outside every zone, and the
 * gripper open above the front half of the table.
 */
import { z } from "zod";
import { VlaError, formatZodIssues } from "../errors.js";
import { COLOR_NAMES } from "./colors.js";
import { BLOCK_HALF, ZONE_HALF } from "./geometry.js";
import type { SimRng } from "./rng.js";
import type { Block, WorldState, Zone } from "./world.js";

/** Blocks and zone centres are drawn from [-SPREAD, SPREAD]^2. */
export const SPREAD = 0.2;
/** Least distance (max of |dx|, |dy|) between block centres: open fingers (0.051 from the axis) fit between. */
export const BLOCK_GAP = 0.1;
/** Least distance between zone centres: zones never touch. */
export const ZONE_GAP = 2 * ZONE_HALF + 0.02;
/** Least distance between a zone and a block centre: no block starts in or on the edge of a zone. */
export const ZONE_BLOCK_GAP = ZONE_HALF + BLOCK_HALF + 0.01;

export const SceneOptionsSchema = z
  .object({
    blocks: z.tuple([z.number().int().min(1), z.number().int().min(1)]).default([2, 4]),
    zones: z.tuple([z.number().int().min(0), z.number().int().min(0)]).default([1, 2]),
  })
  .strict()
  .refine((o) => o.blocks[0] <= o.blocks[1] && o.zones[0] <= o.zones[1], "ranges are [min, max] with min <= max")
  .refine((o) => o.blocks[1] + o.zones[1] <= COLOR_NAMES.length && o.blocks[1] <= 4 && o.zones[1] <= 2, `at most 4 blocks and 2 zones (${COLOR_NAMES.length} colours)`);
export type SceneOptions = z.input<typeof SceneOptionsSchema>;

const cheb = (ax: number, ay: number, bx: number, by: number) => Math.max(Math.abs(ax - bx), Math.abs(ay - by));

function tryPlace(rng: SimRng, ok: (x: number, y: number) => boolean): [number, number] | undefined {
  for (let t = 0; t < 100; t++) {
    const x = rng.uniform(-SPREAD, SPREAD);
    const y = rng.uniform(-SPREAD, SPREAD);
    if (ok(x, y)) return [x, y];
  }
  return undefined;
}

/** One random scene; every draw comes from `rng`. */
export function sampleScene(rng: SimRng, options: SceneOptions = {}): WorldState {
  const r = SceneOptionsSchema.safeParse(options);
  if (!r.success) throw new VlaError("SIM_INVALID", `invalid scene options:\n${formatZodIssues(r.error.issues)}`, "pass blocks: [min, max] and zones: [min, max]");
  const opts = r.data;
  for (;;) {
    const nb = rng.intIn(opts.blocks[0], opts.blocks[1]);
    const nz = rng.intIn(opts.zones[0], opts.zones[1]);
    const colors = rng.shuffle([...COLOR_NAMES]);
    const blocks: Block[] = [];
    const zones: Zone[] = [];
    let failed = false;
    for (let i = 0; i < nb && !failed; i++) {
      const p = tryPlace(rng, (x, y) => blocks.every((b) => cheb(x, y, b.x, b.y) >= BLOCK_GAP));
      if (p) blocks.push({ color: colors[i] as Block["color"], x: p[0], y: p[1], z: 0 });
      else failed = true;
    }
    for (let i = 0; i < nz && !failed; i++) {
      const p = tryPlace(rng, (x, y) => zones.every((zn) => cheb(x, y, zn.x, zn.y) >= ZONE_GAP) && blocks.every((b) => cheb(x, y, b.x, b.y) >= ZONE_BLOCK_GAP));
      if (p) zones.push({ color: colors[nb + i] as Zone["color"], x: p[0], y: p[1] });
      else failed = true;
    }
    if (failed) continue;
    const gripper = { x: rng.uniform(-0.05, 0.05), y: rng.uniform(-0.12, -0.04), z: rng.uniform(0.16, 0.22), yaw: 0, closed: false, held: -1 };
    return { gripper, blocks, zones };
  }
}
