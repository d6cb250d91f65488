/**
 * The fine-tuning config: one validated object describes a run completely (saved in
 * every checkpoint). Loaded from JSON or YAML; every field can be overridden on the
 * command line with its dotted path (--optimizer.lr 1e-4). Unknown keys and wrong
 * types are rejected before any work starts, naming the key.
 */
import fs from "node:fs";
import path from "node:path";
import YAML from "yaml";
import { z } from "zod";
import { NATIVE_ISAS } from "../engine/addon.js";
import { VlaError, formatZodIssues } from "../errors.js";
import { checkJson, readJsonFile, type JsonFileKind } from "../io/json-file.js";
import { NORMALIZATIONS } from "../actions/spec.js";

export const FinetuneConfigSchema = z
  .object({
    /** Hugging Face model directory (config.json, model.safetensors, tokenizer files). */
    model: z.string().min(1),
    /** Built-in tokenizer name or directory, when the model directory has none. */
    tokenizer: z.string().optional(),
    /** Run directory: checkpoints, metrics.jsonl, loss.png, policy/. */
    output: z.string().min(1),
    data: z
      .array(
        z
          .object({
            /** LeRobot dataset directory. */
            dataset: z.string().min(1),
            /** Recipe name (datasets/<name>.json) or file. */
            recipe: z.string().min(1),
            /** Sampling weight when mixing datasets. */
            weight: z.number().positive().default(1),
          })
          .strict(),
      )
      .min(1),
    /** Overrides of every recipe's action spec: bins per dimension, horizon (timesteps per chunk), normalization (all dimensions). */
    action: z.object({ bins: z.number().int().min(1).max(100000).optional(), horizon: z.number().int().min(1).max(1024).optional(), normalization: z.enum(NORMALIZATIONS).optional() }).strict().default({}),
    template: z.string().default("vla0"),
    /** Text format name (default: the template's). */
    format: z.string().optional(),
    lora: z
      .object({
        enabled: z.boolean().default(true),
        rank: z.number().int().min(1).default(16),
        alpha: z.number().positive().default(32),
        targets: z.union([z.literal("all-linear"), z.array(z.string())]).default("all-linear"),
        dropout: z.number().min(0).lt(1).default(0.05),
      })
      .strict()
      .default({ enabled: true, rank: 16, alpha: 32, targets: "all-linear", dropout: 0.05 }),
    optimizer: z
      .object({
        lr: z.number().positive().default(1e-4),
        beta1: z.number().min(0).lt(1).default(0.9),
        beta2: z.number().min(0).lt(1).default(0.999),
        eps: z.number().positive().default(1e-8),
        weightDecay: z.number().min(0).default(0),
        maxGradNorm: z.number().min(0).default(1),
      })
      .strict()
      .default({ lr: 1e-4, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, maxGradNorm: 1 }),
    schedule: z
      .object({ type: z.enum(["constant", "linear", "cosine"]).default("constant"), warmupSteps: z.number().int().min(0).default(0) })
      .strict()
      .default({ type: "constant", warmupSteps: 0 }),
    batchSize: z.number().int().min(1).default(4),
    gradAccum: z.number().int().min(1).default(1),
    steps: z.number().int().min(1).default(100),
    /** VLA-0's masked action augmentation (answer tokens replaced by '?'). */
    maskActions: z.object({ enabled: z.boolean().default(true), maxFraction: z.number().min(0).max(1).default(0.4), unmaskedProbability: z.number().min(0).max(1).default(0.1) }).strict().default({ enabled: true, maxFraction: 0.4, unmaskedProbability: 0.1 }),
    seed: z.number().int().min(0).default(0),
    /**
     * History frames (RoboVLMs' best lever): the camera frames of this many earlier steps stacked
     * above the current ones in the one image the model sees (oldest on top; an episode's first
     * steps repeat its first frame). The policy keeps each session's last requests' frames to do the
     * same, so run it with one prediction per step (executeK 1, the default): with executeK K the
     * previous request is K steps back.
     */
    history: z.number().int().min(0).max(8).default(0),
    /** Camera frames are decoded at this size before tiling (vision-language models). */
    imageSize: z.number().int().min(28).max(1024).default(56),
    /**
     * Vision-language models: train the vision tower with the language model (same optimizer
     * and schedule, one clipping norm), as VLA-0 fine-tunes the whole model. Off: the tower is
     * frozen and its features are computed once per frame.
     */
    vision: z.object({ train: z.boolean().default(false) }).strict().default({ train: false }),
    logEvery: z.number().int().min(1).default(1),
    evalEvery: z.number().int().min(0).default(0),
    evalSamples: z.number().int().min(1).default(8),
    checkpointEvery: z.number().int().min(0).default(0),
    /** Checkpoints kept in the run directory: the newest N (the final one among them); older ones are deleted. */
    keepCheckpoints: z.number().int().min(1).default(3),
    threads: z.number().int().min(0).default(0),
    /**
     * Storage of the base model's weight matrices: "auto" keeps a bf16 checkpoint in bf16 when its
     * weights are frozen (LoRA: half the memory, bf16 kernels) and uses f32 otherwise; "f32" always;
     * "bf16" (frozen weights only) converts an f32 checkpoint. Trained weights are f32.
     */
    dtype: z.enum(["auto", "f32", "bf16"]).default("auto"),
    /** Where the model runs: "cpu", or "cuda" (a CUDA build of vlatext and an NVIDIA GPU). */
    device: z.enum(["cpu", "cuda"]).default("cpu"),
    /** The highest CPU instruction set the kernels may use (default: the CPU's best). */
    isa: z.enum(NATIVE_ISAS).optional(),
  })
  .strict();

export type FinetuneConfig = z.output<typeof FinetuneConfigSchema>;
export type FinetuneConfigInput = z.input<typeof FinetuneConfigSchema>;

/** VLA-0's training preset (configs/vla0.yaml), as far as it maps onto this engine. */
export const PRESETS = {
  vla0: { optimizer: { lr: 5e-6, weightDecay: 1e-10, maxGradNorm: 0 }, batchSize: 8, maskActions: { enabled: true, maxFraction: 0.4, unmaskedProbability: 0.1 }, lora: { enabled: false } },
} as const;

export function parseFinetuneConfig(input: unknown, source = "config"): FinetuneConfig {
  const r = FinetuneConfigSchema.safeParse(input);
  if (!r.success) throw new VlaError("CONFIG_INVALID", `invalid ${source}:\n${formatZodIssues(r.error.issues)}`, "fix or remove the named key(s); `vlatext finetune --help` lists every key");
  return r.data;
}

const CONFIG_FILE: JsonFileKind = { what: "config file", code: "CONFIG_INVALID", hint: "a config file holds one object of config keys (JSON or YAML); `vlatext finetune --help` lists them" };

/** A config file (JSON, or YAML by extension) holding one object. */
export function readConfigFile(file: string): Record<string, unknown> {
  const obj = z.record(z.string(), z.unknown());
  if (!/\.ya?ml$/i.test(file)) return readJsonFile(file, obj, CONFIG_FILE);
  if (!fs.existsSync(file)) throw new VlaError("FILE_NOT_FOUND", `config file not found: ${file}`, CONFIG_FILE.hint);
  let v: unknown;
  try {
    v = YAML.parse(fs.readFileSync(file, "utf8"));
  } catch (e) {
    throw new VlaError("CONFIG_INVALID", `config file ${file} does not parse as YAML: ${(e as Error).message}`, CONFIG_FILE.hint);
  }
  return checkJson(v, obj, file, CONFIG_FILE);
}

/** Every settable leaf of the schema as a dotted path (what --help lists and the CLI accepts). */
export function configPaths(): Array<{ path: string; kind: "string" | "number" | "boolean" | "json" }> {
  const out: Array<{ path: string; kind: "string" | "number" | "boolean" | "json" }> = [];
  const walk = (schema: z.ZodType, prefix: string): void => {
    let s: z.ZodType = schema;
    for (;;) {
      const def = (s as unknown as { def: { type: string; innerType?: z.ZodType } }).def;
      if ((def.type === "default" || def.type === "optional") && def.innerType) s = def.innerType;
      else break;
    }
    const def = (s as unknown as { def: { type: string; shape?: Record<string, z.ZodType> } }).def;
    if (def.type === "object" && def.shape && prefix !== "data") {
      for (const [k, v] of Object.entries(def.shape)) walk(v, prefix ? `${prefix}.${k}` : k);
      return;
    }
    out.push({ path: prefix, kind: def.type === "string" ? "string" : def.type === "number" ? "number" : def.type === "boolean" ? "boolean" : "json" });
  };
  walk(FinetuneConfigSchema, "");
  return out;
}

/** Apply `--a.b value` overrides (values parsed by the leaf's kind; json for the rest). */
export function applyOverrides(base: Record<string, unknown>, overrides: Array<[string, string]>): Record<string, unknown> {
  const paths = new Map(configPaths().map((p) => [p.path, p.kind]));
  const out = structuredClone(base);
  for (const [key, raw] of overrides) {
    const kind = paths.get(key);
    if (!kind) throw new VlaError("CONFIG_INVALID", `unknown option --${key}`, `settable keys: ${[...paths.keys()].join(", ")}`);
    let value: unknown = raw;
    if (kind === "number") {
      value = Number(raw);
      if (!Number.isFinite(value as number)) throw new VlaError("CONFIG_INVALID", `--${key} must be a number, got '${raw}'`);
    } else if (kind === "boolean") {
      if (raw !== "true" && raw !== "false") throw new VlaError("CONFIG_INVALID", `--${key} must be true or false, got '${raw}'`);
      value = raw === "true";
    } else if (kind === "json") {
      try {
        value = JSON.parse(raw);
      } catch {
        value = raw; // e.g. --lora.targets all-linear
      }
    }
    const parts = key.split(".");
    let node = out as Record<string, unknown>;
    for (const p of parts.slice(0, -1)) {
      if (typeof node[p] !== "object" || node[p] === null) node[p] = {};
      node = node[p] as Record<string, unknown>;
    }
    node[parts[parts.length - 1] as string] = value;
  }
  return out;
}

/** Deep-merge b over a (objects only; arrays and scalars replace). */
export function deepMerge(a: Record<string, unknown>, b: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...a };
  for (const [k, v] of Object.entries(b)) {
    const cur = out[k];
    out[k] = v && typeof v === "object" && !Array.isArray(v) && cur && typeof cur === "object" && !Array.isArray(cur) ? deepMerge(cur as Record<string, unknown>, v as Record<string, unknown>) : v;
  }
  return out;
}

export function resolvePath(base: string, p: string): string {
  return path.isAbsolute(p) ? p : path.resolve(base, p);
}
