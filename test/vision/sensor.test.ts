/**
 * The tiny default model's "moments" vision sensor (what the demo trains on): through the
 * real tower (engine forward), a 56x56 image is one token whose features move linearly
 * with an object's position; calibration standardizes the features; a random tower does
 * neither. And a model directory's preprocessor_config.json is read (patch size 28 here).
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import type { RgbImage } from "../../src/data/episode.js";
import { VlmModel } from "../../src/engine/vlm.js";
import { createTinyDefaultModel } from "../../src/models/tiny-default.js";
import { TabletopEnv } from "../../src/sim/env.js";
import { processorConfigFor, QWEN25VL_PROCESSOR } from "../../src/vision/processor.js";

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "vlatext-sensor-"));

/** A uniform table-coloured 56x56 image with a dark 6x6 square whose top-left corner is (x, y). */
function square(x: number, y: number): RgbImage {
  const data = new Uint8Array(56 * 56 * 3);
  for (let i = 0; i < 56 * 56; i++) data.set([200, 190, 172], i * 3);
  for (let r = y; r < y + 6; r++) for (let c = x; c < x + 6; c++) data.set([40, 40, 60], (r * 56 + c) * 3);
  return { width: 56, height: 56, data };
}

/** Largest |f(b) - (f(a) + f(c)) / 2| over the features, relative to the largest |f(c) - f(a)|: 0 for a linear response. */
function curvature(a: Float32Array, b: Float32Array, c: Float32Array): number {
  let bend = 0;
  let span = 0;
  for (let i = 0; i < a.length; i++) {
    bend = Math.max(bend, Math.abs((b[i] as number) - ((a[i] as number) + (c[i] as number)) / 2));
    span = Math.max(span, Math.abs((c[i] as number) - (a[i] as number)));
  }
  return bend / span;
}

describe("moments vision sensor", () => {
  it("makes a 56x56 image one token whose features move linearly with an object's position", async () => {
    const dir = createTinyDefaultModel(path.join(tmp, "moments"), { seed: 3, patchSize: 28, sensor: "moments" });
    const vlm = VlmModel.load(dir);
    try {
      expect(vlm.processor.patchSize).toBe(28);
      expect(vlm.imageLayout(56, 112)).toMatchObject({ grid: { t: 1, h: 2, w: 4 }, tokens: 2 });
      const f = async (x: number, y: number) => (await vlm.imageFeatures([square(x, y)])).features;
      const [a, b, c] = [await f(2, 4), await f(8, 4), await f(14, 4)]; // moving right inside the top-left patch
      expect(a.length).toBe(64); // one token of the language model's width
      // linear up to the merger's GELU (within a few percent where it is used) and float rounding
      expect(curvature(a, b, c)).toBeLessThan(0.03);
      const [d, e, g] = [await f(30, 8), await f(30, 14), await f(30, 20)]; // moving down inside the top-right patch
      expect(curvature(d, e, g)).toBeLessThan(0.03);
    } finally {
      vlm.dispose();
    }
  });

  it("is standardized on calibration images; a random tower is not linear", async () => {
    const env = new TabletopEnv({ size: 56, tasks: ["reach"], scene: { blocks: [1, 1], zones: [0, 0] } });
    const images: RgbImage[] = [];
    for (let s = 0; s < 40; s++) {
      const obs = env.reset(s);
      images.push(obs.images.top!, obs.images.front!);
    }
    const dir = createTinyDefaultModel(path.join(tmp, "calibrated"), { seed: 3, patchSize: 28, sensor: "moments", calibration: images });
    const vlm = VlmModel.load(dir);
    try {
      const feats = (await vlm.imageFeatures(images)).features;
      const C = 64;
      const n = feats.length / C;
      expect(n).toBe(images.length);
      let worstMean = 0;
      let meanVar = 0;
      for (let j = 0; j < C; j++) {
        let m = 0;
        for (let i = 0; i < n; i++) m += (feats[i * C + j] as number) / n;
        let v = 0;
        for (let i = 0; i < n; i++) v += ((feats[i * C + j] as number) - m) ** 2 / n;
        meanVar += v / C;
        worstMean = Math.max(worstMean, Math.abs(m));
      }
      // each feature is a random unit-variance mix of 36 standardized inputs: variance about 1, mean about 0
      expect(meanVar).toBeGreaterThan(0.5);
      expect(meanVar).toBeLessThan(1.5);
      expect(worstMean).toBeLessThan(0.25 * Math.sqrt(meanVar));
    } finally {
      vlm.dispose();
    }
    const rdir = createTinyDefaultModel(path.join(tmp, "random"), { seed: 3, patchSize: 28 });
    const rvlm = VlmModel.load(rdir);
    try {
      const f = async (x: number) => (await rvlm.imageFeatures([square(x, 4)])).features;
      expect(curvature(await f(2), await f(8), await f(14))).toBeGreaterThan(0.1);
    } finally {
      rvlm.dispose();
    }
  });

  it("rejects a sensor too narrow for its channels", () => {
    expect(() => createTinyDefaultModel(path.join(tmp, "narrow"), { visionHidden: 8, sensor: "moments" })).toThrow(/visionHidden >= 10/);
  });
});

describe("preprocessor_config.json", () => {
  const vision = { patchSize: 14, temporalPatchSize: 2, mergeSize: 2 };
  it("reads transformers 4.x and 5.x keys over the vision config", () => {
    expect(processorConfigFor(vision)).toEqual(QWEN25VL_PROCESSOR);
    expect(processorConfigFor(vision, { min_pixels: 1000, max_pixels: 5000, image_mean: [0.5, 0.5, 0.5], image_std: [0.5, 0.5, 0.5] })).toMatchObject({ minPixels: 1000, maxPixels: 5000, mean: [0.5, 0.5, 0.5] });
    expect(processorConfigFor(vision, { size: { shortest_edge: 2000, longest_edge: 9000 } })).toMatchObject({ minPixels: 2000, maxPixels: 9000 });
  });
  it("names a key that disagrees with the model or has the wrong type", () => {
    expect(() => processorConfigFor(vision, { patch_size: 16 })).toThrow(/patch_size is 16 but the vision config says 14/);
    expect(() => processorConfigFor(vision, { min_pixels: "many" })).toThrow(/min_pixels/);
    expect(() => processorConfigFor(vision, { min_pixels: 9000, max_pixels: 100 })).toThrow(/min_pixels 9000 is above max_pixels 100/);
  });
  it("is read from the model directory; a broken file is named", () => {
    const dir = createTinyDefaultModel(path.join(tmp, "broken-pp"), { seed: 3 });
    const file = path.join(dir, "preprocessor_config.json");
    expect(JSON.parse(fs.readFileSync(file, "utf8"))).toMatchObject({ patch_size: 14, merge_size: 2, min_pixels: 3136 });
    fs.writeFileSync(file, "{ not json");
    expect(() => VlmModel.load(dir)).toThrow(/preprocessor_config\.json is not valid JSON/);
    fs.writeFileSync(file, JSON.stringify({ patch_size: 28 }));
    expect(() => VlmModel.load(dir)).toThrow(/patch_size is 28 but the vision config says 14/);
  });
});
