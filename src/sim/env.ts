/**
 * The rollout API: reset a seeded scene with a task, then step it with raw
 * 7-DoF actions until success or the family's step limit.
 *
 *   const env = new TabletopEnv({ size: 64 });
 *   let obs = env.reset(seed, "pick");
 *   for (;;) { const r = env.step(policy(obs)); obs = r.obs; if (r.done) break; }
 *
 * The same seed (and family) gives the same scene, task and instruction.
 */
import { z } from "zod";
import type { RgbImage } from "../data/episode.js";
import { VlaError, formatZodIssues } from "../errors.js";
import { parseAction } from "./action.js";
import { CameraNameSchema, DEFAULT_CAMERAS, type CameraName } from "./camera.js";
import { Renderer } from "./render.js";
import { SimRng, mixSeed } from "./rng.js";
import { SceneOptionsSchema, sampleScene } from "./scene.js";
import { TASKS, TASK_FAMILIES, taskInstruction, taskSuccess, type TaskFamilyName, type TaskSpec } from "./tasks.js";
import { World } from "./world.js";

/** Proprioceptive state names (S = 5), in World.state() order. */
export const STATE_NAMES = ["x", "y", "z", "yaw", "gripper_open"] as const;

const Family = z.enum(TASK_FAMILIES as [TaskFamilyName, ...TaskFamilyName[]]);
const Size = z.number().int().min(8).max(2048);

export const EnvOptionsSchema = z
  .object({
    /** Square image size, or give width and height. */
    size: Size.default(64),
    width: Size.optional(),
    height: Size.optional(),
    /** Cameras to render (default top and front); [] renders nothing (fast evaluation of scripted policies). */
    cameras: z.array(CameraNameSchema).default([...DEFAULT_CAMERAS]),
    /** Families reset() draws from when it is given none. */
    tasks: z.array(Family).min(1).default([...TASK_FAMILIES]),
    /** Override the per-family step limits. */
    maxSteps: z.partialRecord(Family, z.number().int().min(1)).default({}),
    scene: SceneOptionsSchema.optional(),
  })
  .strict();
export type EnvOptions = z.input<typeof EnvOptionsSchema>;

export interface Observation {
  images: Partial<Record<CameraName, RgbImage>>;
  /** (S = 5) fingertip x, y, z, yaw, gripper open (1) / closed (0). */
  state: Float32Array;
  instruction: string;
  task: TaskSpec;
}

export interface StepResult {
  obs: Observation;
  success: boolean;
  /** success, or the step limit reached. */
  done: boolean;
  /** Steps taken since reset. */
  steps: number;
}

/** How many scenes reset() tries before giving up on a family that does not fit the scene options. */
const MAX_SCENE_TRIES = 200;

export class TabletopEnv {
  readonly options: z.output<typeof EnvOptionsSchema>;
  private readonly renderer: Renderer;
  private current: { world: World; task: TaskSpec; instruction: string; steps: number; done: boolean } | undefined;

  constructor(options: EnvOptions = {}) {
    const r = EnvOptionsSchema.safeParse(options);
    if (!r.success) throw new VlaError("SIM_INVALID", `invalid environment options:\n${formatZodIssues(r.error.issues)}`, "fix the named field(s)");
    this.options = r.data;
    this.renderer = new Renderer(r.data.width ?? r.data.size, r.data.height ?? r.data.size);
  }

  /** New episode: scene, task and instruction all follow from `seed` (and `family`). */
  reset(seed: number, family?: TaskFamilyName): Observation {
    if (!Number.isInteger(seed)) throw new VlaError("SIM_INVALID", `seed is ${seed}`, "pass an integer seed");
    // the family has its own stream, so reset(s) and reset(s, the family it drew) give the same episode
    const fam = family ?? new SimRng(mixSeed(seed, 1)).pick(this.options.tasks);
    const rng = new SimRng(mixSeed(seed));
    if (!TASKS[fam]) throw new VlaError("SIM_INVALID", `unknown task family '${String(fam)}'`, `use one of: ${TASK_FAMILIES.join(", ")}`);
    for (let t = 0; t < MAX_SCENE_TRIES; t++) {
      const world = new World(sampleScene(rng, this.options.scene));
      const task = TASKS[fam].sample(world, rng);
      if (!task) continue;
      this.current = { world, task, instruction: taskInstruction(world, task, rng), steps: 0, done: false };
      return this.observe();
    }
    throw new VlaError("SIM_INVALID", `no scene in ${MAX_SCENE_TRIES} tries can host a '${fam}' task`, "allow more blocks or zones in the scene options");
  }

  /** Apply one raw 7-DoF action (validated and clamped; see action.ts). */
  step(action: ArrayLike<number>): StepResult {
    const cur = this.episode();
    if (cur.done) throw new VlaError("SIM_INVALID", `step() after the episode ended (${cur.steps} steps)`, "call reset() to start a new episode");
    cur.world.step(parseAction(action));
    cur.steps++;
    const success = taskSuccess(cur.world, cur.task);
    cur.done = success || cur.steps >= this.maxSteps(cur.task.family);
    return { obs: this.observe(), success, done: cur.done, steps: cur.steps };
  }

  /**
   * Move the world on by one action after the episode has ended (a recording's settle
   * frames): no success check, no step count; the observation after it.
   */
  stepAfterEnd(action: ArrayLike<number>): Observation {
    const cur = this.episode();
    if (!cur.done) throw new VlaError("SIM_INVALID", "stepAfterEnd() before the episode ended", "use step() while the episode runs");
    cur.world.step(parseAction(action));
    return this.observe();
  }

  /** The live world (read it, do not edit it): scripted experts and tests look inside. */
  get world(): World {
    return this.episode().world;
  }

  get task(): TaskSpec {
    return this.episode().task;
  }

  get instruction(): string {
    return this.episode().instruction;
  }

  maxSteps(family: TaskFamilyName): number {
    return this.options.maxSteps[family] ?? TASKS[family].maxSteps;
  }

  /** The current observation, rendered now. */
  observe(): Observation {
    const cur = this.episode();
    return {
      images: this.renderer.renderAll(cur.world, this.options.cameras),
      state: cur.world.state(),
      instruction: cur.instruction,
      task: cur.task,
    };
  }

  private episode() {
    if (!this.current) throw new VlaError("SIM_INVALID", "the environment has no episode yet", "call reset(seed) first");
    return this.current;
  }
}
