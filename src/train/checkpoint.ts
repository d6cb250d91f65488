/**
 * Checkpoints, written atomically (a temporary directory renamed into place):
 *   state.json          step, resolved config, action spec, statistics, prompt template (text), format
 *   adapter/            the LoRA adapter (PEFT format), or
 *   model.safetensors   all weights (full fine-tuning)
 *   optimizer.safetensors  AdamW moments m, v (the step is in state.json)
 *   vision.safetensors, vision-optimizer.safetensors   the vision tower's weights ("visual.*")
 *                       and AdamW moments, when the run trains it
 */
import fs from "node:fs";
import path from "node:path";
import { z } from "zod";
import { actionSpecToJSON, type ActionSpec } from "../actions/spec.js";
import type { ActionStats } from "../actions/stats.js";
import type { TextFormat } from "../actions/format.js";
import type { DecoderModel } from "../engine/decoder.js";
import type { VlmModel } from "../engine/vlm.js";
import { VlaError } from "../errors.js";
import { loadPeftAdapter, savePeftAdapter } from "../io/adapter-export.js";
import { readJsonFile } from "../io/json-file.js";
import { readSafetensors, safetensorsData, writeSafetensors } from "../io/safetensors.js";
import type { FinetuneConfig } from "./config.js";

export const CheckpointStateSchema = z
  .object({
    step: z.number().int().min(0),
    optimizerStep: z.number().int().min(0),
    config: z.record(z.string(), z.unknown()),
    spec: z.record(z.string(), z.unknown()),
    stats: z.unknown(),
    template: z.object({ name: z.string(), text: z.string() }),
    format: z.record(z.string(), z.unknown()),
    kind: z.enum(["lora", "full"]),
    /** AdamW step count of the vision tower, when the run trains it. */
    visionOptimizerStep: z.number().int().min(0).optional(),
  })
  .strict();
export type CheckpointState = z.infer<typeof CheckpointStateSchema>;

export function checkpointDir(runDir: string, step: number): string {
  return path.join(runDir, "checkpoints", `step-${String(step).padStart(7, "0")}`);
}

/**
 * Delete all but the newest `keep` checkpoints of a run (and temporary directories left
 * by killed runs); returns the deleted directories.
 */
export function pruneCheckpoints(runDir: string, keep: number): string[] {
  const dir = path.join(runDir, "checkpoints");
  if (!fs.existsSync(dir)) return [];
  const names = fs.readdirSync(dir);
  const steps = names.filter((n) => /^step-\d{7}$/.test(n)).sort();
  const stale = names.filter((n) => /^step-\d{7}\.tmp-\d+$/.test(n) && !n.endsWith(`.tmp-${process.pid}`));
  const gone = [...steps.slice(0, Math.max(0, steps.length - keep)), ...stale].map((n) => path.join(dir, n));
  for (const d of gone) fs.rmSync(d, { recursive: true, force: true });
  return gone;
}

export function latestCheckpoint(runDir: string): string | undefined {
  const dir = path.join(runDir, "checkpoints");
  if (!fs.existsSync(dir)) return undefined;
  const names = fs.readdirSync(dir).filter((n) => /^step-\d{7}$/.test(n)).sort();
  const last = names[names.length - 1];
  return last ? path.join(dir, last) : undefined;
}

/** tower: the vision-language model whose (trained) vision tower is saved too. */
export function saveCheckpoint(runDir: string, step: number, model: DecoderModel, cfg: FinetuneConfig, spec: ActionSpec, stats: ActionStats, template: { name: string; text: string }, format: TextFormat, tower?: VlmModel): string {
  const final = checkpointDir(runDir, step);
  const tmp = `${final}.tmp-${process.pid}`;
  fs.rmSync(tmp, { recursive: true, force: true });
  fs.mkdirSync(tmp, { recursive: true });
  const opt = model.getOptimizerState();
  const kind = model.lora ? "lora" : "full";
  if (model.lora) savePeftAdapter(path.join(tmp, "adapter"), model.exportAdapter(cfg.model));
  else writeSafetensors(path.join(tmp, "model.safetensors"), model.paramInfo().map((p) => ({ name: p.name, shape: p.shape, data: model.getParam(p.name) })));
  writeSafetensors(path.join(tmp, "optimizer.safetensors"), [
    { name: "m", shape: [opt.m.length], data: opt.m },
    { name: "v", shape: [opt.v.length], data: opt.v },
  ]);
  let visionStep: number | undefined;
  if (tower) {
    writeSafetensors(path.join(tmp, VISION_WEIGHTS), tower.visionTensors());
    const vo = tower.vision.getOptimizerState();
    writeSafetensors(path.join(tmp, "vision-optimizer.safetensors"), [
      { name: "m", shape: [vo.m.length], data: vo.m },
      { name: "v", shape: [vo.v.length], data: vo.v },
    ]);
    visionStep = vo.step;
  }
  const state: CheckpointState = {
    step,
    optimizerStep: opt.step,
    config: cfg as unknown as Record<string, unknown>,
    spec: actionSpecToJSON(spec) as Record<string, unknown>,
    stats,
    template,
    format: format as unknown as Record<string, unknown>,
    kind,
    ...(visionStep !== undefined ? { visionOptimizerStep: visionStep } : {}),
  };
  fs.writeFileSync(path.join(tmp, "state.json"), JSON.stringify(state, null, 2) + "\n");
  fs.rmSync(final, { recursive: true, force: true });
  fs.renameSync(tmp, final);
  return final;
}

export function readCheckpointState(dir: string): CheckpointState {
  return readJsonFile(path.join(dir, "state.json"), CheckpointStateSchema, {
    what: "checkpoint state",
    code: "CHECKPOINT_INVALID",
    missingCode: "CHECKPOINT_INVALID",
    hint: `delete ${dir} to resume from the checkpoint before it (checkpoints are written by vlatext finetune)`,
  });
}

/** The trained vision tower's weights inside a checkpoint directory. */
export const VISION_WEIGHTS = "vision.safetensors";

/**
 * Load weights/adapter and optimizer state into a model prepared with the same config
 * (LoRA already enabled); `tower`: the run trains the vision tower, restore it too.
 */
export function restoreCheckpoint(dir: string, model: DecoderModel, tower?: VlmModel): CheckpointState {
  const state = readCheckpointState(dir);
  if ((state.kind === "lora") !== Boolean(model.lora)) throw new VlaError("CHECKPOINT_INVALID", `${dir} holds a ${state.kind} checkpoint but the run is configured for ${model.lora ? "LoRA" : "full fine-tuning"}`);
  if (state.kind === "lora") for (const t of loadPeftAdapter(path.join(dir, "adapter")).tensors) model.setLora(t.name, t.data);
  else {
    const st = readSafetensors(path.join(dir, "model.safetensors"));
    for (const p of model.paramInfo()) model.setParam(p.name, safetensorsData(st, p.name));
  }
  const opt = readSafetensors(path.join(dir, "optimizer.safetensors"));
  model.setOptimizerState({ step: state.optimizerStep, m: safetensorsData(opt, "m"), v: safetensorsData(opt, "v") });
  if (tower) {
    if (state.visionOptimizerStep === undefined || !fs.existsSync(path.join(dir, VISION_WEIGHTS))) throw new VlaError("CHECKPOINT_INVALID", `${dir} has no trained vision tower but the run trains it (vision.train)`, "resume with the config the checkpoint was written with");
    tower.loadVisionWeights(path.join(dir, VISION_WEIGHTS));
    const vo = readSafetensors(path.join(dir, "vision-optimizer.safetensors"));
    tower.vision.setOptimizerState({ step: state.visionOptimizerStep, m: safetensorsData(vo, "m"), v: safetensorsData(vo, "v") });
  }
  return state;
}
