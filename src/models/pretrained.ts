/**
 * The embedded default: the tiny Qwen2.5-VL-architecture model after `vlatext pretrain`
 * (models/tiny-vlm at the package root, a normal Hugging Face directory with its
 * pretrain.json). Shipped in the repository, so nothing downloads.
 */
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { VlaError } from "../errors.js";

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
