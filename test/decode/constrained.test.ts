/**
 * Constrained decoding: the native token automaton agrees with the TypeScript grammar
 * on every vocabulary token, and random-weight models always produce parseable chunks,
 * with one-digit (Qwen-style) and multi-digit + leading-space (Llama-3-style) vocabularies.
 */
import { describe, expect, it } from "vitest";
import { ActionGrammar, type GrammarState } from "../../src/actions/grammar.js";
import { getFormat, parseTextFormat, type TextFormat } from "../../src/actions/format.js";
import { parseStrict } from "../../src/actions/parser.js";
import { parseActionSpec, VLA0_SPEC } from "../../src/actions/spec.js";
import { ActionAutomaton, cancelGeneration, generateConstrained, generateConstrainedBatch, newCancelFlag } from "../../src/engine/automaton.js";
import { DecoderModel } from "../../src/engine/decoder.js";
import { parseDecoderConfig } from "../../src/engine/config.js";
import { randomDecoderWeights } from "../support/ref-decoder.js";
import { rng } from "../support/rng.js";
import { hfConfigJson, tinyConfig } from "../support/tiny-models.js";

const spec = parseActionSpec(VLA0_SPEC);

/** A vocabulary: filler tokens, then the grammar tokens given, then EOS last. */
function vocab(tokens: string[], filler = 20): { texts: string[]; V: number; eos: number } {
  const texts = [...Array.from({ length: filler }, (_, i) => `<w${i}>`), ...tokens];
  return { texts, V: texts.length + 1, eos: texts.length };
}

const qwenStyle = vocab([..."0123456789".split(""), " ", ",", "\n", " |", "| ", "|"]);
const llamaStyle = vocab([
  ..."0123456789".split(""),
  ...Array.from({ length: 990 }, (_, i) => String(i + 10)),
  " ",
  "  ",
  ...Array.from({ length: 10 }, (_, i) => ` ${i}`),
  " 10",
  " 100",
  "00",
  "000",
]);

function automaton(v: { texts: string[]; eos: number }, g: ActionGrammar): ActionAutomaton {
  const ids: number[] = [];
  const texts: string[] = [];
  v.texts.forEach((t, i) => {
    if ([...t].every((c) => g.alphabet.has(c))) {
      ids.push(i);
      texts.push(t);
    }
  });
  return new ActionAutomaton(g, { ids: Int32Array.from(ids), texts, eos: v.eos });
}

function tsAllowed(g: ActionGrammar, v: { texts: string[]; eos: number }, s: GrammarState): number[] {
  const out: number[] = [];
  v.texts.forEach((t, i) => {
    if ([...t].every((c) => g.alphabet.has(c)) && g.advance(s, t) !== null) out.push(i);
  });
  if (g.isAccepting(s)) out.push(v.eos);
  return out;
}

function model(V: number, seed: number): DecoderModel {
  const c = tinyConfig("qwen2", true, { vocabSize: V, hiddenSize: 32, numLayers: 2, numHeads: 2, numKvHeads: 1, headDim: 16, intermediateSize: 48 });
  const m = new DecoderModel(parseDecoderConfig(hfConfigJson(c)));
  for (const [n, d] of randomDecoderWeights(c, seed, 0.5)) m.setParam(n, d);
  return m;
}

describe("token automaton", () => {
  for (const [name, v, format] of [
    ["qwen-style, vla0", qwenStyle, getFormat("vla0")],
    ["qwen-style, steps", qwenStyle, getFormat("steps")],
    ["llama-style, vla0", llamaStyle, getFormat("vla0")],
    ["llama-style, padded", llamaStyle, getFormat("padded")],
  ] as Array<[string, typeof qwenStyle, TextFormat]>) {
    it(`${name}: native allowed sets equal the TypeScript grammar's along random walks`, () => {
      const g = new ActionGrammar(spec, format);
      const a = automaton(v, g);
      const r = rng(name.length);
      for (let walk = 0; walk < 6; walk++) {
        let s = g.start();
        const taken: number[] = [];
        for (let step = 0; step < 400; step++) {
          const want = tsAllowed(g, v, s);
          expect(Array.from(a.allowedAfter(taken)).sort((x, y) => x - y), `after ${taken.length} tokens`).toEqual(want.sort((x, y) => x - y));
          const pick = want[Math.floor(r() * want.length)]!;
          if (pick === v.eos) break;
          taken.push(pick);
          s = g.advance(s, v.texts[pick]!)!;
        }
        expect(g.isAccepting(s)).toBe(true);
      }
    });
  }

  it("rejects a vocabulary that cannot write every digit", () => {
    const g = new ActionGrammar(spec, getFormat("vla0"));
    expect(() => new ActionAutomaton(g, { ids: Int32Array.from([0, 1]), texts: ["1", " "], eos: 2 })).toThrow(/lacks single-digit tokens/);
  });
});

describe("constrained generation", () => {
  for (const [name, v, format] of [
    ["qwen-style vla0", qwenStyle, getFormat("vla0")],
    ["llama-style vla0", llamaStyle, getFormat("vla0")],
    ["qwen-style steps", qwenStyle, getFormat("steps")],
    ["llama-style padded", llamaStyle, getFormat("padded")],
    ["qwen-style 9 bins", qwenStyle, parseTextFormat({ name: "b9", bins: 9 })],
  ] as Array<[string, typeof qwenStyle, TextFormat]>) {
    it(`${name}: random-weight models always produce a parseable chunk`, async () => {
      const g = new ActionGrammar(spec, format);
      const a = automaton(v, g);
      for (let seed = 0; seed < 4; seed++) {
        const m = model(v.V, seed);
        for (const temperature of [0, 1.5]) {
          const r = await generateConstrained(m, [0, 1, 2, 3], a, { temperature, seed, maxTokens: 400 });
          const text = Array.from(r.tokens, (t) => v.texts[t]).join("");
          const parsed = parseStrict(text, g);
          expect(parsed.ok, `${text}`).toBe(true);
          expect(r.finished).toBe(true);
          expect(r.modelCalls + r.forced).toBe(r.tokens.length + 1); // every emitted token (and EOS) was sampled or forced
        }
        m.dispose();
      }
    });
  }

  it("jump-forward and the sparse head change the cost, not the greedy output", async () => {
    const v = llamaStyle;
    const g = new ActionGrammar(spec, getFormat("padded"));
    const a = automaton(v, g);
    const m = model(v.V, 9);
    const base = await generateConstrained(m, [5, 6, 7], a, { jumpForward: false, sparseMax: 0 });
    const fast = await generateConstrained(m, [5, 6, 7], a, { jumpForward: true, sparseMax: 64 });
    expect(Array.from(fast.tokens)).toEqual(Array.from(base.tokens));
    expect(base.forced).toBe(0);
    expect(fast.forced).toBeGreaterThan(0);
    expect(fast.modelCalls).toBe(base.modelCalls - fast.forced);
    m.dispose();
  });
});

describe("cancellation", () => {
  it("a cancelled sequence stops and says so; the rest of the batch is unchanged", async () => {
    const v = qwenStyle;
    const g = new ActionGrammar(spec, getFormat("vla0"));
    const a = automaton(v, g);
    const m = model(v.V, 3);
    const prompts = [
      [1, 2, 3],
      [4, 5, 6],
      [7, 8, 9],
    ];
    const alone: number[][] = [];
    for (const i of [0, 2]) alone.push(Array.from((await generateConstrained(m, prompts[i]!, a, {})).tokens));
    const flag = newCancelFlag();
    cancelGeneration(flag); // before the call: the sequence never runs
    const rs = await generateConstrainedBatch(m, prompts, a, [{}, { cancel: flag }, {}]);
    expect(rs.map((r) => r.cancelled)).toEqual([false, true, false]);
    expect(rs[1]!.tokens.length).toBe(0);
    expect(rs[1]!.finished).toBe(false);
    expect(Array.from(rs[0]!.tokens)).toEqual(alone[0]);
    expect(Array.from(rs[2]!.tokens)).toEqual(alone[1]);
    m.dispose();
  });

  it("a flag set while the sequence runs stops it before its end", async () => {
    const v = qwenStyle;
    const g = new ActionGrammar(spec, getFormat("vla0"));
    const a = automaton(v, g);
    const c = tinyConfig("qwen2", true, { vocabSize: v.V, hiddenSize: 256, numLayers: 4, numHeads: 4, numKvHeads: 2, headDim: 64, intermediateSize: 512 });
    const m = new DecoderModel(parseDecoderConfig(hfConfigJson(c)), { threads: 1 });
    for (const [n, d] of randomDecoderWeights(c, 4, 0.5)) m.setParam(n, d);
    const full = await generateConstrained(m, [1, 2, 3], a, { jumpForward: false });
    const flag = newCancelFlag();
    let seen = 0;
    const r = await generateConstrained(m, [1, 2, 3], a, { jumpForward: false, cancel: flag }, (t) => {
      seen += t.length;
      if (seen === 1) cancelGeneration(flag); // the first token reached JavaScript: stop
    });
    expect(r.cancelled).toBe(true);
    expect(r.finished).toBe(false);
    expect(r.tokens.length).toBeGreaterThanOrEqual(1);
    expect(r.tokens.length).toBeLessThan(full.tokens.length);
    expect(Array.from(r.tokens)).toEqual(Array.from(full.tokens).slice(0, r.tokens.length));
    m.dispose();
  });

  it("refuses a cancel flag that is not on a SharedArrayBuffer", async () => {
    const v = qwenStyle;
    const g = new ActionGrammar(spec, getFormat("vla0"));
    const a = automaton(v, g);
    const m = model(v.V, 5);
    await expect(generateConstrained(m, [1], a, { cancel: new Int32Array(1) })).rejects.toThrow(/SharedArrayBuffer/);
    m.dispose();
  });
});
