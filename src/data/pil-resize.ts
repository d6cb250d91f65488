/**
 * Pillow's `Image.resize(size, Image.BICUBIC)` and `Image.LANCZOS` on 8-bit RGB, reproduced
 * bit for bit: the resizes Qwen2.5-VL's (bicubic) and SmolVLM2's (Lanczos) image processors
 * apply (PIL backends, the ones VLA-0 and its SmolVLM2 port used).
 *
 * Pillow resamples separably, horizontal pass first, then vertical, each pass
 * rounding to 8 bits:
 * - per output pixel, the input window is centre +- support, with
 *   centre = (x + 0.5) * scale and support = filter support (2 bicubic, 3 Lanczos)
 *   * max(1, scale): downscaling widens the filter, so it antialiases;
 * - the weights are the filter (cubic convolution with a = -0.5, or Lanczos:
 *   sinc(x) sinc(x / 3) on [-3, 3)), evaluated at (i - centre + 0.5) / max(1, scale)
 *   and normalized to sum 1;
 * - weights become fixed point with 22 fractional bits (rounded half away from
 *   zero), the sum starts at half of one unit, and the result is the sum shifted
 *   right by 22 bits, clamped to 0..255.
 * A dimension whose size does not change is not resampled (no rounding pass).
 * The arithmetic below is the same double-precision arithmetic in the same
 * order, so the bytes match; test/vision/hf-goldens.test.ts checks it against
 * transformers' processor output.
 */
import type { RgbImage } from "./episode.js";
import { makeImage } from "./image.js";
import { VlaError } from "../errors.js";

const PRECISION_BITS = 22;
const ONE = 2 ** PRECISION_BITS;

/** Cubic convolution kernel, a = -0.5 (support 2). */
function bicubic(x: number): number {
  const a = -0.5;
  const t = Math.abs(x);
  if (t < 1) return ((a + 2) * t - (a + 3)) * t * t + 1;
  if (t < 2) return (((t - 5) * t + 8) * t - 4) * a;
  return 0;
}

/** Pillow's sinc and three-lobed Lanczos filter (support 3). */
function sinc(x: number): number {
  if (x === 0) return 1;
  const px = x * Math.PI;
  return Math.sin(px) / px;
}
function lanczos(x: number): number {
  return x >= -3 && x < 3 ? sinc(x) * sinc(x / 3) : 0;
}

interface Filter {
  support: number;
  fn: (x: number) => number;
}
const BICUBIC: Filter = { support: 2, fn: bicubic };
const LANCZOS: Filter = { support: 3, fn: lanczos };

interface Coefficients {
  /** Per output index: first input index and number of taps. */
  start: Int32Array;
  taps: Int32Array;
  /** (outSize, ksize) fixed-point weights. */
  weights: Int32Array;
  ksize: number;
}

/** Fixed-point weights of one resampling pass from inSize to outSize samples. */
function coefficients(inSize: number, outSize: number, filter: Filter): Coefficients {
  const scale = inSize / outSize;
  const filterScale = Math.max(1, scale);
  const support = filter.support * filterScale;
  const ksize = Math.ceil(support) * 2 + 1;
  const start = new Int32Array(outSize);
  const taps = new Int32Array(outSize);
  const weights = new Int32Array(outSize * ksize);
  const w = new Float64Array(ksize);
  for (let o = 0; o < outSize; o++) {
    const centre = (o + 0.5) * scale;
    const inv = 1 / filterScale;
    const lo = Math.max(0, Math.trunc(centre - support + 0.5));
    const hi = Math.min(inSize, Math.trunc(centre + support + 0.5));
    const n = hi - lo;
    let sum = 0;
    for (let i = 0; i < n; i++) {
      w[i] = filter.fn((i + lo - centre + 0.5) * inv);
      sum += w[i] as number;
    }
    for (let i = 0; i < n; i++) {
      const v = sum !== 0 ? (w[i] as number) / sum : (w[i] as number);
      weights[o * ksize + i] = v < 0 ? Math.trunc(-0.5 + v * ONE) : Math.trunc(0.5 + v * ONE);
    }
    start[o] = lo;
    taps[o] = n;
  }
  return { start, taps, weights, ksize };
}

/** Fixed-point sum back to a byte: arithmetic shift right by 22 bits, clamped. */
function clip8(acc: number): number {
  const v = Math.floor(acc / ONE);
  return v < 0 ? 0 : v > 255 ? 255 : v;
}

/** One pass along x (rows stay) from src to a (outWidth, src.height) image. */
function horizontal(src: RgbImage, outWidth: number, filter: Filter): RgbImage {
  const c = coefficients(src.width, outWidth, filter);
  const out = makeImage(outWidth, src.height);
  for (let y = 0; y < src.height; y++) {
    const row = y * src.width * 3;
    for (let x = 0; x < outWidth; x++) {
      const k = x * c.ksize;
      const s = c.start[x] as number;
      const n = c.taps[x] as number;
      for (let ch = 0; ch < 3; ch++) {
        let acc = ONE / 2;
        for (let i = 0; i < n; i++) acc += (src.data[row + (s + i) * 3 + ch] as number) * (c.weights[k + i] as number);
        out.data[(y * outWidth + x) * 3 + ch] = clip8(acc);
      }
    }
  }
  return out;
}

/** One pass along y (columns stay) from src to a (src.width, outHeight) image. */
function vertical(src: RgbImage, outHeight: number, filter: Filter): RgbImage {
  const c = coefficients(src.height, outHeight, filter);
  const W = src.width;
  const out = makeImage(W, outHeight);
  for (let y = 0; y < outHeight; y++) {
    const k = y * c.ksize;
    const s = c.start[y] as number;
    const n = c.taps[y] as number;
    for (let x = 0; x < W; x++) {
      for (let ch = 0; ch < 3; ch++) {
        let acc = ONE / 2;
        for (let i = 0; i < n; i++) acc += (src.data[((s + i) * W + x) * 3 + ch] as number) * (c.weights[k + i] as number);
        out.data[(y * W + x) * 3 + ch] = clip8(acc);
      }
    }
  }
  return out;
}

function resizePil(src: RgbImage, width: number, height: number, filter: Filter): RgbImage {
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1) {
    throw new VlaError("DATA_INVALID", `cannot resize to ${width}x${height}`, "width and height must be positive integers");
  }
  let img = src;
  if (width !== src.width) img = horizontal(img, width, filter);
  if (height !== src.height) img = vertical(img, height, filter);
  return img === src ? { width, height, data: src.data.slice() } : img;
}

/** Pillow's BICUBIC resize of an 8-bit RGB image to (width, height). */
export function resizeBicubicPil(src: RgbImage, width: number, height: number): RgbImage {
  return resizePil(src, width, height, BICUBIC);
}

/** Pillow's LANCZOS resize of an 8-bit RGB image to (width, height). */
export function resizeLanczosPil(src: RgbImage, width: number, height: number): RgbImage {
  return resizePil(src, width, height, LANCZOS);
}
