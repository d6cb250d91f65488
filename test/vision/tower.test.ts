/**
 * The native vision tower against an independent f64 reference of transformers'
 * Qwen2.5-VL vision forward (window index, 2D rotary embedding, window and full
 * attention, merger), on random weights, with window attention active and with
 * one and two images. test/vision/hf-goldens.test.ts completes the proof against
 * transformers' own outputs.
 */
import { describe, expect, it } from "vitest";
import { VisionModel, parseVisionConfig } from "../../src/engine/vision.js";
import { rng } from "../support/rng.js";
import { referenceVision, windowIndex, erf } from "../support/ref-vision.js";

const cfg = parseVisionConfig({ depth: 3, hidden_size: 32, intermediate_size: 48, num_heads: 2, out_hidden_size: 40, window_size: 56, fullatt_block_indexes: [1] });

function weights(seed: number, model: VisionModel): Map<string, Float32Array> {
  const r = rng(seed);
  const w = new Map<string, Float32Array>();
  for (const p of model.paramInfo()) {
    const n = p.shape.reduce((a, b) => a * b, 1);
    const norm = p.name.endsWith("norm1.weight") || p.name.endsWith("norm2.weight") || p.name.endsWith("ln_q.weight");
    w.set(p.name, Float32Array.from({ length: n }, () => (norm ? 1 + (r() - 0.5) * 0.2 : (r() * 2 - 1) * 0.1)));
    model.setParam(p.name, w.get(p.name)!);
  }
  return w;
}

describe("Qwen2.5-VL vision tower", () => {
  it("computes transformers' window index", () => {
    // grid 8x12 patches -> 4x6 merged units; windows of 2x2 units: 2 x 3 windows of 4 units (16 patches)
    const { index, cu } = windowIndex([[1, 8, 12]], 2, 2);
    expect(index.slice(0, 8)).toEqual([0, 1, 6, 7, 2, 3, 8, 9]);
    expect(cu).toEqual([0, 16, 32, 48, 64, 80, 96]);
    // a 3x3-unit image with 2x2 windows: partial windows, no empty ones
    expect(windowIndex([[1, 6, 6]], 2, 2).cu).toEqual([0, 16, 24, 32, 36]);
    expect(erf(0.5)).toBeCloseTo(0.5204998778, 9);
    expect(erf(-2)).toBeCloseTo(-0.995322265, 8);
  });

  for (const grids of [[[1, 8, 12]], [[1, 4, 8], [1, 6, 4]]] as Array<Array<[number, number, number]>>) {
    it(`matches the f64 reference (${grids.length} image${grids.length > 1 ? "s" : ""}, window + full attention layers)`, async () => {
      const model = new VisionModel(cfg);
      const w = weights(7, model);
      const P = 3 * 2 * 14 * 14;
      const N = grids.reduce((a, [t, h, ww]) => a + t * h * ww, 0);
      const r = rng(3);
      const pixels = Float32Array.from({ length: N * P }, () => r() * 4 - 2);
      const ours = await model.forward(pixels, grids.map(([t, h, ww]) => ({ t, h, w: ww })));
      const ref = referenceVision(cfg, w, pixels, grids);
      expect(ours.length).toBe((N / 4) * 40);
      let worst = 0;
      let scale = 0;
      ref.forEach((row, u) => row.forEach((v, j) => {
        worst = Math.max(worst, Math.abs(v - ours[u * 40 + j]!));
        scale = Math.max(scale, Math.abs(v));
      }));
      // f32 compute vs f64, three blocks: relative to the largest feature, 1e-4
      expect(worst / scale).toBeLessThan(1e-4);
      expect(scale).toBeGreaterThan(0.1);
      await expect(model.forward(pixels.subarray(0, P * 3), [{ t: 1, h: 2, w: 2 }])).rejects.toThrow(/grids describe 4 patches but 3 were given/);
      model.dispose();
    });
  }

  it("names unsupported vision configs", () => {
    expect(() => parseVisionConfig({ depth: 1, hidden_size: 30, intermediate_size: 8, num_heads: 2, out_hidden_size: 8 })).toThrow(/multiple of 4/);
    expect(() => parseVisionConfig({ depth: 1, hidden_size: 32, intermediate_size: 8, num_heads: 2, out_hidden_size: 8, hidden_act: "quick_gelu" })).toThrow(/quick_gelu/);
    expect(() => parseVisionConfig({ depth: 2, hidden_size: 32, intermediate_size: 8, num_heads: 2, out_hidden_size: 8, fullatt_block_indexes: [5] })).toThrow(/names block 5 but depth is 2/);
  });
});
