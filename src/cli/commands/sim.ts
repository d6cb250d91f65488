/**
 * `vlatext sim`: the toy tabletop simulator. `generate` writes scripted-expert
 * demonstrations as a LeRobot v2.1 dataset; `render` draws one seeded scene
 * (optionally some expert steps in) to a PNG, cameras side by side.
 */
import fs from "node:fs";
import path from "node:path";
import type { RgbImage } from "../../data/episode.js";
import { encodePng, resizeBilinear, tileHorizontal } from "../../data/image.js";
import { VlaError } from "../../errors.js";
import { CAMERA_NAMES, DEFAULT_CAMERAS } from "../../sim/camera.js";
import { TabletopEnv } from "../../sim/env.js";
import { ScriptedExpert } from "../../sim/expert.js";
import { generateDataset, type GenerateOptions, type Progress as GenerationProgress, type ResolvedGenerateOptions } from "../../sim/generate.js";
import { mixSeed } from "../../sim/rng.js";
import { TASKS, TASK_FAMILIES, type TaskFamilyName } from "../../sim/tasks.js";
import { camerasOpt, flag, intOpt, str, type CliCommand, type CliIO, type ParsedArgs } from "../command.js";
import { progressReporter } from "../progress.js";

function parseFamily(name: string, flagName: string): TaskFamilyName {
  if (!(name in TASKS)) throw new VlaError("CLI_USAGE", `--${flagName}: unknown task family '${name}'`, `use one of: ${TASK_FAMILIES.join(", ")}`);
  return name as TaskFamilyName;
}

function parseTasks(args: ParsedArgs): TaskFamilyName[] {
  const v = str(args, "tasks");
  if (v === undefined) return [...TASK_FAMILIES];
  const names = v.split(",").map((s) => s.trim()).filter((s) => s.length > 0);
  if (names.length === 0) throw new VlaError("CLI_USAGE", "--tasks is empty", `e.g. --tasks ${TASK_FAMILIES.join(",")}`);
  return names.map((n) => parseFamily(n, "tasks"));
}

function parseStorage(args: ParsedArgs): "png" | "mp4" {
  const v = str(args, "storage") ?? "png";
  if (v !== "png" && v !== "mp4") throw new VlaError("CLI_USAGE", `--storage must be png or mp4, got '${v}'`, "png stores frames in parquet; mp4 writes one video per camera and episode");
  return v;
}

/** Config field -> how the CLI fills it; a new generate option without a flag fails to compile here. */
const FROM_FLAGS: { [K in keyof ResolvedGenerateOptions]: (args: ParsedArgs) => ResolvedGenerateOptions[K] | undefined } = {
  episodes: (a) => intOpt(a, "episodes", 200, 1),
  seed: (a) => intOpt(a, "seed", 0),
  tasks: parseTasks,
  size: (a) => intOpt(a, "size", 64, 8),
  storage: parseStorage,
  fps: (a) => intOpt(a, "fps", 10, 1),
  keepFailures: (a) => flag(a, "keep-failures"),
  settleSteps: (a) => intOpt(a, "settle-steps", 0, 0),
  expert: () => undefined, // the expert's noise settings are library options only
  cameras: (a) => camerasOpt(a, "cameras"),
};

/** Data generation progress: redrawn on a terminal, a line every few seconds or 10% in a log. */
function generationProgress(io: CliIO): { onProgress: (p: GenerationProgress) => void; done: () => void } {
  const progress = progressReporter(io);
  return {
    onProgress: (p) => progress.update(`episodes ${p.done}/${p.total}  frames ${p.frames}  ${(p.seconds > 0 ? p.done / p.seconds : 0).toFixed(1)} eps/s`, p.done / p.total),
    done: () => progress.done(),
  };
}

async function generate(args: ParsedArgs, io: CliIO): Promise<number> {
  const out = str(args, "out");
  if (!out) throw new VlaError("CLI_USAGE", "--out is required", "vlatext sim generate --out DIR --episodes 200");
  // generateDataset validates the assembled options with its zod schema
  const opts = Object.fromEntries(Object.entries(FROM_FLAGS).map(([k, f]) => [k, f(args)]).filter(([, v]) => v !== undefined)) as GenerateOptions;
  const dir = path.resolve(io.cwd, out);
  const progress = generationProgress(io);
  const s = await generateDataset(dir, opts, progress.onProgress, { overwrite: flag(args, "overwrite") });
  progress.done();
  io.out(`wrote ${s.dir}: LeRobot ${s.version}, ${s.episodes} episodes, ${s.frames} frames, ${s.tasks} distinct instructions\n`);
  io.out(`expert retries ${s.retries}, failures kept ${s.failures}, ${s.seconds.toFixed(1)} s (${(s.episodes / s.seconds).toFixed(1)} eps/s)\n`);
  if (s.video) io.out(`video: ${s.video.codec} via ${s.video.ffmpeg}\n`);
  return 0;
}

async function render(args: ParsedArgs, io: CliIO): Promise<number> {
  const out = str(args, "out");
  if (!out) throw new VlaError("CLI_USAGE", "--out is required", "vlatext sim render --seed 1 --task pick --out scene.png");
  const task = str(args, "task");
  const family = task === undefined ? undefined : parseFamily(task, "task");
  const seed = intOpt(args, "seed", 0);
  const size = intOpt(args, "size", 64, 8);
  const scale = intOpt(args, "scale", 4, 1);
  const steps = intOpt(args, "steps", 0, 0);
  const cameras = camerasOpt(args, "cameras") ?? [...DEFAULT_CAMERAS];
  const env = new TabletopEnv({ size, cameras });
  let obs = env.reset(seed, family);
  const expert = new ScriptedExpert(env.task, env.world, mixSeed(seed, 0x5eed));
  let taken = 0;
  for (; taken < steps; taken++) {
    const r = env.step(expert.act(env.world));
    obs = r.obs;
    if (r.done) {
      taken++;
      break;
    }
  }
  const frames = cameras.map((n) => {
    const img = obs.images[n] as RgbImage;
    return scale === 1 ? img : nearest(img, scale);
  });
  const file = path.resolve(io.cwd, out);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, encodePng(tileHorizontal(frames)));
  io.out(`${env.task.family}: "${env.instruction}" after ${taken} expert step(s)\nwrote ${file} (${cameras.join(" | ")}, ${size}x${size} each, shown x${scale})\n`);
  return 0;
}

/** Nearest-neighbour upscale by an integer factor (keeps the pixels the policy sees). */
function nearest(img: RgbImage, k: number): RgbImage {
  if (k === 1) return img;
  const w = img.width * k;
  const h = img.height * k;
  if (w * h > 4096 * 4096) return resizeBilinear(img, Math.min(w, 4096), Math.min(h, 4096));
  const data = new Uint8Array(w * h * 3);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const s = (Math.floor(y / k) * img.width + Math.floor(x / k)) * 3;
      const d = (y * w + x) * 3;
      data[d] = img.data[s] as number;
      data[d + 1] = img.data[s + 1] as number;
      data[d + 2] = img.data[s + 2] as number;
    }
  }
  return { width: w, height: h, data };
}

const generateCommand: CliCommand = {
  name: "generate",
  summary: "Write scripted-expert demonstrations as a LeRobot v2.1 dataset",
  details:
    "Episode i is a task of family tasks[i % n]; a seed the expert fails is retried with the next one.\nFeatures: action (7: dx dy dz droll dpitch dyaw gripper), observation.state (5: x y z yaw gripper_open),\nobservation.images.<camera> per camera (default top, front). Use with the toy-sim recipe (other cameras: a recipe naming them).",
  options: {
    out: { type: "string" },
    episodes: { type: "string" },
    seed: { type: "string" },
    tasks: { type: "string" },
    size: { type: "string" },
    storage: { type: "string" },
    fps: { type: "string" },
    "keep-failures": { type: "boolean" },
    "settle-steps": { type: "string" },
    cameras: { type: "string" },
    overwrite: { type: "boolean" },
  },
  optionHelp: {
    out: { value: "dir", description: "Dataset folder to create" },
    episodes: { value: "n", description: "Number of episodes (default 200)" },
    seed: { value: "s", description: "Base seed (default 0)" },
    tasks: { value: "list", description: `Comma-separated task families (default ${TASK_FAMILIES.join(",")})` },
    size: { value: "px", description: "Camera image width and height (default 64)" },
    storage: { value: "png|mp4", description: "Frames as PNG in parquet (default) or mp4 videos" },
    fps: { value: "n", description: "Frame rate written to the dataset (default 10)" },
    "keep-failures": { description: "Keep episodes the expert failed (success: false) instead of retrying" },
    "settle-steps": { value: "n", description: "Expert steps recorded after each success (frames at the goal; default 0)" },
    cameras: { value: "list", description: `Cameras recorded, from ${CAMERA_NAMES.join(", ")} (default ${DEFAULT_CAMERAS.join(",")})` },
    overwrite: { description: "Replace --out when it exists" },
  },
  run: generate,
};

const renderCommand: CliCommand = {
  name: "render",
  summary: "Render one seeded scene (top | front, or --cameras) to a PNG",
  options: { seed: { type: "string" }, task: { type: "string" }, out: { type: "string" }, size: { type: "string" }, scale: { type: "string" }, steps: { type: "string" }, cameras: { type: "string" } },
  optionHelp: {
    seed: { value: "s", description: "Scene seed (default 0)" },
    task: { value: "family", description: `One of ${TASK_FAMILIES.join(", ")} (default: drawn from the seed)` },
    out: { value: "file.png", description: "PNG to write" },
    size: { value: "px", description: "Render size per camera (default 64)" },
    scale: { value: "k", description: "Nearest-neighbour upscale for viewing (default 4)" },
    steps: { value: "k", description: "Run the scripted expert k steps first (default 0)" },
    cameras: { value: "list", description: `Cameras side by side, from ${CAMERA_NAMES.join(", ")} (default ${DEFAULT_CAMERAS.join(",")})` },
  },
  run: render,
};

export const simCommand: CliCommand = {
  name: "sim",
  summary: "Toy tabletop simulator: expert demonstrations and scene renders",
  subcommands: [generateCommand, renderCommand],
};
