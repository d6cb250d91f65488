/**
 * What bench/vs-hf.ts (the driver) and bench/vs-hf-worker.ts (the vlatext and llama.cpp
 * contestants) share: the named shapes, the fixed inputs every contestant reads, the
 * results each contestant process prints (one JSON line, validated here), peak RSS.
 */
import fs from "node:fs";
import { z } from "zod";
import { Rng } from "../src/rng.js";

/** Model shapes by name (C hidden, L layers, NH/KV heads, F MLP width, V vocabulary; head dim 64). */
export const SHAPES = {
  tiny: { V: 2048, C: 128, L: 2, NH: 2, KV: 1, F: 384, note: "checks the driver in seconds; not a benchmark" },
  "20m": { V: 8192, C: 384, L: 10, NH: 6, KV: 2, F: 1024, note: "~20M parameters, as bench/engine.ts and issue 19's first rows" },
  "200m": { V: 151936, C: 896, L: 6, NH: 14, KV: 2, F: 4864, note: "Qwen2.5-0.5B's widths and vocabulary with 6 layers (~226M parameters)" },
} as const;
export type ShapeName = keyof typeof SHAPES;
export type Arch = "qwen2" | "llama";

/** The transformers config of a shape (tied embeddings, Qwen2.5's RoPE base and norm epsilon), with the LoRA the build also makes. */
export function hfConfig(shape: ShapeName, arch: Arch, lora: { rank: number; alpha: number }): Record<string, unknown> {
  const s = SHAPES[shape];
  return {
    model_type: arch,
    vocab_size: s.V,
    hidden_size: s.C,
    intermediate_size: s.F,
    num_hidden_layers: s.L,
    num_attention_heads: s.NH,
    num_key_value_heads: s.KV,
    max_position_embeddings: 4096,
    rms_norm_eps: 1e-6,
    rope_theta: 1e6,
    tie_word_embeddings: true,
    // transformers' default 0.02 gives a random model whose greedy output repeats one
    // token (measured at 20m: 1 distinct token in 64), so token agreement would prove
    // nothing; at 0.05 it gives ~60 distinct tokens with clear leads
    initializer_range: 0.05,
    ...(arch === "qwen2" ? { use_sliding_window: false } : { attention_bias: false, mlp_bias: false }),
    bos_token_id: null,
    eos_token_id: null,
    pad_token_id: null,
    lora,
  };
}

/** The batch and prompt every contestant reads (inputs.json). */
export const InputsSchema = z.object({
  B: z.number().int().min(1),
  T: z.number().int().min(1),
  /** (B*T) input ids. */
  tokens: z.array(z.number().int().min(0)),
  /** (B*T) the next token at every position: every position is a target. */
  targets: z.array(z.number().int().min(0)),
  /** Greedy decoding's prompt. */
  prompt: z.array(z.number().int().min(0)),
});
export type Inputs = z.infer<typeof InputsSchema>;

/**
 * Seeded random ids below V - 1 (the GGUF export's last token is its end token, which
 * llama.cpp would stop at): a (B, T+1) sequence gives the inputs and their next tokens.
 */
export function makeInputs(V: number, B: number, T: number, promptLength: number, seed: number): Inputs {
  const rng = new Rng(seed);
  const tokens: number[] = [];
  const targets: number[] = [];
  for (let b = 0; b < B; b++) {
    const row = Array.from({ length: T + 1 }, () => rng.int(V - 1));
    tokens.push(...row.slice(0, T));
    targets.push(...row.slice(1));
  }
  return { B, T, tokens, targets, prompt: Array.from({ length: promptLength }, () => rng.int(V - 1)) };
}

export function readInputs(file: string): Inputs {
  return InputsSchema.parse(JSON.parse(fs.readFileSync(file, "utf8")));
}

/** A contestant that could not run in this build says so, with the reason (never a made-up number). */
export const UnsupportedSchema = z.object({ unsupported: z.string() });

/** What one contestant process gave: its result, "unsupported by this build", or how it failed. */
export type JobOutcome<T> = { ok: T } | { unsupported: string } | { failed: string };

export const TrainResultSchema = z.object({
  tokensPerSec: z.number().positive(),
  seconds: z.number(),
  stepSeconds: z.array(z.number()),
  /** Loss of every step (warm-up included), before that step's update. */
  losses: z.array(z.number()),
  /** Gradient norm of every step, before clipping. */
  gradNorms: z.array(z.number()),
  peakRssKiB: z.number(),
  /** RSS after the runtime's imports, before the model: what the runtime itself costs. */
  baselineRssKiB: z.number(),
  trainable: z.number().int(),
  setup: z.string(),
  versions: z.record(z.string(), z.string()).optional(),
});
export type TrainResult = z.infer<typeof TrainResultSchema>;

export const DecodeResultSchema = z.object({
  /** Median over the timed runs; new tokens / wall time of the whole call (prefill included). */
  tokensPerSec: z.number().positive(),
  rates: z.array(z.number()),
  tokens: z.array(z.number().int()),
  peakRssKiB: z.number(),
  baselineRssKiB: z.number(),
  setup: z.string(),
  /** vlatext only: the same decode as a bare KvCache.feed + argmax loop (what generate() adds on top is JavaScript). */
  feedTokensPerSec: z.number().optional(),
  /**
   * llama.cpp only: the greedy tokens once more with an f32 KV cache and no flash
   * attention (untimed), so that the f32 file's tokens can be held to HF's exactly;
   * its default f16 cache alone can move a near-tied greedy choice.
   */
  exactTokens: z.array(z.number().int()).optional(),
  versions: z.record(z.string(), z.string()).optional(),
});
export type DecodeResult = z.infer<typeof DecodeResultSchema>;

export const BuildResultSchema = z.object({ params: z.number().int(), loraParams: z.number().int(), versions: z.record(z.string(), z.string()) });

export const ExportResultSchema = z.object({ files: z.record(z.string(), z.string()), bytes: z.record(z.string(), z.number()), arch: z.string(), seconds: z.number() });

/** VmHWM (peak) or VmRSS (now) of this process in KiB; ru_maxrss where /proc is missing. */
export function rssKiB(field: "VmHWM" | "VmRSS"): number {
  try {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(fs.readFileSync("/proc/self/status", "utf8"));
    if (m) return Number(m[1]);
  } catch {
    // not Linux
  }
  return process.resourceUsage().maxRSS;
}

/** Median of a non-empty list. */
export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
}
