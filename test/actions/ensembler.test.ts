import { describe, expect, it } from "vitest";
import { TemporalEnsembler, type EnsembleConfigInput } from "../../src/actions/ensembler.js";
import { VlaError } from "../../src/errors.js";
import { actSlow, vla0Loop } from "../support/ensemble-ref.js";
import { rng } from "../support/rng.js";

/** n random chunks (H, D) in [-1, 1), already float32 so the class and the references see the same inputs. */
function randomStream(n: number, H: number, D: number, seed: number): number[][][] {
  const r = rng(seed);
  return Array.from({ length: n }, () => Array.from({ length: H }, () => Array.from({ length: D }, () => Math.fround(r() * 2 - 1))));
}

/** Chunks [[b], [b+1], ..., [b+H-1]] for b = 0, 10, 20, ... (D = 1): the value says which chunk and row it came from. */
function ramps(n: number, H: number): number[][][] {
  return Array.from({ length: n }, (_, j) => Array.from({ length: H }, (_, p) => [10 * j + p]));
}

/** The robot loop: push when a prediction is due, execute one action per step. */
function drive(ens: TemporalEnsembler, stream: number[][][], steps: number): number[][] {
  let next = 0;
  const out: number[][] = [];
  for (let t = 0; t < steps; t++) {
    if (ens.needsPrediction()) ens.push(stream[next++]!.flat());
    out.push(Array.from(ens.next()));
  }
  return out;
}

function run(cfg: EnsembleConfigInput, stream: number[][][], steps: number): number[][] {
  return drive(new TemporalEnsembler(cfg, stream[0]!.length, stream[0]![0]!.length), stream, steps);
}

/** Outputs are float32, so equal to 1e-6 for values of order 1..100 means equal up to rounding. */
function expectClose(actual: number[][], expected: number[][], tol = 1e-6): void {
  expect(actual.length).toBe(expected.length);
  actual.forEach((row, t) => row.forEach((v, d) => expect(Math.abs(v - expected[t]![d]!), `t=${t} d=${d}: ${v} vs ${expected[t]![d]}`).toBeLessThan(tol * Math.max(1, Math.abs(v)))));
}

function errorOf(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    return e instanceof VlaError ? `${e.code}: ${e.message}` : `not a VlaError: ${String(e)}`;
  }
  return "no error";
}

describe("temporal ensembling: VLA-0", () => {
  it("matches a transliteration of VLA-0's loop on random streams", () => {
    let seed = 1;
    for (const H of [1, 4, 8]) {
      for (const k of new Set([1, 2, 3, H, H + 2])) {
        for (const window of [1, 2, 3, 8, 20]) {
          for (const version of [1, 2] as const) {
            for (const w of version === 1 ? [0.5] : [0.5, 0.8, 1]) {
              const stream = randomStream(60, H, 3, seed++);
              const ours = run({ mode: version === 1 ? "vla0-v1" : "vla0-v2", window, executeK: k, weight: w }, stream, 40);
              expectClose(ours, vla0Loop(stream, 40, k, window, version, w));
            }
          }
        }
      }
    }
  });

  it("reproduces VLA-0's gripper snapping (> 0) with gripperThreshold = Number.MIN_VALUE, ties included", () => {
    let ties = 0;
    let seed = 500;
    for (const [H, k, window] of [[4, 1, 8], [8, 1, 3], [8, 2, 8], [4, 3, 2]] as const) {
      const r = rng(seed++);
      // last dim is a binary gripper command, as in VLA-0's out_ori_act
      const stream = randomStream(60, H, 3, seed++).map((c) => c.map((row) => [row[0]!, row[1]!, r() < 0.5 ? -1 : 1]));
      const raw = vla0Loop(stream, 40, k, window, 1, 0.5);
      ties += raw.filter((a) => a[2] === 0).length;
      const cfg: EnsembleConfigInput = { mode: "vla0-v1", window, executeK: k, gripperDims: [2] };
      const ours = run({ ...cfg, gripperThreshold: Number.MIN_VALUE }, stream, 40);
      expectClose(ours, vla0Loop(stream, 40, k, window, 1, 0.5, true));
      // the default threshold 0 sends a tie to +1 where VLA-0 sends it to -1
      const dflt = run(cfg, stream, 40);
      raw.forEach((a, t) => expect(dflt[t]![2]).toBe(a[2]! >= 0 ? 1 : -1));
    }
    expect(ties).toBeGreaterThan(0); // the tie case really happened
  });

  it("H=4, executeK=2, window 8, by hand", () => {
    // c0 = [0..3] at t=0, c1 = [10..13] at t=2, c2 = [20..23] at t=4, c3 = [30..33] at t=6
    // v1, t=2: c0[2] = 2 (weight 0.5) and c1[0] = 10 (weight 1): (1 + 10) / 1.5 = 7.333...
    // t=3: (1.5 + 11) / 1.5; t=4: c0 ran out, c1[2] = 12 and c2[0] = 20: (6 + 20) / 1.5; ...
    expectClose(run({ mode: "vla0-v1", window: 8, executeK: 2 }, ramps(4, 4), 8), [[0], [1], [7.333333333], [8.333333333], [17.33333333], [18.33333333], [27.33333333], [28.33333333]]);
    // only two chunks ever overlap, so v2 with w = 0.5 equals v1 here ...
    expectClose(run({ mode: "vla0-v2", window: 8, executeK: 2, weight: 0.5 }, ramps(4, 4), 8), [[0], [1], [7.333333333], [8.333333333], [17.33333333], [18.33333333], [27.33333333], [28.33333333]]);
    // ... and w = 0.25 gives t=2: (0.25*2 + 10) / 1.25 = 8.4, t=3: (0.25*3 + 11) / 1.25 = 9.4
    expectClose(run({ mode: "vla0-v2", window: 8, executeK: 2, weight: 0.25 }, ramps(4, 4), 6), [[0], [1], [8.4], [9.4], [18.4], [19.4]]);
    // none: the newest chunk's first two actions
    expectClose(run({ mode: "none", executeK: 2 }, ramps(4, 4), 6), [[0], [1], [10], [11], [20], [21]]);
  });

  it("H=4, executeK=1, by hand: v1, v2 (w=0.5) and window trimming", () => {
    // c_j = [10j .. 10j+3] pushed at t=j; at t the chunks t-3..t cover t, chunk j at row t-j
    // v1 t=2: (0.5*2 + 0.5*11 + 20) / 2 = 13.25; t=3: (0.5*(3+12+21) + 30) / 2.5 = 19.2; t=4: (0.5*(13+22+31) + 40) / 2.5
    expectClose(run({ mode: "vla0-v1", window: 8, executeK: 1 }, ramps(6, 4), 5), [[0], [7], [13.25], [19.2], [29.2]]);
    // v2, w=0.5 t=2: (0.25*2 + 0.5*11 + 20) / 1.75 = 14.857142857; t=3: (0.125*3 + 0.25*12 + 0.5*21 + 30) / 1.875 = 23.4
    expectClose(run({ mode: "vla0-v2", window: 8, executeK: 1, weight: 0.5 }, ramps(6, 4), 5), [[0], [7], [14.85714286], [23.4], [33.4]]);
    // window 2: only the newest two, t=3: (0.5*21 + 30) / 1.5 = 27
    expectClose(run({ mode: "vla0-v2", window: 2, executeK: 1, weight: 0.5 }, ramps(6, 4), 5), [[0], [7], [17], [27], [37]]);
    // window 3 in v1, t=3: (0.5*12 + 0.5*21 + 30) / 2 = 23.25
    expectClose(run({ mode: "vla0-v1", window: 3, executeK: 1 }, ramps(6, 4), 5), [[0], [7], [13.25], [23.25], [33.25]]);
    // window 1 is no ensembling at all
    expectClose(run({ mode: "vla0-v1", window: 1, executeK: 1 }, ramps(6, 4), 4), [[0], [10], [20], [30]]);
  });

  it("never stores more than window chunks, nor chunks that ran out", () => {
    for (const [H, k, window] of [[8, 1, 3], [4, 1, 8], [4, 2, 8], [4, 4, 8]] as const) {
      const ens = new TemporalEnsembler({ mode: "vla0-v1", window, executeK: k }, H, 1);
      for (const [n, chunk] of ramps(20, H).entries()) {
        ens.push(chunk.flat());
        // covering chunks were pushed at t, t-k, t-2k, ...: ceil(H/k) of them once enough were pushed
        expect(ens.stored).toBe(Math.min(window, Math.ceil(H / k), n + 1));
        for (let i = 0; i < k; i++) ens.next();
      }
    }
  });
});

describe("temporal ensembling: ACT", () => {
  it("executeK=1 and 2 by hand: the OLDEST covering chunk weighs most", () => {
    // actK = ln 2 makes the weights 1, 1/2, 1/4. H=3, c_j = [10j, 10j+1, 10j+2] at t=j
    // t=1: (1*1 + 0.5*10) / 1.5 = 4; t=2: (2 + 0.5*11 + 0.25*20) / 1.75 = 7.142857; t=3: (12 + 0.5*21 + 0.25*30) / 1.75
    expectClose(run({ mode: "act", actK: Math.LN2, executeK: 1 }, ramps(6, 3), 5), [[0], [4], [7.142857143], [17.14285714], [27.14285714]]);
    // executeK=2: c0 at 0, c1 at 2, c2 at 4; t=2: (2 + 0.5*10) / 1.5; t=3: c1 alone; t=4: (12 + 0.5*20) / 1.5
    expectClose(run({ mode: "act", actK: Math.LN2, executeK: 2 }, ramps(4, 3), 6), [[0], [1], [4.666666667], [11], [14.66666667], [21]]);
    // window 2, executeK=1, t=2: c0 is too old; (11 + 0.5*20) / 1.5 = 14
    expectClose(run({ mode: "act", actK: Math.LN2, executeK: 1, window: 2 }, ramps(4, 3), 3), [[0], [4], [14]]);
  });

  it("matches the slow version on random streams", () => {
    let seed = 100;
    for (const H of [1, 3, 8]) {
      for (const ek of [1, 2, 5, H + 2]) {
        for (const window of [1, 4, 100]) {
          for (const k of [0, 0.1, 2]) {
            const stream = randomStream(60, H, 2, seed++);
            expectClose(run({ mode: "act", actK: k, executeK: ek, window }, stream, 30), actSlow(stream, 30, k, Math.min(ek, H), H, window));
          }
        }
      }
    }
  });
});

describe("temporal ensembler state", () => {
  it("snaps grippers with >= threshold -> +1", () => {
    const ens = new TemporalEnsembler({ mode: "vla0-v1", executeK: 1, gripperDims: [1], gripperThreshold: 0.25 }, 2, 2);
    ens.push([0.3, 0.25, 0, 0]);
    expect(Array.from(ens.next())).toEqual([Math.fround(0.3), 1]); // exactly at the threshold goes high
    ens.push([0, 0.2499, 0, 0]);
    // t=1: (0.5 * 0 + 1 * 0.2499) / 1.5 < 0.25 -> -1; dim 0 is not snapped
    expect(Array.from(ens.next())).toEqual([0, -1]);
    // the exact (double) mean is compared, not its float32 rounding
    const b = Math.fround(0.7);
    const mean = b / 1.5; // c0 row 1 is 0 (weight 0.5), c1 row 0 is b (weight 1)
    const up = Math.fround(mean); // rounds up: the float32 mean reaches the threshold, the exact mean does not
    expect(up).toBeGreaterThan(mean);
    const ens2 = new TemporalEnsembler({ mode: "vla0-v1", executeK: 1, gripperDims: [0], gripperThreshold: up }, 2, 1);
    ens2.push([0, 0]);
    ens2.next();
    ens2.push([b, 0]);
    expect(ens2.next()[0]).toBe(-1);
  });

  it("asks for a prediction every executeK steps, clamped to H", () => {
    const H = 4;
    for (const [ek, expected] of [[1, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]], [3, [0, 3, 6, 9]], [H, [0, 4, 8]], [H + 2, [0, 4, 8]]] as const) {
      const ens = new TemporalEnsembler({ mode: "vla0-v1", executeK: ek }, H, 1);
      const asked: number[] = [];
      for (let t = 0; t < 10; t++) {
        expect(ens.time).toBe(t);
        if (ens.needsPrediction()) {
          asked.push(t);
          ens.push(new Float32Array(H));
        }
        expect(ens.needsPrediction()).toBe(false);
        ens.next();
      }
      expect(asked).toEqual(expected);
    }
  });

  it("refuses next() when a prediction is due and push() when none is", () => {
    const ens = new TemporalEnsembler({ mode: "vla0-v1", executeK: 2 }, 4, 1);
    expect(errorOf(() => ens.next())).toMatch(/^ENSEMBLE_STATE: a prediction is due at t=0/);
    ens.push([0, 1, 2, 3]);
    expect(errorOf(() => ens.push([0, 1, 2, 3]))).toMatch(/^ENSEMBLE_STATE: push at t=0: no prediction is due/);
    ens.next();
    ens.next();
    expect(errorOf(() => ens.next())).toMatch(/^ENSEMBLE_STATE: a prediction is due at t=2/);
  });

  it("reset() starts over; clone() is independent", () => {
    const stream = randomStream(30, 6, 2, 7);
    const cfg = { mode: "vla0-v2", window: 4, executeK: 2, weight: 0.7 } as const;
    const whole = run(cfg, stream, 20);

    const ens = new TemporalEnsembler(cfg, 6, 2);
    drive(ens, ramps(10, 6).map((c) => c.map((r) => [r[0]!, -r[0]!])), 7); // a different episode
    ens.reset();
    expect(ens.time).toBe(0);
    expect(ens.stored).toBe(0);
    expect(drive(ens, stream, 20)).toEqual(whole); // bit-identical to a fresh ensembler

    const a = new TemporalEnsembler(cfg, 6, 2);
    const head = drive(a, stream, 9); // mid-chunk: a push was at t=8
    const b = a.clone();
    drive(b, randomStream(30, 6, 2, 8), 11); // the clone runs off elsewhere
    expect(a.time).toBe(9);
    expect([...head, ...drive(a, stream.slice(5), 11)]).toEqual(whole); // a carries on untouched
    const c = a.clone();
    expect(drive(c, stream.slice(10), 1)).toEqual(drive(a, stream.slice(10), 1)); // and a clone continues like the original
  });

  it("rejects bad configs and chunks, naming the field", () => {
    expect(errorOf(() => new TemporalEnsembler({ mode: "vla0-v1", window: 0 }, 8, 7))).toMatch(/^ENSEMBLE_INVALID[\s\S]*window/);
    expect(errorOf(() => new TemporalEnsembler({ mode: "foo" } as never, 8, 7))).toMatch(/^ENSEMBLE_INVALID[\s\S]*mode/);
    expect(errorOf(() => new TemporalEnsembler({} as never, 8, 7))).toMatch(/^ENSEMBLE_INVALID[\s\S]*mode/);
    expect(errorOf(() => new TemporalEnsembler({ mode: "act", executeK: 1.5 }, 8, 7))).toMatch(/^ENSEMBLE_INVALID[\s\S]*executeK/);
    expect(errorOf(() => new TemporalEnsembler({ mode: "vla0-v2", weight: 0 }, 8, 7))).toMatch(/^ENSEMBLE_INVALID[\s\S]*weight/);
    expect(errorOf(() => new TemporalEnsembler({ mode: "act", windw: 3 } as never, 8, 7))).toMatch(/^ENSEMBLE_INVALID[\s\S]*windw/);
    expect(errorOf(() => new TemporalEnsembler({ mode: "act", gripperDims: [7] }, 8, 7))).toMatch(/^ENSEMBLE_INVALID: gripperDims: 7 is out of range for 7 dimensions/);
    expect(errorOf(() => new TemporalEnsembler({ mode: "act" }, 0, 7))).toMatch(/^ENSEMBLE_INVALID: horizon must be an integer >= 1, got 0/);
    expect(errorOf(() => new TemporalEnsembler({ mode: "act" }, 8, 2.5))).toMatch(/^ENSEMBLE_INVALID: dims must be an integer >= 1, got 2.5/);
    const ens = new TemporalEnsembler({ mode: "act" }, 8, 7);
    expect(errorOf(() => ens.push(new Float32Array(55)))).toMatch(/^ENSEMBLE_SHAPE: chunk has 55 values, expected H\*D = 8\*7 = 56/);
    const bad = new Float32Array(56);
    bad[9] = Number.NaN;
    expect(errorOf(() => ens.push(bad))).toMatch(/^ENSEMBLE_SHAPE: chunk value 9 \(t=1, d=2\) is NaN/);
    expect(ens.needsPrediction()).toBe(true); // a rejected chunk leaves the state alone
  });
});
