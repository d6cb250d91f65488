/**
 * A slow, obvious f64 forward pass of the Llama / Qwen2 / Qwen3 decoder with
 * Hugging Face semantics (RMSNorm, half-rotation RoPE, grouped-query causal
 * attention, SwiGLU), used to check files we write against llama.cpp and,
 * later, the native engine. Plain loops, no tricks.
 */
import type { DecoderConfig } from "../../src/io/gguf-decoder.js";
import { rng } from "./rng.js";

export type Weights = Map<string, Float32Array>;

/** Seeded random weights with HF names; norms near 1, projections ~ U(-s, s). */
export function randomDecoderWeights(cfg: DecoderConfig, seed: number, scale = 0.15): Weights {
  const r = rng(seed);
  const w: Weights = new Map();
  const mat = (name: string, n: number, s = scale) => w.set(name, Float32Array.from({ length: n }, () => (r() * 2 - 1) * s));
  const norm = (name: string, n: number) => w.set(name, Float32Array.from({ length: n }, () => 1 + (r() * 2 - 1) * 0.1));
  const C = cfg.hiddenSize;
  const hd = cfg.headDim;
  mat("model.embed_tokens.weight", cfg.vocabSize * C, 1);
  for (let l = 0; l < cfg.numLayers; l++) {
    const p = `model.layers.${l}`;
    norm(`${p}.input_layernorm.weight`, C);
    mat(`${p}.self_attn.q_proj.weight`, cfg.numHeads * hd * C);
    mat(`${p}.self_attn.k_proj.weight`, cfg.numKvHeads * hd * C);
    mat(`${p}.self_attn.v_proj.weight`, cfg.numKvHeads * hd * C);
    if (cfg.arch === "qwen2") {
      mat(`${p}.self_attn.q_proj.bias`, cfg.numHeads * hd, 0.5);
      mat(`${p}.self_attn.k_proj.bias`, cfg.numKvHeads * hd, 0.5);
      mat(`${p}.self_attn.v_proj.bias`, cfg.numKvHeads * hd, 0.5);
    }
    if (cfg.arch === "qwen3") {
      norm(`${p}.self_attn.q_norm.weight`, hd);
      norm(`${p}.self_attn.k_norm.weight`, hd);
    }
    mat(`${p}.self_attn.o_proj.weight`, C * cfg.numHeads * hd);
    norm(`${p}.post_attention_layernorm.weight`, C);
    mat(`${p}.mlp.gate_proj.weight`, cfg.intermediateSize * C);
    mat(`${p}.mlp.up_proj.weight`, cfg.intermediateSize * C);
    mat(`${p}.mlp.down_proj.weight`, C * cfg.intermediateSize);
  }
  norm("model.norm.weight", C);
  if (!cfg.tieEmbeddings) mat("lm_head.weight", cfg.vocabSize * C, scale);
  return w;
}

export function get(w: Weights, name: string): Float32Array {
  const t = w.get(name);
  if (!t) throw new Error(`missing ${name}`);
  return t;
}

/** y (out) = W (out, inp) x (inp) + b */
export function linear(W: Float32Array, x: ArrayLike<number>, out: number, inp: number, b?: Float32Array): Float64Array {
  const y = new Float64Array(out);
  for (let o = 0; o < out; o++) {
    let s = b ? (b[o] as number) : 0;
    for (let i = 0; i < inp; i++) s += (W[o * inp + i] as number) * (x[i] as number);
    y[o] = s;
  }
  return y;
}

function rmsnorm(x: Float64Array, g: Float32Array, eps: number, off = 0, n = x.length): void {
  let ss = 0;
  for (let i = 0; i < n; i++) ss += (x[off + i] as number) ** 2;
  const r = 1 / Math.sqrt(ss / n + eps);
  for (let i = 0; i < n; i++) x[off + i] = (x[off + i] as number) * r * (g[i] as number);
}

function rope(x: Float64Array, heads: number, hd: number, pos: number, theta: number): void {
  const half = hd / 2;
  for (let h = 0; h < heads; h++) {
    for (let i = 0; i < half; i++) {
      const f = pos * theta ** ((-2 * i) / hd);
      const c = Math.cos(f);
      const s = Math.sin(f);
      const a = x[h * hd + i] as number;
      const b = x[h * hd + i + half] as number;
      x[h * hd + i] = a * c - b * s;
      x[h * hd + i + half] = b * c + a * s;
    }
  }
}

/** Log-probabilities (T, V) of the next token at every position. */
export function referenceLogProbs(cfg: DecoderConfig, w: Weights, tokens: number[]): Float64Array[] {
  const C = cfg.hiddenSize;
  const hd = cfg.headDim;
  const NH = cfg.numHeads;
  const KV = cfg.numKvHeads;
  const T = tokens.length;
  const emb = get(w, "model.embed_tokens.weight");
  let xs: Float64Array[] = tokens.map((t) => Float64Array.from(emb.subarray(t * C, (t + 1) * C)));
  for (let l = 0; l < cfg.numLayers; l++) {
    const p = `model.layers.${l}`;
    const ks: Float64Array[] = [];
    const vs: Float64Array[] = [];
    const qs: Float64Array[] = [];
    for (let t = 0; t < T; t++) {
      const h = Float64Array.from(xs[t] as Float64Array);
      rmsnorm(h, get(w, `${p}.input_layernorm.weight`), cfg.rmsNormEps);
      const q = linear(get(w, `${p}.self_attn.q_proj.weight`), h, NH * hd, C, w.get(`${p}.self_attn.q_proj.bias`));
      const k = linear(get(w, `${p}.self_attn.k_proj.weight`), h, KV * hd, C, w.get(`${p}.self_attn.k_proj.bias`));
      const v = linear(get(w, `${p}.self_attn.v_proj.weight`), h, KV * hd, C, w.get(`${p}.self_attn.v_proj.bias`));
      if (cfg.arch === "qwen3") {
        for (let hh = 0; hh < NH; hh++) rmsnorm(q, get(w, `${p}.self_attn.q_norm.weight`), cfg.rmsNormEps, hh * hd, hd);
        for (let hh = 0; hh < KV; hh++) rmsnorm(k, get(w, `${p}.self_attn.k_norm.weight`), cfg.rmsNormEps, hh * hd, hd);
      }
      rope(q, NH, hd, t, cfg.ropeTheta);
      rope(k, KV, hd, t, cfg.ropeTheta);
      qs.push(q);
      ks.push(k);
      vs.push(v);
    }
    const next: Float64Array[] = [];
    for (let t = 0; t < T; t++) {
      const att = new Float64Array(NH * hd);
      for (let h = 0; h < NH; h++) {
        const kvh = Math.floor(h / (NH / KV));
        const scores: number[] = [];
        for (let s = 0; s <= t; s++) {
          let d = 0;
          for (let i = 0; i < hd; i++) d += ((qs[t] as Float64Array)[h * hd + i] as number) * ((ks[s] as Float64Array)[kvh * hd + i] as number);
          scores.push(d / Math.sqrt(hd));
        }
        const m = Math.max(...scores);
        const e = scores.map((x) => Math.exp(x - m));
        const z = e.reduce((a, b) => a + b, 0);
        for (let s = 0; s <= t; s++) for (let i = 0; i < hd; i++) att[h * hd + i] = (att[h * hd + i] as number) + ((e[s] as number) / z) * ((vs[s] as Float64Array)[kvh * hd + i] as number);
      }
      const o = linear(get(w, `${p}.self_attn.o_proj.weight`), att, C, NH * hd);
      const x = Float64Array.from(xs[t] as Float64Array, (v, i) => v + (o[i] as number));
      const h2 = Float64Array.from(x);
      rmsnorm(h2, get(w, `${p}.post_attention_layernorm.weight`), cfg.rmsNormEps);
      const g = linear(get(w, `${p}.mlp.gate_proj.weight`), h2, cfg.intermediateSize, C);
      const u = linear(get(w, `${p}.mlp.up_proj.weight`), h2, cfg.intermediateSize, C);
      const a = g.map((gv, i) => (gv / (1 + Math.exp(-gv))) * (u[i] as number));
      const d = linear(get(w, `${p}.mlp.down_proj.weight`), a, C, cfg.intermediateSize);
      next.push(x.map((v, i) => v + (d[i] as number)));
    }
    xs = next;
  }
  const head = cfg.tieEmbeddings ? emb : get(w, "lm_head.weight");
  return xs.map((x) => {
    const h = Float64Array.from(x);
    rmsnorm(h, get(w, "model.norm.weight"), cfg.rmsNormEps);
    const logits = linear(head, h, cfg.vocabSize, C);
    const m = Math.max(...logits);
    const lse = m + Math.log(logits.reduce((a, b) => a + Math.exp(b - m), 0));
    return logits.map((v) => v - lse);
  });
}
