/**
 * RGB8 image helpers: PNG/JPEG decode and PNG encode (pngjs, jpeg-js),
 * bilinear resize, crop and side-by-side tiling. Images are (height, width, 3)
 * uint8 row-major, the `RgbImage` of src/data/episode.ts.
 */
import jpeg from "jpeg-js";
import { PNG } from "pngjs";
import { VlaError } from "../errors.js";
import type { RgbImage } from "./episode.js";

export function makeImage(width: number, height: number): RgbImage {
  return { width, height, data: new Uint8Array(width * height * 3) };
}

/** Check the buffer size against the declared shape; `what` names the image in the error. */
export function checkImage(img: RgbImage, what: string): void {
  if (!Number.isInteger(img.width) || !Number.isInteger(img.height) || img.width < 1 || img.height < 1) {
    throw new VlaError("DATA_INVALID", `${what} has size ${img.width}x${img.height}`, "images need positive integer width and height");
  }
  if (img.data.length !== img.width * img.height * 3) {
    throw new VlaError("DATA_INVALID", `${what} is ${img.width}x${img.height} but holds ${img.data.length} bytes, expected ${img.width * img.height * 3}`, "pass (height, width, 3) uint8 RGB data");
  }
}

const PNG_MAGIC = [0x89, 0x50, 0x4e, 0x47];

const JPEG_SOF = new Set([0xc0, 0xc1, 0xc2, 0xc3, 0xc5, 0xc6, 0xc7, 0xc9, 0xca, 0xcb, 0xcd, 0xce, 0xcf]);

/**
 * Format and size from a PNG's IHDR chunk or a JPEG's frame header, without decoding
 * anything (a tiny file can declare a huge image). undefined: not PNG/JPEG, or no header.
 */
export function imageHeader(bytes: Uint8Array): { format: "png" | "jpeg"; width: number; height: number } | undefined {
  const u32 = (o: number) => (((bytes[o] as number) << 24) | ((bytes[o + 1] as number) << 16) | ((bytes[o + 2] as number) << 8) | (bytes[o + 3] as number)) >>> 0;
  const u16 = (o: number) => ((bytes[o] as number) << 8) | (bytes[o + 1] as number);
  if (PNG_MAGIC.every((b, i) => bytes[i] === b)) {
    // signature (8), then the IHDR chunk: length (4), "IHDR", width (4), height (4)
    if (bytes.length < 24 || String.fromCharCode(...bytes.subarray(12, 16)) !== "IHDR") return undefined;
    return { format: "png", width: u32(16), height: u32(20) };
  }
  if (bytes[0] !== 0xff || bytes[1] !== 0xd8) return undefined;
  let o = 2;
  while (o + 4 <= bytes.length) {
    if (bytes[o] !== 0xff) return undefined;
    const marker = bytes[o + 1] as number;
    if (marker === 0xff) {
      o++; // fill byte
      continue;
    }
    if (marker === 0x01 || (marker >= 0xd0 && marker <= 0xd7)) {
      o += 2; // no length
      continue;
    }
    if (marker === 0xda || marker === 0xd9) return undefined; // scan data or the end before any frame header
    const len = u16(o + 2);
    if (JPEG_SOF.has(marker)) return o + 9 <= bytes.length ? { format: "jpeg", height: u16(o + 5), width: u16(o + 7) } : undefined;
    if (len < 2) return undefined;
    o += 2 + len;
  }
  return undefined;
}

/**
 * Decode PNG or JPEG bytes (detected by magic number) to RGB8; alpha is dropped.
 * maxPixels: refuse (from the header, before decoding) an image with more pixels.
 */
export function decodeImageBytes(bytes: Uint8Array, what: string, options: { maxPixels?: number } = {}): RgbImage {
  if (options.maxPixels !== undefined) {
    const h = imageHeader(bytes);
    if (h && h.width * h.height > options.maxPixels) throw new VlaError("DATA_INVALID", `${what} is ${h.width}x${h.height}, over the ${options.maxPixels}-pixel limit`, "send a smaller image");
  }
  const isPng = PNG_MAGIC.every((b, i) => bytes[i] === b);
  const isJpeg = bytes[0] === 0xff && bytes[1] === 0xd8;
  try {
    if (isPng) {
      const png = PNG.sync.read(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
      const out = makeImage(png.width, png.height);
      const n = png.width * png.height;
      for (let i = 0; i < n; i++) {
        out.data[i * 3] = png.data[i * 4] as number;
        out.data[i * 3 + 1] = png.data[i * 4 + 1] as number;
        out.data[i * 3 + 2] = png.data[i * 4 + 2] as number;
      }
      return out;
    }
    if (isJpeg) {
      const j = jpeg.decode(bytes, { useTArray: true, formatAsRGBA: false, ...(options.maxPixels !== undefined ? { maxResolutionInMP: options.maxPixels / 1e6 } : {}) });
      return { width: j.width, height: j.height, data: j.data };
    }
  } catch (e) {
    throw new VlaError("DATA_INVALID", `${what}: cannot decode image: ${(e as Error).message}`, "the stored bytes are corrupt; re-export the dataset", { cause: e });
  }
  throw new VlaError("DATA_INVALID", `${what}: image bytes are neither PNG nor JPEG (first bytes ${Array.from(bytes.slice(0, 4), (b) => b.toString(16)).join(" ")})`, "LeRobot image features hold PNG or JPEG bytes");
}

/**
 * Encode RGB8 as PNG (lossless). One row filter (Paeth) for every row: pngjs otherwise
 * tries all five per row, which was most of a simulator dataset's generation time; the
 * pixels decoded are the same either way.
 */
export function encodePng(img: RgbImage): Uint8Array {
  const png = new PNG({ width: img.width, height: img.height, colorType: 2, inputColorType: 2, inputHasAlpha: false });
  png.data = Buffer.from(img.data.buffer, img.data.byteOffset, img.data.byteLength);
  const buf = PNG.sync.write(png, { colorType: 2, inputColorType: 2, inputHasAlpha: false, filterType: 4 });
  return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
}

/**
 * Bilinear resize with half-pixel centers (align_corners = false, no
 * antialiasing), the convention of torch's interpolate(mode="bilinear").
 */
export function resizeBilinear(src: RgbImage, width: number, height: number): RgbImage {
  if (src.width === width && src.height === height) return { width, height, data: src.data.slice() };
  const out = makeImage(width, height);
  const sx = src.width / width;
  const sy = src.height / height;
  const sw = src.width;
  const d = src.data;
  for (let y = 0; y < height; y++) {
    const fy = Math.min(Math.max((y + 0.5) * sy - 0.5, 0), src.height - 1);
    const y0 = Math.floor(fy);
    const y1 = Math.min(y0 + 1, src.height - 1);
    const wy = fy - y0;
    for (let x = 0; x < width; x++) {
      const fx = Math.min(Math.max((x + 0.5) * sx - 0.5, 0), sw - 1);
      const x0 = Math.floor(fx);
      const x1 = Math.min(x0 + 1, sw - 1);
      const wx = fx - x0;
      const a = (y0 * sw + x0) * 3;
      const b = (y0 * sw + x1) * 3;
      const c = (y1 * sw + x0) * 3;
      const e = (y1 * sw + x1) * 3;
      const o = (y * width + x) * 3;
      for (let ch = 0; ch < 3; ch++) {
        const top = (d[a + ch] as number) * (1 - wx) + (d[b + ch] as number) * wx;
        const bot = (d[c + ch] as number) * (1 - wx) + (d[e + ch] as number) * wx;
        out.data[o + ch] = Math.round(top * (1 - wy) + bot * wy);
      }
    }
  }
  return out;
}

/** Copy the (w, h) window whose top-left corner is (x, y). */
export function cropImage(src: RgbImage, x: number, y: number, w: number, h: number): RgbImage {
  if (x < 0 || y < 0 || w < 1 || h < 1 || x + w > src.width || y + h > src.height) {
    throw new VlaError("DATA_INVALID", `crop ${w}x${h} at (${x}, ${y}) does not fit in a ${src.width}x${src.height} image`, "keep the crop window inside the image");
  }
  const out = makeImage(w, h);
  for (let row = 0; row < h; row++) {
    const from = ((y + row) * src.width + x) * 3;
    out.data.set(src.data.subarray(from, from + w * 3), row * w * 3);
  }
  return out;
}

/** Place images top to bottom in the given order; all must share one width. */
export function tileVertical(images: ReadonlyArray<RgbImage>): RgbImage {
  const first = images[0];
  if (!first) throw new VlaError("DATA_INVALID", "tileVertical got no images", "pass at least one image");
  for (const [i, img] of images.entries()) {
    if (img.width !== first.width) {
      throw new VlaError("DATA_INVALID", `image ${i} is ${img.width}x${img.height} but image 0 is ${first.width}x${first.height}; stacked frames need one width`, "send every observation with the same cameras at the same size");
    }
  }
  const out = makeImage(first.width, images.reduce((s, img) => s + img.height, 0));
  let offset = 0;
  for (const img of images) {
    out.data.set(img.data, offset);
    offset += img.data.length;
  }
  return out;
}

/**
 * An observation with `history` earlier ones (RoboVLMs' history frames): the frames stacked top to
 * bottom, oldest first, the current one at the bottom. `previous` holds the earlier observations'
 * images (already tiled), oldest first; missing ones (an episode's first steps) repeat the oldest
 * there is, or the current one when there is none, as training pads at an episode's start.
 */
export function stackHistory(current: RgbImage, previous: ReadonlyArray<RgbImage>, history: number): RgbImage {
  if (history === 0) return current;
  const frames: RgbImage[] = [];
  for (let k = history; k >= 1; k--) frames.push(previous[previous.length - k] ?? previous[0] ?? current);
  frames.push(current);
  return tileVertical(frames);
}

/** Place images left to right in the given order; all must share one height. */
export function tileHorizontal(images: ReadonlyArray<RgbImage>): RgbImage {
  const first = images[0];
  if (!first) throw new VlaError("DATA_INVALID", "tileHorizontal got no images", "pass at least one camera image");
  for (const [i, img] of images.entries()) {
    if (img.height !== first.height) {
      throw new VlaError("DATA_INVALID", `image ${i} is ${img.width}x${img.height} but image 0 is ${first.width}x${first.height}; tiles need one height`, "decode every camera at the same size");
    }
  }
  const width = images.reduce((s, img) => s + img.width, 0);
  const out = makeImage(width, first.height);
  let x0 = 0;
  for (const img of images) {
    for (let row = 0; row < img.height; row++) {
      out.data.set(img.data.subarray(row * img.width * 3, (row + 1) * img.width * 3), (row * width + x0) * 3);
    }
    x0 += img.width;
  }
  return out;
}
