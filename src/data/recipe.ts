/**
 * A dataset recipe (datasets/*.json): how to turn a LeRobot dataset into VLA
 * training samples: which feature is the action (optionally a slice of its
 * dimensions), which is the state, which camera features to show (feature key
 * -> camera name, in tiling order), the action spec (validated by
 * src/actions/spec.ts), and the train/val episode split.
 */
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { z } from "zod";
import { VlaError, formatZodIssues } from "../errors.js";
import { readJsonFile } from "../io/json-file.js";
import type { LeRobotDataset } from "./lerobot/dataset.js";
import { featureKind, featureSize } from "./lerobot/format.js";
import { Rng } from "./rng.js";

const Index = z.number().int().min(0);
const Slice = z.tuple([Index, Index]).refine(([a, b]) => a < b, "slice [start, end) needs start < end");

const VectorRef = z
  .object({
    /** Feature name in meta/info.json, e.g. "action". */
    feature: z.string().min(1),
    /** Use dimensions [start, end) only. */
    slice: Slice.optional(),
  })
  .strict();

const ExplicitSplit = z.object({ train: z.array(Index).min(1, "train needs at least one episode"), val: z.array(Index) }).strict();
const FractionSplit = z.object({ valFraction: z.number().min(0).max(1), seed: z.number().int().default(0) }).strict();

export const RecipeSchema = z
  .object({
    name: z.string().min(1),
    description: z.string().optional(),
    action: VectorRef,
    state: VectorRef.nullable().default(null),
    /** Camera feature key -> short camera name; images are tiled in this order. */
    cameras: z.record(z.string().min(1), z.string().min(1)).refine((c) => Object.keys(c).length > 0, "at least one camera is needed"),
    /** Override every episode's task text (default: the dataset's own tasks). */
    instruction: z.string().min(1).optional(),
    /** The action spec object; src/actions/spec.ts validates it fully. */
    actionSpec: z.record(z.string(), z.unknown()),
    splits: z.union([ExplicitSplit, FractionSplit]).default({ valFraction: 0, seed: 0 }),
  })
  .strict()
  .superRefine((r, ctx) => {
    const names = Object.values(r.cameras);
    if (new Set(names).size !== names.length) ctx.addIssue({ code: "custom", path: ["cameras"], message: `camera names must be unique, got [${names.join(", ")}]` });
    if ("train" in r.splits) {
      const val = new Set(r.splits.val);
      for (const [i, e] of r.splits.train.entries()) {
        if (val.has(e)) ctx.addIssue({ code: "custom", path: ["splits", "train", i], message: `episode ${e} is in both train and val` });
      }
    }
    const specNames = r.actionSpec.names;
    if (Array.isArray(specNames) && r.action.slice) {
      const [a, b] = r.action.slice;
      if (specNames.length !== b - a) ctx.addIssue({ code: "custom", path: ["actionSpec", "names"], message: `has ${specNames.length} names but action.slice [${a}, ${b}) selects ${b - a} dimensions` });
    }
  });

export type Recipe = z.infer<typeof RecipeSchema>;

export function parseRecipe(input: unknown, source = "recipe"): Recipe {
  const r = RecipeSchema.safeParse(input);
  if (!r.success) throw new VlaError("CONFIG_INVALID", `invalid ${source}:\n${formatZodIssues(r.error.issues)}`, "fix the named field(s); see datasets/*.json for examples");
  return r.data;
}

/** The folder of shipped recipes (datasets/ at the package root). */
export function recipesDir(): string {
  return path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..", "datasets");
}

/** Load a recipe from a JSON file, or by name from the shipped datasets/ folder. */
export function loadRecipe(fileOrName: string): Recipe {
  const shipped = path.join(recipesDir(), `${fileOrName}.json`);
  const file = fs.existsSync(fileOrName) ? fileOrName : fs.existsSync(shipped) ? shipped : undefined;
  if (!file) {
    const known = fs.existsSync(recipesDir()) ? fs.readdirSync(recipesDir()).filter((f) => f.endsWith(".json")).map((f) => f.slice(0, -5)) : [];
    throw new VlaError("FILE_NOT_FOUND", `recipe not found: ${fileOrName}`, `pass a recipe JSON file or a shipped name (${known.join(", ") || "none"})`);
  }
  const json = readJsonFile(file, z.unknown(), { what: "recipe", code: "CONFIG_INVALID", hint: "a recipe is a JSON object (see datasets/*.json); fix the file or pass a shipped name" });
  return parseRecipe(json, `recipe ${file}`);
}

export interface BoundVector {
  key: string;
  /** Dimensions [start, end) of the stored feature. */
  start: number;
  end: number;
  /** Stored feature size. */
  size: number;
  names: string[];
}

export interface BoundCamera {
  key: string;
  name: string;
  kind: "video" | "image";
  /** Stored size. */
  width: number;
  height: number;
}

/** A recipe checked against one dataset. */
export interface BoundRecipe {
  recipe: Recipe;
  action: BoundVector;
  state: BoundVector | undefined;
  cameras: BoundCamera[];
}

function bindVector(ds: LeRobotDataset, ref: { feature: string; slice?: [number, number] | undefined }, what: string): BoundVector {
  const f = ds.feature(ref.feature);
  if (featureKind(f) !== "numeric") throw new VlaError("CONFIG_INVALID", `recipe ${what} feature '${ref.feature}' is ${f.dtype}, not numeric`, "pick a vector feature such as 'action' or 'observation.state'");
  const size = featureSize(f);
  const [start, end] = ref.slice ?? [0, size];
  if (end > size) throw new VlaError("CONFIG_INVALID", `recipe ${what}.slice [${start}, ${end}) exceeds '${ref.feature}' which has ${size} dimensions`, `use a slice within [0, ${size})`);
  return { key: ref.feature, start, end, size, names: ds.names(ref.feature).slice(start, end) };
}

/** Check the recipe's features against the dataset; errors name the recipe field and the dataset. */
export function bindRecipe(recipe: Recipe, ds: LeRobotDataset): BoundRecipe {
  const action = bindVector(ds, recipe.action, "action");
  const specNames = recipe.actionSpec.names;
  if (Array.isArray(specNames) && specNames.length !== action.end - action.start) {
    throw new VlaError("CONFIG_INVALID", `recipe '${recipe.name}': actionSpec.names has ${specNames.length} entries but action '${action.key}' gives ${action.end - action.start} dimensions`, "list one name per action dimension, or set action.slice");
  }
  const state = recipe.state ? bindVector(ds, recipe.state, "state") : undefined;
  const cameras = Object.entries(recipe.cameras).map(([key, name]): BoundCamera => {
    const f = ds.feature(key);
    const kind = featureKind(f);
    if (kind !== "video" && kind !== "image") throw new VlaError("CONFIG_INVALID", `recipe camera '${key}' is ${f.dtype}, not a camera (cameras: ${ds.cameraKeys.join(", ")})`, "map video or image features only");
    return { key, name, kind, width: f.shape[1] ?? 0, height: f.shape[0] ?? 0 };
  });
  return { recipe, action, state, cameras };
}

/** Train/val episode indexes per the recipe's split; explicit indexes must exist in the dataset. */
export function splitEpisodes(recipe: Recipe, episodeIndexes: ReadonlyArray<number>): { train: number[]; val: number[] } {
  const have = new Set(episodeIndexes);
  const s = recipe.splits;
  if ("train" in s) {
    for (const [part, list] of [["train", s.train], ["val", s.val]] as const) {
      const missing = list.filter((e) => !have.has(e));
      if (missing.length > 0) {
        throw new VlaError("DATA_INVALID", `recipe '${recipe.name}' splits.${part} lists episode(s) ${missing.join(", ")} that the dataset lacks (it has ${[...have].sort((a, b) => a - b).join(", ")})`, "fix the split or use the matching dataset");
      }
    }
    return { train: [...s.train].sort((a, b) => a - b), val: [...s.val].sort((a, b) => a - b) };
  }
  const sorted = [...episodeIndexes].sort((a, b) => a - b);
  let nVal = Math.round(s.valFraction * sorted.length);
  if (s.valFraction > 0 && nVal === 0 && sorted.length > 1) nVal = 1;
  if (nVal >= sorted.length && sorted.length > 0) nVal = sorted.length - 1;
  const shuffled = new Rng(s.seed).shuffle([...sorted]);
  const val = shuffled.slice(0, nVal).sort((a, b) => a - b);
  const valSet = new Set(val);
  return { train: sorted.filter((e) => !valSet.has(e)), val };
}

/** Columns [start, end) of (T, size) row-major data, as (T, end-start) float32. */
export function selectDims(data: ArrayLike<number>, T: number, v: BoundVector): Float32Array {
  const D = v.end - v.start;
  const out = new Float32Array(T * D);
  for (let t = 0; t < T; t++) for (let d = 0; d < D; d++) out[t * D + d] = data[t * v.size + v.start + d] as number;
  return out;
}
