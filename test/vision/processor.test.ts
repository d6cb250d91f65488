import { describe, expect, it } from "vitest";
import { preprocessImage, QWEN25VL_PROCESSOR, smartResize } from "../../src/vision/processor.js";
import { ropeIndex } from "../../src/vision/rope-index.js";

const f = 28;
const lo = QWEN25VL_PROCESSOR.minPixels;
const hi = QWEN25VL_PROCESSOR.maxPixels;

describe("Qwen2.5-VL smart resize", () => {
  it("matches transformers' smart_resize on worked examples", () => {
    expect(smartResize(224, 224, f, lo, hi)).toEqual({ height: 224, width: 224 });
    expect(smartResize(64, 64, f, lo, hi)).toEqual({ height: 56, width: 56 });
    expect(smartResize(100, 200, f, lo, hi)).toEqual({ height: 112, width: 196 });
    // Python's round is half-to-even: 42/28 = 1.5 -> 2, 70/28 = 2.5 -> 2
    expect(smartResize(42, 70, f, lo, hi)).toEqual({ height: 56, width: 56 });
    // over max_pixels: beta = sqrt(4000*6000 / 12845056), floor to multiples of 28
    expect(smartResize(4000, 6000, f, lo, hi)).toEqual({ height: 2912, width: 4368 });
    // under min_pixels: 10x10 -> beta = 5.6 -> ceil(2) * 28
    expect(smartResize(10, 10, f, lo, hi)).toEqual({ height: 56, width: 56 });
    expect(() => smartResize(1, 300, f, lo, hi)).toThrow(/aspect ratio 300 is over 200/);
  });
});

describe("Qwen2.5-VL patches", () => {
  it("flattens 14x14 patches in the processor's (merge-group) order, duplicated in time", () => {
    // 56x84: grid 4x6 patches, 2x3 merge groups
    const W = 84;
    const H = 56;
    const data = new Uint8Array(W * H * 3);
    for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) data.set([y, x, (y + x) % 256], (y * W + x) * 3);
    const r = preprocessImage({ width: W, height: H, data });
    expect(r.grid).toEqual({ t: 1, h: 4, w: 6 });
    expect(r.tokens).toBe(6);
    expect(r.patchDim).toBe(3 * 2 * 14 * 14);
    expect(r.pixels.length).toBe(24 * 1176);
    const m = QWEN25VL_PROCESSOR.mean;
    const s = QWEN25VL_PROCESSOR.std;
    const red = (v: number) => (v / 255 - m[0]) / s[0];
    const green = (v: number) => (v / 255 - m[1]) / s[1];
    // row k = ((bh * gw/2 + bw) * 2 + mh) * 2 + mw: the patch at patch-row 2*bh+mh, patch-col 2*bw+mw
    const at = (row: number, c: number, t: number, py: number, px: number) => r.pixels[row * 1176 + c * 392 + t * 196 + py * 14 + px]!;
    // row 0 = group (0,0), patch (0,0): pixel (0,0)
    expect(at(0, 0, 0, 0, 0)).toBeCloseTo(red(0), 6);
    // row 1 = group (0,0), patch (0,1): columns 14..27
    expect(at(1, 1, 0, 0, 0)).toBeCloseTo(green(14), 6);
    // row 2 = group (0,0), patch (1,0): rows 14..27
    expect(at(2, 0, 0, 0, 0)).toBeCloseTo(red(14), 6);
    // row 4 = group (0,1), patch (0,0): columns 28..
    expect(at(4, 1, 0, 3, 5)).toBeCloseTo(green(28 + 5), 6);
    expect(at(4, 0, 0, 3, 5)).toBeCloseTo(red(3), 6);
    // last row: group (1,2), patch (1,1): rows 42.., columns 70..
    expect(at(23, 0, 0, 13, 13)).toBeCloseTo(red(55), 6);
    expect(at(23, 1, 0, 13, 13)).toBeCloseTo(green(83), 6);
    // the temporal copy equals the frame
    for (let k = 0; k < 196; k++) expect(at(7, 2, 1, 0, 0 + (k % 14))).toBe(at(7, 2, 0, 0, k % 14));
  });

  it("resizes with the given resizer to the smart size", () => {
    const img = { width: 64, height: 64, data: new Uint8Array(64 * 64 * 3).fill(128) };
    const r = preprocessImage(img);
    expect(r.grid).toEqual({ t: 1, h: 4, w: 4 });
    expect(r.tokens).toBe(4);
  });
});

describe("M-RoPE position ids (get_rope_index)", () => {
  it("gives text 1D positions and image tokens (t, h, w) grids, continuing after the image's max", () => {
    // 3 text, an image of grid 1x4x6 (2x3 merged = 6 tokens), 2 text
    const pos = ropeIndex(11, [{ start: 3, grid: { t: 1, h: 4, w: 6 } }]);
    const row = (s: number) => Array.from(pos.subarray(s * 11, (s + 1) * 11));
    expect(row(0)).toEqual([0, 1, 2, 3, 3, 3, 3, 3, 3, 6, 7]);
    expect(row(1)).toEqual([0, 1, 2, 3, 3, 3, 4, 4, 4, 6, 7]);
    expect(row(2)).toEqual([0, 1, 2, 3, 4, 5, 3, 4, 5, 6, 7]);
    // two images back to back: the second starts one past the first's max
    const two = ropeIndex(9, [{ start: 1, grid: { t: 1, h: 2, w: 4 } }, { start: 3, grid: { t: 1, h: 4, w: 2 } }]);
    // image 1 (merged 1x2) at positions h [1, 1], w [1, 2] -> max 2; image 2 (merged 2x1) from 3: h [3, 4], w [3, 3]
    expect(Array.from(two.subarray(0, 9))).toEqual([0, 1, 1, 3, 3, 5, 6, 7, 8]);
    expect(Array.from(two.subarray(9, 18))).toEqual([0, 1, 1, 3, 4, 5, 6, 7, 8]);
    expect(Array.from(two.subarray(18, 27))).toEqual([0, 1, 2, 3, 3, 5, 6, 7, 8]);
    expect(() => ropeIndex(4, [{ start: 2, grid: { t: 1, h: 4, w: 4 } }])).toThrow(/needs 4 tokens but the sequence ends at 4/);
    // text only: all three rows 0..N-1
    expect(Array.from(ropeIndex(4, []))).toEqual([0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3]);
  });
});
