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
import { readSafetensors, safetensorsData, type SafetensorsFile } from "../io/safetensors.js";
import { imageLayout, preprocessImage, processorConfigFor, type ImageLayout, type ProcessedImage, type VisionProcessorConfig } from "../vision/processor.js";
import { ropeIndex } from "../vision/rope-index.js";
import { parseDecoderConfig } from "./config.js";
import { DecoderModel, MODEL_CONFIG_FILE } from "./decoder.js";
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

  static load(dir: string, options: { threads?: number } = {}): VlmModel {
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
    const decoder = DecoderModel.load(dir, { ...options, config: decoderCfg, fileNames: (n) => (n.startsWith("model.") ? [`model.language_model.${n.slice(6)}`, n] : [n]) });
    const vision = new VisionModel({ ...visionCfg, ...(options.threads ? { threads: options.threads } : {}) });
    try {
      loadVisionTensors(vision, readSafetensors(path.join(dir, "model.safetensors")), dir);
    } catch (e) {
      decoder.dispose();
      vision.dispose();
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
    loadVisionTensors(this.vision, readSafetensors(file), file);
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

/** Every tower tensor from a safetensors file, under its HF name with or without the "model." prefix. */
function loadVisionTensors(vision: VisionModel, st: SafetensorsFile, where: string): void {
  for (const p of vision.paramInfo()) {
    const name = [`model.${p.name}`, p.name].find((c) => st.tensors.has(c));
    if (!name) throw new VlaError("FILE_INVALID", `${where}: vision tensor '${p.name}' is missing`);
    vision.setParam(p.name, safetensorsData(st, name));
  }
}

/**
 * Load the language model of a Hugging Face directory: a Qwen2.5-VL (decoder + vision
 * tower) when config.json says so, else a decoder-only model. `dispose` frees both.
 */
export function loadLanguageModel(dir: string, options: { threads?: number } = {}): { model: DecoderModel; vlm: VlmModel | undefined; dispose: () => void } {
  const modelType = readJsonFile(path.join(dir, "config.json"), z.object({ model_type: z.unknown() }).passthrough(), MODEL_CONFIG_FILE).model_type;
  const threads = options.threads && options.threads > 0 ? { threads: options.threads } : {};
  if (modelType === "qwen2_5_vl") {
    const vlm = VlmModel.load(dir, threads);
    return { model: vlm.decoder, vlm, dispose: () => vlm.dispose() };
  }
  const model = DecoderModel.load(dir, threads);
  return { model, vlm: undefined, dispose: () => model.dispose() };
}
