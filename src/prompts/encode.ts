/**
 * Segments -> token ids and labels, and VLA-0's masked action augmentation.
 *
 * Adjacent text segments (template and user text) are tokenized together, as
 * Hugging Face tokenizes the rendered string, but with the plain encoder so
 * user text never yields control tokens; special tokens map to their ids;
 * each image becomes `imageTokens[i]` copies of its marker token (the vision
 * tower decides the count), or, where the family's processor expands an image into
 * more (SmolVLM2: wrappers, tile positions, newlines), its `imageExpansions[i]` pieces;
 * the answer is tokenized on its own.
 *
 * Labels follow the HF convention: labels[i] is the token at position i (the
 * loss shifts by one), -100 where no loss is taken. Loss is on the answer
 * tokens and the end-of-turn token that follows them.
 */
import { VlaError } from "../errors.js";
import type { Segment } from "./chat.js";
import type { TextTokenizer } from "./tokenizer.js";
import type { ImagePiece } from "../vision/processor.js";

export const IGNORE_INDEX = -100;

export interface EncodedPrompt {
  ids: Int32Array;
  /** Position of the first answer token (ids.length when there is no answer). */
  answerStart: number;
  /** One past the last answer token. */
  answerEnd: number;
  /** Position of the end-of-turn token after the answer, or -1. */
  endIndex: number;
  /** (images) first position of each image's tokens. */
  imageStarts: number[];
  /** Positions of the image tokens (the rows that receive image features), images in order. */
  featureRows: number[];
}

export interface EncodeOptions {
  /** Tokens per image (default 1 each, the chat template's single marker). */
  imageTokens?: readonly number[];
  /** Per image: its prompt pieces, replacing imageTokens[i] copies of the marker (see ImageProcessor.layout). */
  imageExpansions?: ReadonlyArray<readonly ImagePiece[] | undefined>;
  /** "skip" drops images that the tokenizer has no token for (text-only models, token counting). */
  images?: "tokens" | "skip";
}

export function encodeSegments(tok: TextTokenizer, segments: readonly Segment[], options: EncodeOptions = {}): EncodedPrompt {
  const ids: number[] = [];
  let textRun = "";
  let answerStart = -1;
  let answerEnd = -1;
  let endIndex = -1;
  const imageStarts: number[] = [];
  const featureRows: number[] = [];
  const flush = (): void => {
    if (textRun) ids.push(...tok.encodePlain(textRun));
    textRun = "";
  };
  for (const s of segments) {
    switch (s.kind) {
      case "text":
        textRun += s.text;
        break;
      case "special":
        flush();
        if (answerEnd >= 0 && endIndex < 0 && answerEnd === ids.length) endIndex = ids.length;
        ids.push(tok.requireId(s.text));
        break;
      case "image": {
        flush();
        const n = options.imageTokens?.[s.index] ?? 1;
        if (!Number.isInteger(n) || n < 1) throw new VlaError("TOKENIZER_MISSING_TOKEN", `image ${s.index} needs a positive token count, got ${n}`);
        const marker = s.marker || "<image>";
        const id = tok.tokenId(marker);
        if (id === undefined && options.images === "skip") break;
        if (id === undefined) {
          throw new VlaError("TOKENIZER_MISSING_TOKEN", `tokenizer '${tok.name}' has no image token (${marker}): it cannot take images`, "use a vision-language model's tokenizer, or a prompt with no images");
        }
        imageStarts.push(ids.length);
        const pieces = options.imageExpansions?.[s.index];
        if (!pieces) {
          for (let k = 0; k < n; k++) featureRows.push(ids.length), ids.push(id);
          break;
        }
        for (const p of pieces) {
          if ("special" in p) ids.push(tok.requireId(p.special));
          else if ("text" in p) ids.push(...tok.encodePlain(p.text));
          else for (let k = 0; k < p.image; k++) featureRows.push(ids.length), ids.push(id);
        }
        break;
      }
      case "answer":
        flush();
        answerStart = ids.length;
        ids.push(...tok.encodePlain(s.text));
        answerEnd = ids.length;
        break;
    }
  }
  flush();
  if (answerStart < 0) answerStart = answerEnd = ids.length;
  return { ids: Int32Array.from(ids), answerStart, answerEnd, endIndex, imageStarts, featureRows };
}

export interface MaskAugmentation {
  /** Upper bound p of the masked fraction, drawn from U(0, p) (VLA-0: 0.4). */
  maxFraction: number;
  /** Probability that a sample is not masked at all (VLA-0: 0.1). */
  unmaskedProbability: number;
}

export const VLA0_MASKING: MaskAugmentation = { maxFraction: 0.4, unmaskedProbability: 0.1 };

export interface TrainingExample {
  inputIds: Int32Array;
  labels: Int32Array;
  /** Answer positions replaced by the mask token. */
  masked: number[];
}

/**
 * Inputs and labels for one training sample. With augmentation, a fraction
 * f ~ U(0, p) of the answer tokens (floor(f * n) of them, n = answer tokens),
 * chosen uniformly without replacement, are replaced by `maskTokenId` in the
 * input and removed from the loss; with probability `unmaskedProbability`
 * nothing is masked. `random` returns uniform numbers in [0, 1).
 */
export function buildTrainingExample(enc: EncodedPrompt, options: { maskTokenId?: number; augmentation?: MaskAugmentation; random?: () => number } = {}): TrainingExample {
  const n = enc.answerEnd - enc.answerStart;
  if (n <= 0) throw new VlaError("MASKING_INVALID", "the prompt has no answer tokens to train on", "render the conversation with an answer");
  const inputIds = Int32Array.from(enc.ids);
  const labels = new Int32Array(inputIds.length).fill(IGNORE_INDEX);
  for (let i = enc.answerStart; i < enc.answerEnd; i++) labels[i] = inputIds[i] as number;
  if (enc.endIndex >= 0) labels[enc.endIndex] = inputIds[enc.endIndex] as number;
  const masked: number[] = [];
  const aug = options.augmentation;
  if (aug) {
    const { maxFraction, unmaskedProbability } = aug;
    if (!(maxFraction >= 0 && maxFraction <= 1) || !(unmaskedProbability >= 0 && unmaskedProbability <= 1)) {
      throw new VlaError("MASKING_INVALID", `mask augmentation needs maxFraction and unmaskedProbability in [0, 1], got ${maxFraction} and ${unmaskedProbability}`);
    }
    if (options.maskTokenId === undefined || options.random === undefined) {
      throw new VlaError("MASKING_INVALID", "mask augmentation needs maskTokenId and a seeded random source");
    }
    const random = options.random;
    const fraction = random() < unmaskedProbability ? 0 : random() * maxFraction;
    const k = Math.floor(n * fraction);
    // partial Fisher-Yates over answer offsets: k distinct positions, uniformly
    const offsets = Array.from({ length: n }, (_, i) => i);
    for (let j = 0; j < k; j++) {
      const r = j + Math.floor(random() * (n - j));
      const t = offsets[j] as number;
      offsets[j] = offsets[r] as number;
      offsets[r] = t;
      const pos = enc.answerStart + (offsets[j] as number);
      inputIds[pos] = options.maskTokenId;
      labels[pos] = IGNORE_INDEX;
      masked.push(pos);
    }
    masked.sort((a, b) => a - b);
  }
  return { inputIds, labels, masked };
}
