/**
 * A trained adapter exported as PEFT reloads to the same model, and exported as
 * llama.cpp's GGUF LoRA gives, in node-llama-cpp on the base GGUF, the same
 * log-probabilities as our engine with the adapter.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { getLlama, type Llama, type Token } from "node-llama-cpp";
import { DecoderModel } from "../../src/engine/decoder.js";
import { parseDecoderConfig } from "../../src/engine/config.js";
import { loadPeftAdapter, saveGgufAdapter, savePeftAdapter } from "../../src/io/adapter-export.js";
import { byteLevelVocab, writeDecoderGguf } from "../../src/io/gguf-decoder.js";
import { readSafetensors } from "../../src/io/safetensors.js";
import { randomDecoderWeights } from "../support/ref-decoder.js";
import { rng } from "../support/rng.js";
import { hfConfigJson, tinyConfig } from "../support/tiny-models.js";

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "vlatext-adapter-"));
let llama: Llama;
beforeAll(async () => {
  llama = await getLlama({ gpu: false, build: "never", logLevel: "error" as never });
});
afterAll(async () => {
  await llama?.dispose();
});

function logSoftmax(row: ArrayLike<number>): Float64Array {
  const r = Float64Array.from(row);
  const m = Math.max(...r);
  const lse = m + Math.log(r.reduce((a, b) => a + Math.exp(b - m), 0));
  return r.map((v) => v - lse);
}

describe("adapter export", () => {
  for (const arch of ["llama", "qwen2"] as const) {
    it(`${arch}: PEFT round trip and llama.cpp GGUF LoRA parity`, async () => {
      const c = tinyConfig(arch, false);
      const w = randomDecoderWeights(c, 31);
      const m = new DecoderModel(parseDecoderConfig(hfConfigJson(c)));
      for (const [n, d] of w) m.setParam(n, d);
      m.enableLora({ rank: 4, alpha: 8, targets: "all-linear", seed: 2 });
      // a trained-looking adapter: random B (training from B = 0 would take many steps)
      const r = rng(4);
      for (const t of m.loraInfo()) if (t.name.endsWith("lora_B.weight")) m.setLora(t.name, Float32Array.from({ length: t.shape[0]! * t.shape[1]! }, () => (r() * 2 - 1) * 0.3));
      const tokens = [3, 141, 59, 26, 5, 35, 89, 79, 32, 38];
      const V = c.vocabSize;
      const ours = m.logits({ B: 1, T: tokens.length, tokens: Int32Array.from(tokens) });

      const peft = path.join(dir, `${arch}-peft`);
      savePeftAdapter(peft, m.exportAdapter("tiny"));
      const st = readSafetensors(path.join(peft, "adapter_model.safetensors"));
      expect(st.tensors.get("base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight")?.shape).toEqual([4, 64]);
      expect(st.tensors.get("base_model.model.model.layers.1.mlp.down_proj.lora_B.weight")?.shape).toEqual([64, 4]);
      const cfg = JSON.parse(fs.readFileSync(path.join(peft, "adapter_config.json"), "utf8"));
      expect(cfg).toMatchObject({ peft_type: "LORA", r: 4, lora_alpha: 8, task_type: "CAUSAL_LM" });
      const m2 = new DecoderModel(parseDecoderConfig(hfConfigJson(c)));
      for (const [n, d] of w) m2.setParam(n, d);
      m2.loadAdapter(loadPeftAdapter(peft));
      expect(Array.from(m2.logits({ B: 1, T: tokens.length, tokens: Int32Array.from(tokens) }))).toEqual(Array.from(ours));
      m2.dispose();

      const baseFile = path.join(dir, `${arch}.gguf`);
      const loraFile = path.join(dir, `${arch}-lora.gguf`);
      writeDecoderGguf(baseFile, c, w, byteLevelVocab(V));
      saveGgufAdapter(loraFile, m.exportAdapter(), { arch, numHeads: c.numHeads, numKvHeads: c.numKvHeads, headDim: c.headDim });
      const model = await llama.loadModel({ modelPath: baseFile });
      const ctx = await model.createContext({ contextSize: 128, flashAttention: false, experimentalKvCacheKeyType: "F32", experimentalKvCacheValueType: "F32", lora: { adapters: [{ filePath: loraFile }] } });
      const out = await ctx.getSequence().controlledEvaluate(tokens.map((t) => [t as Token, { generateNext: { logits: true } }] as const));
      await ctx.dispose();
      await model.dispose();
      let worst = 0;
      let moved = 0;
      const plain = (() => {
        const p = new DecoderModel(parseDecoderConfig(hfConfigJson(c)));
        for (const [n, d] of w) p.setParam(n, d);
        const l = p.logits({ B: 1, T: tokens.length, tokens: Int32Array.from(tokens) });
        p.dispose();
        return l;
      })();
      out.forEach((o, t) => {
        const l = new Float32Array(V);
        for (const [k, v] of o!.next.logits!) l[k] = v;
        const theirs = logSoftmax(l);
        const mine = logSoftmax(ours.subarray(t * V, (t + 1) * V));
        const base = logSoftmax(plain.subarray(t * V, (t + 1) * V));
        for (let i = 0; i < V; i++) {
          worst = Math.max(worst, Math.abs(theirs[i]! - mine[i]!));
          moved = Math.max(moved, Math.abs(mine[i]! - base[i]!));
        }
      });
      expect(moved).toBeGreaterThan(0.1); // the adapter changes the model
      expect(worst).toBeLessThan(1e-4);
      m.dispose();
    });
  }

  it("initializes like PEFT: A ~ U(-1/sqrt(in), 1/sqrt(in)), B = 0, seeded", () => {
    const c = tinyConfig("llama", false, { numLayers: 1 });
    const m = new DecoderModel(parseDecoderConfig(hfConfigJson(c)));
    m.enableLora({ rank: 8, alpha: 16, targets: ["q_proj", "down_proj"], seed: 5 });
    expect(m.loraInfo().map((t) => `${t.name} [${t.shape}]`)).toEqual([
      "model.layers.0.self_attn.q_proj.lora_A.weight [8,64]",
      "model.layers.0.self_attn.q_proj.lora_B.weight [64,8]",
      "model.layers.0.mlp.down_proj.lora_A.weight [8,96]",
      "model.layers.0.mlp.down_proj.lora_B.weight [64,8]",
    ]);
    for (const [name, fanIn] of [["model.layers.0.self_attn.q_proj.lora_A.weight", 64], ["model.layers.0.mlp.down_proj.lora_A.weight", 96]] as const) {
      const a = m.getLora(name);
      const bound = 1 / Math.sqrt(fanIn);
      const maxAbs = Math.max(...Array.from(a, Math.abs));
      expect(maxAbs).toBeLessThanOrEqual(bound);
      expect(maxAbs).toBeGreaterThan(0.95 * bound); // 512+ draws fill the interval
      const mean = a.reduce((x, y) => x + y, 0) / a.length;
      const variance = a.reduce((x, y) => x + (y - mean) ** 2, 0) / a.length;
      expect(variance / (bound * bound / 3)).toBeGreaterThan(0.85); // uniform variance b^2/3
      expect(variance / (bound * bound / 3)).toBeLessThan(1.15);
    }
    expect(m.getLora("model.layers.0.mlp.down_proj.lora_B.weight").every((v) => v === 0)).toBe(true);
    const again = new DecoderModel(parseDecoderConfig(hfConfigJson(c)));
    again.enableLora({ rank: 8, alpha: 16, targets: ["q_proj", "down_proj"], seed: 5 });
    expect(Array.from(again.getLora("model.layers.0.self_attn.q_proj.lora_A.weight"))).toEqual(Array.from(m.getLora("model.layers.0.self_attn.q_proj.lora_A.weight")));
    m.dispose();
    again.dispose();
  });

  it("rejects adapters that do not fit", () => {
    const c = tinyConfig("qwen2", false, { numLayers: 1 });
    const m = new DecoderModel(parseDecoderConfig(hfConfigJson(c)));
    expect(() => m.exportAdapter()).toThrow(/no LoRA adapter/);
    expect(() => m.loadAdapter({ rank: 2, alpha: 4, targets: ["q_proj"], baseModel: "", tensors: [{ name: "model.layers.0.self_attn.q_proj.lora_A.weight", shape: [3, 64], data: new Float32Array(192) }] })).toThrow(/has shape \[3,64\], the model needs \[2,64\]/);
    expect(() => m.loadAdapter({ rank: 2, alpha: 4, targets: ["qkv"], baseModel: "", tensors: [] })).toThrow(/include modules this engine does not have/);
    m.dispose();
  });
});
