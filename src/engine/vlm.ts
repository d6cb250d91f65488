/**
 * A vision-language model in the engine: the language model (a decoder of config.ts's
 * families) and a vision encoder (native/model/vision.h or vision_siglip.h), loaded from one
 * Hugging Face directory through the architecture registry (families.ts): Qwen2.5-VL and
 * SmolVLM2. Images become features injected at the image-token positions.
 */
import path from "node:path";
import { z } from "zod";
import type { RgbImage } from "../data/episode.js";
import { VlaError } from "../errors.js";
import { readJsonFile } from "../io/json-file.js";
import { readSafetensorsHeader, type SafetensorsEntry, type SafetensorsHeader } from "../io/safetensors.js";
import { imageGrids, type ImageLayout, type ImageProcessor, type ProcessedImage } from "../vision/processor.js";
import { DecoderModel, MODEL_CONFIG_FILE, resolveDType, type ModelOptions } from "./decoder.js";
import { modelFamily, type ModelFamilyName, type VlmSpec } from "./families.js";
import { VisionModel } from "./vision.js";

export interface ImageEncoding {
  /** (sum of tokens, C) features in image order. */
  features: Float32Array;
  /** (K, sum of tokens, C) DeepStack features (Qwen3-VL), for the decoder's first K layers; absent for other families. */
  deepstack?: Float32Array;
}

export interface ImageFeatures extends ImageEncoding {
  processed: ProcessedImage[];
}

export class VlmModel {
  readonly family: ModelFamilyName;
  readonly decoder: DecoderModel;
  readonly vision: VisionModel;
  readonly imageTokenId: number | undefined;
  /** How images become patches and prompt tokens: the directory's preprocessor_config.json over its vision config. */
  readonly processor: ImageProcessor;
  private readonly spec: VlmSpec;

  private constructor(family: ModelFamilyName, spec: VlmSpec, decoder: DecoderModel, vision: VisionModel) {
    this.family = family;
    this.spec = spec;
    this.decoder = decoder;
    this.vision = vision;
    this.imageTokenId = spec.imageTokenId;
    this.processor = spec.processor;
  }

  /** trainBase / trainVision: which weights will be trained (they are kept in f32 under dtype "auto"). */
  static load(dir: string, options: ModelOptions & { trainBase?: boolean; trainVision?: boolean } = {}): VlmModel {
    const file = path.join(dir, "config.json");
    const json = readJsonFile(file, z.record(z.string(), z.unknown()), MODEL_CONFIG_FILE);
    const { key, family } = modelFamily(json, file);
    if (!family.vision) throw new VlaError("CONFIG_INVALID", `${file}: model_type '${key}' (${family.name}) is a text-only model, not a vision-language model`, "load it as a language model, or point at a vision-language model directory");
    const spec = family.vision.parse(json, dir, file);
    const { trainBase, trainVision, ...backend } = options;
    if (trainVision && spec.vision.family === "qwen3_vl") throw new VlaError("CONFIG_INVALID", `${dir}: training the vision encoder of ${family.name} is not supported yet`, "set vision.train to false (the language model still trains, LoRA or full)");
    const decoder = DecoderModel.load(dir, { ...backend, trainBase: trainBase ?? false, config: spec.decoder, fileNames: spec.decoderNames });
    let vision: VisionModel | undefined;
    try {
      const weights = path.join(dir, "model.safetensors");
      const st = readSafetensorsHeader(weights);
      const probe = spec.visionNames(spec.visionProbe).map((n) => st.tensors.get(n)).find((e) => e !== undefined);
      const stored = probe?.dtype === "F32" || probe?.dtype === "F16" || probe?.dtype === "BF16" ? probe.dtype : undefined;
      const vdtype = resolveDType(options.dtype, () => stored, trainVision ?? false);
      vision = new VisionModel({ ...spec.vision, ...(options.threads ? { threads: options.threads } : {}), ...(options.device ? { device: options.device } : {}), ...(options.isa ? { isa: options.isa } : {}), dtype: vdtype });
      loadVisionTensors(vision, st, spec.visionNames);
    } catch (e) {
      decoder.dispose();
      vision?.dispose();
      throw e;
    }
    return new VlmModel(key, spec, decoder, vision);
  }

  /** One image through the family's processor: patches, tile grids, token layout. */
  preprocess(img: RgbImage): ProcessedImage {
    return this.processor.preprocess(img);
  }

  /** DeepStack layers the decoder takes (Qwen3-VL), 0 for other families. */
  get deepstackLayers(): number {
    return this.spec.deepstackLayers ?? 0;
  }

  /** The features of preprocessed images in one encoder call: (sum of tokens, C), images in order (and Qwen3-VL's DeepStack blocks). */
  async encode(processed: readonly ProcessedImage[], options: { train?: boolean } = {}): Promise<ImageEncoding> {
    const pixels = new Float32Array(processed.reduce((a, p) => a + p.pixels.length, 0));
    let o = 0;
    for (const p of processed) {
      pixels.set(p.pixels, o);
      o += p.pixels.length;
    }
    const out = await this.vision.forward(pixels, processed.flatMap((p) => imageGrids(p)), options);
    const K = this.deepstackLayers;
    if (K === 0) return { features: out };
    const block = out.length / (K + 1);
    return { features: out.subarray(0, block), deepstack: out.subarray(block) };
  }

  /**
   * Preprocess and encode images: the features the prompt's image pads receive.
   * train: the tower keeps its activations, so that backwardImages() can follow.
   */
  async imageFeatures(images: readonly RgbImage[], options: { train?: boolean } = {}): Promise<ImageFeatures> {
    const processed = images.map((img) => this.preprocess(img));
    return { ...(await this.encode(processed, options)), processed };
  }

  /** Where an image of this size goes: its patch grid and token count (no pixels needed). */
  imageLayout(height: number, width: number): ImageLayout {
    return this.processor.layout(height, width);
  }

  /** The gradient of the last training imageFeatures() call's features: the tower's parameter gradients accumulate. */
  async backwardImages(dFeatures: Float32Array): Promise<void> {
    await this.vision.backward(dFeatures);
  }

  /** The encoder's tensors under their engine names ("visual.*"; SmolVLM2 "vision_model.*", "connector.*"). */
  visionTensors(): Array<{ name: string; shape: number[]; data: Float32Array }> {
    return this.vision.paramInfo().map((p) => ({ name: p.name, shape: p.shape, data: this.vision.getParam(p.name) }));
  }

  /** Replace the encoder's weights from a safetensors file holding its tensors (with or without the "model." prefix). */
  loadVisionWeights(file: string): void {
    loadVisionTensors(this.vision, readSafetensorsHeader(file), this.spec.visionNames);
  }

  /**
   * The decoder's inputs for a prompt encoded with these images' layouts: positions (M-RoPE
   * families: (3, N); others (1, N) = 0..N-1) and the rows that receive image features. featureRows
   * (EncodedPrompt.featureRows) is required where an image's prompt tokens are more than its
   * features (SmolVLM2's expansion); without it each image's features follow its start.
   */
  multimodalInputs(length: number, imageStarts: readonly number[], processed: readonly ImageLayout[], featureRows?: readonly number[]): { positions: Int32Array; injectRows: Int32Array } {
    if (imageStarts.length !== processed.length) throw new VlaError("DATA_INVALID", `the prompt has ${imageStarts.length} image slots for ${processed.length} images`);
    const positions = this.spec.positions ? this.spec.positions(length, imageStarts.map((start, i) => ({ start, layout: processed[i] as ImageLayout }))) : Int32Array.from({ length }, (_, i) => i);
    const want = processed.reduce((a, p) => a + p.tokens, 0);
    if (featureRows) {
      if (featureRows.length !== want) throw new VlaError("DATA_INVALID", `the prompt has ${featureRows.length} image tokens but its images give ${want} features`, "encode the prompt with the images' layouts (imageTokens and imageExpansions)");
      return { positions, injectRows: Int32Array.from(featureRows) };
    }
    if (processed.some((p) => p.expansion)) throw new VlaError("DATA_INVALID", `${this.family} images expand into more prompt tokens than features: pass the encoded prompt's featureRows`);
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

/** Every encoder tensor from a safetensors file, under one of its checkpoint names, mapped (not read into JavaScript). */
function loadVisionTensors(vision: VisionModel, h: SafetensorsHeader, names: (n: string) => string[]): void {
  const entries: Array<{ name: string; dtype: 0 | 1 | 2; offset: number }> = [];
  for (const p of vision.paramInfo()) {
    const name = names(p.name).find((c) => h.tensors.has(c));
    if (!name) throw new VlaError("FILE_INVALID", `${h.file}: vision tensor '${p.name}' is missing`, "the file must hold every tensor of the config's vision encoder");
    const e = h.tensors.get(name) as SafetensorsEntry;
    // a patch embedding is a convolution in the checkpoint ((C, 3, T, p, p) or (C, 3, p, p)) and a matrix (C, P) here
    const numel = (s: readonly number[]): number => s.reduce((a, b) => a * b, 1);
    if (e.shape[0] !== p.shape[0] || numel(e.shape) !== numel(p.shape)) throw new VlaError("FILE_INVALID", `${h.file}: vision tensor '${name}' has shape [${e.shape}] but the vision config implies [${p.shape}]`, "the weights do not match config.json's vision_config");
    entries.push({ name: p.name, dtype: e.dtype === "F32" ? 0 : e.dtype === "F16" ? 1 : 2, offset: h.dataStart + e.begin });
  }
  vision.params.loadSafetensors(h.file, entries);
}

/**
 * Load the language model of a Hugging Face directory through the registry: a
 * vision-language model (decoder + vision encoder) when its family has one, else a
 * decoder-only model; a family not in the registry is named with the supported ones.
 * `dispose` frees both.
 */
export function loadLanguageModel(dir: string, options: ModelOptions & { trainBase?: boolean; trainVision?: boolean } = {}): { model: DecoderModel; vlm: VlmModel | undefined; dispose: () => void } {
  const file = path.join(dir, "config.json");
  const json = readJsonFile(file, z.record(z.string(), z.unknown()), MODEL_CONFIG_FILE);
  const { family } = modelFamily(json, file);
  const { threads, trainVision, ...rest } = options;
  const opts = { ...rest, ...(threads && threads > 0 ? { threads } : {}) };
  if (family.vision) {
    const vlm = VlmModel.load(dir, { ...opts, ...(trainVision !== undefined ? { trainVision } : {}) });
    return { model: vlm.decoder, vlm, dispose: () => vlm.dispose() };
  }
  const model = DecoderModel.load(dir, opts);
  return { model, vlm: undefined, dispose: () => model.dispose() };
}
