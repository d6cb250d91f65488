/**
 * `vlatext pretrain`: train the tiny default model on image-text questions about
 * toy-world scenes, so that it sees before it is fine-tuned on actions (src/train/pretrain.ts).
 * The shipped default (models/tiny-vlm) is this command's output with its defaults.
 */
import path from "node:path";
import { parsePretrainConfig } from "../../train/pretrain.js";
import { VISION_STAGE_DEFAULTS } from "../../train/pretrain-vision.js";
import { pretrain } from "../../train/pretrain.js";
import { camerasOpt, flag, intOpt, str, type CliCommand } from "../command.js";
import { progressReporter } from "../progress.js";
import { table } from "../table.js";
import { VlaError } from "../../errors.js";

const NUMBERS = ["seed", "steps", "batch-size", "episodes", "every", "eval-episodes", "threads"] as const;

export const pretrainCommand: CliCommand = {
  name: "pretrain",
  summary: "Make the tiny default vision-language model see: train it on questions about toy-world scenes",
  details: `The model (a Qwen2.5-VL-architecture model that transformers loads; patch 28: one token per 56x56
camera) is created from --seed. First the vision stage trains its tower, from random weights, with a
linear read-out of the scenes' geometry (positions of the blocks, zone and gripper; never an action);
then, the tower frozen (trained too with --train-vision), its language model learns to answer
questions about simulator scenes with 1-3 blocks: where each block, zone and the gripper is (integers 0..99), where a block is from the
gripper (2 cm units), which block is closer to the gripper, how many blocks, what is held, is the gripper
open, describe the scene. None of them is the action task. The output directory is a
Hugging Face model directory with pretrain.json (config, time, held-out exact match per question
kind, the mean error of the greedy answers to the coordinate questions, SHA-256).
The same options give the same bytes. The shipped default (models/tiny-vlm, which sees the top and
wrist cameras; about 25 minutes on 2 cores) is
  vlatext pretrain --output models/tiny-vlm --cameras top,wrist`,
  options: { output: { type: "string" }, lr: { type: "string" }, "train-vision": { type: "boolean" }, "vision-steps": { type: "string" }, "vision-init": { type: "string" }, "vision-hidden": { type: "string" }, hidden: { type: "string" }, layers: { type: "string" }, cameras: { type: "string" }, ...Object.fromEntries(NUMBERS.map((n) => [n, { type: "string" as const }])) },
  optionHelp: {
    output: { value: "dir", description: "Model directory to write (default runs/pretrain)" },
    seed: { value: "n", description: "Seed of the weights, scenes and batches (default 0)" },
    steps: { value: "n", description: "Steps of the language stage (default 24000; 0: the vision stage alone, a tower for later runs' vision.from)" },
    "batch-size": { value: "n", description: "Questions per step (default 16)" },
    lr: { value: "x", description: "Peak learning rate, cosine schedule (default 3e-3)" },
    episodes: { value: "n", description: "Expert episodes whose frames are the scenes (default 8000)" },
    every: { value: "n", description: "Keep every n-th frame of each episode (default 5)" },
    "eval-episodes": { value: "n", description: "Held-out episodes for the accuracy report (default 30)" },
    "train-vision": { description: "Train the vision tower in the language stage too (default: frozen as the vision stage left it)" },
    "vision-steps": { value: "n", description: `Steps of the vision stage, before the language model's: the tower trained to see (default ${VISION_STAGE_DEFAULTS.steps}; 0: no stage, the tower stays the hand-made moments sensor, the earlier default)` },
    "vision-init": { value: "random|moments", description: `How the vision stage's tower starts (default ${VISION_STAGE_DEFAULTS.init})` },
    "vision-hidden": { value: "n", description: "Width of the vision tower (default 128; 32 and 64 measured worse, README)" },
    hidden: { value: "n", description: "Width of the language model (default 64; a multiple of 16: 4 attention heads of hidden/4)" },
    layers: { value: "n", description: "Decoder layers of the language model (default 2)" },
    cameras: { value: "list", description: "Cameras tiled into each scene image, from top, front, wrist (default top,front; always tiled in that order; the embedded default was pretrained on top,wrist)" },
    threads: { value: "n", description: "Threads (default: all cores; the result does not depend on it)" },
  },
  async run(args, io) {
    const raw: Record<string, unknown> = { output: path.resolve(io.cwd, str(args, "output") ?? "runs/pretrain") };
    const keys: Record<(typeof NUMBERS)[number], string> = { seed: "seed", steps: "steps", "batch-size": "batchSize", episodes: "episodes", every: "every", "eval-episodes": "evalEpisodes", threads: "threads" };
    for (const n of NUMBERS) if (str(args, n) !== undefined) raw[keys[n]] = intOpt(args, n, 0, 0);
    if (flag(args, "train-vision")) raw.trainVision = true;
    const vision: Record<string, unknown> = {};
    if (str(args, "vision-steps") !== undefined) vision.steps = intOpt(args, "vision-steps", 0, 0);
    if (str(args, "vision-init") !== undefined) vision.init = str(args, "vision-init");
    if (Object.keys(vision).length > 0) raw.vision = vision;
    const model: Record<string, unknown> = {};
    if (str(args, "vision-hidden") !== undefined) model.visionHidden = intOpt(args, "vision-hidden", 128, 16);
    if (str(args, "hidden") !== undefined) {
      const h = intOpt(args, "hidden", 64, 16);
      if (h % 16 !== 0) throw new VlaError("CLI_USAGE", `--hidden must be a multiple of 16 (4 attention heads whose width splits into 3 rotary sections), got ${h}.`, "pass e.g. --hidden 128");
      model.hiddenSize = h;
    }
    if (str(args, "layers") !== undefined) model.layers = intOpt(args, "layers", 2, 1);
    if (Object.keys(model).length > 0) raw.model = model;
    const cameras = camerasOpt(args, "cameras");
    if (cameras) raw.cameras = cameras;
    const lr = str(args, "lr");
    if (lr !== undefined) raw.lr = Number(lr);
    const cfg = parsePretrainConfig(raw, "pretrain options");
    const progress = progressReporter(io);
    try {
      const r = await pretrain(cfg, { log: (l) => progress.log(l), progress: (l) => progress.update(l) });
      progress.done();
      io.out(
        table(
          ["question", "held-out exact match", "held-out mean error"],
          Object.entries(r.accuracy).map(([k, v]) => {
            const e = r.numericError[k as keyof typeof r.numericError];
            return [k, `${(100 * v).toFixed(0)}%`, e ? `${e.meanAbsUnits.toFixed(2)} units = ${e.meanAbsCm.toFixed(1)} cm${e.malformed > 0 ? ` (${e.malformed}/${e.questions} malformed)` : ""}` : ""];
          }),
        ),
      );
      io.out(`\npretrained model in ${r.dir} (${r.seconds.toFixed(0)} s; model.safetensors sha256 ${r.sha256})\n`);
      return 0;
    } finally {
      progress.done();
    }
  },
};
