/**
 * One prompt sample end to end, for inspection and experiments: a chunk of
 * actions -> text in a format -> prompt template -> chat template -> ids and
 * labels.
 */
import { ActionCodec } from "../actions/codec.js";
import { getFormat, type TextFormat } from "../actions/format.js";
import type { ActionSpec } from "../actions/spec.js";
import { renderChat, type Segment } from "./chat.js";
import { encodeSegments, type EncodedPrompt } from "./encode.js";
import { renderTemplate, type PromptTemplate } from "./template.js";
import type { TextTokenizer } from "./tokenizer.js";

export interface PromptSample {
  format: TextFormat;
  answer: string;
  segments: Segment[];
  encoded: EncodedPrompt;
}

export interface SampleInput {
  spec: ActionSpec;
  template: PromptTemplate;
  tokenizer: TextTokenizer;
  /** (H, D) normalized chunk in [-1, 1]. */
  chunk: Float32Array;
  instruction: string;
  images: number;
  state?: string;
  /** Format override (default: the template's). */
  format?: TextFormat;
  addVisionId?: boolean;
  imageTokens?: readonly number[];
}

export function buildPromptSample(input: SampleInput): PromptSample {
  const format = input.format ?? getFormat(input.template.format);
  const codec = new ActionCodec(input.spec, format);
  const answer = codec.encodeNormalized(input.chunk).text;
  const prompt = renderTemplate(input.template, {
    horizon: input.spec.horizon,
    dims: input.spec.dims,
    bins: codec.bins,
    instruction: input.instruction,
    images: input.images,
    ...(input.state !== undefined ? { state: input.state } : {}),
  });
  const segments = renderChat(input.tokenizer, prompt, { answer, addVisionId: input.addVisionId ?? true });
  const encoded = encodeSegments(input.tokenizer, segments, { images: "skip", ...(input.imageTokens ? { imageTokens: input.imageTokens } : {}) });
  return { format, answer, segments, encoded };
}

/** A smooth random chunk in [-1, 1] (a random walk per dimension), grippers at ±1. */
export function randomChunk(spec: ActionSpec, random: () => number): Float32Array {
  const out = new Float32Array(spec.horizon * spec.dims);
  for (let d = 0; d < spec.dims; d++) {
    let v = random() * 1.6 - 0.8;
    const grip = random() < 0.5 ? -1 : 1;
    for (let t = 0; t < spec.horizon; t++) {
      v = Math.max(-1, Math.min(1, v + (random() - 0.5) * 0.2));
      out[t * spec.dims + d] = spec.isGripper[d] ? grip : v;
    }
  }
  return out;
}

export { seededRandom } from "../rng.js";
