/**
 * End to end on the engine: LoRA on a frozen random tiny model learns to write four
 * action strings (one per task token); the loss goes near zero and greedy generation
 * then reproduces every string exactly, stopping at end-of-sequence.
 */
import { describe, expect, it } from "vitest";
import { DecoderModel } from "../../src/engine/decoder.js";
import { parseDecoderConfig } from "../../src/engine/config.js";
import { randomDecoderWeights } from "../support/ref-decoder.js";
import { hfConfigJson, tinyConfig } from "../support/tiny-models.js";

// vocabulary: 0-9 digits, 10 space, 11 end of sequence, 12-15 task tokens
const SPACE = 10;
const EOS = 11;
const encode = (s: string) => [...s].map((ch) => (ch === " " ? SPACE : Number(ch)));
const decode = (ids: number[]) => ids.map((t) => (t === SPACE ? " " : String(t))).join("");
const answers = ["512 73 999 0 1000 4", "0 0 1 250 750 1000 3", "999 998 5 77 123 456 1", "31 415 926 535 897 93 0"];

describe("LoRA memorization", () => {
  it("drives the loss near zero and greedy decoding reproduces the strings", async () => {
    const c = tinyConfig("qwen2", true, { vocabSize: 16, hiddenSize: 64, numLayers: 2, numHeads: 4, numKvHeads: 2, headDim: 16, intermediateSize: 128 });
    const m = new DecoderModel(parseDecoderConfig(hfConfigJson(c)));
    for (const [n, d] of randomDecoderWeights(c, 7, 0.1)) m.setParam(n, d);
    m.enableLora({ rank: 8, alpha: 16, targets: "all-linear", seed: 3 });
    const seqs = answers.map((a, i) => [12 + i, ...encode(a), EOS]);
    const T = Math.max(...seqs.map((s) => s.length)) - 1;
    const B = seqs.length;
    const tokens = new Int32Array(B * T).fill(EOS);
    const targets = new Int32Array(B * T).fill(-100);
    seqs.forEach((s, b) => {
      for (let t = 0; t < s.length - 1; t++) {
        tokens[b * T + t] = s[t]!;
        targets[b * T + t] = s[t + 1]!;
      }
    });
    const first = m.loss({ B, T, tokens, targets }).loss;
    let last = first;
    for (let step = 0; step < 600 && last > 0.01; step++) {
      last = (await m.forwardBackward({ B, T, tokens, targets })).loss;
      m.optimizerStep({ lr: 3e-3, weightDecay: 0, maxGradNorm: 1 });
    }
    expect(first).toBeGreaterThan(2); // random tied embeddings: far from the answers before training
    expect(last).toBeLessThan(0.05);
    for (const [i, a] of answers.entries()) expect(decode(m.generate([12 + i], { maxNew: 40, eos: EOS }))).toBe(a);
    // the base weights never moved
    expect(Array.from(m.getParam("model.layers.1.mlp.down_proj.weight"))).toEqual(Array.from(randomDecoderWeights(c, 7, 0.1).get("model.layers.1.mlp.down_proj.weight")!));
    m.dispose();
  });
});
