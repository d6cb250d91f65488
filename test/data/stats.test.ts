import { describe, expect, it } from "vitest";
import { imageStats, vectorStats } from "../../src/data/lerobot/writer-common.js";
import { rng } from "../support/rng.js";

describe("episode statistics", () => {
  it("imageStats (a histogram of byte values) equals a pass over every pixel", () => {
    const r = rng(3);
    // two frames, one with a narrow range per channel, so min and max differ per channel
    const frames = [0, 1].map((f) => ({ data: Uint8Array.from({ length: 7 * 5 * 3 }, (_, i) => (i % 3 === 0 ? 40 + Math.floor(r() * 30) : i % 3 === 1 ? Math.floor(r() * 256) : 200 + f * 10 + Math.floor(r() * 20))) }));
    // the obvious version: every pixel as float32 v / 255, two-pass population std
    const flat = new Float32Array(frames.reduce((a, f) => a + f.data.length, 0));
    let o = 0;
    for (const f of frames) for (const v of f.data) flat[o++] = v / 255;
    const want = vectorStats(flat, flat.length / 3, 3);
    const got = imageStats(frames);
    const squeeze = (x: unknown) => (x as number[][][]).map((c) => c[0]![0]!);
    expect(squeeze(got.min)).toEqual(want.min);
    expect(squeeze(got.max)).toEqual(want.max);
    squeeze(got.mean).forEach((m, c) => expect(Math.abs(m - (want.mean as number[])[c]!)).toBeLessThan(1e-12));
    squeeze(got.std).forEach((s, c) => expect(Math.abs(s - (want.std as number[])[c]!)).toBeLessThan(1e-12));
    expect(got.count).toEqual([2]);
    expect(squeeze(got.min)[0]).toBeGreaterThan(0.15); // channel 0 starts at 40 / 255
  });
});
