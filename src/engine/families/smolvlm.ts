/**
 * SmolVLM2 (SmolVLMForConditionalGeneration, model_type "smolvlm"): a Llama decoder
 * ("model.text_model.*"), a SigLIP encoder ("model.vision_model.*") and the pixel-shuffle
 * connector ("model.connector.*"), native/model/vision_siglip.h; 1D rotary positions; the
 * processor splits images into tiles plus a global image (src/vision/smolvlm-processor.ts).
 */
import fs from "node:fs";
import path from "node:path";
import { z } from "zod";
import { VlaError, formatZodIssues } from "../../errors.js";
import { readJsonFile } from "../../io/json-file.js";
import { smolVlmImageProcessor, smolVlmProcessorConfig } from "../../vision/smolvlm-processor.js";
import { parseDecoderConfig } from "../config.js";
import type { VlmParser } from "./types.js";

const VisionSchema = z
  .object({
    hidden_size: z.number().int().min(1),
    intermediate_size: z.number().int().min(1),
    num_hidden_layers: z.number().int().min(1),
    num_attention_heads: z.number().int().min(1),
    image_size: z.number().int().min(1),
    patch_size: z.number().int().min(1),
    num_channels: z.number().int().default(3),
    hidden_act: z.string().default("gelu_pytorch_tanh"),
    layer_norm_eps: z.number().positive().default(1e-6),
  })
  .passthrough();

const Schema = z
  .object({
    text_config: z.record(z.string(), z.unknown()),
    vision_config: VisionSchema,
    scale_factor: z.number().int().min(1).default(2),
    image_token_id: z.number().int().optional(),
    tie_word_embeddings: z.boolean().optional(),
  })
  .passthrough();

export const parseSmolVlm: VlmParser = (json, dir, file) => {
  const r = Schema.safeParse(json);
  if (!r.success) throw new VlaError("CONFIG_INVALID", `${file} is not a SmolVLM2 config:\n${formatZodIssues(r.error.issues)}`);
  const c = r.data;
  const v = c.vision_config;
  const textType = typeof c.text_config.model_type === "string" ? c.text_config.model_type : "llama";
  if (textType !== "llama") throw new VlaError("CONFIG_INVALID", `${file}: text_config.model_type '${textType}' is not supported for SmolVLM2`, "SmolVLM2's language model is Llama-style (model_type llama)");
  const decoder = parseDecoderConfig({ tie_word_embeddings: c.tie_word_embeddings ?? false, ...c.text_config, model_type: "llama" }, `${file} (language model)`);
  if (v.hidden_act !== "gelu_pytorch_tanh") throw new VlaError("CONFIG_INVALID", `${file}: vision_config.hidden_act '${v.hidden_act}' is not supported`, "SigLIP uses gelu_pytorch_tanh");
  if (v.num_channels !== 3) throw new VlaError("CONFIG_INVALID", `${file}: vision_config.num_channels ${v.num_channels} is not supported (RGB only)`);
  if (v.hidden_size % v.num_attention_heads !== 0) throw new VlaError("CONFIG_INVALID", `${file}: vision_config.hidden_size ${v.hidden_size} is not divisible by num_attention_heads ${v.num_attention_heads}`);
  const side = v.image_size / v.patch_size;
  if (!Number.isInteger(side) || side % c.scale_factor !== 0) {
    throw new VlaError("CONFIG_INVALID", `${file}: vision_config.image_size ${v.image_size} / patch_size ${v.patch_size} must be a whole number of patches divisible by scale_factor ${c.scale_factor}`);
  }
  const ppFile = path.join(dir, "preprocessor_config.json");
  const ppJson = fs.existsSync(ppFile) ? readJsonFile(ppFile, z.unknown(), { what: "image preprocessor config", code: "CONFIG_INVALID", hint: "fix the file, or remove it to use SmolVLM2's defaults" }) : undefined;
  const pp = smolVlmProcessorConfig({ imageSize: v.image_size, patchSize: v.patch_size, scaleFactor: c.scale_factor }, ppJson, ppFile);
  return {
    decoder,
    vision: {
      family: "siglip",
      depth: v.num_hidden_layers,
      hiddenSize: v.hidden_size,
      intermediateSize: v.intermediate_size,
      numHeads: v.num_attention_heads,
      outHiddenSize: decoder.native.hiddenSize,
      patchSize: v.patch_size,
      imageSize: v.image_size,
      scaleFactor: c.scale_factor,
      layerNormEps: v.layer_norm_eps,
    },
    processor: smolVlmImageProcessor(pp),
    decoderNames: (n) => (n.startsWith("model.") ? [`model.text_model.${n.slice(6)}`, n] : [n]),
    visionNames: (n) => [`model.${n}`, n],
    visionProbe: "vision_model.embeddings.patch_embedding.weight",
    imageTokenId: c.image_token_id,
  };
};
