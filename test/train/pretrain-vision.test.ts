/**
 * The vision stage of `vlatext pretrain` (src/train/pretrain-vision.ts): the read-out's loss
 * and gradients against central finite differences (float64; relative error <= 1e-6 of the
 * gradient's scale), the scene targets, and that a short stage makes the tower's tokens hold
 * the scene better than its random start does (a clear margin, seeded).
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { loadLanguageModel } from "../../src/engine/vlm.js";
import { SCENE_TARGETS, TARGET_UNIT, sceneFrames, sceneTargets } from "../../src/models/pretrain-tasks.js";
import { createTinyDefaultModel } from "../../src/models/tiny-default.js";
import { Rng } from "../../src/rng.js";
import { Readout, readoutError, readoutLoss, trainVisionStage } from "../../src/train/pretrain-vision.js";
import type { WorldState } from "../../src/sim/world.js";

const quiet = { log: () => {}, progress: () => {} };

describe("scene targets", () => {
  it("put each block under its colour, mask the colours the scene lacks, and give offsets from the fingertips", () => {
    const w: WorldState = {
      gripper: { x: 0.1, y: -0.05, z: 0.2, yaw: 0, closed: true, held: -1 },
      blocks: [{ color: "green", x: 0.05, y: 0.12, z: 0 }],
      zones: [{ color: "red", x: -0.1, y: 0.1 }],
    };
    const t = sceneTargets(w);
    const at = (name: string) => SCENE_TARGETS.findIndex((s) => s.name === name);
    expect(t.value.length).toBe(SCENE_TARGETS.length);
    expect(t.value[at("green block present")]).toBe(1);
    expect(t.value[at("red block present")]).toBe(0);
    expect(t.mask[at("red block present")]).toBe(1);
    expect(t.mask[at("red block x")]).toBe(0);
    expect(t.value[at("green block x")]).toBeCloseTo(0.05 / TARGET_UNIT, 12);
    expect(t.value[at("green block offset x")]).toBeCloseTo((0.05 - 0.1) / TARGET_UNIT, 12);
    // the offset's height is to the block's top (0.06 high) from the fingertips
    expect(t.value[at("green block offset z")]).toBeCloseTo((0.06 - 0.2) / TARGET_UNIT, 12);
    expect(t.value[at("red zone y")]).toBeCloseTo(0.1 / TARGET_UNIT, 12);
    expect(t.mask[at("green zone x")]).toBe(0);
    expect(t.value[at("gripper open")]).toBe(0);
    expect(t.value[at("gripper holding")]).toBe(0);
  });
});

describe("the read-out's loss", () => {
  it("has the gradients its finite differences give (weights, bias and features)", () => {
    const rng = new Rng(3);
    const K = SCENE_TARGETS.length;
    const D = 10;
    const r = new Readout(K, D);
    for (let i = 0; i < r.w.length; i++) r.w[i] = rng.gaussian(0.3);
    for (let i = 0; i < K; i++) r.b[i] = rng.gaussian(0.3);
    const frames = sceneFrames({ episodes: 3, seed: 1, size: 28, every: 7, scene: { blocks: [1, 3], zones: [0, 1] } });
    const targets = frames.slice(0, 4).map((f) => sceneTargets(f.world));
    expect(targets.length).toBe(4);
    // float32 features exactly representable, so perturbing a float64 copy is exact
    const feats = Float32Array.from({ length: 4 * D }, () => Math.round(rng.gaussian(1) * 256) / 256);
    const g = readoutLoss(r, feats, targets);
    const h = 1e-5;
    const check = (analytic: number, plus: () => number, minus: () => number, scale: number) => {
      const fd = (plus() - minus()) / (2 * h);
      expect(Math.abs(fd - analytic)).toBeLessThanOrEqual(1e-6 * scale + 1e-9);
    };
    const scaleW = Math.max(...Array.from(g.dW, Math.abs));
    for (const i of [0, 7, 3 * D + 2, (K - 1) * D + 9]) {
      const w0 = r.w[i] as number;
      check(
        g.dW[i] as number,
        () => ((r.w[i] = w0 + h), readoutLoss(r, feats, targets).loss),
        () => ((r.w[i] = w0 - h), readoutLoss(r, feats, targets).loss),
        scaleW,
      );
      r.w[i] = w0;
    }
    for (const k of [0, 5, K - 1]) {
      const b0 = r.b[k] as number;
      check(
        g.db[k] as number,
        () => ((r.b[k] = b0 + h), readoutLoss(r, feats, targets).loss),
        () => ((r.b[k] = b0 - h), readoutLoss(r, feats, targets).loss),
        Math.max(...Array.from(g.db, Math.abs)),
      );
      r.b[k] = b0;
    }
    // features: through a float64 copy of the loss (the float32 features cannot hold +-h)
    const lossAt = (i: number, delta: number): number => {
      let count = 0;
      for (const t of targets) for (const m of t.mask) count += m;
      let loss = 0;
      targets.forEach((t, b) => {
        for (let k = 0; k < K; k++) {
          if (t.mask[k] === 0) continue;
          let p = r.b[k] as number;
          for (let d = 0; d < D; d++) p += (r.w[k * D + d] as number) * ((feats[b * D + d] as number) + (b * D + d === i ? delta : 0));
          loss += (p - (t.value[k] as number)) ** 2;
        }
      });
      return loss / count;
    };
    expect(lossAt(-1, 0)).toBeCloseTo(g.loss, 12);
    const scaleF = Math.max(...Array.from(g.dF, Math.abs));
    for (const i of [0, 4, D + 3, 3 * D + 9]) check(g.dF[i] as number, () => lossAt(i, h), () => lossAt(i, -h), scaleF);
  });
});

describe("the vision stage", () => {
  it("is deterministic and makes the tower's tokens hold the scene better than its random start", async () => {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), "vlatext-vision-stage-"));
    const scene = { blocks: [1, 1] as [number, number], zones: [0, 0] as [number, number] };
    const frames = sceneFrames({ episodes: 300, seed: 0, size: 56, every: 4, families: ["reach"], scene });
    const held = sceneFrames({ episodes: 20, seed: 99, size: 56, every: 4, families: ["reach"], scene });
    const run = async (name: string, steps: number) => {
      const dir = createTinyDefaultModel(path.join(root, name), { seed: 0, hiddenSize: 32, layers: 1, visionHidden: 32, visionDepth: 1, patchSize: 28, sensor: "random", initStd: 1 / Math.sqrt(32) });
      const loaded = loadLanguageModel(dir, { dtype: "f32", trainVision: true, threads: 2 });
      try {
        const vlm = loaded.vlm!;
        const before = steps > 100 ? await readoutError(vlm, frames, held) : {};
        const r = await trainVisionStage(vlm, frames, steps > 100 ? held : [], { seed: 0, steps, batchSize: 32, lr: 3e-3, warmupSteps: 50, logEvery: 100 }, quiet);
        return { before, r };
      } finally {
        loaded.dispose();
      }
    };
    const a = await run("a", 30);
    const b = await run("b", 30);
    expect(a.r.losses).toEqual(b.r.losses);
    // measured: gripper 5.7 -> 1.3 cm, block offset 7.0 -> 2.5 cm after 2000 steps (1500 here)
    const c = await run("c", 1500);
    expect(c.r.finalLoss).toBeLessThan(0.5 * c.r.losses[0]!);
    // the gripper, seen by both cameras: a random tower's tokens give it to several cm, the trained ones to well under half that
    expect(c.r.heldOut.gripper!).toBeLessThan(0.4 * c.before.gripper!);
    expect(c.r.heldOut.offset!).toBeLessThan(0.6 * c.before.offset!);
  }, 300_000);
});
