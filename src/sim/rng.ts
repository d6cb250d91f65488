/** The simulator's seeded PRNG is the project's (src/rng.ts), with a seed mixer for (base, episode, attempt). */
import { Rng } from "../rng.js";

export const SimRng = Rng;
export type SimRng = Rng;

/**
 * Mix integers into one 32-bit seed (a splitmix32-style finalizer per part),
 * so seeds (base, episode, attempt) map to well-separated streams.
 */
export function mixSeed(...parts: number[]): number {
  let h = 0x9e3779b9;
  for (const p of parts) {
    h = (h ^ (p >>> 0)) >>> 0;
    h = Math.imul(h ^ (h >>> 16), 0x85ebca6b) >>> 0;
    h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35) >>> 0;
    h = (h ^ (h >>> 16)) >>> 0;
  }
  return h;
}
