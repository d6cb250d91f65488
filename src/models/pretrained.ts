/**
 * The embedded default: the tiny Qwen2.5-VL-architecture model after `vlatext pretrain`
 * (models/tiny-vlm at the package root, a normal Hugging Face directory with its
 * pretrain.json). Shipped in the repository, so nothing downloads.
 */
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { z } from "zod";
import { VlaError } from "../errors.js";
import { readJsonFile } from "../io/json-file.js";
import { CameraNameSchema, DEFAULT_CAMERAS, cameraOrder, type CameraName } from "../sim/camera.js";

/** models/tiny-vlm at the package root. */
export function pretrainedDefaultDir(): string {
  return path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..", "models", "tiny-vlm");
}

/** The directory, checked to hold a model (config.json and model.safetensors). */
export function requirePretrained(dir = pretrainedDefaultDir()): string {
  for (const f of ["config.json", "model.safetensors", "tokenizer.json"]) {
    if (!fs.existsSync(path.join(dir, f))) throw new VlaError("FILE_NOT_FOUND", `the pretrained model ${dir} has no ${f}`, `make it with: vlatext pretrain --output ${dir} (or pass --from-scratch)`);
  }
  return dir;
}

/**
 * The cameras a model directory was pretrained on (pretrain.json's config.cameras, in tiling
 * order): the default pair when pretrain.json does not name them (made before cameras were an
 * option) or the directory has no pretrain.json (a model pretrain did not make).
 */
export function pretrainedCameras(dir: string): CameraName[] {
  const file = path.join(dir, "pretrain.json");
  if (!fs.existsSync(file)) return [...DEFAULT_CAMERAS];
  const schema = z.object({ config: z.object({ cameras: z.array(CameraNameSchema).min(1).optional() }).loose() }).loose();
  const json = readJsonFile(file, schema, { what: "pretrain.json", code: "CONFIG_INVALID", hint: `remake the model with vlatext pretrain --output ${dir}` });
  return cameraOrder(json.config.cameras ?? DEFAULT_CAMERAS);
}
