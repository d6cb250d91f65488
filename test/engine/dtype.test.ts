/**
 * bf16 weight storage: which loads keep bf16, what is stored, the memory it saves, parity
 * with f32 on the same (bf16-rounded) weights, and a LoRA training run on a bf16 base whose
 * loss curve follows the f32 run's.
 *
 * Tolerances:
 * - the avx512 level widens bf16 weights exactly: against f32 storage of the same rounded
 *   weights only the summation order differs, 1e-5 on log-probs;
 * - at the CPU's best level (avx512bf16 / amx also round activations to bf16 before each
 *   product) 3e-2 on log-probs of this tiny random model;
 * - the LoRA loss curves (bf16 base vs the f32 base it was rounded from, 40 steps of
 *   memorization, lr 2e-2) agree within 6e-2 * max(1, loss) at every step and within 3% at
 *   the end, and both fall by more than half (a curve that did not train would fail). At the
 *   amx level, where activations are rounded too, the trajectories part by up to ~4% on the
 *   loss plateau (steps 15-30, measured) and meet again (0.4% at step 40).
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { loadAddon, NATIVE_ISAS } from "../../src/engine/addon.js";
import { parseDecoderConfig } from "../../src/engine/config.js";
import { DecoderModel } from "../../src/engine/decoder.js";
import { bf16ToF32, f32ToBf16 } from "../../src/io/half.js";
import { writeSafetensors } from "../../src/io/safetensors.js";
import { randomDecoderWeights } from "../support/ref-decoder.js";
import { hfConfigJson, tinyConfig } from "../support/tiny-models.js";

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "vlatext-dtype-"));
const c = tinyConfig("qwen2", false, { numLayers: 2 });
const w = randomDecoderWeights(c, 21);
const shapes = (() => {
  const m = new DecoderModel(parseDecoderConfig(hfConfigJson(c)));
  const s = new Map(m.paramInfo().map((p) => [p.name, p.shape]));
  m.dispose();
  return s;
})();
const isMatrix = (name: string): boolean => (shapes.get(name)?.length ?? 0) >= 2;
const rounded = new Map([...w].map(([n, d]) => [n, isMatrix(n) ? Float32Array.from(d, (v) => bf16ToF32(f32ToBf16(v))) : d]));

function writeDir(name: string, dtype: "F32" | "BF16", weights: Map<string, Float32Array>): string {
  const d = path.join(dir, name);
  fs.mkdirSync(d, { recursive: true });
  fs.writeFileSync(path.join(d, "config.json"), JSON.stringify(hfConfigJson(c)));
  writeSafetensors(path.join(d, "model.safetensors"), [...weights].map(([n, data]) => ({ name: n, shape: shapes.get(n)!, data, dtype: isMatrix(n) ? dtype : "F32" })));
  return d;
}
const f32Dir = writeDir("f32", "F32", w);
const bf16Dir = writeDir("bf16", "BF16", w);
const roundedDir = writeDir("rounded", "F32", rounded);

const tokens = Int32Array.from({ length: 24 }, (_, i) => (i * 37 + 5) % c.vocabSize);
function logProbs(m: DecoderModel): Float64Array {
  const l = m.logits({ B: 1, T: tokens.length, tokens });
  const V = c.vocabSize;
  const out = new Float64Array(l.length);
  for (let t = 0; t < tokens.length; t++) {
    let mx = -Infinity;
    for (let v = 0; v < V; v++) mx = Math.max(mx, l[t * V + v]!);
    let z = 0;
    for (let v = 0; v < V; v++) z += Math.exp(l[t * V + v]! - mx);
    for (let v = 0; v < V; v++) out[t * V + v] = l[t * V + v]! - mx - Math.log(z);
  }
  return out;
}
const maxDiff = (a: ArrayLike<number>, b: ArrayLike<number>): number => {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs((a[i] as number) - (b[i] as number)));
  return m;
};

describe("bf16 weight storage", () => {
  it("auto keeps a bf16 checkpoint in bf16 while frozen, f32 when trained; bf16 rounds an f32 checkpoint", () => {
    const auto = DecoderModel.load(bf16Dir);
    const trained = DecoderModel.load(bf16Dir, { trainBase: true });
    const fromF32 = DecoderModel.load(f32Dir, { dtype: "bf16" });
    const f32 = DecoderModel.load(f32Dir);
    try {
      expect(auto.dtype).toBe("bf16");
      expect(trained.dtype).toBe("f32");
      expect(fromF32.dtype).toBe("bf16");
      expect(f32.dtype).toBe("f32");
      // matrices bf16, norms and biases f32; the values are the round-to-nearest-even of the f32 ones
      for (const t of auto.params.info()) expect(t.dtype, t.name).toBe(isMatrix(t.name) ? "bf16" : "f32");
      for (const [n, d] of rounded) {
        expect(Array.from(auto.getParam(n)), n).toEqual(Array.from(d));
        expect(Array.from(fromF32.getParam(n)), n).toEqual(Array.from(d));
      }
      // half the bytes for the matrices
      expect(auto.params.bytes).toBeLessThan(0.6 * f32.params.bytes);
      expect(() => DecoderModel.load(f32Dir, { dtype: "bf16", trainBase: true })).toThrow(/cannot be used for weights that are trained/);
    } finally {
      for (const m of [auto, trained, fromF32, f32]) m.dispose();
    }
  });

  it("matches f32 storage of the same rounded weights: exactly widened at avx512, within bf16 rounding at the best level", () => {
    const ref = DecoderModel.load(roundedDir);
    const exact = DecoderModel.load(bf16Dir, { isa: "avx512" });
    const best = DecoderModel.load(bf16Dir);
    try {
      const want = logProbs(ref);
      expect(maxDiff(logProbs(exact), want)).toBeLessThan(1e-5);
      const bestTol = NATIVE_ISAS.indexOf(loadAddon().buildInfo().isa) >= NATIVE_ISAS.indexOf("avx512bf16") ? 3e-2 : 1e-5;
      expect(maxDiff(logProbs(best), want)).toBeLessThan(bestTol);
      // the check can fail: the unrounded f32 model is further away than the tight tolerance
      const orig = DecoderModel.load(f32Dir);
      expect(maxDiff(logProbs(orig), want)).toBeGreaterThan(1e-4);
      orig.dispose();
    } finally {
      for (const m of [ref, exact, best]) m.dispose();
    }
  });

  it("LoRA on a bf16 base trains like LoRA on the f32 base", async () => {
    const run = async (m: DecoderModel): Promise<number[]> => {
      m.enableLora({ rank: 4, alpha: 8, targets: "all-linear", seed: 3 });
      const B = 2, T = 16;
      const tok = Int32Array.from({ length: B * T }, (_, i) => (i * 11 + 3) % c.vocabSize);
      const tgt = Int32Array.from({ length: B * T }, (_, i) => (i * 7 + 1) % c.vocabSize);
      const losses: number[] = [];
      for (let s = 0; s < 40; s++) {
        losses.push((await m.forwardBackward({ B, T, tokens: tok, targets: tgt, dropoutSeed: s })).loss);
        m.optimizerStep({ lr: 2e-2, weightDecay: 0, maxGradNorm: 1 });
      }
      m.dispose();
      return losses;
    };
    const f32 = await run(DecoderModel.load(f32Dir));
    const bf16 = await run(DecoderModel.load(bf16Dir));
    expect(f32[39]!).toBeLessThan(0.5 * f32[0]!);
    expect(bf16[39]!).toBeLessThan(0.5 * bf16[0]!);
    f32.forEach((l, s) => expect(Math.abs(bf16[s]! - l), `step ${s}: bf16 ${bf16[s]} vs f32 ${l}`).toBeLessThanOrEqual(6e-2 * Math.max(1, l)));
    expect(Math.abs(bf16[39]! - f32[39]!)).toBeLessThanOrEqual(3e-2 * f32[39]!);
  });
});
