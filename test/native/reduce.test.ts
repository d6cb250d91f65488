/**
 * Native reduction (native tier): the optimized sums (AVX2 and portable kernels, 1..8
 * threads, sync and async, per-call pools and Runtime pools) against the scalar
 * reference, itself checked against an in-order JavaScript double sum.
 *
 * Inputs are fresh random values each run; the seed is in every failure message
 * (rerun with VLATEXT_TEST_SEED=<seed>). Two kinds of data:
 *  - exact data: nonzero multiples of 2^-24 in (-1, 1). Every partial sum of up to 2^21
 *    of them is a multiple of 2^-24 below 2^21, i.e. fits in 45 bits, so double
 *    addition is exact in ANY order: every version must equal the reference bit for
 *    bit. A dropped tail element, a range off by one (an element lost or counted
 *    twice) or float instead of double accumulation changes the sum, so it fails.
 *  - general floats (any magnitude, mixed signs): summation in any order has error at
 *    most (n-1) 2^-53 sum|x| (Higham, Accuracy and Stability, 4.2), so two orders
 *    differ by at most 2 n 2^-53 sum|x|; that is the tolerance.
 */
import fs from "node:fs";
import { afterAll, describe, expect, it } from "vitest";
import { loadAddon, NATIVE_ISAS } from "../../src/engine/addon.js";
import { Runtime, reduceSum, reduceSumAsync, reduceSumCuda, reduceSumRef } from "../../src/engine/reduce.js";
import { VlaError } from "../../src/errors.js";
import { rng } from "../support/rng.js";

const seed0 = Number(process.env.VLATEXT_TEST_SEED ?? Math.floor(Math.random() * 2 ** 31));
let seedNext = seed0;
const fresh = () => rng(seedNext++);

/** n nonzero multiples of 2^-24 in (-1, 1): sums of these are exact in double. */
function exactData(n: number): Float32Array {
  const r = fresh();
  return Float32Array.from({ length: n }, () => {
    const m = Math.floor(r() * (2 ** 24 - 1)) + 1; // 1 .. 2^24 - 1
    return (r() < 0.5 ? -m : m) / 2 ** 24;
  });
}

/** n floats with a random sign, magnitude up to `scale`, shifted by `offset`. */
function generalData(n: number, scale: number, offset: number): Float32Array {
  const r = fresh();
  return Float32Array.from({ length: n }, () => (r() * 2 - 1) * scale + offset);
}

/** The independent oracle for the reference: an in-order double sum in JavaScript. */
function jsSum(x: Float32Array): number {
  let s = 0;
  for (const v of x) s += v;
  return s;
}

function tolerance(x: Float32Array): number {
  let abs = 0;
  for (const v of x) abs += Math.abs(v);
  return 2 * x.length * 2 ** -53 * abs;
}

const SIMD: Array<"avx2" | "scalar"> = loadAddon().buildInfo().simd === "avx2" ? ["avx2", "scalar"] : ["scalar"];
// every tail length and every 32-wide / 8-wide step count up to 70, then larger sizes
const SIZES = [...Array.from({ length: 71 }, (_, i) => i), 95, 96, 97, 255, 256, 257, 1023, 1024, 1025, (1 << 20) + 3];
const THREADS = [1, 2, 3, 8];

const runtimes: Runtime[] = [];
afterAll(() => runtimes.forEach((r) => r.dispose()));
function runtime(threads: number): Runtime {
  const r = new Runtime({ threads });
  runtimes.push(r);
  return r;
}

function caught(f: () => unknown): unknown {
  try {
    f();
  } catch (e) {
    return e;
  }
  return undefined;
}

describe(`native reduction (seed ${seed0})`, () => {
  it("reports its build", () => {
    const info = loadAddon().buildInfo();
    expect(Object.keys(info).sort()).toEqual(["cuda", "isa", "simd", "threadsDefault", "version"]);
    expect(NATIVE_ISAS).toContain(info.isa);
    const pkg = JSON.parse(fs.readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version: string };
    expect(info.version).toBe(pkg.version);
    expect(Number.isInteger(info.threadsDefault) && info.threadsDefault >= 1).toBe(true);
    expect(typeof info.cuda).toBe("boolean");
    // the run-time dispatch agrees with the CPU's own flags
    const flags = fs.existsSync("/proc/cpuinfo") ? (/^flags\s*:(.*)$/m.exec(fs.readFileSync("/proc/cpuinfo", "utf8"))?.[1] ?? "") : "";
    if (process.arch === "x64" && flags) expect(info.simd).toBe(/\bavx2\b/.test(flags) && /\bfma\b/.test(flags) ? "avx2" : "scalar");
    else expect(["avx2", "scalar"]).toContain(info.simd);
    // the instruction-set level agrees too (avx512 needs F, BW, DQ and VL; bf16 needs avx512_bf16)
    if (process.arch === "x64" && flags) {
      const has = (f: string): boolean => new RegExp(`\\b${f}\\b`).test(flags);
      const level = NATIVE_ISAS.indexOf(info.isa);
      expect(level >= NATIVE_ISAS.indexOf("avx512")).toBe(["avx512f", "avx512bw", "avx512dq", "avx512vl"].every(has) && info.simd === "avx2");
      if (level >= NATIVE_ISAS.indexOf("avx512")) expect(level >= NATIVE_ISAS.indexOf("avx512bf16")).toBe(has("avx512_bf16"));
    }
  });

  it("the scalar reference equals an in-order JavaScript double sum exactly", () => {
    for (const n of [0, 1, 17, 1000, 4097]) {
      const x = generalData(n, 1e3, 1);
      expect(reduceSumRef(x), `n=${n}`).toBe(jsSum(x));
    }
  });

  it("optimized sums equal the reference exactly on exact data (every size, thread count and kernel)", () => {
    const pools = THREADS.map((threads) => runtime(threads));
    pools.forEach((rt, i) => expect(rt.threads).toBe(THREADS[i]));
    for (const n of SIZES) {
      const x = exactData(n);
      const ref = reduceSumRef(x);
      expect(ref).toBe(jsSum(x));
      for (const [i, threads] of THREADS.entries()) {
        expect(pools[i]!.reduceSum(x), `Runtime threads=${threads} n=${n}`).toBe(ref);
        for (const simd of SIMD) expect(reduceSum(x, { threads, simd }), `threads=${threads} simd=${simd} n=${n}`).toBe(ref);
      }
    }
  });

  it("optimized sums match the reference within 2n 2^-53 sum|x| on general floats", () => {
    const shapes: Array<[number, number]> = [[1, 0], [1e6, 3e6], [1e-3, -0.5], [1e30, 0], [3e38, 0]];
    for (const n of [1, 7, 8, 9, 33, 1023, (1 << 20) + 3]) {
      for (const [scale, offset] of shapes) {
        const x = generalData(n, scale, offset);
        const ref = reduceSumRef(x);
        const tol = tolerance(x);
        for (const threads of THREADS) {
          for (const simd of SIMD) {
            const got = reduceSum(x, { threads, simd });
            expect(Math.abs(got - ref), `threads=${threads} simd=${simd} n=${n} scale=${scale}`).toBeLessThanOrEqual(tol);
          }
        }
      }
    }
  });

  it("accumulates in double: values near FLT_MAX do not overflow", () => {
    const big = Math.fround(3e38);
    // float accumulation would reach Infinity; k * big (k <= 1001) is exact in double
    const x = new Float32Array(1001).fill(big);
    for (const simd of SIMD) expect(reduceSum(x, { threads: 3, simd })).toBe(1001 * big);
    x.fill(-big, 500);
    for (const simd of SIMD) expect(reduceSum(x, { threads: 2, simd })).toBe(-big);
  });

  it("reads a subarray from its byte offset", () => {
    const base = exactData(300);
    const sub = base.subarray(5, 263);
    expect(reduceSum(sub, { threads: 3 })).toBe(jsSum(sub));
    expect(reduceSumRef(sub)).toBe(jsSum(sub));
  });

  it("async sums (per-call pool and Runtime pool) match, several in flight at once", async () => {
    const xs = [exactData((1 << 18) + 5), exactData(3), exactData(0), exactData(1025)];
    const refs = xs.map((x) => reduceSumRef(x));
    const rt = runtime(2);
    const pending = xs.flatMap((x) => [reduceSumAsync(x, { threads: 3 }), reduceSumAsync(x, { threads: 1, simd: "scalar" }), rt.reduceSumAsync(x)]);
    expect(pending[0]).toBeInstanceOf(Promise);
    const got = await Promise.all(pending);
    got.forEach((g, i) => expect(g, `call ${i}`).toBe(refs[Math.floor(i / 3)]));
  });

  it("rejects bad arguments with NATIVE_ARGUMENT naming them", async () => {
    const argError = (e: unknown, name: RegExp) => {
      expect(e).toBeInstanceOf(VlaError);
      expect((e as VlaError).code).toBe("NATIVE_ARGUMENT");
      expect((e as VlaError).message).toMatch(name);
    };
    const f64 = new Float64Array(3) as unknown as Float32Array;
    argError(caught(() => reduceSum(f64)), /reduceSum: argument 'x' must be a Float32Array/);
    argError(caught(() => reduceSumRef([1, 2] as unknown as Float32Array)), /argument 'x' must be a Float32Array/);
    argError(caught(() => runtime(1).reduceSum(undefined as unknown as Float32Array)), /argument 'x'/);
    for (const threads of [0, -1, 1.5, Number.NaN, Infinity, 5000]) {
      argError(caught(() => reduceSum(new Float32Array(4), { threads })), /option 'threads' must be an integer in \[1, 4096\]/);
      argError(caught(() => new Runtime({ threads })), /Runtime: option 'threads'/);
    }
    argError(caught(() => reduceSum(new Float32Array(4), { threads: "2" as unknown as number })), /option 'threads'.*got a string/);
    argError(caught(() => reduceSum(new Float32Array(4), 3 as unknown as object)), /argument 'options' must be an object/);
    argError(caught(() => reduceSum(new Float32Array(4), { simd: "avx512" as "avx2" })), /option 'simd' must be "avx2" or "scalar"/);
    argError(await reduceSumAsync(f64).catch((e: unknown) => e), /reduceSumAsync: argument 'x' must be a Float32Array/);
    argError(await reduceSumAsync(new Float32Array(1), { threads: 0 }).catch((e: unknown) => e), /option 'threads'/);
    // the addon itself throws TypeError/RangeError naming the argument
    expect(() => loadAddon().reduceSum(new Float32Array(1), { threads: 0 })).toThrow(RangeError);
    expect(() => loadAddon().reduceSumRef(f64)).toThrow(TypeError);
  });

  it("reduceSumCuda says clearly when it cannot run", () => {
    const e = caught(() => reduceSumCuda(new Float32Array(2)));
    if (loadAddon().buildInfo().cuda) return; // covered by cuda.test.ts
    expect(e).toBeInstanceOf(VlaError);
    expect((e as VlaError).code).toBe("NATIVE_LOAD");
    expect((e as VlaError).message).toMatch(/built without CUDA/);
  });

  it("a Runtime refuses work after dispose and refuses dispose while work is running", async () => {
    const gone = new Runtime({ threads: 1 });
    gone.dispose();
    expect(() => gone.reduceSum(new Float32Array(1))).toThrow(/disposed/);
    const busy = new Runtime({ threads: 2 });
    const x = exactData(1 << 16);
    const p = busy.reduceSumAsync(x); // the worker holds the pool until its promise settles
    expect(() => busy.dispose()).toThrow(/still running/);
    expect(await p).toBe(reduceSumRef(x));
    busy.dispose();
    expect(busy.threads).toBe(0);
  });
});
