/** Reading the transformers golden files (test/goldens/*): tensors, images and the error measures the golden tests share. */
import { expect } from "vitest";
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
