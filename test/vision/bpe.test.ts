import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { preTokenize, QWEN_VL_SPECIALS, saveBpeTokenizer, trainBpe } from "../../src/models/bpe.js";
import { renderChat, segmentsToText } from "../../src/prompts/chat.js";
import { encodeSegments } from "../../src/prompts/encode.js";
import { loadTemplate, promptsDir, renderTemplate } from "../../src/prompts/template.js";
import { loadTokenizer, loadTokenizerDir } from "../../src/prompts/tokenizer.js";

const corpus = [
  "put the red block on the green block",
  "pick up the blue block",
  "push the yellow block to the red zone",
  "reach the green block",
  "Analyze the input image and predict robot actions for the next 8 timesteps.",
  "512 73 999 0 1000 250 750",
];

describe("tiny byte-level BPE", () => {
  it("pre-tokenizes like Qwen's tokenizer (digits alone)", () => {
    const qwen = loadTokenizer("qwen");
    for (const text of ["put the red block on 12 blocks", "512 73 999", "it's   Done!\nok"]) {
      const mine = preTokenize(text).join("|");
      const theirs = qwen.plain.tokenize(text).join("|");
      // Qwen's BPE may merge within a pre-token, never across: our pre-tokens are unions of theirs
      expect(theirs.split("|").join("")).toBe(mine.split("|").join(""));
      for (const w of preTokenize(text)) if (/^[0-9]$/.test(w)) expect(theirs.split("|")).toContain(w);
    }
    expect(preTokenize("1000 7")).toEqual(["1", "0", "0", "0", "Ġ", "7"]);
  });

  it("trains, saves a tokenizer.json that @huggingface/tokenizers loads, and round-trips", () => {
    const small = trainBpe(corpus, 300);
    // pairs seen once are not merged: this corpus runs out of pairs before 300
    expect(small.vocab.size).toBe(256 + small.merges.length);
    expect(small.vocab.size).toBeLessThan(300);
    const bpe = trainBpe([...corpus, ...corpus, ...corpus], 300);
    expect(bpe.vocab.size).toBe(300);
    expect(bpe.merges.length).toBe(44);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "vlatext-bpe-"));
    saveBpeTokenizer(dir, bpe, fs.readFileSync(path.join(promptsDir(), "chat-templates", "qwen2-vl.jinja"), "utf8"));
    const tok = loadTokenizerDir(dir, "tiny");
    expect(tok.vocabSize).toBe(300 + QWEN_VL_SPECIALS.length);
    for (const text of [...corpus, "a never seen Sentence, 42!"]) expect(tok.decode(tok.encodePlain(text))).toBe(text);
    // digits are single tokens, common words merged
    expect(tok.encodePlain("1000").length).toBe(4);
    expect(tok.encodePlain(" block").length).toBe(1);
    // the chat template renders and encodes with the specials
    const segs = renderChat(tok, renderTemplate(loadTemplate("vla0"), { horizon: 8, dims: 7, bins: 1000, instruction: "pick up the blue block", images: 1 }), { answer: "1 2 3", addVisionId: true });
    expect(segmentsToText(segs)).toContain("<|vision_start|><|image_pad|><|vision_end|>pick up the blue block<|im_end|>");
    const enc = encodeSegments(tok, segs);
    expect(enc.ids[enc.answerEnd]).toBe(tok.requireId("<|im_end|>"));
  });
});
