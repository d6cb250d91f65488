/**
 * Camera images in requests: base64 PNG, JPEG, raw RGB or (VLA-0) .npy, each checked
 * against the server's limits before it is decoded — a PNG's or JPEG's size is read from
 * its header, so a small file that declares a huge image costs nothing.
 */
import type { RgbImage } from "../data/episode.js";
import { checkImage, decodeImageBytes, imageHeader } from "../data/image.js";
import { VlaError } from "../errors.js";
import { HttpError } from "./http.js";
import type { RequestImage, ServerLimits } from "./limits.js";
import { parseNpyImage } from "./npy.js";

export function decodeBase64(s: string, what: string): Uint8Array {
  const buf = Buffer.from(s.replace(/\s+/g, ""), "base64");
  if (buf.length === 0) throw new HttpError(400, `${what}: empty or invalid base64`, "IMAGE_INVALID");
  return new Uint8Array(buf.buffer, buf.byteOffset, buf.length);
}

function tooLarge(what: string, w: number, h: number, limits: ServerLimits): HttpError {
  return new HttpError(422, `${what} is ${w}x${h}: over the limit of ${limits.maxImageSide} pixels per side (--max-image-side)`, "IMAGE_TOO_LARGE");
}

/** One /v1/act image, decoded within the limits. */
export function decodeRequestImage(img: RequestImage, what: string, limits: ServerLimits): RgbImage {
  try {
    if ("rgb" in img) {
      const data = decodeBase64(img.rgb, what);
      if (data.length !== img.width * img.height * 3) throw new HttpError(400, `${what}: rgb has ${data.length} bytes, expected width*height*3 = ${img.width * img.height * 3}`, "IMAGE_INVALID");
      return { width: img.width, height: img.height, data };
    }
    const bytes = decodeBase64("png" in img ? img.png : img.jpeg, what);
    const header = imageHeader(bytes);
    if (!header) throw new HttpError(400, `${what}: not a ${"png" in img ? "PNG" : "JPEG"} image (no image header)`, "IMAGE_INVALID");
    if (header.format !== ("png" in img ? "png" : "jpeg")) throw new HttpError(400, `${what}: the bytes are ${header.format.toUpperCase()}, sent as ${"png" in img ? "png" : "jpeg"}`, "IMAGE_INVALID");
    if (header.width < 1 || header.height < 1) throw new HttpError(400, `${what}: the header says ${header.width}x${header.height}`, "IMAGE_INVALID");
    if (header.width > limits.maxImageSide || header.height > limits.maxImageSide) throw tooLarge(what, header.width, header.height, limits);
    const out = decodeImageBytes(bytes, what, { maxPixels: limits.maxImageSide * limits.maxImageSide });
    checkImage(out, what);
    if (out.width !== header.width || out.height !== header.height) throw new HttpError(400, `${what}: decoded ${out.width}x${out.height} but the header says ${header.width}x${header.height}`, "IMAGE_INVALID");
    return out;
  } catch (e) {
    if (e instanceof HttpError) throw e;
    throw new HttpError(400, `${what}: ${(e as Error).message.split("\n")[0]}`, e instanceof VlaError ? e.code : "IMAGE_INVALID");
  }
}

/** One VLA-0 base64 .npy image, within the limits. */
export function decodeNpyBase64(s: string, what: string, limits: ServerLimits): RgbImage {
  let img: RgbImage;
  try {
    // the data length must match the shape, so the body limit bounds what is copied
    img = parseNpyImage(decodeBase64(s, what), what);
  } catch (e) {
    if (e instanceof HttpError) throw e;
    throw new HttpError(400, (e as Error).message.split("\n")[0] ?? "bad image", "IMAGE_INVALID");
  }
  if (img.width > limits.maxImageSide || img.height > limits.maxImageSide) throw tooLarge(what, img.width, img.height, limits);
  return img;
}

/** All of a request's pixels together stay within the limit. */
export function checkRequestPixels(images: readonly RgbImage[], limits: ServerLimits): void {
  const px = images.reduce((a, i) => a + i.width * i.height, 0);
  if (px > limits.maxRequestPixels) throw new HttpError(422, `the images hold ${px} pixels together, over the limit of ${limits.maxRequestPixels}`, "IMAGE_TOO_LARGE");
}
