/**
 * Train a small byte-level BPE tokenizer (Qwen style: every digit its own pre-token,
 * so numbers are written digit by digit) and save it as a standard Hugging Face
 * tokenizer.json + tokenizer_config.json that @huggingface/tokenizers (and HF
 * transformers) load. Used for the embedded tiny default model: no download anywhere.
 */
import fs from "node:fs";
import path from "node:path";
import { VlaError } from "../errors.js";
import { bytesToUnicode } from "../io/gguf-decoder.js";

/** Qwen2's pre-tokenizer split (a published regex): letters, single digits, punctuation, spaces. */
export const QWEN_SPLIT_REGEX = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

/** The control tokens a Qwen2.5-VL chat template needs, in id order after the BPE vocabulary. */
export const QWEN_VL_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"] as const;

function jsRegex(): RegExp {
  // JS has no inline (?i:...) group: the contraction alternatives are written out case-insensitively
  const contractions = "'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD]";
  return new RegExp(QWEN_SPLIT_REGEX.replace("(?i:'s|'t|'re|'ve|'m|'ll|'d)", `(?:${contractions})`), "gu");
}

/** Pre-tokenize text into byte-level words (GPT-2 byte -> unicode spelling). */
export function preTokenize(text: string): string[] {
  const b2u = bytesToUnicode();
  const enc = new TextEncoder();
  return (text.normalize("NFC").match(jsRegex()) ?? []).map((w) => Array.from(enc.encode(w), (b) => b2u[b] as string).join(""));
}

export interface TrainedBpe {
  vocab: Map<string, number>;
  merges: Array<[string, string]>;
}

/** Learn merges until the vocabulary (256 bytes + merges) reaches `vocabSize` or no pair repeats. */
export function trainBpe(corpus: readonly string[], vocabSize: number): TrainedBpe {
  if (vocabSize < 256) throw new VlaError("CONFIG_INVALID", `a byte-level BPE needs at least 256 tokens, got ${vocabSize}`);
  const counts = new Map<string, number>();
  for (const text of corpus) for (const w of preTokenize(text)) counts.set(w, (counts.get(w) ?? 0) + 1);
  const words = [...counts.entries()].map(([w, n]) => ({ symbols: [...w], n }));
  const vocab = new Map<string, number>();
  bytesToUnicode().forEach((u) => vocab.set(u, vocab.size));
  const merges: Array<[string, string]> = [];
  while (vocab.size < vocabSize) {
    const pairs = new Map<string, number>();
    for (const w of words) for (let i = 0; i + 1 < w.symbols.length; i++) {
      const k = `${w.symbols[i]} ${w.symbols[i + 1]}`;
      pairs.set(k, (pairs.get(k) ?? 0) + w.n);
    }
    let best = "";
    let bestN = 1; // a pair must occur at least twice to be worth a token
    for (const [k, n] of pairs) if (n > bestN || (n === bestN && best !== "" && k < best)) [best, bestN] = [k, n];
    if (best === "") break;
    const [a, b] = best.split(" ") as [string, string];
    merges.push([a, b]);
    vocab.set(a + b, vocab.size);
    for (const w of words) {
      const s = w.symbols;
      for (let i = 0; i + 1 < s.length; i++) if (s[i] === a && s[i + 1] === b) s.splice(i, 2, a + b);
    }
  }
  return { vocab, merges };
}

/** Write tokenizer.json and tokenizer_config.json (with the given chat template). */
export function saveBpeTokenizer(dir: string, bpe: TrainedBpe, chatTemplate: string, specials: readonly string[] = QWEN_VL_SPECIALS, tokens: { eos?: string; pad?: string } = {}): void {
  fs.mkdirSync(dir, { recursive: true });
  const base = bpe.vocab.size;
  const tokenizer = {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: specials.map((content, i) => ({ id: base + i, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true })),
    normalizer: { type: "NFC" },
    pre_tokenizer: {
      type: "Sequence",
      pretokenizers: [
        { type: "Split", pattern: { Regex: QWEN_SPLIT_REGEX }, behavior: "Isolated", invert: false },
        { type: "ByteLevel", add_prefix_space: false, trim_offsets: false, use_regex: false },
      ],
    },
    post_processor: null,
    decoder: { type: "ByteLevel", add_prefix_space: false, trim_offsets: false, use_regex: false },
    model: {
      type: "BPE",
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: "",
      end_of_word_suffix: "",
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab: Object.fromEntries(bpe.vocab),
      merges: bpe.merges.map(([a, b]) => [a, b]),
    },
  };
  const config = {
    add_prefix_space: false,
    bos_token: null,
    eos_token: tokens.eos ?? "<|im_end|>",
    pad_token: tokens.pad ?? "<|endoftext|>",
    unk_token: null,
    clean_up_tokenization_spaces: false,
    model_max_length: 32768,
    tokenizer_class: "Qwen2Tokenizer",
    chat_template: chatTemplate,
    added_tokens_decoder: Object.fromEntries(specials.map((content, i) => [String(base + i), { content, lstrip: false, normalized: false, rstrip: false, single_word: false, special: true }])),
  };
  fs.writeFileSync(path.join(dir, "tokenizer.json"), JSON.stringify(tokenizer));
  fs.writeFileSync(path.join(dir, "tokenizer_config.json"), JSON.stringify(config, null, 2) + "\n");
}
