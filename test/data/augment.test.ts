import jpeg from "jpeg-js";
import { describe, expect, it } from "vitest";
import { applyAugment, augmentImage, augmentSample, colorJitter, hueInPlace, sampleAugmentParams, VLA0_AUGMENT } from "../../src/data/augment.js";
import type { RgbImage } from "../../src/data/episode.js";
import { cropImage, decodeImageBytes, encodePng, resizeBilinear, tileHorizontal } from "../../src/data/image.js";
import { Rng } from "../../src/data/rng.js";
import type { Sample } from "../../src/data/samples.js";

function randomImage(w: number, h: number, seed: number): RgbImage {
  const r = new Rng(seed);
  return { width: w, height: h, data: Uint8Array.from({ length: w * h * 3 }, () => r.int(256)) };
}

const solid = (w: number, h: number, rgb: [number, number, number]): RgbImage => ({ width: w, height: h, data: Uint8Array.from({ length: w * h * 3 }, (_, i) => rgb[i % 3] as number) });

describe("Rng", () => {
  it("is deterministic per seed and roughly uniform", () => {
    const a = new Rng(42);
    const b = new Rng(42);
    const xs = Array.from({ length: 1000 }, () => a.next());
    expect(xs).toEqual(Array.from({ length: 1000 }, () => b.next()));
    expect(new Rng(43).next()).not.toBe(xs[0]);
    const mean = xs.reduce((s, x) => s + x, 0) / xs.length;
    expect(Math.abs(mean - 0.5)).toBeLessThan(0.05);
    expect(Math.min(...xs)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...xs)).toBeLessThan(1);
  });
});

describe("image helpers", () => {
  it("PNG round trip is lossless; JPEG decodes close", () => {
    const img = randomImage(7, 5, 1);
    expect(decodeImageBytes(encodePng(img), "t")).toEqual(img);
    const smooth = resizeBilinear(randomImage(4, 4, 2), 32, 32);
    const jpg = jpeg.encode({ width: 32, height: 32, data: Uint8Array.from({ length: 32 * 32 * 4 }, (_, i) => (i % 4 === 3 ? 255 : (smooth.data[Math.floor(i / 4) * 3 + (i % 4)] as number))) }, 95);
    const back = decodeImageBytes(new Uint8Array(jpg.data), "t");
    expect([back.width, back.height]).toEqual([32, 32]);
    let mad = 0;
    for (let i = 0; i < back.data.length; i++) mad += Math.abs((back.data[i] as number) - (smooth.data[i] as number));
    expect(mad / back.data.length).toBeLessThan(4);
    expect(() => decodeImageBytes(new Uint8Array([1, 2, 3, 4]), "row 3")).toThrow(/row 3: image bytes are neither PNG nor JPEG/);
  });

  it("bilinear halving averages 2x2 blocks (half-pixel centers); constant stays constant", () => {
    const img = randomImage(8, 6, 3);
    const half = resizeBilinear(img, 4, 3);
    for (let y = 0; y < 3; y++) {
      for (let x = 0; x < 4; x++) {
        for (let c = 0; c < 3; c++) {
          const at = (yy: number, xx: number) => img.data[(yy * 8 + xx) * 3 + c] as number;
          const avg = (at(2 * y, 2 * x) + at(2 * y, 2 * x + 1) + at(2 * y + 1, 2 * x) + at(2 * y + 1, 2 * x + 1)) / 4;
          expect(Math.abs((half.data[(y * 4 + x) * 3 + c] as number) - avg)).toBeLessThanOrEqual(0.5);
        }
      }
    }
    const flat = resizeBilinear(solid(5, 3, [10, 200, 77]), 13, 9);
    expect(flat.data.every((v, i) => v === [10, 200, 77][i % 3])).toBe(true);
  });

  it("tiles side by side in order and refuses mixed heights", () => {
    const a = solid(2, 2, [1, 1, 1]);
    const b = solid(3, 2, [2, 2, 2]);
    const t = tileHorizontal([a, b]);
    expect([t.width, t.height]).toEqual([5, 2]);
    expect(Array.from(t.data.filter((_, i) => i % 3 === 0))).toEqual([1, 1, 2, 2, 2, 1, 1, 2, 2, 2]);
    expect(() => tileHorizontal([a, solid(2, 3, [0, 0, 0])])).toThrow(/tiles need one height/);
    expect(() => cropImage(a, 1, 1, 2, 2)).toThrow(/does not fit/);
  });
});

describe("augmentation (VLA-0)", () => {
  const img = randomImage(32, 24, 5);

  it("is deterministic per seed and differs across seeds", () => {
    const a = augmentImage(img, new Rng(9));
    expect(augmentImage(img, new Rng(9))).toEqual(a);
    expect(augmentImage(img, new Rng(10)).data).not.toEqual(a.data);
  });

  it("crops 0.875 of each side at a valid offset and resizes back to the input size", () => {
    for (let s = 0; s < 20; s++) {
      const p = sampleAugmentParams(32, 24, new Rng(s));
      expect([p.crop.w, p.crop.h]).toEqual([28, 21]);
      expect(p.crop.x).toBeGreaterThanOrEqual(0);
      expect(p.crop.x + p.crop.w).toBeLessThanOrEqual(32);
      expect(p.crop.y + p.crop.h).toBeLessThanOrEqual(24);
      for (const k of ["brightness", "contrast", "saturation"] as const) {
        expect(p[k]).toBeGreaterThanOrEqual(0.8);
        expect(p[k]).toBeLessThanOrEqual(1.2);
      }
      expect(Math.abs(p.hue)).toBeLessThanOrEqual(0.05);
      expect([...p.order].sort()).toEqual(["brightness", "contrast", "hue", "saturation"]);
      const out = applyAugment(img, p);
      expect([out.width, out.height, out.data.length]).toEqual([32, 24, 32 * 24 * 3]);
    }
  });

  it("identity parameters give the input back (hue shift 0 is exact)", () => {
    const id = { brightness: 1, contrast: 1, saturation: 1, hue: 0, order: ["hue", "brightness", "contrast", "saturation"] as const };
    expect(colorJitter(img, { ...id, order: [...id.order] })).toEqual(img);
    const px = Float32Array.from(img.data, (v) => v / 255);
    hueInPlace(px, 0);
    expect(Uint8Array.from(px, (v) => Math.round(v * 255))).toEqual(img.data);
    expect(applyAugment(img, { crop: { x: 0, y: 0, w: 32, h: 24 }, ...id, order: [...id.order] })).toEqual(img);
  });

  it("color ops do what they say", () => {
    const red = solid(2, 2, [255, 0, 0]);
    const j = (over: Partial<{ brightness: number; contrast: number; saturation: number; hue: number }>) =>
      colorJitter(red, { brightness: 1, contrast: 1, saturation: 1, hue: 0, order: ["brightness", "contrast", "saturation", "hue"], ...over }).data.slice(0, 3);
    expect(Array.from(j({ hue: 1 / 3 }))).toEqual([0, 255, 0]);
    expect(Array.from(j({ hue: -1 / 3 }))).toEqual([0, 0, 255]);
    expect(Array.from(j({ brightness: 0.5 }))).toEqual([128, 0, 0]);
    // saturation 0 = gray level 0.2989 * 255
    expect(Array.from(j({ saturation: 0 }))).toEqual([76, 76, 76]);
    const gray = solid(2, 2, [100, 100, 100]);
    expect(colorJitter(gray, { brightness: 1, contrast: 1.2, saturation: 1.2, hue: 0.05, order: ["contrast", "saturation", "hue", "brightness"] })).toEqual(gray);
  });

  it("augmentSample shares one draw across a camera's history frames, not across cameras", () => {
    const f = randomImage(16, 16, 1);
    const sample: Sample = { episodeIndex: 0, frameIndex: 0, timestamp: 0, instruction: "", images: { a: [f, f], b: [f] }, state: new Float32Array(0), actions: new Float32Array(0), mask: new Uint8Array(0) };
    const out = augmentSample(sample, new Rng(3), VLA0_AUGMENT);
    expect(out.images.a?.[0]).toEqual(out.images.a?.[1]);
    expect(out.images.a?.[0]?.data).not.toEqual(out.images.b?.[0]?.data);
    expect(augmentSample(sample, new Rng(3))).toEqual(out);
  });
});
