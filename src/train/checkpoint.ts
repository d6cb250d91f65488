/**
 * Checkpoints, written atomically (a temporary directory renamed into place):
 *   state.json          step, resolved config, action spec, statistics, prompt template (text), format
 *   adapter/            the LoRA adapter (PEFT format), or
 *   model.safetensors   all weights (full fine-tuning)
 *   optimizer.safetensors  AdamW moments m, v (the step is in state.json)
 */
import fs from "node:fs";
import path from "node:path";
import { z } from "zod";
import { actionSpecToJSON, type ActionSpec } from "../actions/spec.js";
import type { ActionStats } from "../actions/stats.js";
import type { TextFormat } from "../actions/format.js";
import type { DecoderModel } from "../engine/decoder.js";
import { VlaError } from "../errors.js";
import { loadPeftAdapter, savePeftAdapter } from "../io/adapter-export.js";
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
  })
  .strict();
export type CheckpointState = z.infer<typeof CheckpointStateSchema>;

export function checkpointDir(runDir: string, step: number): string {
  return path.join(runDir, "checkpoints", `step-${String(step).padStart(7, "0")}`);
}

export function latestCheckpoint(runDir: string): string | undefined {
  const dir = path.join(runDir, "checkpoints");
  if (!fs.existsSync(dir)) return undefined;
  const names = fs.readdirSync(dir).filter((n) => /^step-\d{7}$/.test(n)).sort();
  const last = names[names.length - 1];
  return last ? path.join(dir, last) : undefined;
}

export function saveCheckpoint(runDir: string, step: number, model: DecoderModel, cfg: FinetuneConfig, spec: ActionSpec, stats: ActionStats, template: { name: string; text: string }, format: TextFormat): string {
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
  const state: CheckpointState = { step, optimizerStep: opt.step, config: cfg as unknown as Record<string, unknown>, spec: actionSpecToJSON(spec) as Record<string, unknown>, stats, template, format: format as unknown as Record<string, unknown>, kind };
  fs.writeFileSync(path.join(tmp, "state.json"), JSON.stringify(state, null, 2) + "\n");
  fs.rmSync(final, { recursive: true, force: true });
  fs.renameSync(tmp, final);
  return final;
}

export function readCheckpointState(dir: string): CheckpointState {
  const file = path.join(dir, "state.json");
  if (!fs.existsSync(file)) throw new VlaError("CHECKPOINT_INVALID", `${dir} has no state.json`, "checkpoints are written by vlatext finetune; pick another one");
  const r = CheckpointStateSchema.safeParse(JSON.parse(fs.readFileSync(file, "utf8")));
  if (!r.success) throw new VlaError("CHECKPOINT_INVALID", `${file} is not a vlatext checkpoint`);
  return r.data;
}

/** Load weights/adapter and optimizer state into a model prepared with the same config (LoRA already enabled). */
export function restoreCheckpoint(dir: string, model: DecoderModel): CheckpointState {
  const state = readCheckpointState(dir);
  if ((state.kind === "lora") !== Boolean(model.lora)) throw new VlaError("CHECKPOINT_INVALID", `${dir} holds a ${state.kind} checkpoint but the run is configured for ${model.lora ? "LoRA" : "full fine-tuning"}`);
  if (state.kind === "lora") for (const t of loadPeftAdapter(path.join(dir, "adapter")).tensors) model.setLora(t.name, t.data);
  else {
    const st = readSafetensors(path.join(dir, "model.safetensors"));
    for (const p of model.paramInfo()) model.setParam(p.name, safetensorsData(st, p.name));
  }
  const opt = readSafetensors(path.join(dir, "optimizer.safetensors"));
  model.setOptimizerState({ step: state.optimizerStep, m: safetensorsData(opt, "m"), v: safetensorsData(opt, "v") });
  return state;
}
