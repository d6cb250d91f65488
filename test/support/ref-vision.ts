/**
 * A slow f64 forward of Qwen2.5-VL's vision tower, written from transformers'
 * modeling_qwen2_5_vl.py structure (rot_pos_emb, get_window_index, blocks, merger),
 * independently of the native code: the native tower is checked against it.
 */
import type { NativeQwenVisionConfig } from "../../src/engine/addon.js";
import { get, linear } from "./ref-decoder.js";

type W = Map<string, Float32Array>;

function rms(x: Float64Array, g: Float32Array, eps: number): Float64Array {
  let ss = 0;
  for (const v of x) ss += v * v;
  const r = 1 / Math.sqrt(ss / x.length + eps);
  return x.map((v, i) => v * r * (g[i] as number));
}

/** transformers' get_window_index, transliterated. */
export function windowIndex(grids: Array<[number, number, number]>, merge: number, vws: number): { index: number[]; cu: number[] } {
  const index: number[] = [];
  const cu = [0];
  let id = 0;
  for (const [t, h, w] of grids) {
    const gh = h / merge;
    const gw = w / merge;
    const padH = vws - (gh % vws);
    const padW = vws - (gw % vws);
    const nh = (gh + padH) / vws;
    const nw = (gw + padW) / vws;
    for (let tt = 0; tt < t; tt++)
      for (let a = 0; a < nh; a++)
        for (let b = 0; b < nw; b++) {
          let n = 0;
          for (let y = 0; y < vws; y++)
            for (let x = 0; x < vws; x++) {
              const yy = a * vws + y;
              const xx = b * vws + x;
              if (yy < gh && xx < gw) {
                index.push(id + tt * gh * gw + yy * gw + xx);
                n++;
              }
            }
          const next = (cu[cu.length - 1] as number) + n * merge * merge;
          if (next !== cu[cu.length - 1]) cu.push(next); // unique_consecutive
        }
    id += t * gh * gw;
  }
  return { index, cu };
}

export function referenceVision(cfg: NativeQwenVisionConfig, w: W, pixels: Float32Array, grids: Array<[number, number, number]>): Float64Array[] {
  const C = cfg.hiddenSize;
  const NH = cfg.numHeads;
  const hd = C / NH;
  const m = cfg.spatialMergeSize;
  const P = 3 * cfg.temporalPatchSize * cfg.patchSize * cfg.patchSize;
  const N = pixels.length / P;
  // rot_pos_emb: (h, w) of each patch in the processor's (merge-group) order
  const hpos: number[] = [];
  const wpos: number[] = [];
  for (const [t, h, ww] of grids)
    for (let tt = 0; tt < t; tt++)
      for (let a = 0; a < h / m; a++) for (let b = 0; b < ww / m; b++) for (let i = 0; i < m; i++) for (let j = 0; j < m; j++) {
        hpos.push(a * m + i);
        wpos.push(b * m + j);
      }
  const dim = hd / 2;
  const invFreq = Array.from({ length: dim / 2 }, (_, j) => 1 / 10000 ** ((2 * j) / dim));
  const angles = hpos.map((hp, n) => [...invFreq.map((f) => hp * f), ...invFreq.map((f) => (wpos[n] as number) * f)]); // (N, hd/2)
  let x: Float64Array[] = Array.from({ length: N }, (_, n) => linear(get(w, "visual.patch_embed.proj.weight"), pixels.subarray(n * P, (n + 1) * P), C, P));
  const { index, cu } = windowIndex(grids, m, cfg.windowSize / cfg.patchSize / m);
  const order = index.flatMap((u) => Array.from({ length: m * m }, (_, k) => u * m * m + k));
  x = order.map((i) => x[i] as Float64Array);
  const ang = order.map((i) => angles[i] as number[]);
  const cuFull = [0];
  for (const [t, h, ww] of grids) for (let tt = 0; tt < t; tt++) cuFull.push((cuFull[cuFull.length - 1] as number) + h * ww);
  const rope = (v: Float64Array, a: number[]): Float64Array => {
    const out = Float64Array.from(v);
    for (let h = 0; h < NH; h++)
      for (let i = 0; i < hd / 2; i++) {
        const c = Math.cos(a[i] as number);
        const s = Math.sin(a[i] as number);
        const p = v[h * hd + i] as number;
        const q = v[h * hd + i + hd / 2] as number;
        out[h * hd + i] = p * c - q * s;
        out[h * hd + i + hd / 2] = q * c + p * s;
      }
    return out;
  };
  for (let b = 0; b < cfg.depth; b++) {
    const pre = `visual.blocks.${b}.`;
    const segs = Array.from(cfg.fullattBlockIndexes).includes(b) ? cuFull : cu;
    const qkv = x.map((v) => linear(get(w, pre + "attn.qkv.weight"), rms(v, get(w, pre + "norm1.weight"), 1e-6), 3 * C, C, get(w, pre + "attn.qkv.bias")));
    const q = qkv.map((v, n) => rope(v.subarray(0, C), ang[n] as number[]));
    const k = qkv.map((v, n) => rope(v.subarray(C, 2 * C), ang[n] as number[]));
    const vv = qkv.map((v) => v.subarray(2 * C, 3 * C));
    const att = x.map(() => new Float64Array(C));
    for (let s = 0; s + 1 < segs.length; s++)
      for (let h = 0; h < NH; h++)
        for (let t = segs[s] as number; t < (segs[s + 1] as number); t++) {
          const sc: number[] = [];
          for (let j = segs[s] as number; j < (segs[s + 1] as number); j++) {
            let d = 0;
            for (let i = 0; i < hd; i++) d += (q[t]![h * hd + i] as number) * (k[j]![h * hd + i] as number);
            sc.push(d / Math.sqrt(hd));
          }
          const mx = Math.max(...sc);
          const e = sc.map((v) => Math.exp(v - mx));
          const z = e.reduce((a2, b2) => a2 + b2, 0);
          for (let j = segs[s] as number; j < (segs[s + 1] as number); j++)
            for (let i = 0; i < hd; i++) att[t]![h * hd + i]! += ((e[j - (segs[s] as number)] as number) / z) * (vv[j]![h * hd + i] as number);
        }
    x = x.map((v, n) => {
      const o = linear(get(w, pre + "attn.proj.weight"), att[n] as Float64Array, C, C, get(w, pre + "attn.proj.bias"));
      const y = v.map((a2, i) => a2 + (o[i] as number));
      const hN = rms(y, get(w, pre + "norm2.weight"), 1e-6);
      const g = linear(get(w, pre + "mlp.gate_proj.weight"), hN, cfg.intermediateSize, C, get(w, pre + "mlp.gate_proj.bias"));
      const u = linear(get(w, pre + "mlp.up_proj.weight"), hN, cfg.intermediateSize, C, get(w, pre + "mlp.up_proj.bias"));
      const a3 = g.map((gv, i) => (gv / (1 + Math.exp(-gv))) * (u[i] as number));
      const d = linear(get(w, pre + "mlp.down_proj.weight"), a3, C, cfg.intermediateSize, get(w, pre + "mlp.down_proj.bias"));
      return y.map((a2, i) => a2 + (d[i] as number));
    });
  }
  const M = C * m * m;
  const merged: Float64Array[] = [];
  for (let u = 0; u < N / (m * m); u++) {
    const cat = new Float64Array(M);
    for (let k = 0; k < m * m; k++) cat.set(rms(x[u * m * m + k] as Float64Array, get(w, "visual.merger.ln_q.weight"), 1e-6), k * C);
    const h1 = linear(get(w, "visual.merger.mlp.0.weight"), cat, M, M, get(w, "visual.merger.mlp.0.bias")).map((v) => 0.5 * v * (1 + erf(v / Math.SQRT2)));
    merged.push(linear(get(w, "visual.merger.mlp.2.weight"), h1, cfg.outHiddenSize, M, get(w, "visual.merger.mlp.2.bias")));
  }
  const out = new Array<Float64Array>(merged.length);
  index.forEach((u, i) => (out[u] = merged[i] as Float64Array));
  return out;
}

/** erf with |error| < 1.5e-7 (Abramowitz-Stegun 7.1.26 is too coarse here): series / continued fraction. */
export function erf(x: number): number {
  const s = Math.sign(x);
  const a = Math.abs(x);
  if (a < 3) {
    // Taylor series: erf(x) = 2/sqrt(pi) * sum (-1)^n x^(2n+1) / (n! (2n+1))
    let term = a;
    let sum = a;
    for (let n = 1; n < 60; n++) {
      term *= (-a * a) / n;
      sum += term / (2 * n + 1);
    }
    return (s * 2 * sum) / Math.sqrt(Math.PI);
  }
  return s * (1 - Math.exp(-a * a) / (a * Math.sqrt(Math.PI)) * (1 - 1 / (2 * a * a)));
}
