/**
 * The action spec: which dimensions a robot action has, how many timesteps a
 * chunk holds (H), how many bins each value is quantized to (0..B), how each
 * dimension is normalized, and which dimensions are binary grippers.
 *
 * Everything downstream (codec, parser, grammar, prompts) is derived from one
 * validated spec; it is saved with every checkpoint.
 */
import { z } from "zod";
import { VlaError, formatZodIssues } from "../errors.js";

export const NORMALIZATIONS = ["minmax", "quantile", "none"] as const;
export type Normalization = (typeof NORMALIZATIONS)[number];

export const ActionSpecSchema = z
  .object({
    /** One name per action dimension, e.g. ["x","y","z","roll","pitch","yaw","gripper"]. */
    names: z.array(z.string().min(1, "dimension names must be non-empty")).min(1, "at least one dimension is needed"),
    /** H: timesteps per chunk. */
    horizon: z.number().int().min(1).max(1024).default(8),
    /** B: values are quantized to the integers 0..B (B+1 levels). */
    bins: z.number().int().min(1, "bins must be at least 1 (VLA-0 uses 1000)").max(1_000_000).default(1000),
    /**
     * Per-dimension normalization to [-1, 1] before binning: one value for all
     * dimensions, or one per dimension. `minmax` uses the statistics' min/max,
     * `quantile` clamps to q01/q99, `none` means the data is already in [-1, 1].
     */
    normalization: z.union([z.enum(NORMALIZATIONS), z.array(z.enum(NORMALIZATIONS))]).default("minmax"),
    /** Binary gripper dimensions (by name): snapped to -1 or +1 on decode. */
    gripper: z
      .object({
        dims: z.array(z.string()).default([]),
        /** In normalized units: a decoded value >= threshold snaps to +1, below to -1. */
        threshold: z.number().min(-1).max(1).default(0),
      })
      .strict()
      .default({ dims: [], threshold: 0 }),
  })
  .strict()
  .superRefine((s, ctx) => {
    const names = new Set<string>();
    for (const [i, n] of s.names.entries()) {
      if (names.has(n)) ctx.addIssue({ code: "custom", path: ["names", i], message: `duplicate dimension name '${n}'` });
      names.add(n);
    }
    if (Array.isArray(s.normalization) && s.normalization.length !== s.names.length) {
      ctx.addIssue({
        code: "custom",
        path: ["normalization"],
        message: `has ${s.normalization.length} entries but there are ${s.names.length} dimensions (give one per dimension, or a single string)`,
      });
    }
    for (const [i, g] of s.gripper.dims.entries()) {
      if (!names.has(g)) ctx.addIssue({ code: "custom", path: ["gripper", "dims", i], message: `'${g}' is not one of names [${s.names.join(", ")}]` });
    }
  });

export type ActionSpecInput = z.input<typeof ActionSpecSchema>;

/** A validated spec with derived per-dimension fields. */
export interface ActionSpec {
  names: string[];
  /** D: dimensions per action. */
  dims: number;
  /** H: timesteps per chunk. */
  horizon: number;
  /** B: integer range 0..B. */
  bins: number;
  /** (D) normalization per dimension. */
  normalization: Normalization[];
  /** (D) true for gripper dimensions. */
  isGripper: boolean[];
  gripperThreshold: number;
}

/** Validate a raw spec (from JSON, a config or code); throws SPEC_INVALID naming each bad field. */
export function parseActionSpec(input: unknown, source = "action spec"): ActionSpec {
  const r = ActionSpecSchema.safeParse(input);
  if (!r.success) {
    throw new VlaError("SPEC_INVALID", `invalid ${source}:\n${formatZodIssues(r.error.issues)}`, "fix the named field(s); see datasets/*.json for examples");
  }
  const s = r.data;
  const D = s.names.length;
  const normalization = typeof s.normalization === "string" ? new Array<Normalization>(D).fill(s.normalization) : s.normalization;
  const g = new Set(s.gripper.dims);
  return {
    names: s.names,
    dims: D,
    horizon: s.horizon,
    bins: s.bins,
    normalization,
    isGripper: s.names.map((n) => g.has(n)),
    gripperThreshold: s.gripper.threshold,
  };
}

/** Serialize back to the input form (what checkpoints store). */
export function actionSpecToJSON(spec: ActionSpec): ActionSpecInput {
  return {
    names: spec.names,
    horizon: spec.horizon,
    bins: spec.bins,
    normalization: spec.normalization,
    gripper: { dims: spec.names.filter((_, i) => spec.isGripper[i]), threshold: spec.gripperThreshold },
  };
}

/** VLA-0's LIBERO setting: 7-DoF end-effector deltas, 8 timesteps, 1000 bins, binary gripper. */
export const VLA0_SPEC: ActionSpecInput = {
  names: ["x", "y", "z", "roll", "pitch", "yaw", "gripper"],
  horizon: 8,
  bins: 1000,
  normalization: "minmax",
  gripper: { dims: ["gripper"], threshold: 0 },
};
