/**
 * Training the vision tower: the native backward against finite differences of the
 * independent f64 reference forward (test/support/ref-vision.ts), on random weights with
 * window and full attention layers, one and two images; plus the training forward's
 * output, gradient accumulation, AdamW and the errors.
 *
 * loss(w) = sum(features(w) * R) for a fixed random R, so d loss / d features = R, which
 * is what backward() is given. Finite differences are central, e = 1e-3, in f64 on the
 * reference: the truncation error (~e^2) and the rounding of the f32 weights are far below
 * the tolerance |fd - analytic| <= 2e-3 * max(1, |fd|) + 1e-4 * scale, where scale is the
 * tensor's largest gradient (the native backward runs in f32).
 */
import { describe, expect, it } from "vitest";
import { VisionModel, parseVisionConfig } from "../../src/engine/vision.js";
import { rng } from "../support/rng.js";
import { referenceVision } from "../support/ref-vision.js";

const cfg = parseVisionConfig({ depth: 2, hidden_size: 16, intermediate_size: 24, num_heads: 2, out_hidden_size: 12, window_size: 56, fullatt_block_indexes: [1] });
const P = 3 * 2 * 14 * 14;

function setup(grids: Array<[number, number, number]>) {
  const model = new VisionModel(cfg);
  model.setTrainable(true);
  const r = rng(11);
  const w = new Map<string, Float32Array>();
  for (const p of model.paramInfo()) {
    const n = p.shape.reduce((a, b) => a * b, 1);
    const norm = /norm[12]\.weight$|ln_q\.weight$/.test(p.name);
    w.set(p.name, Float32Array.from({ length: n }, () => (norm ? 1 + (r() - 0.5) * 0.4 : (r() * 2 - 1) * 0.15)));
    model.setParam(p.name, w.get(p.name)!);
  }
  const N = grids.reduce((a, [t, h, ww]) => a + t * h * ww, 0);
  const pixels = Float32Array.from({ length: N * P }, () => r() * 4 - 2);
  const R = Float32Array.from({ length: (N / 4) * cfg.outHiddenSize }, () => r() * 2 - 1);
  const g = grids.map(([t, h, ww]) => ({ t, h, w: ww }));
  const refLoss = () => referenceVision(cfg, w, pixels, grids).reduce((s, row, u) => row.reduce((a, v, j) => a + v * R[u * cfg.outHiddenSize + j]!, s), 0);
  return { model, w, pixels, R, g, refLoss };
}

describe("vision tower backward", () => {
  for (const grids of [[[1, 8, 12]], [[1, 4, 8], [1, 6, 4]]] as Array<Array<[number, number, number]>>) {
    it(`matches finite differences of the f64 reference in every tensor (${grids.length} image${grids.length > 1 ? "s" : ""})`, async () => {
      const { model, w, pixels, R, g, refLoss } = setup(grids);
      try {
        const inference = await model.forward(pixels, g);
        const train = await model.forward(pixels, g, { train: true });
        expect(Array.from(train)).toEqual(Array.from(inference)); // the same arithmetic, activations kept
        await model.backward(R);
        const e = 1e-3;
        const r = rng(5);
        let probes = 0;
        for (const p of model.paramInfo()) {
          const grad = model.getParamGrad(p.name);
          const data = w.get(p.name)!;
          const scale = grad.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
          expect(scale, `${p.name} gets a gradient`).toBeGreaterThan(0);
          for (let k = 0; k < 3; k++) {
            const i = Math.floor(r() * data.length);
            const keep = data[i]!;
            data[i] = keep + e;
            const lp = refLoss();
            data[i] = keep - e;
            const lm = refLoss();
            data[i] = keep;
            const fd = (lp - lm) / (2 * e);
            expect(Math.abs(fd - grad[i]!), `${p.name}[${i}]: fd ${fd} vs backward ${grad[i]}`).toBeLessThanOrEqual(2e-3 * Math.max(1, Math.abs(fd)) + 1e-4 * scale);
            probes++;
          }
        }
        expect(probes).toBe(model.paramInfo().length * 3);
      } finally {
        model.dispose();
      }
    }, 60_000);
  }

  it("accumulates gradients until zeroGrad, steps AdamW with one clipping norm, and names misuse", async () => {
    const { model, pixels, R, g } = setup([[1, 4, 4]]);
    try {
      await expect(model.backward(R.subarray(0, 4 * cfg.outHiddenSize))).rejects.toMatchObject({ code: "NATIVE_STATE", message: expect.stringMatching(/no training forward/) });
      await model.forward(pixels, g, { train: true });
      await expect(model.backward(R.subarray(0, 3))).rejects.toThrow(/dout holds 3 values, the last forward gave 48/);
      await model.backward(R.subarray(0, 4 * cfg.outHiddenSize));
      const once = model.getParamGrad("visual.patch_embed.proj.weight").slice();
      const sq1 = model.gradSqNorm();
      await model.backward(R.subarray(0, 4 * cfg.outHiddenSize));
      const twice = model.getParamGrad("visual.patch_embed.proj.weight");
      twice.forEach((v, i) => expect(v).toBeCloseTo(2 * once[i]!, 5));
      expect(model.gradSqNorm()).toBeCloseTo(4 * sq1, 3);
      const before = model.getParam("visual.merger.mlp.2.bias").slice();
      // (one clipping norm over several stores: native/tests/test_kernels.cpp, "optimizer_step over two stores")
      const norm = model.optimizerStep({ lr: 1e-2, weightDecay: 0, maxGradNorm: 1 });
      expect(norm).toBeCloseTo(Math.sqrt(4 * sq1), 3);
      expect(model.gradSqNorm()).toBe(0);
      const after = model.getParam("visual.merger.mlp.2.bias");
      // Adam's first step moves every weight with a nonzero gradient by lr (bias-corrected m/sqrt(v) = +-1)
      after.forEach((v, i) => expect(Math.abs(v - before[i]!)).toBeCloseTo(1e-2, 4));
      const st = model.getOptimizerState();
      expect(st.step).toBe(1);
      expect(() => model.setOptimizerState({ step: 1, m: st.m.subarray(1), v: st.v.subarray(1) })).toThrow(/trained tensors/);
    } finally {
      model.dispose();
    }
  });
});
