/**
 * What a vision-language family tells the engine about a model directory: how its
 * config.json becomes a decoder config, a vision encoder config and an image processor,
 * where its tensors are in the checkpoint, and how a prompt's positions are laid out.
 * One file per family (qwen25vl.ts, smolvlm.ts), one row each in ../families.ts.
 */
import type { ImageLayout, ImageProcessor } from "../../vision/processor.js";
import type { NativeVisionConfig } from "../addon.js";
import type { DecoderModelConfig } from "../config.js";

export interface VlmSpec {
  decoder: DecoderModelConfig;
  vision: NativeVisionConfig;
  processor: ImageProcessor;
  /** Where a decoder tensor (engine name "model.layers.0...", "lm_head.weight") may be in the checkpoint, in order. */
  decoderNames: (name: string) => string[];
  /** Where a vision tensor (engine name, e.g. "visual.blocks.0...") may be in the checkpoint, in order. */
  visionNames: (name: string) => string[];
  /** The vision tensor whose stored dtype decides "auto" (the patch embedding). */
  visionProbe: string;
  imageTokenId: number | undefined;
  /** DeepStack layers (Qwen3-VL): the encoder's extra feature blocks the decoder adds after its first K layers; absent: 0. */
  deepstackLayers?: number;
  /** Multimodal rotary positions (S, N) for a prompt (M-RoPE families); absent: 1D positions 0..N-1. */
  positions?: (length: number, images: ReadonlyArray<{ start: number; layout: ImageLayout }>) => Int32Array;
}

/** A family's parser: config.json (validated record), the directory (for preprocessor_config.json), file name for errors. */
export type VlmParser = (json: Record<string, unknown>, dir: string, file: string) => VlmSpec;
