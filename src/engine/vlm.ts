/**
 * Qwen2.5-VL in the engine: the language model (a Qwen2 decoder with 3D M-RoPE) and
 * the vision tower, loaded from one Hugging Face directory (transformers' old
 * "model.layers / visual" or new "model.language_model / model.visual" names).
 * Images become features injected at the <|image_pad|> positions.
 */
import fs from "node:fs";
import path from "node:path";
import { z } from "zod";
import type { RgbImage } from "../data/episode.js";
import { VlaError, formatZodIssues } from "../errors.js";
import { readJsonFile } from "../io/json-file.js";
import { readSafetensorsHeader, type SafetensorsEntry, type SafetensorsHeader } from "../io/safetensors.js";
import { imageLayout, preprocessImage, processorConfigFor, type ImageLayout, type ProcessedImage, type VisionProcessorConfig } from "../vision/processor.js";
import { ropeIndex } from "../vision/rope-index.js";
import { parseDecoderConfig } from "./config.js";
import { DecoderModel, MODEL_CONFIG_FILE, resolveDType, type ModelOptions } from "./decoder.js";
import { parseVisionConfig, VisionModel } from "./vision.js";

const VlmConfigSchema = z.object({ model_type: z.literal("qwen2_5_vl"), vision_config: z.record(z.string(), z.unknown()), image_token_id: z.number().int().optional() }).passthrough();

export interface ImageFeatures {
  /** (sum of tokens, C) features in image order. */
  features: Float32Array;
  processed: ProcessedImage[];
}

export class VlmModel {
  readonly decoder: DecoderModel;
  readonly vision: VisionModel;
  readonly imageTokenId: number | undefined;
  /** How images become patches: the directory's preprocessor_config.json over its vision config. */
  readonly processor: VisionProcessorConfig;

  private constructor(decoder: DecoderModel, vision: VisionModel, imageTokenId: number | undefined, processor: VisionProcessorConfig) {
    this.decoder = decoder;
    this.vision = vision;
    this.imageTokenId = imageTokenId;
    this.processor = processor;
  }

  /** trainBase / trainVision: which weights will be trained (they are kept in f32 under dtype "auto"). */
  static load(dir: string, options: ModelOptions & { trainBase?: boolean; trainVision?: boolean } = {}): VlmModel {
    const file = path.join(dir, "config.json");
    const json = readJsonFile(file, z.record(z.string(), z.unknown()), MODEL_CONFIG_FILE);
    const r = VlmConfigSchema.safeParse(json);
    if (!r.success) {
      const mt = typeof json.model_type === "string" ? json.model_type : "missing";
      throw new VlaError("CONFIG_INVALID", `${file}: model_type '${mt}' is not a supported vision-language model${r.error.issues[0]?.path[0] === "model_type" ? "" : `:\n${formatZodIssues(r.error.issues)}`}`, "supported: qwen2_5_vl (Qwen2.5-VL)");
    }
    const text = (json.text_config as Record<string, unknown> | undefined) ?? json;
    const decoderCfg = parseDecoderConfig({ ...text, model_type: "qwen2" }, `${file} (language model)`);
    const visionCfg = parseVisionConfig(r.data.vision_config, `${file} vision_config`);
    const ppFile = path.join(dir, "preprocessor_config.json");
    const ppJson = fs.existsSync(ppFile) ? readJsonFile(ppFile, z.unknown(), { what: "image preprocessor config", code: "CONFIG_INVALID", hint: "fix the file, or remove it to use the vision config's sizes with Qwen2.5-VL's defaults" }) : undefined;
    const processor = processorConfigFor({ patchSize: visionCfg.patchSize, temporalPatchSize: visionCfg.temporalPatchSize, mergeSize: visionCfg.spatialMergeSize }, ppJson, ppFile);
    if (visionCfg.outHiddenSize !== decoderCfg.native.hiddenSize) throw new VlaError("CONFIG_INVALID", `${file}: vision_config.out_hidden_size ${visionCfg.outHiddenSize} differs from hidden_size ${decoderCfg.native.hiddenSize}`);
    const { trainBase, trainVision, ...backend } = options;
    const decoder = DecoderModel.load(dir, { ...backend, trainBase: trainBase ?? false, config: decoderCfg, fileNames: (n) => (n.startsWith("model.") ? [`model.language_model.${n.slice(6)}`, n] : [n]) });
    let vision: VisionModel | undefined;
    try {
      const weights = path.join(dir, "model.safetensors");
      const st = readSafetensorsHeader(weights);
      const patch = st.tensors.get("model.visual.patch_embed.proj.weight") ?? st.tensors.get("visual.patch_embed.proj.weight");
      const stored = patch?.dtype === "F32" || patch?.dtype === "F16" || patch?.dtype === "BF16" ? patch.dtype : undefined;
      const vdtype = resolveDType(options.dtype, () => stored, trainVision ?? false);
      vision = new VisionModel({ ...visionCfg, ...(options.threads ? { threads: options.threads } : {}), ...(options.device ? { device: options.device } : {}), ...(options.isa ? { isa: options.isa } : {}), dtype: vdtype });
      loadVisionTensors(vision, st);
    } catch (e) {
      decoder.dispose();
      vision?.dispose();
      throw e;
    }
    return new VlmModel(decoder, vision, r.data.image_token_id, processor);
  }

  /**
   * Preprocess and encode images: the features the prompt's image pads receive.
   * train: the tower keeps its activations, so that backwardImages() can follow.
   */
  async imageFeatures(images: readonly RgbImage[], options: { train?: boolean } = {}): Promise<ImageFeatures> {
    const processed = images.map((img) => preprocessImage(img, this.processor));
    const pixels = new Float32Array(processed.reduce((a, p) => a + p.pixels.length, 0));
    let o = 0;
    for (const p of processed) {
      pixels.set(p.pixels, o);
      o += p.pixels.length;
    }
    const features = await this.vision.forward(pixels, processed.map((p) => p.grid), options);
    return { features, processed };
  }

  /** Where an image of this size goes: its patch grid and token count (no pixels needed). */
  imageLayout(height: number, width: number): ImageLayout {
    return imageLayout(height, width, this.processor);
  }

  /** The gradient of the last training imageFeatures() call's features: the tower's parameter gradients accumulate. */
  async backwardImages(dFeatures: Float32Array): Promise<void> {
    await this.vision.backward(dFeatures);
  }

  /** The tower's tensors under the names config.json's checkpoints use ("visual.*"). */
  visionTensors(): Array<{ name: string; shape: number[]; data: Float32Array }> {
    return this.vision.paramInfo().map((p) => ({ name: p.name, shape: p.shape, data: this.vision.getParam(p.name) }));
  }

  /** Replace the tower's weights from a safetensors file holding "visual.*" (or "model.visual.*") tensors. */
  loadVisionWeights(file: string): void {
    loadVisionTensors(this.vision, readSafetensorsHeader(file));
  }

  /** 3D positions (3, N) and the rows of the image pads, for a prompt encoded with imageTokens = per-image token counts. */
  multimodalInputs(length: number, imageStarts: readonly number[], processed: readonly ImageLayout[]): { positions: Int32Array; injectRows: Int32Array } {
    if (imageStarts.length !== processed.length) throw new VlaError("DATA_INVALID", `the prompt has ${imageStarts.length} image slots for ${processed.length} images`);
    const positions = ropeIndex(length, imageStarts.map((start, i) => ({ start, grid: (processed[i] as ImageLayout).grid })), this.processor.mergeSize);
    const rows: number[] = [];
    imageStarts.forEach((s, i) => {
      for (let k = 0; k < (processed[i] as ImageLayout).tokens; k++) rows.push(s + k);
    });
    return { positions, injectRows: Int32Array.from(rows) };
  }

  dispose(): void {
    this.decoder.dispose();
    this.vision.dispose();
  }
}

/** Every tower tensor from a safetensors file, under its HF name with or without the "model." prefix, mapped (not read into JavaScript). */
function loadVisionTensors(vision: VisionModel, h: SafetensorsHeader): void {
  const entries: Array<{ name: string; dtype: 0 | 1 | 2; offset: number }> = [];
  for (const p of vision.paramInfo()) {
    const name = [`model.${p.name}`, p.name].find((c) => h.tensors.has(c));
    if (!name) throw new VlaError("FILE_INVALID", `${h.file}: vision tensor '${p.name}' is missing`, "the file must hold every visual.* tensor of the config's vision tower");
    const e = h.tensors.get(name) as SafetensorsEntry;
    // the patch embedding is a 3D convolution in the checkpoint (C, 3, T, p, p) and a matrix (C, 3*T*p*p) here
    const numel = (s: readonly number[]): number => s.reduce((a, b) => a * b, 1);
    if (e.shape[0] !== p.shape[0] || numel(e.shape) !== numel(p.shape)) throw new VlaError("FILE_INVALID", `${h.file}: vision tensor '${name}' has shape [${e.shape}] but the vision config implies [${p.shape}]`, "the weights do not match config.json's vision_config");
    entries.push({ name: p.name, dtype: e.dtype === "F32" ? 0 : e.dtype === "F16" ? 1 : 2, offset: h.dataStart + e.begin });
  }
  vision.params.loadSafetensors(h.file, entries);
}

/**
 * Load the language model of a Hugging Face directory: a Qwen2.5-VL (decoder + vision
 * tower) when config.json says so, else a decoder-only model. `dispose` frees both.
 */
export function loadLanguageModel(dir: string, options: ModelOptions & { trainBase?: boolean; trainVision?: boolean } = {}): { model: DecoderModel; vlm: VlmModel | undefined; dispose: () => void } {
  const modelType = readJsonFile(path.join(dir, "config.json"), z.object({ model_type: z.unknown() }).passthrough(), MODEL_CONFIG_FILE).model_type;
  const { threads, trainVision, ...rest } = options;
  const opts = { ...rest, ...(threads && threads > 0 ? { threads } : {}) };
  if (modelType === "qwen2_5_vl") {
    const vlm = VlmModel.load(dir, { ...opts, ...(trainVision !== undefined ? { trainVision } : {}) });
    return { model: vlm.decoder, vlm, dispose: () => vlm.dispose() };
  }
  const model = DecoderModel.load(dir, opts);
  return { model, vlm: undefined, dispose: () => model.dispose() };
}
