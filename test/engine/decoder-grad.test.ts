/**
 * Whole-model gradients by finite differences: a 2-layer model with LoRA on every
 * projection (and, separately, full fine-tuning), including the injected-embedding
 * path the vision tower uses. Loss = mean token cross-entropy over kept targets.
 *
 * Central differences with e = 1e-2 on an f32 forward: rounding contributes about
 * 1e-6 * |loss| / e ~ 3e-4 and curvature O(e^2); tolerance |fd - g| <= 1e-3 + 5e-2 |g|.
 * Probed entries are the ones with the largest analytic gradients (plus a few random
 * ones), so a missing term or a wrong sign cannot hide behind small values.
 */
import { describe, expect, it } from "vitest";
import { DecoderModel, type TrainBatch } from "../../src/engine/decoder.js";
import { parseDecoderConfig } from "../../src/engine/config.js";
import { randomDecoderWeights } from "../support/ref-decoder.js";
import { rng } from "../support/rng.js";
import { hfConfigJson, tinyConfig } from "../support/tiny-models.js";

const E = 1e-2;

function batch(V: number, C: number, seed: number, inject: boolean): TrainBatch {
  const r = rng(seed);
  const B = 2;
  const T = 7;
  const tokens = Int32Array.from({ length: B * T }, () => Math.floor(r() * V));
  const targets = Int32Array.from({ length: B * T }, (_, i) => (i % T === T - 1 || i % 3 === 0 ? -100 : Math.floor(r() * V)));
  const b: TrainBatch = { B, T, tokens, targets };
  if (inject) {
    b.injectRows = Int32Array.from([1, 2, 9]);
    b.inject = Float32Array.from({ length: 3 * C }, () => r() * 2 - 1);
  }
  return b;
}

/** Probe indices: the k largest |g| and a few random ones. */
function probes(g: Float32Array, seed: number, k = 6, extra = 2): number[] {
  const idx = Array.from(g.keys()).sort((a, b) => Math.abs(g[b]!) - Math.abs(g[a]!)).slice(0, k);
  const r = rng(seed);
  for (let i = 0; i < extra; i++) idx.push(Math.floor(r() * g.length));
  return idx;
}

function check(name: string, data: Float32Array, grad: Float32Array, set: (d: Float32Array) => void, loss: () => number, seed: number): string[] {
  const bad: string[] = [];
  expect(grad.some((v) => v !== 0), `${name}: gradient is all zeros`).toBe(true);
  for (const i of probes(grad, seed)) {
    const keep = data[i]!;
    data[i] = keep + E;
    set(data);
    const lp = loss();
    data[i] = keep - E;
    set(data);
    const lm = loss();
    data[i] = keep;
    set(data);
    const fd = (lp - lm) / (2 * E);
    if (Math.abs(fd - grad[i]!) > 1e-3 + 5e-2 * Math.abs(grad[i]!)) bad.push(`${name}[${i}]: fd ${fd.toExponential(3)} vs analytic ${grad[i]!.toExponential(3)}`);
  }
  return bad;
}

describe("whole-model gradients (finite differences)", () => {
  it("the loss (head run on target rows only) equals cross-entropy over the full logits", () => {
    const c = tinyConfig("qwen2", true, { vocabSize: 40, hiddenSize: 24, numHeads: 2, numKvHeads: 1, headDim: 12, intermediateSize: 32 });
    const m = new DecoderModel(parseDecoderConfig(hfConfigJson(c)));
    for (const [n, d] of randomDecoderWeights(c, 5, 0.3)) m.setParam(n, d);
    const b = batch(c.vocabSize, c.hiddenSize, 4, true);
    const V = c.vocabSize;
    const logits = m.logits(b);
    let sum = 0;
    let kept = 0;
    b.targets.forEach((t, row) => {
      if (t < 0) return;
      const l = logits.subarray(row * V, (row + 1) * V);
      const mx = Math.max(...l);
      sum += mx + Math.log(l.reduce((a, x) => a + Math.exp(x - mx), 0)) - l[t]!;
      kept++;
    });
    const r = m.loss(b);
    expect(r.kept).toBe(kept);
    expect(kept).toBeLessThan(b.B * b.T); // some rows are ignored: the head skips them
    // f32 logits, f64 log-sum-exp here and in the kernel: the means agree to rounding
    expect(Math.abs(r.loss - sum / kept)).toBeLessThan(1e-5);
    // no target at all: nothing to score, and no error
    expect(m.loss({ ...b, targets: new Int32Array(b.B * b.T).fill(-100) })).toEqual({ loss: 0, kept: 0 });
    m.dispose();
  });

  it("gradient accumulation over micro-batches equals the full batch", async () => {
    const c = tinyConfig("llama", false, { vocabSize: 40, hiddenSize: 24, numHeads: 2, numKvHeads: 1, headDim: 12, intermediateSize: 32 });
    const m = new DecoderModel(parseDecoderConfig(hfConfigJson(c)));
    for (const [n, d] of randomDecoderWeights(c, 5, 0.3)) m.setParam(n, d);
    m.enableLora({ rank: 3, alpha: 6, targets: "all-linear", seed: 1 });
    const full = batch(c.vocabSize, c.hiddenSize, 8, false);
    const T = full.T;
    await m.forwardBackward(full);
    const names = m.loraInfo().map((t) => t.name);
    const want = names.map((n) => m.getLoraGrad(n));
    m.zeroGrad();
    const kept = Array.from(full.targets).filter((t) => t >= 0).length;
    for (let b = 0; b < 2; b++) {
      const part = { B: 1, T, tokens: full.tokens.slice(b * T, (b + 1) * T), targets: full.targets.slice(b * T, (b + 1) * T) };
      await m.forwardBackward(part, { lossScale: 1 / kept });
    }
    names.forEach((n, i) => {
      const got = m.getLoraGrad(n);
      got.forEach((g, j) => expect(Math.abs(g - want[i]![j]!)).toBeLessThanOrEqual(1e-6 + 1e-4 * Math.abs(want[i]![j]!)));
    });
    m.dispose();
  });

  it("LoRA dropout: gradients match finite differences under the same masks", async () => {
    const c = tinyConfig("qwen2", false, { vocabSize: 40, hiddenSize: 24, numHeads: 2, numKvHeads: 1, headDim: 12, intermediateSize: 32 });
    const m = new DecoderModel(parseDecoderConfig(hfConfigJson(c)));
    for (const [n, d] of randomDecoderWeights(c, 5, 0.3)) m.setParam(n, d);
    m.enableLora({ rank: 3, alpha: 6, targets: ["q_proj", "up_proj", "down_proj"], dropout: 0.3, seed: 1 });
    const r = rng(2);
    for (const t of m.loraInfo()) if (t.name.endsWith("lora_B.weight")) m.setLora(t.name, Float32Array.from({ length: t.shape[0]! * t.shape[1]! }, () => (r() * 2 - 1) * 0.3));
    const b = { ...batch(c.vocabSize, c.hiddenSize, 3, false), dropoutSeed: 77 };
    const res = await m.forwardBackward(b);
    const withMasks = () => m.loss(b).loss;
    expect(Math.abs(withMasks() - res.loss)).toBeLessThan(1e-6);
    const { dropoutSeed: _, ...plain } = b;
    expect(Math.abs(m.loss(plain).loss - res.loss)).toBeGreaterThan(1e-4); // the masks do something
    expect(Math.abs(m.loss({ ...b, dropoutSeed: 78 }).loss - res.loss)).toBeGreaterThan(1e-4); // and depend on the seed
    const bad: string[] = [];
    let seed = 500;
    for (const t of m.loraInfo()) bad.push(...check(t.name, m.getLora(t.name), m.getLoraGrad(t.name), (d) => m.setLora(t.name, d), withMasks, seed++));
    expect(bad).toEqual([]);
    m.dispose();
  });

  for (const arch of ["llama", "qwen2", "qwen3"] as const) {
    it(`${arch}: LoRA on every projection, and the injected embeddings`, async () => {
      const c = tinyConfig(arch, arch === "qwen2", { vocabSize: 48, hiddenSize: 32, numHeads: 4, numKvHeads: 2, headDim: 8, intermediateSize: 40 });
      const m = new DecoderModel(parseDecoderConfig(hfConfigJson(c)));
      for (const [n, d] of randomDecoderWeights(c, 5, 0.3)) m.setParam(n, d);
      m.enableLora({ rank: 4, alpha: 8, targets: "all-linear", seed: 1 });
      // B starts at zero (PEFT); make it random so A's gradient is not zero
      const r = rng(9);
      for (const t of m.loraInfo()) if (t.name.endsWith("lora_B.weight")) m.setLora(t.name, Float32Array.from({ length: t.shape[0]! * t.shape[1]! }, () => (r() * 2 - 1) * 0.2));
      const b = batch(c.vocabSize, c.hiddenSize, 3, true);
      const res = await m.forwardBackward(b, { injectGrad: true });
      const loss = () => m.loss(b).loss;
      expect(Math.abs(loss() - res.loss)).toBeLessThan(1e-6);
      const bad: string[] = [];
      let seed = 0;
      for (const t of m.loraInfo()) {
        if (!/layers\.(0|1)\.(self_attn\.(q|k|v|o)_proj|mlp\.(gate|up|down)_proj)/.test(t.name)) continue;
        bad.push(...check(t.name, m.getLora(t.name), m.getLoraGrad(t.name), (d) => m.setLora(t.name, d), loss, seed++));
      }
      // the injected rows: perturb the embeddings fed in
      const inj = b.inject!;
      bad.push(...check("inject", inj, res.dInject!, () => undefined, loss, 99));
      // frozen base: no base gradients
      expect(m.getParamGrad("model.layers.0.self_attn.q_proj.weight").every((v) => v === 0)).toBe(true);
      expect(bad).toEqual([]);
      m.dispose();
    });

    it(`${arch}: full fine-tuning gradients of every base tensor`, async () => {
      const c = tinyConfig(arch, arch !== "llama", { vocabSize: 40, hiddenSize: 24, numLayers: 2, numHeads: 2, numKvHeads: 1, headDim: 12, intermediateSize: 32 });
      const m = new DecoderModel(parseDecoderConfig(hfConfigJson(c)));
      for (const [n, d] of randomDecoderWeights(c, 6, 0.3)) m.setParam(n, d);
      m.setTrainBase(true);
      const b = batch(c.vocabSize, c.hiddenSize, 4, false);
      await m.forwardBackward(b);
      const loss = () => m.loss(b).loss;
      const bad: string[] = [];
      let seed = 100;
      for (const p of m.paramInfo()) bad.push(...check(p.name, m.getParam(p.name), m.getParamGrad(p.name), (d) => m.setParam(p.name, d), loss, seed++));
      expect(bad).toEqual([]);
      m.dispose();
    });
  }
});
