/**
 * The architecture registry (src/engine/families.ts): every row is complete and consistent
 * with the decoder families and the shipped tokenizers, and a directory of a family not in
 * the table is refused with the family it names and the list of supported ones, the same
 * through the library and the CLI.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { main } from "../../src/cli/main.js";
import { DECODER_FAMILIES } from "../../src/engine/config.js";
import { MODEL_FAMILIES, modelFamily, supportedFamilies, type ModelFamily } from "../../src/engine/families.js";
import { loadLanguageModel, VlmModel } from "../../src/engine/vlm.js";
import { VlaError } from "../../src/errors.js";
import { BUILTIN_TOKENIZERS } from "../../src/prompts/tokenizer.js";
import { bufferIO } from "../support/io.js";

describe("architecture registry", () => {
  it("has one complete row per family", () => {
    const rows = Object.entries(MODEL_FAMILIES) as Array<[string, ModelFamily]>;
    expect(rows.map(([k]) => k)).toEqual(["qwen2_5_vl", "qwen3_vl", "smolvlm", "llama", "qwen2", "qwen3"]);
    for (const [, f] of rows) {
      expect(Object.keys(DECODER_FAMILIES)).toContain(f.decoder);
      if (f.tokenizer !== undefined) expect(Object.keys(BUILTIN_TOKENIZERS)).toContain(f.tokenizer);
      expect(f.architecture).toMatch(/^[A-Z][A-Za-z0-9_]+For(CausalLM|ConditionalGeneration)$/);
      if (f.vision) expect(typeof f.vision.parse).toBe("function");
    }
    expect(supportedFamilies()).toBe("qwen2_5_vl (Qwen2.5-VL), qwen3_vl (Qwen3-VL), smolvlm (SmolVLM2), llama (Llama 2/3, SmolLM2), qwen2 (Qwen2, Qwen2.5), qwen3 (Qwen3)");
  });

  it("names an unsupported family exactly, with the supported ones, in the library and the CLI", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "vlatext-llava-"));
    const file = path.join(dir, "config.json");
    fs.writeFileSync(file, JSON.stringify({ model_type: "llava", architectures: ["LlavaForConditionalGeneration"], vocab_size: 10 }));
    let err: unknown;
    try {
      loadLanguageModel(dir);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(VlaError);
    expect((err as VlaError).code).toBe("CONFIG_INVALID");
    expect((err as VlaError).message).toContain(`${file}: model_type 'llava' (LlavaForConditionalGeneration) is not a supported model family`);
    expect((err as VlaError).hint).toBe(`supported: ${supportedFamilies()}`);
    expect(() => VlmModel.load(dir)).toThrow(/model_type 'llava' \(LlavaForConditionalGeneration\) is not a supported model family/);
    expect(() => modelFamily({ architectures: ["FooForCausalLM"] }, "x/config.json")).toThrow(/x\/config.json: no model_type \(architectures FooForCausalLM\) is not a supported model family/);
    // a text-only row is not a vision-language model
    fs.writeFileSync(file, JSON.stringify({ model_type: "llama" }));
    expect(() => VlmModel.load(dir)).toThrow(/model_type 'llama' \(Llama 2\/3, SmolLM2\) is a text-only model/);
    // the CLI: the same code and the list
    fs.writeFileSync(file, JSON.stringify({ model_type: "llava", architectures: ["LlavaForConditionalGeneration"] }));
    const io = bufferIO();
    expect(await main(["finetune", "--model", dir, "--output", path.join(dir, "run"), "--tokenizer", "qwen", "--data", '[{"dataset":"none","recipe":"toy-sim"}]', "--steps", "1"], io)).toBe(1);
    expect(io.stderr()).toMatch(/CONFIG_INVALID[\s\S]*model_type 'llava' \(LlavaForConditionalGeneration\) is not a supported model family[\s\S]*supported: qwen2_5_vl \(Qwen2.5-VL\), qwen3_vl \(Qwen3-VL\), smolvlm \(SmolVLM2\)/);
  });
});
