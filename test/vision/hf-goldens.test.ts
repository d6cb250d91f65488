/**
 * Fidelity to Hugging Face transformers: golden outputs that transformers' own
 * Qwen2.5-VL classes computed (test/goldens/make_qwen25vl_goldens.py; versions in
 * test/goldens/qwen25vl/meta.json) for two tiny random configs — "full" (every vision
 * layer full attention, tied embeddings) and "window" (windowed layers active with
 * partial windows, its own lm_head) — with one and with two images, and the PIL
 * processor on images that need resizing.
 *
 * Tolerances:
 * - processor pixel_values: 1e-5 absolute (the resize is bit-exact: one byte off
 *   moves a value by 1/255/std ~ 0.015);
 * - position ids and image_grid_thw: exact;
 * - vision features and logits: max |ours - HF| <= 1e-4 * max |HF| (f32 both sides).
 * - with bf16 weight storage, against transformers on the same weights rounded to bf16
 *   (<n>img-bf16w.safetensors): 1e-4 at the avx512 level (the weights are widened exactly,
 *   so only the summation order differs); at the CPU's best level, where avx512bf16 and amx
 *   also round the activations to bf16 before each product (8 mantissa bits, errors ~2^-9
 *   relative per product, growing through the layers), 1.5e-2 (measured 2e-3 to 5e-3 at amx).
 */
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { resizeBilinear } from "../../src/data/image.js";
import { loadAddon } from "../../src/engine/addon.js";
import { VlmModel } from "../../src/engine/vlm.js";
import { readSafetensors } from "../../src/io/safetensors.js";
import { bf16GoldenTolerance, image, maxAbs, maxDiff, tensor } from "../support/goldens.js";
import { preprocessImage, QWEN25VL_PROCESSOR } from "../../src/vision/processor.js";

const dir = path.join(path.dirname(fileURLToPath(import.meta.url)), "..", "goldens", "qwen25vl");
const meta = JSON.parse(fs.readFileSync(path.join(dir, "meta.json"), "utf8")) as { transformers: string; processor_min_pixels: number; processor_max_pixels: number };
const IMAGE_TOKEN = 296;




describe(`Qwen2.5-VL against transformers ${meta.transformers} goldens`, () => {
  it("preprocesses like the PIL processor: bicubic resize up and down, normalization, patch order", () => {
    const f = readSafetensors(path.join(dir, "processor.safetensors"));
    const cfg = { ...QWEN25VL_PROCESSOR, minPixels: meta.processor_min_pixels, maxPixels: meta.processor_max_pixels };
    for (let i = 0; i < 3; i++) {
      const img = image(f, `image${i}`);
      const want = tensor(f, `pixel_values${i}`);
      const grid = Array.from(tensor(f, `image_grid_thw${i}`).data);
      const ours = preprocessImage(img, cfg);
      expect([ours.grid.t, ours.grid.h, ours.grid.w]).toEqual(grid);
      expect(maxDiff(ours.pixels, want.data)).toBeLessThanOrEqual(1e-5);
      // the check can fail: a bilinear resize (the previous default) is far off
      expect(maxDiff(preprocessImage(img, cfg, resizeBilinear).pixels, want.data)).toBeGreaterThan(1e-2);
    }
  });

  const images = readSafetensors(path.join(dir, "images.safetensors"));
  for (const config of ["full", "window"]) {
    for (const n of [1, 2]) {
      it(`${config} attention, ${n} image${n > 1 ? "s" : ""}: grid, 3D positions, vision features, logits`, async () => {
        const vlm = VlmModel.load(path.join(dir, config));
        try {
          const g = readSafetensors(path.join(dir, config, `${n}img.safetensors`));
          const ids = Int32Array.from(tensor(g, "input_ids").data);
          const N = ids.length;
          const feats = await vlm.imageFeatures(Array.from({ length: n }, (_, i) => image(images, `image${i}`)));
          expect(feats.processed.flatMap((p) => [p.grid.t, p.grid.h, p.grid.w])).toEqual(Array.from(tensor(g, "image_grid_thw").data));

          const wantFeats = tensor(g, "vision_features").data;
          const featErr = maxDiff(feats.features, wantFeats) / maxAbs(wantFeats);
          expect(featErr).toBeLessThanOrEqual(1e-4);

          const starts = Array.from(ids.keys()).filter((i) => ids[i] === IMAGE_TOKEN && ids[i - 1] !== IMAGE_TOKEN);
          expect(starts).toHaveLength(n);
          const mm = vlm.multimodalInputs(N, starts, feats.processed);
          expect(Array.from(mm.positions)).toEqual(Array.from(tensor(g, "position_ids").data));

          const logits = vlm.decoder.logits({ B: 1, T: N, tokens: ids, positions: mm.positions, injectRows: mm.injectRows, inject: feats.features });
          const wantLogits = tensor(g, "logits").data;
          const logitErr = maxDiff(logits, wantLogits) / maxAbs(wantLogits);
          expect(logitErr).toBeLessThanOrEqual(1e-4);
        } finally {
          vlm.dispose();
        }
      });

      for (const isa of ["avx512", undefined] as const) {
        const tol = bf16GoldenTolerance(isa);
        it(`${config} attention, ${n} image${n > 1 ? "s" : ""}, bf16 weights at ${isa ?? `the best level (${loadAddon().buildInfo().isa})`}: features and logits within ${tol}`, async () => {
          const vlm = VlmModel.load(path.join(dir, config), { dtype: "bf16", ...(isa ? { isa } : {}) });
          try {
            expect(vlm.decoder.dtype).toBe("bf16");
            expect(vlm.vision.params.info().filter((t) => t.shape.length >= 2).every((t) => t.dtype === "bf16")).toBe(true);
            const g = readSafetensors(path.join(dir, config, `${n}img.safetensors`));
            const gb = readSafetensors(path.join(dir, config, `${n}img-bf16w.safetensors`));
            const ids = Int32Array.from(tensor(g, "input_ids").data);
            const feats = await vlm.imageFeatures(Array.from({ length: n }, (_, i) => image(images, `image${i}`)));
            const wantFeats = tensor(gb, "vision_features").data;
            const featErr = maxDiff(feats.features, wantFeats) / maxAbs(wantFeats);
            expect(featErr).toBeLessThanOrEqual(tol);
            const starts = Array.from(ids.keys()).filter((i) => ids[i] === IMAGE_TOKEN && ids[i - 1] !== IMAGE_TOKEN);
            const mm = vlm.multimodalInputs(ids.length, starts, feats.processed);
            const logits = vlm.decoder.logits({ B: 1, T: ids.length, tokens: ids, positions: mm.positions, injectRows: mm.injectRows, inject: feats.features });
            const wantLogits = tensor(gb, "logits").data;
            const logitErr = maxDiff(logits, wantLogits) / maxAbs(wantLogits);
            expect(logitErr).toBeLessThanOrEqual(tol);
            // the check can fail: the f32 goldens differ from the bf16-weight ones by more than the tight tolerance
            if (tol === 1e-4) expect(maxDiff(tensor(g, "logits").data, wantLogits) / maxAbs(wantLogits)).toBeGreaterThan(1e-3);
          } finally {
            vlm.dispose();
          }
        });
      }
    }
  }
});
