/**
 * Model families, registered in one table: Hugging Face `model_type` -> native
 * architecture. A config.json is validated here and turned into the native
 * decoder's config; anything unsupported is named.
 */
import { z } from "zod";
import { VlaError, formatZodIssues } from "../errors.js";
import type { NativeDecoderConfig } from "./addon.js";

/** Families the decoder supports, by HF model_type. */
export const DECODER_FAMILIES = {
  llama: { arch: 0, bias: false, qkNorm: false, note: "Llama 2/3, SmolLM2" },
  qwen2: { arch: 1, bias: true, qkNorm: false, note: "Qwen2, Qwen2.5" },
  qwen3: { arch: 2, bias: false, qkNorm: true, note: "Qwen3" },
} as const;

export type DecoderFamily = keyof typeof DECODER_FAMILIES;

const RopeParams = z.object({ type: z.string().optional(), rope_type: z.string().optional(), rope_theta: z.number().positive().optional(), mrope_section: z.array(z.number().int()).optional() }).passthrough();

const HfDecoderConfig = z
  .object({
    model_type: z.string(),
    vocab_size: z.number().int().min(1),
    hidden_size: z.number().int().min(1),
    num_hidden_layers: z.number().int().min(1),
    num_attention_heads: z.number().int().min(1),
    num_key_value_heads: z.number().int().min(1).optional(),
    head_dim: z.number().int().min(2).nullable().optional(),
    intermediate_size: z.number().int().min(1),
    rms_norm_eps: z.number().positive().default(1e-6),
    rope_theta: z.number().positive().default(10000),
    tie_word_embeddings: z.boolean().default(false),
    rope_scaling: z.union([z.null(), RopeParams]).optional(),
    /** transformers >= 5 writes rope_theta, rope_type and mrope_section here instead. */
    rope_parameters: z.union([z.null(), RopeParams]).optional(),
    attention_bias: z.boolean().optional(),
    hidden_act: z.string().default("silu"),
  })
  .passthrough();

export interface DecoderModelConfig {
  family: DecoderFamily;
  native: NativeDecoderConfig;
}

export function isDecoderFamily(s: string): s is DecoderFamily {
  return Object.prototype.hasOwnProperty.call(DECODER_FAMILIES, s);
}

/** Validate a config.json object; `source` names the file in errors. */
export function parseDecoderConfig(json: unknown, source = "config.json"): DecoderModelConfig {
  const r = HfDecoderConfig.safeParse(json);
  if (!r.success) throw new VlaError("CONFIG_INVALID", `${source} is not a supported decoder config:\n${formatZodIssues(r.error.issues)}`);
  const c = r.data;
  if (!isDecoderFamily(c.model_type)) {
    throw new VlaError("CONFIG_INVALID", `${source}: model_type '${c.model_type}' is not supported`, `supported: ${Object.entries(DECODER_FAMILIES).map(([k, v]) => `${k} (${v.note})`).join(", ")}`);
  }
  if (c.hidden_act !== "silu") throw new VlaError("CONFIG_INVALID", `${source}: hidden_act '${c.hidden_act}' is not supported (only silu / SwiGLU)`);
  const rs = c.rope_parameters ?? c.rope_scaling;
  const ropeTheta = c.rope_parameters?.rope_theta ?? c.rope_theta;
  // transformers 5 writes {rope_type: "default", type: "mrope"} for M-RoPE: either name may carry it
  const ropeType = rs?.type === "mrope" ? "mrope" : (rs?.rope_type ?? rs?.type);
  if (rs && ropeType !== "default" && ropeType !== "mrope") throw new VlaError("CONFIG_INVALID", `${source}: ${c.rope_parameters ? "rope_parameters" : "rope_scaling"} type '${ropeType}' is not supported`, "supported: none, default, mrope");
  const family = c.model_type;
  const heads = c.num_attention_heads;
  const headDim = c.head_dim ?? c.hidden_size / heads;
  if (!Number.isInteger(headDim)) throw new VlaError("CONFIG_INVALID", `${source}: hidden_size ${c.hidden_size} is not divisible by num_attention_heads ${heads}`, "set head_dim");
  if (family === "llama" && c.attention_bias) throw new VlaError("CONFIG_INVALID", `${source}: attention_bias=true is not supported for llama`);
  const sections = rs?.mrope_section;
  return {
    family,
    native: {
      arch: DECODER_FAMILIES[family].arch,
      vocabSize: c.vocab_size,
      hiddenSize: c.hidden_size,
      numLayers: c.num_hidden_layers,
      numHeads: heads,
      numKvHeads: c.num_key_value_heads ?? heads,
      headDim,
      intermediateSize: c.intermediate_size,
      rmsNormEps: c.rms_norm_eps,
      ropeTheta,
      tieEmbeddings: c.tie_word_embeddings,
      ...(sections ? { ropeSections: Int32Array.from(sections) } : {}),
    },
  };
}
