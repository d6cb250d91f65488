/**
 * Incremental decoding with the KV cache gives the same logits as running the whole
 * prefix again, for every family, in any split of prefill and single-token steps.
 */
import { describe, expect, it } from "vitest";
import { loadAddon } from "../../src/engine/addon.js";
import { DecoderModel } from "../../src/engine/decoder.js";
import { parseDecoderConfig } from "../../src/engine/config.js";
import { randomDecoderWeights } from "../support/ref-decoder.js";
import { hfConfigJson, tinyConfig } from "../support/tiny-models.js";

describe("KV cache", () => {
  for (const arch of ["llama", "qwen2", "qwen3"] as const) {
    it(`${arch}: cached logits equal full recomputation (1e-5), with LoRA`, () => {
      const c = tinyConfig(arch, arch === "qwen2");
      const m = new DecoderModel(parseDecoderConfig(hfConfigJson(c)));
      for (const [n, d] of randomDecoderWeights(c, 8)) m.setParam(n, d);
      m.enableLora({ rank: 2, alpha: 4, targets: ["q_proj", "v_proj", "down_proj"], seed: 1 });
      const seq = [4, 90, 17, 17, 200, 3, 45, 61, 8, 250, 1, 2, 3, 99, 31, 7, 7, 7, 120, 64, 11, 33, 44, 55, 66, 77, 88, 99, 10, 20, 30, 40, 50, 60];
      const V = c.vocabSize;
      const full = m.logits({ B: 1, T: seq.length, tokens: Int32Array.from(seq) });
      const cache = m.newCache(seq.length);
      let worst = 0;
      let pos = 0;
      for (const chunk of [5, 1, 1, 12, 1, 14]) {
        const l = cache.feed(Int32Array.from(seq.slice(pos, pos + chunk)));
        pos += chunk;
        const ref = full.subarray((pos - 1) * V, pos * V);
        for (let i = 0; i < V; i++) worst = Math.max(worst, Math.abs(l[i]! - ref[i]!));
      }
      expect(pos).toBe(seq.length);
      expect(cache.length).toBe(seq.length);
      // f32, different summation order (cached rows vs full batch): ~1e-6
      expect(worst).toBeLessThan(1e-5);
      expect(() => cache.feed(Int32Array.of(1))).toThrow(/KV cache is full: 34 \+ 1 tokens > capacity 34/);
      expect(() => m.newCache(4).feed(Int32Array.of(V))).toThrow(/outside the vocabulary/);
      // greedy with the cache = greedy by recomputation
      const prompt = seq.slice(0, 6);
      const got = m.generate(prompt, { maxNew: 12 });
      const want: number[] = [];
      for (let s = 0; s < 12; s++) {
        const ctx = [...prompt, ...want];
        const l = m.logits({ B: 1, T: ctx.length, tokens: Int32Array.from(ctx) }).subarray((ctx.length - 1) * V);
        want.push(l.indexOf(Math.max(...l)));
      }
      expect(got).toEqual(want);
      m.dispose();
    });
  }

  it("is made only for a Decoder", () => {
    const addon = loadAddon();
    expect(() => new addon.KvCache({} as never, 8)).toThrow(/expected a Decoder/);
  });
});
