import { describe, expect, it } from "vitest";
import { TemporalEnsembler, type EnsembleConfigInput } from "../../src/actions/ensembler.js";
import { VlaError } from "../../src/errors.js";
import { rng } from "../support/rng.js";

/**
 * VLA-0's LIBERO loop (NVlabs/vla0, roboverse/evals/libero/eval.py, eval_run),
 * transliterated line by line: a list of old chunks' remainders, pop beyond
 * ensemble_prediction, shift by action_horizon, weights 0.5 (v1) or
 * w ** (len - i - 1) (v2). Returns the executed actions (no gripper snapping).
 */
function vla0Loop(chunks: number[][][], steps: number, actionHorizon: number, ensemblePrediction: number, version: 1 | 2, w2: number): number[][] {
  const executed: number[][] = [];
  let old: number[][][] = [];
  let actionChunk: number[][] = [];
  let actionI = 0;
  let next = 0;
  for (let t = 0; t < steps; t++) {
    if (actionI >= actionHorizon || t === 0) {
      let chunk = chunks[next++]!.map((r) => [...r]);
      if (ensemblePrediction > 1) {
        old.push(chunk);
        if (old.length > ensemblePrediction) old.shift();
        const nOld: number[][][] = [];
        const sum = chunk.map((r) => r.map(() => 0));
        const count = chunk.map((r) => r.map(() => 0));
        for (let i = 0; i < old.length - 1; i++) {
          let c = old[i]!;
          if (c.length <= actionHorizon) continue;
          c = c.slice(actionHorizon);
          nOld.push(c);
          const wt = version === 1 ? 0.5 : w2 ** (old.length - i - 1);
          for (let p = 0; p < c.length; p++) for (let d = 0; d < c[p]!.length; d++) {
            sum[p]![d]! += wt * c[p]![d]!;
            count[p]![d]! += wt;
          }
        }
        const newest = old[old.length - 1]!;
        nOld.push(newest);
        for (let p = 0; p < newest.length; p++) for (let d = 0; d < newest[p]!.length; d++) {
          sum[p]![d]! += newest[p]![d]!;
          count[p]![d]! += 1;
        }
        old = nOld;
        chunk = sum.map((r, p) => r.map((v, d) => v / count[p]![d]!));
      }
      actionChunk = chunk;
      actionI = 0;
      actionHorizon = Math.min(actionHorizon, actionChunk.length);
    }
    executed.push([...actionChunk[actionI]!]);
    actionI++;
  }
  return executed;
}

/** ACT's temporal ensembling, the slow way: every chunk with its start time, weights recomputed each step. */
function actSlow(chunks: number[][][], steps: number, k: number, executeK: number, H: number, window: number): number[][] {
  const all: Array<{ start: number; c: number[][] }> = [];
  const out: number[][] = [];
  let next = 0;
  for (let t = 0; t < steps; t++) {
    if (t % executeK === 0) all.push({ start: t, c: chunks[next++]! });
    const recent = all.slice(-window);
    const cover = recent.filter((x) => t - x.start < H);
    const ws = cover.map((_, i) => Math.exp(-k * i));
    const z = ws.reduce((a, b) => a + b, 0);
    out.push(cover[0]!.c[0]!.map((_, d) => cover.reduce((s, x, i) => s + ws[i]! * x.c[t - x.start]![d]!, 0) / z));
  }
  return out;
}

function randomChunks(n: number, H: number, D: number, seed: number): number[][][] {
  const r = rng(seed);
  return Array.from({ length: n }, () => Array.from({ length: H }, () => Array.from({ length: D }, () => r() * 2 - 1)));
}

function run(cfg: EnsembleConfigInput, chunks: number[][][], steps: number, H: number, D: number): number[][] {
  const ens = new TemporalEnsembler(cfg, H, D);
  let next = 0;
  const out: number[][] = [];
  for (let t = 0; t < steps; t++) {
    if (ens.needsPrediction()) ens.push(chunks[next++]!.flat());
    out.push(Array.from(ens.next()));
  }
  return out;
}

function expectClose(a: number[][], b: number[][], tol = 1e-6): void {
  expect(a.length).toBe(b.length);
  a.forEach((row, t) => row.forEach((v, d) => expect(Math.abs(v - b[t]![d]!), `t=${t} d=${d}`).toBeLessThan(tol)));
}

describe("temporal ensembling", () => {
  it("matches a transliteration of VLA-0's LIBERO loop (v1 and v2)", () => {
    let seed = 1;
    for (const H of [1, 4, 8]) {
      for (const k of [1, 2, 3, H, H + 2]) {
        for (const window of [1, 2, 3, 8, 20]) {
          for (const version of [1, 2] as const) {
            for (const w of [0.5, 0.8]) {
              const D = 3;
              const chunks = randomChunks(80, H, D, seed++);
              const steps = 40;
              const ours = run({ mode: version === 1 ? "vla0-v1" : "vla0-v2", window, executeK: k, weight: w }, chunks, steps, H, D);
              expectClose(ours, vla0Loop(chunks, steps, k, window, version, w));
            }
          }
        }
      }
    }
  });

  it("v1 and v2 by hand: H=4, executeK=2", () => {
    const c = (base: number) => [[base], [base + 1], [base + 2], [base + 3]];
    const chunks = [c(0), c(10), c(20), c(30)];
    // t=0,1: c0 alone -> 0, 1. t=2 (new c1 at 2): c0[2]=2 (w .5) with c1[0]=10 (w 1) -> (1 + 10)/1.5
    // t=3: (0.5*3 + 11)/1.5. t=4 (c2): c0 exhausted; c1[2]=12 (.5) + c2[0]=20 -> (6+20)/1.5
    expectClose(run({ mode: "vla0-v1", window: 8, executeK: 2 }, chunks, 6, 4, 1), [[0], [1], [11 / 1.5], [12.5 / 1.5], [26 / 1.5], [27.5 / 1.5]]);
    // v2, w=0.5: same weights here (age 1 -> 0.5); with w=0.25: (0.25*2 + 10)/1.25
    expectClose(run({ mode: "vla0-v2", window: 8, executeK: 2, weight: 0.25 }, chunks, 4, 4, 1), [[0], [1], [10.5 / 1.25], [11.75 / 1.25]]);
    // executeK=1, H=4, v2 w=0.5 at t=3: c0[3]=3 (age 3, .125), c1[2]=12 (.25), c2[1]=21 (.5), c3[0]=30 (1)
    const t3 = (0.125 * 3 + 0.25 * 12 + 0.5 * 21 + 30) / (0.125 + 0.25 + 0.5 + 1);
    expect(run({ mode: "vla0-v2", window: 8, executeK: 1, weight: 0.5 }, chunks, 4, 4, 1)[3]![0]).toBeCloseTo(t3, 6);
    // window 2 drops c0 and c1 at t=3: (0.5*21 + 30)/1.5
    expect(run({ mode: "vla0-v2", window: 2, executeK: 1, weight: 0.5 }, chunks, 4, 4, 1)[3]![0]).toBeCloseTo(40.5 / 1.5, 6);
    // none: the newest chunk only
    expectClose(run({ mode: "none", executeK: 2 }, chunks, 6, 4, 1), [[0], [1], [10], [11], [20], [21]]);
  });

  it("ACT by hand and against the slow version", () => {
    const c = (base: number) => [[base], [base + 1], [base + 2]];
    const chunks = [c(0), c(10), c(20)];
    const k = 0.5;
    // t=2: c0[2]=2 (i=0, w=1), c1[1]=11 (i=1, e^-.5), c2[0]=20 (i=2, e^-1): the OLDEST weighs most
    const w = [1, Math.exp(-0.5), Math.exp(-1)];
    const t2 = (w[0]! * 2 + w[1]! * 11 + w[2]! * 20) / (w[0]! + w[1]! + w[2]!);
    expect(run({ mode: "act", actK: k, executeK: 1, window: 8 }, chunks, 3, 3, 1)[2]![0]).toBeCloseTo(t2, 6);
    let seed = 100;
    for (const H of [3, 8]) for (const ek of [1, 2, 5]) for (const win of [1, 4, 100]) {
      const ch = randomChunks(60, H, 2, seed++);
      expectClose(run({ mode: "act", actK: 0.1, executeK: ek, window: win }, ch, 30, H, 2), actSlow(ch, 30, 0.1, Math.min(ek, H), H, win));
    }
  });

  it("snaps grippers at exactly the threshold", () => {
    const ens = new TemporalEnsembler({ mode: "vla0-v1", executeK: 1, gripperDims: [1], gripperThreshold: 0.25 }, 2, 2);
    ens.push([0.3, 0.25, 0, 0]);
    expect(Array.from(ens.next())).toEqual([Math.fround(0.3), 1]); // 0.25 >= 0.25
    ens.push([0, 0.2499, 0, 0]);
    // t=1: mean of (0.5 * 0) and (1 * 0.2499) / 1.5 < 0.25 -> -1
    expect(ens.next()[1]).toBe(-1);
  });

  it("asks for predictions every executeK steps (clamped to H)", () => {
    for (const [ek, H, expected] of [[1, 4, [0, 1, 2, 3, 4, 5]], [3, 4, [0, 3]], [4, 4, [0, 4]], [6, 4, [0, 4]]] as const) {
      const ens = new TemporalEnsembler({ mode: "vla0-v1", executeK: ek }, H, 1);
      const asked: number[] = [];
      for (let t = 0; t < 6; t++) {
        if (ens.needsPrediction()) {
          asked.push(t);
          ens.push(new Float32Array(H));
        }
        ens.next();
      }
      expect(asked).toEqual(expected);
    }
  });

  it("reset starts over and clone is independent", () => {
    const ens = new TemporalEnsembler({ mode: "vla0-v1", executeK: 2 }, 4, 1);
    ens.push([1, 2, 3, 4]);
    ens.next();
    const copy = ens.clone();
    expect(copy.next()[0]).toBe(2);
    expect(ens.time).toBe(1);
    expect(ens.next()[0]).toBe(2);
    ens.reset();
    expect(ens.time).toBe(0);
    expect(ens.needsPrediction()).toBe(true);
    expect(() => ens.next()).toThrow(/a prediction is due at t=0/);
  });

  it("rejects bad configs and chunks, naming the field", () => {
    const e = (f: () => unknown) => {
      try {
        f();
      } catch (x) {
        return x instanceof VlaError ? `${x.code}: ${x.message}` : String(x);
      }
      return "none";
    };
    expect(e(() => new TemporalEnsembler({ window: 0 }, 8, 7))).toMatch(/ENSEMBLE_INVALID[\s\S]*window/);
    expect(e(() => new TemporalEnsembler({ mode: "foo" as never }, 8, 7))).toMatch(/ENSEMBLE_INVALID[\s\S]*mode/);
    expect(e(() => new TemporalEnsembler({ gripperDims: [7] }, 8, 7))).toMatch(/gripperDims: 7 is out of range/);
    expect(e(() => new TemporalEnsembler({ windw: 3 } as never, 8, 7))).toMatch(/windw/);
    const ens = new TemporalEnsembler({}, 8, 7);
    expect(e(() => ens.push(new Float32Array(55)))).toMatch(/ENSEMBLE_SHAPE: chunk has 55 values, expected H\*D = 8\*7 = 56/);
    expect(e(() => ens.push(new Float32Array(56).fill(NaN)))).toMatch(/value 0 \(t=0, d=0\) is NaN/);
  });
});
