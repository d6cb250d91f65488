/**
 * One native error path: every failing call into the addon, synchronous or async, reaches
 * TypeScript as a VlaError with a NATIVE_* code (from the `status` every native error
 * carries, native/napi/napi_util.h), one check per wrapper, and the CLI prints it as
 * `error [NATIVE_...]`.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { main } from "../../src/cli/main.js";
import { ActionAutomaton, generateConstrained } from "../../src/engine/automaton.js";
import { loadAddon } from "../../src/engine/addon.js";
import { parseDecoderConfig } from "../../src/engine/config.js";
import { DecoderModel } from "../../src/engine/decoder.js";
import { optimizerStep } from "../../src/engine/params.js";
import { Runtime } from "../../src/engine/reduce.js";
import { parseVisionConfig, VisionModel } from "../../src/engine/vision.js";
import { ActionGrammar } from "../../src/actions/grammar.js";
import { getFormat } from "../../src/actions/format.js";
import { parseActionSpec, VLA0_SPEC } from "../../src/actions/spec.js";
import { VlaError } from "../../src/errors.js";
import { randomDecoderWeights } from "../support/ref-decoder.js";
import { bufferIO } from "../support/io.js";
import { hfConfigJson, tinyConfig, writeHfDir } from "../support/tiny-models.js";
import { writeTinyPolicy } from "../support/tiny-policy.js";

const code = (f: () => unknown): string => {
  try {
    f();
  } catch (e) {
    return e instanceof VlaError ? e.code : `not a VlaError: ${String(e)}`;
  }
  return "no error";
};
const asyncCode = async (f: () => Promise<unknown>): Promise<string> => {
  try {
    await f();
  } catch (e) {
    return e instanceof VlaError ? e.code : `not a VlaError: ${String(e)}`;
  }
  return "no error";
};

function tinyDecoder(): DecoderModel {
  const c = tinyConfig("qwen2", true);
  const m = new DecoderModel(parseDecoderConfig(hfConfigJson(c)));
  for (const [n, d] of randomDecoderWeights(c, 3)) m.setParam(n, d);
  return m;
}

describe("native errors reach TypeScript with codes", () => {
  it("Decoder: bad config, bad batch (sync and async), no device, use after dispose", async () => {
    const addon = loadAddon();
    const bad = { ...parseDecoderConfig(hfConfigJson(tinyConfig("llama", false))).native, numKvHeads: 3 };
    const raw = (() => {
      try {
        new addon.Decoder(bad);
      } catch (e) {
        return e as Error & { status?: string };
      }
      return undefined;
    })();
    expect(raw?.status).toBe("InvalidArgument");
    expect(raw?.message).toMatch(/multiple of num_key_value_heads/);
    expect(code(() => new DecoderModel({ ...parseDecoderConfig(hfConfigJson(tinyConfig("llama", false))), native: bad }))).toBe("NATIVE_ARGUMENT");
    // no CUDA backend in this build (or no GPU): NoDevice
    expect(code(() => new DecoderModel(parseDecoderConfig(hfConfigJson(tinyConfig("llama", false))), { device: "cuda" }))).toBe("NATIVE_DEVICE");
    const m = tinyDecoder();
    const V = m.config.native.vocabSize;
    expect(code(() => m.loss({ B: 1, T: 2, tokens: Int32Array.of(1, V), targets: Int32Array.of(1, 2) }))).toBe("NATIVE_ARGUMENT");
    expect(await asyncCode(() => m.forwardBackward({ B: 1, T: 2, tokens: Int32Array.of(1, 2), targets: Int32Array.of(V, 2) }))).toBe("NATIVE_ARGUMENT");
    // a synchronous call while an async one runs, on the raw handle
    const running = m.forwardBackward({ B: 1, T: 2, tokens: Int32Array.of(1, 2), targets: Int32Array.of(2, 3) });
    expect(code(() => m.setTrainBase(true))).toBe("NATIVE_STATE");
    await running;
    m.dispose();
    expect(code(() => m.getParam("model.norm.weight"))).toBe("NATIVE_STATE");
  });

  it("ParamStore: unknown tensor, wrong size, bf16 not trainable, owner disposed", () => {
    const m = tinyDecoder();
    expect(code(() => m.params.get("no.such.tensor"))).toBe("NATIVE_ARGUMENT");
    expect(code(() => m.params.set("model.norm.weight", new Float32Array(3)))).toBe("NATIVE_ARGUMENT");
    const store = m.params;
    m.dispose();
    expect(code(() => store.info())).toBe("NATIVE_STATE");
    expect(code(() => optimizerStep([store], { lr: 1e-3 }))).toBe("NATIVE_STATE");
    const b = new DecoderModel(parseDecoderConfig(hfConfigJson(tinyConfig("llama", false))), { dtype: "bf16" });
    try {
      expect(code(() => b.setTrainBase(true))).toBe("NATIVE_ARGUMENT");
      expect(() => b.setTrainBase(true)).toThrow(/stored as bf16 and cannot be trained/);
    } finally {
      b.dispose();
    }
  });

  it("VisionTower: bad grid (async), backward without a training forward, frozen tower", async () => {
    const v = new VisionModel(parseVisionConfig({ depth: 1, hidden_size: 16, intermediate_size: 24, num_heads: 2, out_hidden_size: 12, window_size: 56 }));
    try {
      expect(await asyncCode(() => v.forward(new Float32Array(3 * 2 * 14 * 14 * 4), [{ t: 1, h: 2, w: 3 }]))).toBe("NATIVE_ARGUMENT");
      expect(await asyncCode(() => v.backward(new Float32Array(12)))).toBe("NATIVE_STATE");
      await v.forward(new Float32Array(3 * 2 * 14 * 14 * 4), [{ t: 1, h: 2, w: 2 }], { train: true });
      expect(await asyncCode(() => v.backward(new Float32Array(12)))).toBe("NATIVE_ARGUMENT"); // frozen: make it trainable first
      v.setTrainable(true);
      await v.backward(new Float32Array(12));
    } finally {
      v.dispose();
    }
    expect(code(() => v.setTrainable(false))).toBe("NATIVE_STATE");
  });

  it("KvCache, ActionAutomaton and constrained generation", async () => {
    const m = tinyDecoder();
    const V = m.config.native.vocabSize;
    try {
      const cache = m.newCache(2);
      expect(code(() => cache.feed(Int32Array.of(1, 2, 3)))).toBe("NATIVE_ARGUMENT");
      expect(code(() => cache.feed(Int32Array.of(V)))).toBe("NATIVE_ARGUMENT");
      const grammar = new ActionGrammar(parseActionSpec(VLA0_SPEC), getFormat("vla0"));
      const texts = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9", " "];
      const a = new ActionAutomaton(grammar, { ids: Int32Array.from(texts.map((_, i) => i + 10)), texts, eos: 2 });
      expect(code(() => a.allowedAfter([999]))).toBe("NATIVE_ARGUMENT");
      expect(await asyncCode(() => generateConstrained(m, [], a))).toBe("NATIVE_ARGUMENT");
      expect(await asyncCode(() => generateConstrained(m, [V + 5], a))).toBe("NATIVE_ARGUMENT");
    } finally {
      m.dispose();
    }
  });

  it("Runtime: use after dispose", () => {
    const rt = new Runtime({ threads: 1 });
    rt.dispose();
    expect(code(() => rt.reduceSum(new Float32Array(4)))).toBe("NATIVE_STATE");
  });

  it("the CLI prints a native failure as error [NATIVE_...] with its hint", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "vlatext-nerr-"));
    const c = tinyConfig("llama", true);
    const w = randomDecoderWeights(c, 1);
    writeHfDir(dir, c, w, new Map([...w].map(([n, d]) => [n, [d.length]])));
    const io = bufferIO();
    // the model is made before any data is read: the device is the first thing to fail
    const rc = await main(["finetune", "--model", dir, "--tokenizer", "qwen", "--output", path.join(dir, "run"), "--data", JSON.stringify([{ dataset: dir, recipe: "toy-sim" }]), "--device", "cuda", "--steps", "1"], { ...io, cwd: dir });
    expect(rc).toBe(1);
    // a CPU build has no CUDA backend; a CUDA build on a machine without a GPU has no device
    expect(io.stderr()).toMatch(/error \[NATIVE_DEVICE\]: Decoder: Decoder config: .*(no CUDA backend|no CUDA device|cuda)/i);
    expect(io.stderr()).toMatch(/hint: /);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it("serve and eval take the model flags: --device cuda fails as NATIVE_DEVICE, --dtype bf16 serves, a bad value is named", async () => {
    const policy = writeTinyPolicy(2);
    const io = bufferIO();
    expect(await main(["serve", "--model", policy, "--port", "0", "--device", "cuda"], io)).toBe(1);
    expect(io.stderr()).toMatch(/error \[NATIVE_DEVICE\]/);
    const bad = bufferIO();
    expect(await main(["eval", "--sim", "--model", policy, "--dtype", "f16"], bad)).toBe(1);
    expect(bad.stderr()).toMatch(/error \[CLI_USAGE\]: --dtype must be auto, f32 or bf16, got 'f16'/);
    const ok = bufferIO();
    expect(await main(["eval", "--sim", "--model", policy, "--dtype", "bf16", "--episodes", "1", "--families", "reach", "--size", "28", "--json"], ok)).toBe(0);
    expect((JSON.parse(ok.stdout()) as { episodes: number }).episodes).toBe(1);
    fs.rmSync(policy, { recursive: true, force: true });
  }, 120_000);
});
