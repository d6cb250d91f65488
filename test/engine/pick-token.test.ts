import { describe, expect, it } from "vitest";
import { pickToken } from "../../src/engine/decoder.js";

describe("pickToken", () => {
  it("greedy over all tokens (no candidate list) is the first largest logit", () => {
    const logits = new Float32Array([0.1, 3, -2, 3, 1]);
    expect(pickToken(logits, undefined, 0, Math.random)).toBe(1);
    expect(pickToken(logits, [4, 3, 0], 0, Math.random)).toBe(3);
  });

  it("samples over a Qwen-sized vocabulary without spreading it into arguments", () => {
    const V = 151_936;
    const logits = new Float32Array(V).fill(-50);
    logits[123_456] = 10; // all but certain at temperature 1
    let s = 1;
    const rand = (): number => ((s = (s * 16807) % 2147483647) / 2147483647);
    for (let i = 0; i < 20; i++) expect(pickToken(logits, undefined, 1, rand)).toBe(123_456);
  });

  it("sampling follows the softmax of the candidates' logits", () => {
    const logits = new Float32Array([0, Math.log(3)]); // p = 1/4, 3/4
    let s = 7;
    const rand = (): number => ((s = (s * 16807) % 2147483647) / 2147483647);
    let ones = 0;
    for (let i = 0; i < 4000; i++) ones += pickToken(logits, undefined, 1, rand);
    expect(ones / 4000).toBeGreaterThan(0.72);
    expect(ones / 4000).toBeLessThan(0.78);
  });
});
