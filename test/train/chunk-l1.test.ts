import { describe, expect, it } from "vitest";
import { chunkL1 } from "../../src/train/trainer.js";

describe("chunkL1: validation error of a chunk and of its first (executed) step", () => {
  it("averages |error| over the whole chunk and over the first timestep's dimensions", () => {
    // H = 3 timesteps x D = 2: errors 0.1 0.3 | 0.5 0.5 | 0 0.4
    const target = [0, 0, 0, 0, 0, 0];
    const decoded = [0.1, -0.3, 0.5, 0.5, 0, -0.4];
    const e = chunkL1(decoded, target, 2);
    expect(e.first).toBeCloseTo(0.2, 12);
    expect(e.all).toBeCloseTo(1.8 / 6, 12);
  });

  it("is the same number twice for a 1-step chunk", () => {
    const e = chunkL1([0.25, -0.5, 1], [0, 0, 0.5], 3);
    expect(e.first).toBeCloseTo(1.25 / 3, 12);
    expect(e.all).toBe(e.first);
  });

  it("refuses shapes that do not match", () => {
    expect(() => chunkL1([0, 0, 0], [0, 0], 1)).toThrow(/3 values against a target of 2/);
    expect(() => chunkL1([0, 0, 0], [0, 0, 0], 2)).toThrow(/2 dimensions/);
  });
});
