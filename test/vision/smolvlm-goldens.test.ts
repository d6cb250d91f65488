/**
 * Fidelity to Hugging Face transformers for SmolVLM2: golden outputs that transformers' own
 * SmolVLM classes computed (test/goldens/make_smolvlm_goldens.py; versions in
 * test/goldens/smolvlm/meta.json) for two tiny random configs — "split" (images split into
 * tiles plus a global image, scale factor 2, tied embeddings) and "global" (one global image
 * per picture, scale factor 4, 3 encoder layers, its own lm_head, grouped-query attention) —
 * with one and with two images, and the PIL processor on images that need resizing.
 *
 * Tolerances:
 * - processor pixel_values: 1e-5 absolute (every resize is bit-exact: one byte off moves a
 *   value by 1/255/0.5 ~ 0.008); tile counts, rows and cols exact;
 * - the prompt (transformers' own get_image_prompt_string, tokenized by a fixed table): exact;
 * - vision features (after the connector) and logits: max |ours - HF| <= 1e-4 * max |HF|
 *   (f32 both sides);
 * - with bf16 weight storage, against transformers on the same weights rounded to bf16
 *   (<n>img-bf16w.safetensors): 1e-4 at the avx512 level (weights widened exactly, only the
 *   summation order differs), 1.5e-2 at a level that also rounds activations to bf16
 *   (avx512bf16, amx), as for Qwen2.5-VL.
 */
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { loadAddon } from "../../src/engine/addon.js";
import { VlmModel } from "../../src/engine/vlm.js";
import { readSafetensors } from "../../src/io/safetensors.js";
import { bf16GoldenTolerance, image, maxAbs, maxDiff, tensor } from "../support/goldens.js";
import type { ImagePiece } from "../../src/vision/processor.js";
import { preprocessSmolVlm, smolVlmProcessorConfig } from "../../src/vision/smolvlm-processor.js";

const dir = path.join(path.dirname(fileURLToPath(import.meta.url)), "..", "goldens", "smolvlm");
const meta = JSON.parse(fs.readFileSync(path.join(dir, "meta.json"), "utf8")) as { transformers: string; ids: Record<"image" | "fake" | "global" | "newline" | "newline2" | "row_col", number> };
const ID = meta.ids;




/** (tiles, 3, H, W) pixel_values -> our (tiles * patches, 3 * p * p) patch order. */
function toPatches(px: { data: Float32Array; shape: number[] }, p: number): Float32Array {
  const [n, , H, W] = px.shape as [number, number, number, number];
  const out = new Float32Array(px.data.length);
  let o = 0;
  for (let t = 0; t < n; t++)
    for (let gy = 0; gy < H / p; gy++)
      for (let gx = 0; gx < W / p; gx++)
        for (let c = 0; c < 3; c++)
          for (let y = 0; y < p; y++) for (let x = 0; x < p; x++) out[o++] = px.data[((t * 3 + c) * H + gy * p + y) * W + gx * p + x] as number;
  return out;
}

/** The golden generator's token table for the expansion pieces. */
function pieceIds(pieces: readonly ImagePiece[]): number[] {
  const ids: number[] = [];
  for (const p of pieces) {
    if ("image" in p) for (let k = 0; k < p.image; k++) ids.push(ID.image);
    else if ("text" in p) ids.push(p.text === "\n" ? ID.newline : p.text === "\n\n" ? ID.newline2 : -1);
    else if (p.special === "<fake_token_around_image>") ids.push(ID.fake);
    else if (p.special === "<global-img>") ids.push(ID.global);
    else {
      const m = /^<row_(\d+)_col_(\d+)>$/.exec(p.special);
      ids.push(m ? ID.row_col + (Number(m[1]) - 1) * 4 + Number(m[2]) - 1 : -1);
    }
  }
  return ids;
}

describe(`SmolVLM2 against transformers ${meta.transformers} goldens`, () => {
  it("preprocesses like the PIL processor: Lanczos resizes, tiles + global image, rows and cols", () => {
    const f = readSafetensors(path.join(dir, "processor.safetensors"));
    const cfg = smolVlmProcessorConfig({ imageSize: 32, patchSize: 8, scaleFactor: 2 }, JSON.parse(fs.readFileSync(path.join(dir, "split", "preprocessor_config.json"), "utf8")));
    for (let i = 0; i < 4; i++) {
      const img = image(f, `image${i}`);
      const want = tensor(f, `pixel_values${i}`);
      const [rows, cols] = Array.from(tensor(f, `rows_cols${i}`).data) as [number, number];
      const ours = preprocessSmolVlm(img, cfg);
      expect(ours.grids?.length).toBe(want.shape[0]);
      expect(ours.grids?.length).toBe(rows * cols + 1);
      expect(maxDiff(ours.pixels, toPatches(want, 8))).toBeLessThanOrEqual(1e-5);
      // the check can fail: bicubic resizes (Qwen2.5-VL's) are far off
      expect(maxDiff(preprocessSmolVlm(img, { ...cfg, resample: "bicubic" }).pixels, toPatches(want, 8))).toBeGreaterThan(1e-2);
    }
  });

  const images = readSafetensors(path.join(dir, "images.safetensors"));
  for (const config of ["split", "global"]) {
    for (const n of [1, 2]) {
      it(`${config}, ${n} image${n > 1 ? "s" : ""}: pixels, prompt expansion, vision features, logits`, async () => {
        const vlm = VlmModel.load(path.join(dir, config));
        try {
          expect(vlm.family).toBe("smolvlm");
          const g = readSafetensors(path.join(dir, config, `${n}img.safetensors`));
          const ids = Int32Array.from(tensor(g, "input_ids").data);
          const feats = await vlm.imageFeatures(Array.from({ length: n }, (_, i) => image(images, `image${i}`)));
          const px = tensor(g, "pixel_values");
          const p = vlm.processor.patchSize;
          expect(maxDiff(Float32Array.from(feats.processed.flatMap((x) => Array.from(x.pixels))), toPatches(px, p))).toBeLessThanOrEqual(1e-5);

          const wantFeats = tensor(g, "vision_features").data;
          const featErr = maxDiff(feats.features, wantFeats) / maxAbs(wantFeats);
          expect(featErr).toBeLessThanOrEqual(1e-4);

          // each image's expansion, found in the golden prompt exactly where transformers put it
          const rows: number[] = [];
          const starts: number[] = [];
          let at = 0;
          for (const pr of feats.processed) {
            const want = pieceIds(pr.expansion ?? []);
            const s = Array.from(ids.keys()).find((i) => i >= at && want.every((t, k) => ids[i + k] === t));
            expect(s).toBeDefined();
            starts.push(s!);
            want.forEach((t, k) => t === ID.image && rows.push(s! + k));
            at = s! + want.length;
          }
          expect(rows).toEqual(Array.from(ids.keys()).filter((i) => ids[i] === ID.image));
          const mm = vlm.multimodalInputs(ids.length, starts, feats.processed, rows);
          const logits = vlm.decoder.logits({ B: 1, T: ids.length, tokens: ids, positions: mm.positions, injectRows: mm.injectRows, inject: feats.features });
          const wantLogits = tensor(g, "logits").data;
          const logitErr = maxDiff(logits, wantLogits) / maxAbs(wantLogits);
          expect(logitErr).toBeLessThanOrEqual(1e-4);
          console.log(`smolvlm ${config} ${n}img: features ${featErr.toExponential(2)}, logits ${logitErr.toExponential(2)} (relative to max |HF|)`);
        } finally {
          vlm.dispose();
        }
      });

      for (const isa of ["avx512", undefined] as const) {
        const tol = bf16GoldenTolerance(isa);
        it(`${config}, ${n} image${n > 1 ? "s" : ""}, bf16 weights at ${isa ?? `the best level (${loadAddon().buildInfo().isa})`}: features and logits within ${tol}`, async () => {
          const vlm = VlmModel.load(path.join(dir, config), { dtype: "bf16", ...(isa ? { isa } : {}) });
          try {
            expect(vlm.decoder.dtype).toBe("bf16");
            expect(vlm.vision.params.info().filter((t) => t.shape.length >= 2 && !/pos/.test(t.name)).every((t) => t.dtype === "bf16")).toBe(true);
            const g = readSafetensors(path.join(dir, config, `${n}img.safetensors`));
            const gb = readSafetensors(path.join(dir, config, `${n}img-bf16w.safetensors`));
            const ids = Int32Array.from(tensor(g, "input_ids").data);
            const feats = await vlm.imageFeatures(Array.from({ length: n }, (_, i) => image(images, `image${i}`)));
            const wantFeats = tensor(gb, "vision_features").data;
            expect(maxDiff(feats.features, wantFeats) / maxAbs(wantFeats)).toBeLessThanOrEqual(tol);
            const rows = Array.from(ids.keys()).filter((i) => ids[i] === ID.image);
            const logits = vlm.decoder.logits({ B: 1, T: ids.length, tokens: ids, injectRows: Int32Array.from(rows), inject: feats.features });
            const wantLogits = tensor(gb, "logits").data;
            expect(maxDiff(logits, wantLogits) / maxAbs(wantLogits)).toBeLessThanOrEqual(tol);
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
