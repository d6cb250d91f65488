import { describe, expect, it } from "vitest";
import { VlaError } from "../../src/errors.js";
import { SimRng, mixSeed } from "../../src/sim/rng.js";
import { BLOCK_GAP, SPREAD, ZONE_BLOCK_GAP, ZONE_GAP, sampleScene } from "../../src/sim/scene.js";

describe("SimRng", () => {
  it("repeats per seed; gaussian has mean 0 and std 1", () => {
    const a = new SimRng(9);
    const b = new SimRng(9);
    expect(Array.from({ length: 5 }, () => a.next())).toEqual(Array.from({ length: 5 }, () => b.next()));
    const g = new SimRng(1);
    const xs = Array.from({ length: 20000 }, () => g.gaussian());
    const mean = xs.reduce((s, x) => s + x, 0) / xs.length;
    const std = Math.sqrt(xs.reduce((s, x) => s + (x - mean) ** 2, 0) / xs.length);
    expect(Math.abs(mean)).toBeLessThan(0.03);
    expect(Math.abs(std - 1)).toBeLessThan(0.03);
  });

  it("mixSeed separates (base, index, attempt) triples", () => {
    const seen = new Set<number>();
    for (let base = 0; base < 4; base++) for (let i = 0; i < 50; i++) for (let k = 0; k < 3; k++) seen.add(mixSeed(base, i, k));
    expect(seen.size).toBe(4 * 50 * 3);
  });
});

describe("sampleScene", () => {
  it("2-4 blocks and 1-2 zones, distinct colours, spaced apart, no block starting in a zone", () => {
    const rng = new SimRng(123);
    const counts = new Set<string>();
    const cheb = (a: { x: number; y: number }, b: { x: number; y: number }) => Math.max(Math.abs(a.x - b.x), Math.abs(a.y - b.y));
    for (let i = 0; i < 200; i++) {
      const s = sampleScene(rng);
      counts.add(`${s.blocks.length}/${s.zones.length}`);
      const colours = [...s.blocks, ...s.zones].map((o) => o.color);
      expect(new Set(colours).size).toBe(colours.length);
      for (const [j, b] of s.blocks.entries()) {
        expect(Math.max(Math.abs(b.x), Math.abs(b.y))).toBeLessThanOrEqual(SPREAD);
        expect(b.z).toBe(0);
        for (const o of s.blocks.slice(j + 1)) expect(cheb(b, o)).toBeGreaterThanOrEqual(BLOCK_GAP);
        for (const zn of s.zones) expect(cheb(b, zn)).toBeGreaterThanOrEqual(ZONE_BLOCK_GAP);
      }
      if (s.zones.length === 2) expect(cheb(s.zones[0] as { x: number; y: number }, s.zones[1] as { x: number; y: number })).toBeGreaterThanOrEqual(ZONE_GAP);
      expect(s.gripper).toMatchObject({ closed: false, held: -1, yaw: 0 });
    }
    expect([...counts].sort()).toEqual(["2/1", "2/2", "3/1", "3/2", "4/1", "4/2"]);
  });

  it("scene options are validated", () => {
    expect(() => sampleScene(new SimRng(0), { blocks: [3, 2] })).toThrow(VlaError);
    expect(() => sampleScene(new SimRng(0), { blocks: [1, 5] })).toThrow(/at most 4 blocks/);
    const one = sampleScene(new SimRng(0), { blocks: [1, 1], zones: [0, 0] });
    expect([one.blocks.length, one.zones.length]).toEqual([1, 0]);
  });
});
