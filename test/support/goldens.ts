/** Reading the transformers golden files (test/goldens/*): tensors, images and the error measures the golden tests share. */
import { expect } from "vitest";
import { loadAddon, NATIVE_ISAS } from "../../src/engine/addon.js";
import type { RgbImage } from "../../src/data/episode.js";
import { safetensorsData, type SafetensorsFile } from "../../src/io/safetensors.js";

export function tensor(f: SafetensorsFile, name: string): { data: Float32Array; shape: number[] } {
  const e = f.tensors.get(name);
  if (!e) throw new Error(`${f.file} has no ${name}`);
  return { data: safetensorsData(f, name), shape: e.shape };
}

/** An (H, W, 3) image stored as floats back to 8-bit RGB. */
export function image(f: SafetensorsFile, name: string): RgbImage {
  const t = tensor(f, name);
  return { height: t.shape[0]!, width: t.shape[1]!, data: Uint8Array.from(t.data) };
}

export const maxAbs = (a: ArrayLike<number>): number => Array.from(a).reduce((m, v) => Math.max(m, Math.abs(v)), 0);

/** max |a - b| (the lengths must agree). */
export function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs((a[i] as number) - (b[i] as number)));
  return m;
}

/**
 * The tolerance of a bf16-weight golden: 1e-4 where activations stay f32 (the avx512 level,
 * or a CPU without the bf16 kernels), 1.5e-2 where the bf16 kernels round the activations too.
 */
export function bf16GoldenTolerance(isa: "avx512" | undefined): number {
  return isa === "avx512" || NATIVE_ISAS.indexOf(loadAddon().buildInfo().isa) < NATIVE_ISAS.indexOf("avx512bf16") ? 1e-4 : 1.5e-2;
}
