/**
 * An untrained vision-language policy from the tiny default model (src/models/tiny-default.ts:
 * Qwen2.5-VL architecture, its own BPE tokenizer), VLA-0's 8x7 action spec: what serving
 * tests and bench/load.ts send camera images to.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { VLA0_SPEC } from "../../src/actions/spec.js";
import type { RgbImage } from "../../src/data/episode.js";
import { createTinyDefaultModel, type TinyDefaultOptions } from "../../src/models/tiny-default.js";
import { writePolicyFile } from "../../src/policy/file.js";
import { TINY_STATS } from "./tiny-policy.js";

export function writeTinyVlmPolicy(options: TinyDefaultOptions = {}, extra: Record<string, unknown> = {}): string {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "vlatext-vlm-policy-"));
  const model = createTinyDefaultModel(path.join(root, "model"), { seed: 1, hiddenSize: 32, layers: 1, visionHidden: 16, visionDepth: 1, ...options });
  const dir = path.join(root, "policy");
  writePolicyFile(dir, { model, tokenizer: model, spec: VLA0_SPEC as unknown as Record<string, unknown>, stats: TINY_STATS, template: "vla0", ensemble: { mode: "vla0-v1", executeK: 4 }, ...extra });
  return dir;
}

/** A camera-like test image: smooth colour ramps, different per seed. */
export function testImage(width: number, height: number, seed = 0): RgbImage {
  const data = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++)
    for (let x = 0; x < width; x++) {
      const o = (y * width + x) * 3;
      data[o] = (x * 7 + seed * 31) % 256;
      data[o + 1] = (y * 5 + seed * 17) % 256;
      data[o + 2] = ((x + y) * 3 + seed * 11) % 256;
    }
  return { width, height, data };
}
