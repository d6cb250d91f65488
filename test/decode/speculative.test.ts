/**
 * Speculative constrained decoding with the previous chunk as the draft
 * (native/decode/speculative.h): the C++ checks in native/tests/test_speculative.cpp (the CMake
 * builds' build-cmake/vlatext_decode_tests; skipped, saying why, without one). Whatever the draft (exact, another
 * prompt's chunk, digits changed, a number lengthened, junk, none), the output must be plain
 * greedy decoding's token for token; an exact draft must at least halve the model calls.
 * Then the same through the addon: generateConstrained(..., { draft }).
 */
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { getFormat } from "../../src/actions/format.js";
import { ActionGrammar } from "../../src/actions/grammar.js";
import { parseActionSpec, VLA0_SPEC } from "../../src/actions/spec.js";
import { parseDecoderConfig } from "../../src/engine/config.js";
import { ActionAutomaton, generateConstrained, generateConstrainedBatch } from "../../src/engine/automaton.js";
import { DecoderModel } from "../../src/engine/decoder.js";
import { randomDecoderWeights } from "../support/ref-decoder.js";
import { hfConfigJson, tinyConfig } from "../support/tiny-models.js";

// built by the CMake builds (npm run build:cmake / build:cuda; .ci/run makes one where nvcc is)
const exe = path.resolve("build-cmake/vlatext_decode_tests");
const why = fs.existsSync(exe) ? "" : `no ${exe} (npm run build:cmake or build:cuda builds it)`;
if (why) console.log(`skipping the C++ speculative decoding checks: ${why}`);

describe.skipIf(why !== "")("speculative decoding (C++ tests)", () => {
  it("greedy output is identical with any draft, and a good draft saves model calls", () => {
    const r = spawnSync(exe, [], { encoding: "utf8", timeout: 120_000 });
    const lines = r.stdout.split("\n").filter((l) => /^(PASS|FAIL) /.test(l));
    expect(lines.filter((l) => l.startsWith("FAIL")), r.stdout + r.stderr).toEqual([]);
    expect(r.status).toBe(0);
    for (const draft of ["exact", "other prompt's chunk", "digits changed", "a number lengthened", "junk", "none"]) {
      expect(lines.filter((l) => l.startsWith("PASS speculative = greedy:") && l.includes(`draft ${draft},`)).length, draft).toBe(16);
    }
    expect(lines.some((l) => l.startsWith("PASS an exact draft is all accepted and at least halves the model calls"))).toBe(true);
    expect(lines.some((l) => l.startsWith("PASS an empty prompt is refused"))).toBe(true);
  });
});

describe("speculative decoding through generateConstrained({ draft })", () => {
  const texts = [...Array.from({ length: 20 }, (_, i) => `<w${i}>`), ..."0123456789".split(""), " "];
  const eos = texts.length;
  const g = new ActionGrammar(parseActionSpec(VLA0_SPEC), getFormat("vla0"));
  const ids = texts.map((_, i) => i).filter((i) => i >= 20);
  const automaton = new ActionAutomaton(g, { ids: Int32Array.from(ids), texts: ids.map((i) => texts[i]!), eos });
  const c = tinyConfig("qwen2", true, { vocabSize: texts.length + 1, hiddenSize: 32, numLayers: 2, numHeads: 2, numKvHeads: 1, headDim: 16, intermediateSize: 48 });
  const m = new DecoderModel(parseDecoderConfig(hfConfigJson(c)));
  for (const [n, d] of randomDecoderWeights(c, 5, 0.5)) m.setParam(n, d);

  it("gives plain greedy decoding's chunk with the previous chunk, the same chunk or junk as the draft, streaming every token", async () => {
    const prompts = [[0, 1, 2, 3], [0, 1, 2, 4], [7, 7]];
    const plain = [];
    for (const p of prompts) plain.push(await generateConstrained(m, p, automaton, { maxTokens: 400 }));
    for (let i = 0; i < prompts.length; i++) {
      for (const [name, draft] of [["previous chunk", plain[(i + prompts.length - 1) % prompts.length]!.tokens], ["same chunk", plain[i]!.tokens], ["junk", Int32Array.from({ length: 50 }, () => 3)]] as const) {
        const streamed: number[] = [];
        const r = await generateConstrained(m, prompts[i]!, automaton, { maxTokens: 400, draft }, (t) => streamed.push(...t));
        expect(Array.from(r.tokens), `prompt ${i}, draft ${name}`).toEqual(Array.from(plain[i]!.tokens));
        expect(streamed).toEqual(Array.from(r.tokens));
        expect(r.finished).toBe(true);
        expect(r.drafted).toBeGreaterThanOrEqual(r.accepted!);
        if (name === "same chunk") expect(r.modelCalls * 2, `${r.modelCalls} vs ${plain[i]!.modelCalls}`).toBeLessThanOrEqual(plain[i]!.modelCalls);
        if (name === "junk") expect(r.drafted).toBe(0);
      }
    }
  });

  it("refuses a draft with sampling or with a batch", async () => {
    await expect(generateConstrained(m, [0, 1], automaton, { temperature: 1, draft: Int32Array.of(20) })).rejects.toThrow(/greedy: temperature must be 0/);
    await expect(generateConstrainedBatch(m, [[0, 1], [2]], automaton, [{ draft: Int32Array.of(20) }, {}])).rejects.toThrow(/takes one prompt, not a batch/);
  });
});
