/** Finite-difference checks of a vision tower's parameter gradients, shared by the towers' backward tests. */
import { expect } from "vitest";
import type { VlmModel } from "../../src/engine/vlm.js";

/**
 * For each named tower tensor: its gradient (already in the tower) is not all zero, and at
 * three elements (first, a third in, last) it matches the central difference of `loss`
 * with step `e` within 3e-2 of the tensor's largest gradient plus `atol`. Returns the
 * mismatches (empty when all hold); the tensors are restored.
 */
export async function towerFdMismatches(vlm: VlmModel, names: readonly string[], loss: () => Promise<number>, e: number, atol: number): Promise<string[]> {
  const bad: string[] = [];
  for (const name of names) {
    const w = vlm.vision.getParam(name);
    const g = vlm.vision.getParamGrad(name);
    const scale = g.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
    expect(scale, name).toBeGreaterThan(0);
    for (const i of [0, Math.floor(w.length / 3), w.length - 1]) {
      const keep = w[i]!;
      w[i] = keep + e;
      vlm.vision.setParam(name, w);
      const lp = await loss();
      w[i] = keep - e;
      vlm.vision.setParam(name, w);
      const lm = await loss();
      w[i] = keep;
      vlm.vision.setParam(name, w);
      const fd = (lp - lm) / (2 * e);
      if (Math.abs(fd - g[i]!) > 3e-2 * scale + atol) bad.push(`${name}[${i}]: fd ${fd} vs ${g[i]}`);
    }
  }
  return bad;
}
