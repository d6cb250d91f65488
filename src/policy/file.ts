/**
 * policy.json: what a policy directory is. Written by fine-tuning (and by anything that
 * derives a policy from another: the demo's untrained baseline, a sweep's ensembling
 * variants), read by the server, evaluation and benchmarks — always through this file.
 *   { model?, adapter?, weights?, visionWeights?, spec, stats, template, format, tokenizer?, addVisionId, history, cameras?, ensemble }
 * Relative model and weight paths are relative to the policy directory; `tokenizer` is a
 * built-in name or a directory.
 */
import path from "node:path";
import { z } from "zod";
import { TextFormatSchema } from "../actions/format.js";
import { VlaError, formatZodIssues } from "../errors.js";
import { writeFileAtomic } from "../io/atomic.js";
import { readJsonFile, type JsonFileKind } from "../io/json-file.js";

export const POLICY_FILE = "policy.json";

export const PolicyFileSchema = z
  .object({
    /** Base model directory (default: the policy directory itself). */
    model: z.string().optional(),
    /** PEFT adapter directory on top of the base model. */
    adapter: z.string().optional(),
    /** Fully fine-tuned weights (safetensors) replacing the base model's. */
    weights: z.string().optional(),
    /** A fine-tuned vision tower ("visual.*" tensors) replacing the base model's. */
    visionWeights: z.string().optional(),
    spec: z.record(z.string(), z.unknown()),
    stats: z.unknown().nullable().default(null),
    template: z.string().default("vla0"),
    format: z.union([z.string(), TextFormatSchema]).optional(),
    tokenizer: z.string().optional(),
    addVisionId: z.boolean().default(true),
    /** History frames the model was trained with (src/train/config.ts history): a session's earlier requests' images. */
    history: z.number().int().min(0).max(8).default(0),
    /** The cameras the model was trained on, in the order their images are tiled (the recipe's camera names); absent in older policies. */
    cameras: z.array(z.string().min(1)).min(1).optional(),
    /** Temporal ensembling for sessions (see src/actions/ensembler.ts); gripperDims default to the spec's. */
    ensemble: z.record(z.string(), z.unknown()).default({ mode: "vla0-v1" }),
  })
  .strict();
/** policy.json as written (defaults may be left out). */
export type PolicyFile = z.input<typeof PolicyFileSchema>;
/** policy.json as read (defaults filled in). */
export type PolicyFileData = z.output<typeof PolicyFileSchema>;

const KIND: JsonFileKind = {
  what: "policy file",
  code: "CONFIG_INVALID",
  hint: "a policy directory holds policy.json {spec, stats, template, format, ...} as `vlatext finetune` writes it; fine-tune again or fix the named fields",
  missingHint: "a policy directory holds the model, its tokenizer and policy.json (spec, stats, template, format); `vlatext finetune` writes one under <output>/policy",
};

export function readPolicyFile(dir: string): PolicyFileData {
  return readJsonFile(path.join(dir, POLICY_FILE), PolicyFileSchema, KIND);
}

/** Validate and write dir/policy.json atomically; returns the file's path. */
export function writePolicyFile(dir: string, file: PolicyFile): string {
  const r = PolicyFileSchema.safeParse(file);
  if (!r.success) throw new VlaError("CONFIG_INVALID", `refusing to write an invalid ${POLICY_FILE} in ${dir}:\n${formatZodIssues(r.error.issues)}`, "this is a bug: please report it");
  const out = path.join(dir, POLICY_FILE);
  writeFileAtomic(out, JSON.stringify(file, null, 2) + "\n");
  return out;
}

/** The file's paths made absolute (so that it can be written into another directory). */
export function absolutePaths(file: PolicyFileData, dir: string): PolicyFileData {
  const abs = (p: string | undefined): string | undefined => (p === undefined ? undefined : path.resolve(dir, p));
  const out: PolicyFileData = { ...file };
  for (const k of ["model", "adapter", "weights", "visionWeights"] as const) {
    const v = abs(file[k]);
    if (v === undefined) delete out[k];
    else out[k] = v;
  }
  // without them, the model and its tokenizer are the policy directory's own
  if (file.model === undefined) out.model = path.resolve(dir);
  if (file.tokenizer === undefined) out.tokenizer = path.resolve(dir);
  return out;
}

/**
 * A new policy directory derived from another: its policy.json with `change` applied
 * (paths made absolute first). The demo's untrained baseline drops the trained weights;
 * a sweep writes one policy per ensembling mode.
 */
export function derivePolicy(fromDir: string, toDir: string, change: (file: PolicyFileData) => PolicyFile): string {
  writePolicyFile(toDir, change(absolutePaths(readPolicyFile(fromDir), fromDir)));
  return toDir;
}
