/**
 * Image augmentation as VLA-0 trains: a random crop of 0.875 of each side
 * resized back (bilinear), then color jitter with torchvision's ColorJitter
 * semantics (brightness/contrast/saturation factors in [1-0.2, 1+0.2], hue
 * shift in [-0.05, 0.05] of a full turn, the four applied in a random order).
 * All randomness comes from a seeded Rng, so a seed replays the same images.
 *
 * Color math runs on float [0, 1] values clamped after every step (as
 * torchvision does) and rounds to uint8 once at the end.
 */
import { VlaError } from "../errors.js";
import type { RgbImage } from "./episode.js";
import { cropImage, resizeBilinear } from "./image.js";
import type { Rng } from "./rng.js";
import type { Sample } from "./samples.js";

export interface AugmentOptions {
  /** Crop side as a fraction of the image side (1 = no crop). */
  cropScale: number;
  brightness: number;
  contrast: number;
  saturation: number;
  /** Max hue shift, in turns (0.5 = 180 degrees). */
  hue: number;
}

export const VLA0_AUGMENT: Readonly<AugmentOptions> = { cropScale: 0.875, brightness: 0.2, contrast: 0.2, saturation: 0.2, hue: 0.05 };

export type JitterOp = "brightness" | "contrast" | "saturation" | "hue";

/** One draw of augmentation parameters; apply it to several frames to keep them consistent. */
export interface AugmentParams {
  crop: { x: number; y: number; w: number; h: number };
  brightness: number;
  contrast: number;
  saturation: number;
  hue: number;
  order: JitterOp[];
}

export function sampleAugmentParams(width: number, height: number, rng: Rng, opts: AugmentOptions = VLA0_AUGMENT): AugmentParams {
  if (!(opts.cropScale > 0 && opts.cropScale <= 1)) throw new VlaError("CONFIG_INVALID", `cropScale is ${opts.cropScale}`, "use a fraction in (0, 1]");
  if (!(opts.hue >= 0 && opts.hue <= 0.5)) throw new VlaError("CONFIG_INVALID", `hue jitter is ${opts.hue}`, "use a value in [0, 0.5]");
  const w = Math.max(1, Math.round(width * opts.cropScale));
  const h = Math.max(1, Math.round(height * opts.cropScale));
  const crop = { x: rng.int(width - w + 1), y: rng.int(height - h + 1), w, h };
  const factor = (j: number) => rng.uniform(Math.max(0, 1 - j), 1 + j);
  const brightness = factor(opts.brightness);
  const contrast = factor(opts.contrast);
  const saturation = factor(opts.saturation);
  const hue = rng.uniform(-opts.hue, opts.hue);
  const order = rng.shuffle<JitterOp>(["brightness", "contrast", "saturation", "hue"]);
  return { crop, brightness, contrast, saturation, hue, order };
}

function toFloat(img: RgbImage): Float32Array {
  return Float32Array.from(img.data, (v) => v / 255);
}

function toImage(width: number, height: number, f: Float32Array): RgbImage {
  return { width, height, data: Uint8Array.from(f, (v) => Math.round(Math.min(1, Math.max(0, v)) * 255)) };
}

const clamp01 = (v: number) => (v < 0 ? 0 : v > 1 ? 1 : v);
const gray = (r: number, g: number, b: number) => 0.2989 * r + 0.587 * g + 0.114 * b;

/** x * factor (in place). */
export function brightnessInPlace(px: Float32Array, factor: number): void {
  for (let i = 0; i < px.length; i++) px[i] = clamp01((px[i] as number) * factor);
}

/** Blend with the image's mean gray level (in place). */
export function contrastInPlace(px: Float32Array, factor: number): void {
  let sum = 0;
  for (let i = 0; i < px.length; i += 3) sum += gray(px[i] as number, px[i + 1] as number, px[i + 2] as number);
  const mean = sum / (px.length / 3);
  for (let i = 0; i < px.length; i++) px[i] = clamp01(factor * (px[i] as number) + (1 - factor) * mean);
}

/** Blend with each pixel's gray level (in place). */
export function saturationInPlace(px: Float32Array, factor: number): void {
  for (let i = 0; i < px.length; i += 3) {
    const g = gray(px[i] as number, px[i + 1] as number, px[i + 2] as number);
    for (let c = 0; c < 3; c++) px[i + c] = clamp01(factor * (px[i + c] as number) + (1 - factor) * g);
  }
}

/** Rotate hue by `shift` turns through HSV (torchvision's _rgb2hsv/_hsv2rgb), in place. */
export function hueInPlace(px: Float32Array, shift: number): void {
  for (let i = 0; i < px.length; i += 3) {
    const r = px[i] as number;
    const g = px[i + 1] as number;
    const b = px[i + 2] as number;
    const max = Math.max(r, g, b);
    const min = Math.min(r, g, b);
    const cr = max - min;
    const v = max;
    const s = max === 0 ? 0 : cr / max;
    let h = 0;
    if (cr > 0) {
      if (max === r) h = ((g - b) / cr) % 6;
      else if (max === g) h = (b - r) / cr + 2;
      else h = (r - g) / cr + 4;
      h /= 6;
    }
    h = (((h + shift) % 1) + 1) % 1;
    const h6 = h * 6;
    const k = Math.floor(h6) % 6;
    const f = h6 - Math.floor(h6);
    const p = v * (1 - s);
    const q = v * (1 - s * f);
    const u = v * (1 - s * (1 - f));
    const rgb = [
      [v, u, p],
      [q, v, p],
      [p, v, u],
      [p, q, v],
      [u, p, v],
      [v, p, q],
    ][k] as number[];
    px[i] = clamp01(rgb[0] as number);
    px[i + 1] = clamp01(rgb[1] as number);
    px[i + 2] = clamp01(rgb[2] as number);
  }
}

/** Color jitter only (no crop). */
export function colorJitter(img: RgbImage, p: Pick<AugmentParams, "brightness" | "contrast" | "saturation" | "hue" | "order">): RgbImage {
  const px = toFloat(img);
  for (const op of p.order) {
    if (op === "brightness") brightnessInPlace(px, p.brightness);
    else if (op === "contrast") contrastInPlace(px, p.contrast);
    else if (op === "saturation") saturationInPlace(px, p.saturation);
    else hueInPlace(px, p.hue);
  }
  return toImage(img.width, img.height, px);
}

/** Crop, resize back to the input size, then jitter colors. */
export function applyAugment(img: RgbImage, p: AugmentParams): RgbImage {
  const c = p.crop;
  const cropped = c.w === img.width && c.h === img.height ? img : resizeBilinear(cropImage(img, c.x, c.y, c.w, c.h), img.width, img.height);
  return colorJitter(cropped, p);
}

export function augmentImage(img: RgbImage, rng: Rng, opts: AugmentOptions = VLA0_AUGMENT): RgbImage {
  return applyAugment(img, sampleAugmentParams(img.width, img.height, rng, opts));
}

/**
 * Augment every camera of a sample: one parameter draw per camera, shared by
 * that camera's history frames so they stay consistent with each other.
 */
export function augmentSample(sample: Sample, rng: Rng, opts: AugmentOptions = VLA0_AUGMENT): Sample {
  const images: Record<string, RgbImage[]> = {};
  for (const [name, frames] of Object.entries(sample.images)) {
    const first = frames[0];
    if (!first) {
      images[name] = [];
      continue;
    }
    const p = sampleAugmentParams(first.width, first.height, rng, opts);
    images[name] = frames.map((f) => applyAugment(f, p));
  }
  return { ...sample, images };
}
