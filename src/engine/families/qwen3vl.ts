/**
 * Qwen3-VL (Qwen3VLForConditionalGeneration): the Qwen3 decoder with interleaved M-RoPE and
 * DeepStack (vision features added after its first K layers), Qwen3-VL's vision tower
 * (native/model/vision_qwen3.h), Qwen2-VL's image processor (patch 16, mean / std 0.5 in its
 * preprocessor_config.json).
 *
 * Interleaved M-RoPE: frequency i of a head rotates by the height position when i % 3 == 1
 * and i < 3 * sections[1], by the width position when i % 3 == 2 and i < 3 * sections[2],
 * else by the temporal one (transformers' recomposition_frequencies). The engine's rotary
 * kernel takes one position row per section, so the decoder gets hd / 2 sections of one
 * frequency each and a position row per frequency: the (3, N) positions of get_rope_index
 * expanded by that pattern.
 */
import fs from "node:fs";
import path from "node:path";
import { z } from "zod";
import { VlaError, formatZodIssues } from "../../errors.js";
import { readJsonFile } from "../../io/json-file.js";
import { preprocessImage, imageLayout, processorConfigFor } from "../../vision/processor.js";
import { ropeIndex } from "../../vision/rope-index.js";
import { parseDecoderConfig } from "../config.js";
import type { VlmParser } from "./types.js";

const VisionSchema = z
  .object({
    depth: z.number().int().min(1),
    hidden_size: z.number().int().min(1),
    intermediate_size: z.number().int().min(1),
    num_heads: z.number().int().min(1),
    out_hidden_size: z.number().int().min(1),
    patch_size: z.number().int().min(1).default(16),
    spatial_merge_size: z.number().int().min(1).default(2),
    temporal_patch_size: z.number().int().min(1).default(2),
    num_position_embeddings: z.number().int().min(1),
    deepstack_visual_indexes: z.array(z.number().int().min(0)).default([]),
    hidden_act: z.string().default("gelu_pytorch_tanh"),
    in_channels: z.number().int().default(3),
    rope_parameters: z.object({ rope_type: z.string().optional(), rope_theta: z.number().positive().optional() }).passthrough().optional(),
  })
  .passthrough();

const Schema = z.object({ text_config: z.record(z.string(), z.unknown()), vision_config: VisionSchema, image_token_id: z.number().int().optional() }).passthrough();

/** For each of hd/2 frequencies, which of the (t, h, w) position rows rotates it. */
export function interleavedSections(half: number, sections: readonly number[]): number[] {
  const [, h = 0, w = 0] = sections;
  return Array.from({ length: half }, (_, i) => (i % 3 === 1 && i < 3 * h ? 1 : i % 3 === 2 && i < 3 * w ? 2 : 0));
}

/** (3, N) positions -> (hd/2, N): row i is the position row of frequency i. */
export function expandInterleaved(pos3: Int32Array, length: number, rows: readonly number[]): Int32Array {
  const out = new Int32Array(rows.length * length);
  rows.forEach((r, i) => out.set(pos3.subarray(r * length, (r + 1) * length), i * length));
  return out;
}

export const parseQwen3vl: VlmParser = (json, dir, file) => {
  const r = Schema.safeParse(json);
  if (!r.success) throw new VlaError("CONFIG_INVALID", `${file} is not a Qwen3-VL config:\n${formatZodIssues(r.error.issues)}`);
  const v = r.data.vision_config;
  const text = r.data.text_config;
  const rp = (text.rope_parameters ?? text.rope_scaling) as { mrope_section?: number[]; mrope_interleaved?: boolean } | undefined;
  const sections = rp?.mrope_section;
  if (!sections || sections.length !== 3) throw new VlaError("CONFIG_INVALID", `${file}: text_config.rope_parameters.mrope_section must list the (t, h, w) sections`, "Qwen3-VL configs carry mrope_section, e.g. [24, 20, 20]");
  const decoder = parseDecoderConfig({ ...text, model_type: "qwen3" }, `${file} (language model)`);
  const half = decoder.native.headDim / 2;
  if (sections.reduce((a, b) => a + b, 0) !== half) throw new VlaError("CONFIG_INVALID", `${file}: mrope_section [${sections}] must sum to head_dim / 2 = ${half}`);
  const interleaved = rp?.mrope_interleaved ?? true;
  const rows = interleaved ? interleavedSections(half, sections) : undefined;
  if (rows) decoder.native.ropeSections = new Int32Array(half).fill(1);
  if (v.hidden_act !== "gelu_pytorch_tanh") throw new VlaError("CONFIG_INVALID", `${file}: vision_config.hidden_act '${v.hidden_act}' is not supported`, "Qwen3-VL's tower uses gelu_pytorch_tanh");
  if (v.in_channels !== 3) throw new VlaError("CONFIG_INVALID", `${file}: vision_config.in_channels ${v.in_channels} is not supported (RGB only)`);
  if (v.out_hidden_size !== decoder.native.hiddenSize) throw new VlaError("CONFIG_INVALID", `${file}: vision_config.out_hidden_size ${v.out_hidden_size} differs from the language model's hidden_size ${decoder.native.hiddenSize}`);
  if (v.deepstack_visual_indexes.length > decoder.native.numLayers) throw new VlaError("CONFIG_INVALID", `${file}: ${v.deepstack_visual_indexes.length} DeepStack layers but the language model has ${decoder.native.numLayers}`);
  const ppFile = path.join(dir, "preprocessor_config.json");
  const ppJson = fs.existsSync(ppFile) ? readJsonFile(ppFile, z.unknown(), { what: "image preprocessor config", code: "CONFIG_INVALID", hint: "fix the file, or remove it to use the vision config's sizes" }) : undefined;
  const pp = processorConfigFor({ patchSize: v.patch_size, temporalPatchSize: v.temporal_patch_size, mergeSize: v.spatial_merge_size }, ppJson, ppFile);
  return {
    decoder,
    vision: {
      family: "qwen3_vl",
      depth: v.depth,
      hiddenSize: v.hidden_size,
      intermediateSize: v.intermediate_size,
      numHeads: v.num_heads,
      outHiddenSize: v.out_hidden_size,
      patchSize: v.patch_size,
      spatialMergeSize: v.spatial_merge_size,
      temporalPatchSize: v.temporal_patch_size,
      numPositionEmbeddings: v.num_position_embeddings,
      deepstackVisualIndexes: Int32Array.from(v.deepstack_visual_indexes),
      ...(v.rope_parameters?.rope_theta !== undefined ? { ropeTheta: v.rope_parameters.rope_theta } : {}),
    },
    processor: { family: "qwen3_vl", patchSize: pp.patchSize, preprocess: (img) => preprocessImage(img, pp), layout: (h, w) => imageLayout(h, w, pp) },
    decoderNames: (n) => (n.startsWith("model.") ? [`model.language_model.${n.slice(6)}`, n] : [n]),
    visionNames: (n) => [`model.${n}`, n],
    visionProbe: "visual.patch_embed.proj.weight",
    imageTokenId: r.data.image_token_id,
    deepstackLayers: v.deepstack_visual_indexes.length,
    positions: (length, images) => {
      const p3 = ropeIndex(length, images.map((i) => ({ start: i.start, grid: i.layout.grid })), pp.mergeSize);
      return rows ? expandInterleaved(p3, length, rows) : p3;
    },
  };
};
