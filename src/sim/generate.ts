/**
 * Demonstrations from the scripted expert, as EpisodeData for the LeRobot
 * writers. Episode i uses family tasks[i % tasks.length] (balanced families)
 * and seed mixSeed(seed, i, attempt); an episode the expert fails is retried
 * with the next attempt seed unless failures are kept, so a dataset is a pure
 * function of its options.
 *
 * Frame t holds the observation before action t (LeRobot's convention); the
 * episode ends with the action that reached success, or settleSteps expert
 * steps after it. With the expert's executionNoise, action t is what the
 * expert asked for and the world moved by a perturbed copy of it (DART).
 */
import { z } from "zod";
import type { DatasetLayout, EpisodeData, RgbImage } from "../data/episode.js";
import { writeLeRobotV21, type WriteOptions, type WriteSummary } from "../data/lerobot/writer.js";
import { VlaError, formatZodIssues } from "../errors.js";
import { ACTION_DIMS, ACTION_NAMES } from "./action.js";
import { CameraListSchema } from "./camera.js";
import { STATE_NAMES, TabletopEnv } from "./env.js";
import { ExpertOptionsSchema, ScriptedExpert } from "./expert.js";
import { mixSeed } from "./rng.js";
import { SceneOptionsSchema } from "./scene.js";
import { TASK_FAMILIES, type TaskFamilyName } from "./tasks.js";

export const ROBOT_TYPE = "vlatext-tabletop";
/** Attempts per episode before generation gives up (the expert solves >= 98% of seeds). */
const MAX_ATTEMPTS = 20;

export const GenerateOptionsSchema = z
  .object({
    episodes: z.number().int().min(1),
    seed: z.number().int().default(0),
    tasks: z.array(z.enum(TASK_FAMILIES as [TaskFamilyName, ...TaskFamilyName[]])).min(1).default([...TASK_FAMILIES]),
    /** Square camera images, size x size. */
    size: z.number().int().min(8).max(512).default(64),
    storage: z.enum(["png", "mp4"]).default("png"),
    fps: z.number().positive().default(10),
    /** Keep episodes the expert failed (recorded with success: false) instead of retrying. */
    keepFailures: z.boolean().default(false),
    expert: ExpertOptionsSchema.prefault({}),
    /**
     * Expert steps recorded after a success (the episode still counts as a success): frames
     * at and around the goal, which a policy must learn to stay at rather than move past.
     */
    settleSteps: z.number().int().min(0).max(100).default(0),
    /** Scene options (block and zone counts); the simulator's defaults when absent. */
    scene: SceneOptionsSchema.optional(),
    /** Cameras recorded (one image feature each), in CAMERA_NAMES order whatever order they are named in. */
    cameras: CameraListSchema,
  })
  .strict();
export type GenerateOptions = z.input<typeof GenerateOptionsSchema>;
export type ResolvedGenerateOptions = z.output<typeof GenerateOptionsSchema>;

export function parseGenerateOptions(input: GenerateOptions): ResolvedGenerateOptions {
  const r = GenerateOptionsSchema.safeParse(input);
  if (!r.success) throw new VlaError("SIM_INVALID", `invalid generate options:\n${formatZodIssues(r.error.issues)}`, "fix the named field(s)");
  if (r.data.storage === "mp4" && r.data.size % 2 !== 0) throw new VlaError("SIM_INVALID", `size ${r.data.size} is odd; mp4 (yuv420p) needs even sizes`, "use an even --size, or --storage png");
  return r.data;
}

export function simLayout(opts: Pick<ResolvedGenerateOptions, "size" | "storage" | "fps" | "cameras">): DatasetLayout {
  const cam = { width: opts.size, height: opts.size };
  return {
    fps: opts.fps,
    robotType: ROBOT_TYPE,
    actionNames: [...ACTION_NAMES],
    stateNames: [...STATE_NAMES],
    cameras: Object.fromEntries(opts.cameras.map((n) => [n, { ...cam }])),
    imageStorage: opts.storage,
  };
}

/** Run the expert on one seeded episode of `family` and record every frame. */
export function recordEpisode(env: TabletopEnv, seed: number, family: TaskFamilyName, expert: ResolvedGenerateOptions["expert"] = ExpertOptionsSchema.parse({}), settleSteps = 0): EpisodeData & { success: boolean } {
  let obs = env.reset(seed, family);
  const policy = new ScriptedExpert(env.task, env.world, mixSeed(seed, 0x5eed), expert);
  const actions: number[] = [];
  const states: number[] = [];
  const images: Record<string, RgbImage[]> = Object.fromEntries(env.options.cameras.map((n) => [n, []]));
  let success = false;
  // frame t: the observation before action t, and the action the expert asked for
  const record = (a: Float32Array): void => {
    for (const v of obs.state) states.push(v);
    for (const v of a) actions.push(v);
    for (const n of env.options.cameras) (images[n] as RgbImage[]).push(obs.images[n] as RgbImage);
  };
  for (let done = false; !done; ) {
    const a = policy.act(env.world);
    record(a);
    const r = env.step(policy.execute(a));
    obs = r.obs;
    success = r.success;
    done = r.done;
  }
  for (let t = 0; success && t < settleSteps; t++) {
    const a = policy.act(env.world);
    record(a);
    obs = env.stepAfterEnd(policy.execute(a));
  }
  const length = actions.length / ACTION_DIMS;
  return { task: env.instruction, actions: Float32Array.from(actions), states: Float32Array.from(states), images, length, success };
}

export interface GeneratedEpisode {
  index: number;
  seed: number;
  family: TaskFamilyName;
  /** Expert runs this episode took (1 unless the expert failed and was retried). */
  attempts: number;
  episode: EpisodeData & { success: boolean };
}

/** One dataset episode: family by index, retried over attempt seeds until the expert succeeds. */
export function generateEpisode(env: TabletopEnv, opts: ResolvedGenerateOptions, index: number): GeneratedEpisode {
  const family = opts.tasks[index % opts.tasks.length] as TaskFamilyName;
  for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
    const seed = mixSeed(opts.seed, index, attempt);
    const episode = recordEpisode(env, seed, family, opts.expert, opts.settleSteps);
    if (episode.success || opts.keepFailures) return { index, seed, family, attempts: attempt + 1, episode };
  }
  throw new VlaError("SIM_INVALID", `the expert failed episode ${index} ('${family}') ${MAX_ATTEMPTS} times`, "lower the expert noise, or pass keepFailures to record failures");
}

/** Episodes [from, to) in order. */
export function* generateEpisodes(opts: ResolvedGenerateOptions, from = 0, to = opts.episodes): Generator<GeneratedEpisode> {
  const env = new TabletopEnv({ size: opts.size, tasks: opts.tasks, cameras: opts.cameras, ...(opts.scene ? { scene: opts.scene } : {}) });
  for (let i = from; i < to; i++) yield generateEpisode(env, opts, i);
}

export interface Progress {
  done: number;
  total: number;
  frames: number;
  seconds: number;
}

export interface GenerateSummary extends WriteSummary {
  /** Expert runs beyond one per episode (failed seeds that were retried). */
  retries: number;
  /** Episodes recorded with success: false (only with keepFailures). */
  failures: number;
  seconds: number;
}

/** Generate `opts.episodes` expert demonstrations into a LeRobot v2.1 dataset at `dir`. */
export async function generateDataset(dir: string, input: GenerateOptions, onProgress?: (p: Progress) => void, write: WriteOptions = {}): Promise<GenerateSummary> {
  const opts = parseGenerateOptions(input);
  const t0 = performance.now();
  let retries = 0;
  let failures = 0;
  let done = 0;
  let frames = 0;
  async function* episodes(): AsyncGenerator<EpisodeData> {
    for (const g of generateEpisodes(opts)) {
      // Return to the event loop between episodes: V8 frees dead ArrayBuffers' memory in tasks, so a write
      // loop that never yields (PNG storage awaits nothing) would hold every episode's frames until the end.
      await new Promise<void>((resolve) => setImmediate(resolve));
      retries += g.attempts - 1;
      if (!g.episode.success) failures++;
      done++;
      frames += g.episode.length;
      onProgress?.({ done, total: opts.episodes, frames, seconds: (performance.now() - t0) / 1000 });
      yield g.episode;
    }
  }
  const summary = await writeLeRobotV21(dir, simLayout(opts), episodes(), write);
  return { ...summary, retries, failures, seconds: (performance.now() - t0) / 1000 };
}
