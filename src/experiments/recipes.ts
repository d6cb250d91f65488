/**
 * The fine-tuning recipes the demo and the policy benchmark share, as partial fine-tuning
 * configs (src/train/config.ts fills the rest), and the demonstrator they train on.
 */
import fs from "node:fs";
import path from "node:path";
import type { RgbImage } from "../data/episode.js";
import { loadRecipe } from "../data/recipe.js";
import { writeFileAtomic } from "../io/atomic.js";
import { createTinyDefaultModel } from "../models/tiny-default.js";
import { DEFAULT_CAMERAS, type CameraName } from "../sim/camera.js";
import { TabletopEnv } from "../sim/env.js";
import { recordEpisode } from "../sim/generate.js";
import type { SceneOptions } from "../sim/scene.js";
import type { TaskFamilyName } from "../sim/tasks.js";
import type { FinetuneConfigInput } from "../train/config.js";

/** Camera size of the toy world's demonstrations (both cameras tiled: 112x56). */
export const DEMO_IMAGE_SIZE = 56;

/**
 * The demonstrator: labels without noise and without pauses (a pause shows the policy the same
 * frame with a "stand still" label, and a policy that copies it stalls for good), the world
 * moved by a perturbed copy of each action (DART), so the data holds states off the expert's
 * path labelled with the way back.
 */
export const DEMO_EXPERT = { noise: 0, executionNoise: 0.006, pauseProb: 0 };

/** The parts of a fine-tuning config a recipe sets (model, output, data, steps, seed come from the run). */
export type RecipeConfig = Omit<FinetuneConfigInput, "model" | "output" | "data">;

/**
 * The demo's recipe: one number per dimension and step, 0..4 (one digit; 2 is the middle:
 * standing still), horizon 1, full fine-tuning of the language model. Five levels per axis,
 * at 4000 steps from random weights: 30/100 closed-loop successes, against 19/100 with nine
 * and 20/100 with three.
 */
export const DEMO_RECIPE: RecipeConfig = {
  template: "terse",
  action: { bins: 4, horizon: 1, normalization: "quantile" },
  maskActions: { enabled: false },
  lora: { enabled: false },
  optimizer: { lr: 3e-3, weightDecay: 0, maxGradNorm: 1 },
  schedule: { type: "cosine", warmupSteps: 20 },
  batchSize: 8,
};

/**
 * VLA-0's recipe at toy scale: 1000 bins, 8-step chunks of 7 DoF, masked-action augmentation,
 * both cameras tiled, constrained decoding, temporal ensembling (vla0-v1, set on the policy).
 * The terse prompt (same answer grammar as VLA-0's, fewer prompt tokens) keeps it affordable.
 */
export const VLA0_RECIPE: RecipeConfig = {
  ...DEMO_RECIPE,
  action: { bins: 1000, horizon: 8, normalization: "minmax" },
  maskActions: { enabled: true, maxFraction: 0.4, unmaskedProbability: 0.1 },
};

/** The shipped dataset recipes (datasets/) for the toy world's episodes, by the cameras they tile (in tiling order). */
const TOY_SIM_RECIPES: Record<string, string> = { "top,front": "toy-sim", "top,wrist": "toy-sim-top-wrist", top: "toy-sim-top" };

/**
 * The dataset recipe for toy-world episodes seen through these cameras (in tiling order): the
 * shipped one's name where one tiles exactly them, else `<dir>/recipe.json` (written by
 * writeToySimRecipe: toy-sim with its cameras replaced). Pure: nothing is written.
 */
export function toySimRecipeRef(cameras: readonly CameraName[], dir: string): string {
  return TOY_SIM_RECIPES[cameras.join(",")] ?? path.join(dir, "recipe.json");
}

/** Writes `<dir>/recipe.json` when toySimRecipeRef names it (no shipped recipe has these cameras); returns the ref. */
export function writeToySimRecipe(cameras: readonly CameraName[], dir: string): string {
  const ref = toySimRecipeRef(cameras, dir);
  if (ref !== path.join(dir, "recipe.json")) return ref;
  const recipe = {
    ...loadRecipe("toy-sim"),
    name: `toy-sim-${cameras.join("-")}`,
    description: `The vlatext toy simulator's episodes, as the shipped toy-sim recipe, with the cameras ${cameras.join(" | ")} tiled in that order.`,
    cameras: Object.fromEntries(cameras.map((c) => [`observation.images.${c}`, c])),
  };
  fs.mkdirSync(dir, { recursive: true });
  writeFileAtomic(ref, `${JSON.stringify(recipe, null, 2)}\n`);
  return ref;
}

/** Expert episodes whose frames calibrate the from-scratch model's sensor (every third frame). */
export const CALIBRATION_EPISODES = 30;

/** Camera frames for the sensor's calibration: expert episodes of the world, on seeds of their own. */
export function calibrationImages(world: { tasks: readonly TaskFamilyName[]; scene?: SceneOptions | undefined }, seed: number): RgbImage[] {
  const env = new TabletopEnv({ size: DEMO_IMAGE_SIZE, tasks: [...world.tasks], ...(world.scene ? { scene: world.scene } : {}) });
  const out: RgbImage[] = [];
  for (let e = 0; e < CALIBRATION_EPISODES; e++) {
    const ep = recordEpisode(env, 1_000_000 + seed * 1000 + e, world.tasks[e % world.tasks.length] as TaskFamilyName);
    for (let t = 0; t < ep.length; t += 3) for (const cam of DEFAULT_CAMERAS) out.push((ep.images[cam] as RgbImage[])[t] as RgbImage);
  }
  return out;
}

/**
 * The from-scratch comparison: the tiny default model from random weights with the moments
 * sensor (patch 28: one token per 56x56 camera), calibrated on the world's frames. Weights at
 * 1/sqrt(width): Qwen2's 0.02 is that for a width of ~2500; at width 64 it starves the attention
 * of signal and the run can sit on the average action for thousands of steps.
 */
export function createScratchModel(dir: string, o: { seed: number; world: { tasks: readonly TaskFamilyName[]; scene?: SceneOptions | undefined }; hidden?: number; layers?: number; patchSize?: number }): string {
  const hidden = o.hidden ?? 64;
  return createTinyDefaultModel(dir, { seed: o.seed, hiddenSize: hidden, layers: o.layers ?? 2, patchSize: o.patchSize ?? 28, sensor: "moments", calibration: calibrationImages(o.world, o.seed), initStd: 1 / Math.sqrt(hidden) });
}
