/**
 * Qwen2.5-VL's image preprocessing (transformers' Qwen2VLImageProcessor), step by step:
 * smart resize to multiples of patch*merge (28) within [minPixels, maxPixels], rescale
 * to [0, 1], normalize with the processor's mean/std, duplicate the frame to the
 * temporal patch size (2), and flatten 14x14 patches in the processor's order:
 *   (t, T, C, h/m, m, p, w/m, m, p) -> transpose (t, h/m, w/m, m, m, C, T, p, p)
 *   -> (t*h*w, C*T*p*p)
 * so that each 2x2 group of patches the merger fuses is contiguous.
 *
 * The resize is Pillow's bicubic, bit for bit (src/data/pil-resize.ts), as the
 * processor's PIL backend does it; it is a parameter so callers can swap it.
 */
import type { RgbImage } from "../data/episode.js";
import { resizeBicubicPil } from "../data/pil-resize.js";
import { roundHalfEven } from "../actions/normalize.js";
import { z } from "zod";
import { VlaError, formatZodIssues } from "../errors.js";

export interface VisionProcessorConfig {
  patchSize: number;
  temporalPatchSize: number;
  mergeSize: number;
  minPixels: number;
  maxPixels: number;
  mean: [number, number, number];
  std: [number, number, number];
}

/** Qwen2.5-VL-3B-Instruct's preprocessor_config.json. */
export const QWEN25VL_PROCESSOR: VisionProcessorConfig = {
  patchSize: 14,
  temporalPatchSize: 2,
  mergeSize: 2,
  minPixels: 3136,
  maxPixels: 12845056,
  mean: [0.48145466, 0.4578275, 0.40821073],
  std: [0.26862954, 0.26130258, 0.27577711],
};

const PreprocessorJson = z
  .object({
    patch_size: z.number().int().min(1).optional(),
    temporal_patch_size: z.number().int().min(1).optional(),
    merge_size: z.number().int().min(1).optional(),
    min_pixels: z.number().int().min(1).optional(),
    max_pixels: z.number().int().min(1).optional(),
    /** transformers 5.x writes the pixel bounds here */
    size: z.object({ shortest_edge: z.number().int().min(1).optional(), longest_edge: z.number().int().min(1).optional() }).passthrough().optional(),
    image_mean: z.tuple([z.number(), z.number(), z.number()]).optional(),
    image_std: z.tuple([z.number(), z.number(), z.number()]).optional(),
  })
  .passthrough();

/**
 * The processor of a model directory: its preprocessor_config.json (transformers 4.x
 * or 5.x keys) when given, over the vision config's patch, temporal patch and merge
 * sizes, over Qwen2.5-VL's defaults. A preprocessor whose patch or merge size differs
 * from the vision config's is an error (the tower would get the wrong patches).
 */
export function processorConfigFor(vision: { patchSize: number; temporalPatchSize: number; mergeSize: number }, preprocessorJson?: unknown, where = "preprocessor_config.json"): VisionProcessorConfig {
  const cfg: VisionProcessorConfig = { ...QWEN25VL_PROCESSOR, patchSize: vision.patchSize, temporalPatchSize: vision.temporalPatchSize, mergeSize: vision.mergeSize };
  if (preprocessorJson === undefined) return cfg;
  const r = PreprocessorJson.safeParse(preprocessorJson);
  if (!r.success) throw new VlaError("CONFIG_INVALID", `${where}:\n${formatZodIssues(r.error.issues)}`, "fix or remove the named keys");
  const j = r.data;
  const check = (key: string, got: number | undefined, want: number) => {
    if (got !== undefined && got !== want) throw new VlaError("CONFIG_INVALID", `${where}: ${key} is ${got} but the vision config says ${want}`, "make the preprocessor and the model's vision_config agree");
  };
  check("patch_size", j.patch_size, vision.patchSize);
  check("temporal_patch_size", j.temporal_patch_size, vision.temporalPatchSize);
  check("merge_size", j.merge_size, vision.mergeSize);
  const minPixels = j.min_pixels ?? j.size?.shortest_edge ?? cfg.minPixels;
  const maxPixels = j.max_pixels ?? j.size?.longest_edge ?? cfg.maxPixels;
  if (minPixels > maxPixels) throw new VlaError("CONFIG_INVALID", `${where}: min_pixels ${minPixels} is above max_pixels ${maxPixels}`);
  return { ...cfg, minPixels, maxPixels, mean: j.image_mean ?? cfg.mean, std: j.image_std ?? cfg.std };
}

/** transformers' smart_resize: dimensions divisible by `factor`, area within [minPixels, maxPixels], aspect kept. */
export function smartResize(height: number, width: number, factor: number, minPixels: number, maxPixels: number): { height: number; width: number } {
  if (Math.max(height, width) / Math.min(height, width) > 200) {
    throw new VlaError("DATA_INVALID", `image aspect ratio ${Math.max(height, width) / Math.min(height, width)} is over 200`, "crop the image closer to square");
  }
  let h = Math.max(factor, roundHalfEven(height / factor) * factor);
  let w = Math.max(factor, roundHalfEven(width / factor) * factor);
  if (h * w > maxPixels) {
    const beta = Math.sqrt((height * width) / maxPixels);
    h = Math.max(factor, Math.floor(height / beta / factor) * factor);
    w = Math.max(factor, Math.floor(width / beta / factor) * factor);
  } else if (h * w < minPixels) {
    const beta = Math.sqrt(minPixels / (height * width));
    h = Math.ceil((height * beta) / factor) * factor;
    w = Math.ceil((width * beta) / factor) * factor;
  }
  return { height: h, width: w };
}

/** One piece of an image's prompt tokens: a special token, text (tokenized plainly), or `image` copies of the image token. */
export type ImagePiece = { special: string } | { text: string } | { image: number };

export interface ProcessedImage {
  /** (patches, patchDim): Qwen2.5-VL (gridT * gridH * gridW, C * T * p * p); SmolVLM2 every tile's (S, 3 * p * p) in order */
  pixels: Float32Array;
  /** The patch grid (t, h, w) of the image (Qwen2.5-VL) or of its first tile (SmolVLM2). */
  grid: { t: number; h: number; w: number };
  /** Every tile's grid, in order, when an image is several tiles (SmolVLM2's splitting); absent: [grid]. */
  grids?: ReadonlyArray<{ t: number; h: number; w: number }>;
  /** Feature rows the vision encoder gives (image tokens the prompt carries): Qwen2.5-VL gridT * gridH * gridW / mergeSize^2. */
  tokens: number;
  /**
   * The image's prompt tokens when they are more than `tokens` copies of the image token
   * (SmolVLM2: wrappers, tile positions, newlines); the feature rows are the image-token pieces.
   */
  expansion?: readonly ImagePiece[];
  patchDim: number;
}

export type Resizer = (img: RgbImage, width: number, height: number) => RgbImage;

/** Where an image's tokens go, without its pixels: the patch grid(s), the feature count and the prompt pieces. */
export type ImageLayout = Pick<ProcessedImage, "grid" | "grids" | "tokens" | "expansion">;

/** A family's image preprocessing, as the model and the policy use it. */
export interface ImageProcessor {
  readonly family: string;
  /** Pixels a patch side. */
  readonly patchSize: number;
  preprocess(img: RgbImage): ProcessedImage;
  layout(height: number, width: number): ImageLayout;
}

/** Every tile grid of a processed image (or layout), in order. */
export function imageGrids(p: Pick<ImageLayout, "grid" | "grids">): ReadonlyArray<{ t: number; h: number; w: number }> {
  return p.grids ?? [p.grid];
}

/** Qwen2.5-VL's processor as an ImageProcessor (smart resize, bicubic, merge-group patch order). */
export function qwen25vlImageProcessor(cfg: VisionProcessorConfig): ImageProcessor {
  return { family: "qwen2_5_vl", patchSize: cfg.patchSize, preprocess: (img) => preprocessImage(img, cfg), layout: (h, w) => imageLayout(h, w, cfg) };
}

export function imageLayout(height: number, width: number, cfg: VisionProcessorConfig = QWEN25VL_PROCESSOR): ImageLayout & { height: number; width: number } {
  const size = smartResize(height, width, cfg.patchSize * cfg.mergeSize, cfg.minPixels, cfg.maxPixels);
  const gh = size.height / cfg.patchSize;
  const gw = size.width / cfg.patchSize;
  return { grid: { t: 1, h: gh, w: gw }, tokens: (gh * gw) / (cfg.mergeSize * cfg.mergeSize), height: size.height, width: size.width };
}

/** Preprocess one image; `resize` defaults to Pillow's bicubic (see the module comment). */
export function preprocessImage(img: RgbImage, cfg: VisionProcessorConfig = QWEN25VL_PROCESSOR, resize: Resizer = resizeBicubicPil): ProcessedImage {
  const p = cfg.patchSize;
  const m = cfg.mergeSize;
  const T = cfg.temporalPatchSize;
  const layout = imageLayout(img.height, img.width, cfg);
  const H = layout.height;
  const W = layout.width;
  const r = W === img.width && H === img.height ? img : resize(img, W, H);
  const gh = layout.grid.h;
  const gw = layout.grid.w;
  const C = 3;
  const patchDim = C * T * p * p;
  const pixels = new Float32Array(gh * gw * patchDim);
  // normalized value of byte v in channel c: a table, the same arithmetic as per pixel
  const lut = new Float32Array(C * 256);
  for (let c = 0; c < C; c++) for (let v = 0; v < 256; v++) lut[c * 256 + v] = (v / 255 - (cfg.mean[c] as number)) / (cfg.std[c] as number);
  const src = r.data;
  let o = 0;
  for (let bh = 0; bh < gh / m; bh++)
    for (let bw = 0; bw < gw / m; bw++)
      for (let mh = 0; mh < m; mh++)
        for (let mw = 0; mw < m; mw++)
          for (let c = 0; c < C; c++) {
            const first = o;
            for (let py = 0; py < p; py++) {
              const y = (bh * m + mh) * p + py;
              let i = (y * W + (bw * m + mw) * p) * 3 + c;
              for (let px = 0; px < p; px++, i += 3) pixels[o++] = lut[c * 256 + (src[i] as number)] as number;
            }
            // the single frame, repeated T times
            for (let t = 1; t < T; t++, o += p * p) pixels.copyWithin(o, first, first + p * p);
          }
  return { pixels, grid: layout.grid, tokens: layout.tokens, patchDim };
}
