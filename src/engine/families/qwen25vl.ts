/** Qwen2.5-VL (Qwen2_5_VLForConditionalGeneration): Qwen2 decoder with 3D M-RoPE, its own vision tower (vision.ts). */
import fs from "node:fs";
import path from "node:path";
import { z } from "zod";
import { VlaError, formatZodIssues } from "../../errors.js";
import { readJsonFile } from "../../io/json-file.js";
import { processorConfigFor, qwen25vlImageProcessor } from "../../vision/processor.js";
import { ropeIndex } from "../../vision/rope-index.js";
import { parseDecoderConfig } from "../config.js";
import { parseVisionConfig } from "../vision.js";
import type { VlmParser } from "./types.js";

const Schema = z.object({ vision_config: z.record(z.string(), z.unknown()), image_token_id: z.number().int().optional() }).passthrough();

export const parseQwen25vl: VlmParser = (json, dir, file) => {
  const r = Schema.safeParse(json);
  if (!r.success) throw new VlaError("CONFIG_INVALID", `${file} is not a Qwen2.5-VL config:\n${formatZodIssues(r.error.issues)}`);
  const text = (json.text_config as Record<string, unknown> | undefined) ?? json;
  const decoder = parseDecoderConfig({ ...text, model_type: "qwen2" }, `${file} (language model)`);
  const vision = parseVisionConfig(r.data.vision_config, `${file} vision_config`);
  const ppFile = path.join(dir, "preprocessor_config.json");
  const ppJson = fs.existsSync(ppFile) ? readJsonFile(ppFile, z.unknown(), { what: "image preprocessor config", code: "CONFIG_INVALID", hint: "fix the file, or remove it to use the vision config's sizes with Qwen2.5-VL's defaults" }) : undefined;
  const pp = processorConfigFor({ patchSize: vision.patchSize, temporalPatchSize: vision.temporalPatchSize, mergeSize: vision.spatialMergeSize }, ppJson, ppFile);
  if (vision.outHiddenSize !== decoder.native.hiddenSize) throw new VlaError("CONFIG_INVALID", `${file}: vision_config.out_hidden_size ${vision.outHiddenSize} differs from hidden_size ${decoder.native.hiddenSize}`);
  return {
    decoder,
    vision,
    processor: qwen25vlImageProcessor(pp),
    // transformers 5 writes "model.language_model.*" where 4.x wrote "model.*"
    decoderNames: (n) => (n.startsWith("model.") ? [`model.language_model.${n.slice(6)}`, n] : [n]),
    visionNames: (n) => [`model.${n}`, n],
    visionProbe: "visual.patch_embed.proj.weight",
    imageTokenId: r.data.image_token_id,
    positions: (length, images) => ropeIndex(length, images.map((i) => ({ start: i.start, grid: i.layout.grid })), pp.mergeSize),
  };
};
