/**
 * The native decoder against two independent implementations: an f64 reference
 * with Hugging Face semantics (test/support/ref-decoder.ts) and llama.cpp (through
 * node-llama-cpp, on a GGUF we write from the same weights).
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { getLlama, type Llama, type Token } from "node-llama-cpp";
import { DecoderModel } from "../../src/engine/decoder.js";
import { parseDecoderConfig } from "../../src/engine/config.js";
import { byteLevelVocab, writeDecoderGguf, type DecoderConfig } from "../../src/io/gguf-decoder.js";
import { VlaError } from "../../src/errors.js";
import { randomDecoderWeights, referenceLogProbs } from "../support/ref-decoder.js";
import { hfConfigJson, tinyConfig, writeHfDir } from "../support/tiny-models.js";

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "vlatext-dec-"));
let llama: Llama;
beforeAll(async () => {
  llama = await getLlama({ gpu: false, build: "never", logLevel: "error" as never });
});
afterAll(async () => {
  await llama?.dispose();
});

function logSoftmaxRows(logits: Float32Array, V: number): Float64Array[] {
  const rows: Float64Array[] = [];
  for (let t = 0; t < logits.length / V; t++) {
    const r = Float64Array.from(logits.subarray(t * V, (t + 1) * V));
    const m = Math.max(...r);
    const lse = m + Math.log(r.reduce((a, b) => a + Math.exp(b - m), 0));
    rows.push(r.map((v) => v - lse));
  }
  return rows;
}

function maxDiff(a: Float64Array[], b: Float64Array[]): number {
  let worst = 0;
  a.forEach((row, t) => row.forEach((v, i) => (worst = Math.max(worst, Math.abs(v - b[t]![i]!)))));
  return worst;
}

function shapesFor(model: DecoderModel): Map<string, number[]> {
  return new Map(model.paramInfo().map((p) => [p.name, p.shape]));
}

async function llamaCpp(file: string, tokens: number[], V: number): Promise<Float64Array[]> {
  const model = await llama.loadModel({ modelPath: file });
  // f32 KV cache and no flash attention: llama.cpp then computes in f32 (see test/io)
  const ctx = await model.createContext({ contextSize: 256, flashAttention: false, experimentalKvCacheKeyType: "F32", experimentalKvCacheValueType: "F32" });
  const out = await ctx.getSequence().controlledEvaluate(tokens.map((t) => [t as Token, { generateNext: { logits: true } }] as const));
  await ctx.dispose();
  await model.dispose();
  return out.map((o) => {
    const l = new Float32Array(V);
    for (const [k, v] of o!.next.logits!) l[k] = v;
    return logSoftmaxRows(l, V)[0]!;
  });
}

describe("native decoder parity", () => {
  const tokens = [5, 77, 130, 9, 200, 31, 31, 250, 4, 66, 101, 12, 7, 7, 90, 1];
  for (const [arch, tie] of [["llama", false], ["qwen2", true], ["qwen3", false]] as const) {
    it(`${arch}${tie ? " (tied)" : ""}: log-probs match the f64 reference and llama.cpp within 1e-4`, async () => {
      const c = tinyConfig(arch, tie);
      const w = randomDecoderWeights(c, 21);
      const m = new DecoderModel(parseDecoderConfig(hfConfigJson(c)));
      for (const [name, data] of w) m.setParam(name, data);
      const ours = logSoftmaxRows(m.logits({ B: 1, T: tokens.length, tokens: Int32Array.from(tokens) }), c.vocabSize);
      const ref = referenceLogProbs(c, w, tokens);
      const file = path.join(dir, `${arch}.gguf`);
      writeDecoderGguf(file, c, w, byteLevelVocab(c.vocabSize));
      const cpp = await llamaCpp(file, tokens, c.vocabSize);
      // f32 compute vs f64 reference: measured ~2e-6; vs llama.cpp (f32, other order) ~5e-6
      expect(maxDiff(ours, ref)).toBeLessThan(1e-4);
      expect(maxDiff(ours, cpp)).toBeLessThan(1e-4);
      // batching: two sequences in one batch give the same rows as one at a time
      const two = logSoftmaxRows(m.logits({ B: 2, T: 8, tokens: Int32Array.from(tokens) }), c.vocabSize);
      expect(maxDiff(two.slice(0, 8), referenceLogProbs(c, w, tokens.slice(0, 8)))).toBeLessThan(1e-4);
      expect(maxDiff(two.slice(8), referenceLogProbs(c, w, tokens.slice(8)))).toBeLessThan(1e-4);
      m.dispose();
    });
  }

  it("loads a Hugging Face directory and names what is wrong with a broken one", () => {
    const c = tinyConfig("qwen2", false, { numLayers: 1 });
    const w = randomDecoderWeights(c, 3);
    const probe = new DecoderModel(parseDecoderConfig(hfConfigJson(c)));
    const shapes = shapesFor(probe);
    probe.dispose();
    const good = path.join(dir, "good");
    writeHfDir(good, c, w, shapes);
    const m = DecoderModel.load(good);
    expect(Array.from(m.getParam("model.layers.0.self_attn.k_proj.bias"))).toEqual(Array.from(w.get("model.layers.0.self_attn.k_proj.bias")!));
    m.dispose();

    const missing = new Map(w);
    missing.delete("model.layers.0.mlp.up_proj.weight");
    writeHfDir(path.join(dir, "missing"), c, missing, shapes);
    expect(() => DecoderModel.load(path.join(dir, "missing"))).toThrow(/tensor 'model\.layers\.0\.mlp\.up_proj\.weight' \(shape \[96,64\]\) is missing/);

    const badShape = new Map(shapes);
    badShape.set("model.norm.weight", [8, 8]);
    writeHfDir(path.join(dir, "shape"), c, w, badShape);
    expect(() => DecoderModel.load(path.join(dir, "shape"))).toThrow(/tensor 'model\.norm\.weight' has shape \[8,8\] but config\.json implies \[64\]/);

    const gpt2 = path.join(dir, "gpt2");
    fs.mkdirSync(gpt2, { recursive: true });
    fs.writeFileSync(path.join(gpt2, "config.json"), JSON.stringify({ ...hfConfigJson(c), model_type: "gpt2" }));
    expect(() => DecoderModel.load(gpt2)).toThrow(/model_type 'gpt2' is not supported[\s\S]*supported: llama/);
    const err = (() => {
      try {
        parseDecoderConfig({ ...hfConfigJson(c), num_key_value_heads: 3 });
        return undefined;
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeUndefined(); // config parses; the native side checks the head ratio
    expect(() => new DecoderModel(parseDecoderConfig({ ...hfConfigJson(c), num_key_value_heads: 3 }))).toThrow(/num_attention_heads \(4\) must be a multiple of num_key_value_heads \(3\)/);
    expect(() => parseDecoderConfig({ ...hfConfigJson(c), hidden_size: "64" })).toThrow(VlaError);
    expect(() => parseDecoderConfig({ ...hfConfigJson(c), hidden_size: "64" })).toThrow(/hidden_size/);
  });
});
