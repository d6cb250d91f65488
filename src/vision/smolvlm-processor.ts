/**
 * SmolVLM2's image preprocessing (transformers' SmolVLMImageProcessorPil, the Idefics3
 * family), step by step:
 *   1. resize so the longest edge is `size.longest_edge` (the other edge rounded down,
 *      then up to even), within 4096 px;
 *   2. with image splitting: resize up to multiples of the tile size
 *      (`max_image_size.longest_edge`), cut into rows x cols tiles (row-major), and add the
 *      whole image resized to one tile as the global image (an image that is already one
 *      tile is just that tile: rows = cols = 0); without splitting: resize to one tile;
 *   3. rescale to [0, 1] and normalize with the processor's mean / std (0.5, 0.5);
 *   4. flatten each tile into patches, row-major, each patch (3, p, p) channel-major as
 *      the patch-embedding convolution reads it.
 * Every resize is Pillow's (Lanczos by default, `resample` 1; bicubic 3), each rounding to
 * 8 bits, bit for bit (src/data/pil-resize.ts).
 *
 * The prompt: transformers' processor replaces the chat template's `<image>` with
 *   per tile   <fake_token_around_image><row_r_col_c><image>*seq   ("\n" after each row)
 *   then       "\n"<fake_token_around_image><global-img><image>*seq<fake_token_around_image>
 * (only the global part when rows = cols = 0), seq = (image_size / patch)^2 / scale^2:
 * `expansion` below, in the same pieces.
 */
import { z } from "zod";
import type { RgbImage } from "../data/episode.js";
import { resizeBicubicPil, resizeLanczosPil } from "../data/pil-resize.js";
import { VlaError, formatZodIssues } from "../errors.js";
import type { ImageLayout, ImagePiece, ImageProcessor, ProcessedImage } from "./processor.js";

export interface SmolVlmProcessorConfig {
  /** size.longest_edge: the first resize's longest edge. */
  longestEdge: number;
  /** max_image_size.longest_edge: the tile side (the vision encoder's image_size). */
  tileSize: number;
  split: boolean;
  resample: "lanczos" | "bicubic";
  mean: [number, number, number];
  std: [number, number, number];
  patchSize: number;
  scaleFactor: number;
}

/** SmolVLM2-256M/500M-Video-Instruct's preprocessor_config.json (patch 16, scale 4). */
export const SMOLVLM2_PROCESSOR: SmolVlmProcessorConfig = { longestEdge: 2048, tileSize: 512, split: true, resample: "lanczos", mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5], patchSize: 16, scaleFactor: 4 };

const MAX_IMAGE_SIZE = 4096;

const PreprocessorJson = z
  .object({
    size: z.object({ longest_edge: z.number().int().min(1) }).passthrough().optional(),
    max_image_size: z.object({ longest_edge: z.number().int().min(1) }).passthrough().optional(),
    do_image_splitting: z.boolean().optional(),
    do_resize: z.boolean().optional(),
    resample: z.number().int().optional(),
    image_mean: z.tuple([z.number(), z.number(), z.number()]).optional(),
    image_std: z.tuple([z.number(), z.number(), z.number()]).optional(),
  })
  .passthrough();

/**
 * The processor of a SmolVLM2 directory: its preprocessor_config.json over SmolVLM2's
 * defaults, checked against the vision config (the tile must be the encoder's image_size).
 */
export function smolVlmProcessorConfig(vision: { imageSize: number; patchSize: number; scaleFactor: number }, preprocessorJson?: unknown, where = "preprocessor_config.json"): SmolVlmProcessorConfig {
  let cfg: SmolVlmProcessorConfig = { ...SMOLVLM2_PROCESSOR, tileSize: vision.imageSize, longestEdge: Math.max(vision.imageSize, Math.min(SMOLVLM2_PROCESSOR.longestEdge, 4 * vision.imageSize)), patchSize: vision.patchSize, scaleFactor: vision.scaleFactor };
  if (preprocessorJson !== undefined) {
    const r = PreprocessorJson.safeParse(preprocessorJson);
    if (!r.success) throw new VlaError("CONFIG_INVALID", `${where}:\n${formatZodIssues(r.error.issues)}`, "fix or remove the named keys");
    const j = r.data;
    if (j.do_resize === false) throw new VlaError("CONFIG_INVALID", `${where}: do_resize false is not supported`, "SmolVLM2's processor resizes every image; set do_resize to true");
    const resample = j.resample ?? 1;
    if (resample !== 1 && resample !== 3) throw new VlaError("CONFIG_INVALID", `${where}: resample ${resample} is not supported`, "supported: 1 (LANCZOS, SmolVLM2's), 3 (BICUBIC)");
    cfg = {
      ...cfg,
      longestEdge: j.size?.longest_edge ?? cfg.longestEdge,
      tileSize: j.max_image_size?.longest_edge ?? cfg.tileSize,
      split: j.do_image_splitting ?? cfg.split,
      resample: resample === 1 ? "lanczos" : "bicubic",
      mean: j.image_mean ?? cfg.mean,
      std: j.image_std ?? cfg.std,
    };
  }
  if (cfg.tileSize !== vision.imageSize) {
    throw new VlaError("CONFIG_INVALID", `${where}: max_image_size.longest_edge is ${cfg.tileSize} but the vision config's image_size is ${vision.imageSize}`, "make the preprocessor's tile size and vision_config.image_size agree");
  }
  return cfg;
}

/** transformers' _resize_output_size_rescale_to_max_len then _scale_below_upper_bound (Python int() truncates). */
function firstResize(height: number, width: number, maxLen: number): { height: number; width: number } {
  let h = height;
  let w = width;
  const aspect = w / h;
  if (w >= h) {
    w = maxLen;
    h = Math.trunc(w / aspect);
    if (h % 2 !== 0) h += 1;
  } else {
    h = maxLen;
    w = Math.trunc(h * aspect);
    if (w % 2 !== 0) w += 1;
  }
  h = Math.max(h, 1);
  w = Math.max(w, 1);
  const a2 = w / h;
  if (w >= h && w > MAX_IMAGE_SIZE) {
    w = MAX_IMAGE_SIZE;
    h = Math.trunc(w / a2);
  } else if (h > w && h > MAX_IMAGE_SIZE) {
    h = MAX_IMAGE_SIZE;
    w = Math.trunc(h * a2);
  }
  return { height: Math.max(h, 1), width: Math.max(w, 1) };
}

/** transformers' resize_for_vision_encoder: both sides up to multiples of the tile. */
function tileResize(height: number, width: number, tile: number): { height: number; width: number } {
  const aspect = width / height;
  if (width >= height) {
    const w = Math.ceil(width / tile) * tile;
    return { width: w, height: Math.ceil(Math.trunc(w / aspect) / tile) * tile };
  }
  const h = Math.ceil(height / tile) * tile;
  return { height: h, width: Math.ceil(Math.trunc(h * aspect) / tile) * tile };
}

/** The tile grid (rows, cols: 0 for a single global image) and the resized size, without pixels. */
function plan(height: number, width: number, cfg: SmolVlmProcessorConfig): { first: { height: number; width: number }; split: { height: number; width: number } | undefined; rows: number; cols: number } {
  const first = firstResize(height, width, cfg.longestEdge);
  if (!cfg.split) return { first, split: undefined, rows: 0, cols: 0 };
  const split = tileResize(first.height, first.width, cfg.tileSize);
  if (split.height <= cfg.tileSize && split.width <= cfg.tileSize) return { first, split, rows: 0, cols: 0 };
  return { first, split, rows: Math.floor((split.height - cfg.tileSize) / cfg.tileSize) + 1, cols: Math.floor((split.width - cfg.tileSize) / cfg.tileSize) + 1 };
}

/** Features per tile: (image_size / patch)^2 / scale^2. */
export function smolVlmTileTokens(cfg: SmolVlmProcessorConfig): number {
  const side = cfg.tileSize / cfg.patchSize;
  return (side * side) / (cfg.scaleFactor * cfg.scaleFactor);
}

/** The prompt pieces of one image (transformers' get_image_prompt_string). */
export function smolVlmExpansion(rows: number, cols: number, seq: number): ImagePiece[] {
  const out: ImagePiece[] = [];
  if (rows > 0 || cols > 0) {
    for (let r = 1; r <= rows; r++) {
      for (let c = 1; c <= cols; c++) out.push({ special: "<fake_token_around_image>" }, { special: `<row_${r}_col_${c}>` }, { image: seq });
      out.push({ text: "\n" });
    }
    out.push({ text: "\n" });
  }
  out.push({ special: "<fake_token_around_image>" }, { special: "<global-img>" }, { image: seq }, { special: "<fake_token_around_image>" });
  // adjacent text pieces are one run, as the processor's string is tokenized
  const merged: ImagePiece[] = [];
  for (const p of out) {
    const last = merged[merged.length - 1];
    if ("text" in p && last && "text" in last) merged[merged.length - 1] = { text: last.text + p.text };
    else merged.push(p);
  }
  return merged;
}

function layoutOf(rows: number, cols: number, cfg: SmolVlmProcessorConfig): ImageLayout {
  const tiles = rows * cols + 1;
  const side = cfg.tileSize / cfg.patchSize;
  const seq = smolVlmTileTokens(cfg);
  const grid = { t: 1, h: side, w: side };
  return { grid, grids: Array.from({ length: tiles }, () => grid), tokens: tiles * seq, expansion: smolVlmExpansion(rows, cols, seq) };
}

export function smolVlmLayout(height: number, width: number, cfg: SmolVlmProcessorConfig): ImageLayout {
  const p = plan(height, width, cfg);
  return layoutOf(p.rows, p.cols, cfg);
}

function crop(img: RgbImage, y0: number, x0: number, size: number): RgbImage {
  const data = new Uint8Array(size * size * 3);
  for (let y = 0; y < size; y++) data.set(img.data.subarray(((y0 + y) * img.width + x0) * 3, ((y0 + y) * img.width + x0 + size) * 3), y * size * 3);
  return { width: size, height: size, data };
}

/** Preprocess one image: every tile's patches, tiles in the processor's order (global image last). */
export function preprocessSmolVlm(img: RgbImage, cfg: SmolVlmProcessorConfig): ProcessedImage {
  const resize = cfg.resample === "lanczos" ? resizeLanczosPil : resizeBicubicPil;
  const sized = (src: RgbImage, w: number, h: number): RgbImage => (src.width === w && src.height === h ? src : resize(src, w, h));
  const p = plan(img.height, img.width, cfg);
  const T = cfg.tileSize;
  let tiles: RgbImage[];
  const first = sized(img, p.first.width, p.first.height);
  if (!p.split) tiles = [sized(first, T, T)];
  else {
    const big = sized(first, p.split.width, p.split.height);
    if (p.rows === 0) tiles = [big];
    else {
      tiles = [];
      for (let r = 0; r < p.rows; r++) for (let c = 0; c < p.cols; c++) tiles.push(crop(big, r * T, c * T, T));
      tiles.push(sized(big, T, T));
    }
  }
  const ps = cfg.patchSize;
  const side = T / ps;
  const patchDim = 3 * ps * ps;
  const pixels = new Float32Array(tiles.length * side * side * patchDim);
  const lut = new Float32Array(3 * 256);
  for (let c = 0; c < 3; c++) for (let v = 0; v < 256; v++) lut[c * 256 + v] = (v / 255 - (cfg.mean[c] as number)) / (cfg.std[c] as number);
  let o = 0;
  for (const t of tiles) {
    for (let gy = 0; gy < side; gy++)
      for (let gx = 0; gx < side; gx++)
        for (let c = 0; c < 3; c++)
          for (let py = 0; py < ps; py++) {
            let i = ((gy * ps + py) * T + gx * ps) * 3 + c;
            for (let px = 0; px < ps; px++, i += 3) pixels[o++] = lut[c * 256 + (t.data[i] as number)] as number;
          }
  }
  return { pixels, patchDim, ...layoutOf(p.rows, p.cols, cfg) };
}

export function smolVlmImageProcessor(cfg: SmolVlmProcessorConfig): ImageProcessor {
  return { family: "smolvlm", patchSize: cfg.patchSize, preprocess: (img) => preprocessSmolVlm(img, cfg), layout: (h, w) => smolVlmLayout(h, w, cfg) };
}
