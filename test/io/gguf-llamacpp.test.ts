import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { getLlama, type Llama, type Token } from "node-llama-cpp";
import { byteLevelVocab, writeDecoderGguf, type DecoderConfig } from "../../src/io/gguf-decoder.js";
import { ggufTensorData, readGguf, writeGguf } from "../../src/io/gguf.js";
import { f16ToF32, f32ToF16, bf16ToF32, f32ToBf16 } from "../../src/io/half.js";
import { randomDecoderWeights, referenceLogProbs } from "../support/ref-decoder.js";

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "vlatext-gguf-"));
let llama: Llama;
beforeAll(async () => {
  llama = await getLlama({ gpu: false, build: "never", logLevel: "error" as never });
});
afterAll(async () => {
  await llama?.dispose();
});

function cfg(arch: DecoderConfig["arch"], tie: boolean): DecoderConfig {
  return { arch, vocabSize: 272, hiddenSize: 64, numLayers: 2, numHeads: 4, numKvHeads: 2, headDim: 16, intermediateSize: 96, rmsNormEps: 1e-6, ropeTheta: 10000, maxPositions: 256, tieEmbeddings: tie };
}

/** Next-token log-probabilities from llama.cpp at every position of `tokens`. */
async function llamaCppLogProbs(file: string, tokens: number[]): Promise<Float64Array[]> {
  const model = await llama.loadModel({ modelPath: file });
  // llama.cpp's defaults (f16 KV cache, CPU flash attention in f16) cost ~5e-3 on these
  // log-probabilities; with both off it computes in f32 and agrees to ~5e-6
  const ctx = await model.createContext({ contextSize: 256, batchSize: 64, flashAttention: false, experimentalKvCacheKeyType: "F32", experimentalKvCacheValueType: "F32" });
  const seq = ctx.getSequence();
  const out = await seq.controlledEvaluate(tokens.map((t) => [t as Token, { generateNext: { logits: true } }] as const));
  await ctx.dispose();
  await model.dispose();
  return out.map((o) => {
    const logits = new Float64Array(272);
    for (const [tok, v] of o!.next.logits!) logits[tok] = v;
    const m = Math.max(...logits);
    const lse = m + Math.log(logits.reduce((a, b) => a + Math.exp(b - m), 0));
    return logits.map((v) => v - lse);
  });
}

describe("half precision", () => {
  it("f16 and bf16 round to nearest even and round-trip", () => {
    for (const x of [0, 1, -2.5, 65504, 6.1035156e-5, 5.96e-8, 0.1, 1e-9]) expect(f16ToF32(f32ToF16(x))).toBeCloseTo(x, 3);
    expect(f32ToF16(65520)).toBe(0x7c00); // rounds to inf
    expect(f32ToF16(1 + 2 ** -11)).toBe(0x3c00); // tie -> even
    expect(f32ToF16(1 + 3 * 2 ** -11)).toBe(0x3c02);
    expect(bf16ToF32(f32ToBf16(1.00390625))).toBe(1); // tie -> even
    expect(bf16ToF32(f32ToBf16(3.140625))).toBe(3.140625);
  });
});

describe("GGUF", () => {
  it("writes and reads back metadata and tensors", () => {
    const file = path.join(dir, "rt.gguf");
    const data = Float32Array.from({ length: 6 }, (_, i) => i - 2.5);
    writeGguf(file, [["a.b", { type: "u32", value: 7 }], ["s", { type: "array", itemType: "string", value: ["x", "yz"] }]], [
      { name: "w", shape: [2, 3], type: "f32", data },
      { name: "h", shape: [3, 2], type: "f16", data },
      { name: "b", shape: [6], type: "bf16", data: Float32Array.of(1.00390625, 3.140625, -0.1, 1e30, -7, 0) },
    ]);
    const g = readGguf(file);
    expect(g.metadata.get("a.b")).toEqual({ type: "u32", value: 7 });
    expect(g.metadata.get("s")).toEqual({ type: "array", itemType: "string", value: ["x", "yz"] });
    expect(g.tensors.map((t) => [t.name, t.shape, t.type, t.bytes, t.offset % 32])).toEqual([["w", [2, 3], "f32", 24, 0], ["h", [3, 2], "f16", 12, 0], ["b", [6], "bf16", 12, 0]]);
    expect(Array.from(ggufTensorData(g, "w"))).toEqual(Array.from(data));
    expect(Array.from(ggufTensorData(g, "h"))).toEqual(Array.from(data));
    // bf16 rounds to nearest even on write: 1 + 2^-8 is a tie (-> 1), 3.140625 is exact
    expect(Array.from(ggufTensorData(g, "b"))).toEqual([1, 3.140625, bf16ToF32(f32ToBf16(-0.1)), bf16ToF32(f32ToBf16(1e30)), -7, 0]);
    expect(ggufTensorData(g, "b")[2]).not.toBe(Math.fround(-0.1));
    fs.writeFileSync(path.join(dir, "trunc.gguf"), fs.readFileSync(file).subarray(0, 100));
    expect(() => readGguf(path.join(dir, "trunc.gguf"))).toThrow(/trunc\.gguf.*(truncated|past the end)/);
  });

  for (const [arch, tie] of [["llama", false], ["qwen2", true], ["qwen3", false]] as const) {
    it(`a tiny ${arch} we write runs in llama.cpp with the log-probabilities of an HF-semantics reference (1e-3)`, async () => {
      const c = cfg(arch, tie);
      const w = randomDecoderWeights(c, 11);
      const file = path.join(dir, `${arch}.gguf`);
      writeDecoderGguf(file, c, w, byteLevelVocab(c.vocabSize));
      const tokens = [5, 77, 130, 9, 200, 31, 31, 250, 4, 66, 101, 12];
      const ours = referenceLogProbs(c, w, tokens);
      const theirs = await llamaCppLogProbs(file, tokens);
      let worst = 0;
      for (let t = 0; t < tokens.length; t++) for (let v = 0; v < c.vocabSize; v++) worst = Math.max(worst, Math.abs(ours[t]![v]! - theirs[t]![v]!));
      // f32 weights and f32 compute on both sides, different summation orders: measured ~5e-6;
      // the issue asks for 1e-3, we hold 1e-4 absolute on log-probabilities
      expect(worst).toBeLessThan(1e-4);
      // and the comparison is not vacuous: the distribution is far from uniform
      const spread = Math.max(...ours[3]!) - Math.min(...ours[3]!);
      expect(spread).toBeGreaterThan(1);
    });
  }
});

describe("GGUF with f16 and bf16 weights", () => {
  for (const [arch, tie] of [["llama", false], ["qwen2", true]] as const) {
    it(`a ${arch} written as f16 and as bf16 runs in llama.cpp like the f32 file: log-probs within 3e-3 / 2e-2, the same greedy token wherever f32's lead is clear`, async () => {
      const c = cfg(arch, tie);
      // projections ~U(-0.05, 0.05) and a small embedding (it is also the tied LM head):
      // logits of a few units, as in a trained model, not the saturated ones of scale 1
      const w = randomDecoderWeights(c, 12, 0.05);
      const emb = w.get("model.embed_tokens.weight")!;
      for (let i = 0; i < emb.length; i++) emb[i] = emb[i]! * 0.1;
      const files = { f32: "", f16: "", bf16: "" };
      for (const type of ["f32", "f16", "bf16"] as const) {
        files[type] = path.join(dir, `${arch}-${type}.gguf`);
        writeDecoderGguf(files[type], c, w, byteLevelVocab(c.vocabSize), type);
        const g = readGguf(files[type]);
        // matrices carry the type, norms (1-D) stay f32, as llama.cpp's converter writes them
        expect(g.tensors.find((t) => t.name === "blk.0.ffn_down.weight")!.type).toBe(type);
        expect(g.tensors.find((t) => t.name === "blk.0.attn_norm.weight")!.type).toBe("f32");
      }
      // the bf16 file is about half the f32 one (the matrices dominate)
      expect(fs.statSync(files.bf16).size / fs.statSync(files.f32).size).toBeLessThan(0.6);
      const seq = Array.from({ length: 40 }, (_, i) => (i * 97 + 13) % c.vocabSize);
      const ref = referenceLogProbs(c, w, seq);
      const lp = { f32: await llamaCppLogProbs(files.f32, seq), f16: await llamaCppLogProbs(files.f16, seq), bf16: await llamaCppLogProbs(files.bf16, seq) };
      const worst = (a: Float64Array[], b: Float64Array[]): number => Math.max(...a.map((row, t) => Math.max(...row.map((v, k) => Math.abs(v - b[t]![k]!)))));
      expect(worst(lp.f32, ref)).toBeLessThan(1e-4);
      // f16 keeps 11 significant bits, bf16 8, and llama.cpp also rounds the activations to
      // the weights' type inside its dot products. Measured: f16 4e-4 (llama) / 7e-4 (qwen2),
      // bf16 3e-3 / 6e-3; the bounds leave >3x. A wrong byte order or type code gives
      // errors of order 1 (rounding to nearest even is checked by the round trip above).
      const tol = { f16: 3e-3, bf16: 2e-2 };
      expect(worst(lp.f16, lp.f32)).toBeLessThan(tol.f16);
      expect(worst(lp.bf16, lp.f32)).toBeLessThan(tol.bf16);
      const argmax = (row: Float64Array): number => row.indexOf(Math.max(...row));
      for (const type of ["f16", "bf16"] as const) {
        // greedy decoding's choice at each position: wherever f32's best token leads the
        // runner-up by more than twice the log-prob tolerance, the rounded file picks it too
        let checked = 0;
        for (let t = 0; t < seq.length; t++) {
          const sorted = [...lp.f32[t]!].sort((a, b) => b - a);
          if (sorted[0]! - sorted[1]! <= 2 * tol[type]) continue;
          expect(argmax(lp[type][t]!), `${type}, position ${t}`).toBe(argmax(lp.f32[t]!));
          checked++;
        }
        expect(checked, type).toBeGreaterThanOrEqual(20); // not vacuous: measured 25-39 of the 40 positions have a clear lead
      }
    });
  }
});
