import { afterAll, describe, expect, it } from "vitest";
import { loadAddon } from "../../src/engine/addon.js";
import { Runtime, reduceSumCuda, reduceSumRef } from "../../src/engine/reduce.js";
import { VlaError } from "../../src/errors.js";
import { rng } from "../support/rng.js";

function randomArray(n: number, seed: number, scale = 1, offset = 0): Float32Array {
  const r = rng(seed);
  return Float32Array.from({ length: n }, () => (r() * 2 - 1) * scale + offset);
}

/** Exact-ish oracle in JS: double accumulation in order (the same as the scalar reference). */
function jsSum(x: Float32Array): number {
  let s = 0;
  for (const v of x) s += v;
  return s;
}

const runtimes: Runtime[] = [];
afterAll(() => runtimes.forEach((r) => r.dispose()));
function runtime(threads: number): Runtime {
  const r = new Runtime({ threads });
  runtimes.push(r);
  return r;
}

describe("native reduction", () => {
  it("reports its build", () => {
    const info = loadAddon().buildInfo();
    expect(info.version).toBe("0.1.0");
    expect(["avx2", "scalar"]).toContain(info.simd);
    expect(info.threadsDefault).toBeGreaterThanOrEqual(1);
    expect(typeof info.cuda).toBe("boolean");
  });

  it("the scalar reference equals an in-order double sum exactly", () => {
    for (const n of [0, 1, 17, 1000]) {
      const x = randomArray(n, n + 1);
      expect(reduceSumRef(x)).toBe(jsSum(x));
    }
  });

  it("optimized multithreaded sums match the reference on fresh random inputs", () => {
    // Both accumulate f32 inputs in double; only the order differs. Each partial sum has
    // relative rounding error <= n * 2^-53, so |fast - ref| <= 2 n 2^-53 sum|x|: 1e-12 * sum|x|
    // is far above that bound for n <= 2^21 and far below any lost or double-counted element.
    const sizes = [0, 1, 7, 8, 9, 15, 16, 17, 31, 1023, (1 << 20) + 3];
    let seed = 10;
    for (const threads of [1, 2, 3, 8]) {
      const rt = runtime(threads);
      expect(rt.threads).toBe(threads);
      for (const n of sizes) {
        for (const [scale, offset] of [[1, 0], [1e6, 3e6], [1e-3, -0.5]] as const) {
          const x = randomArray(n, seed++, scale, offset);
          const ref = reduceSumRef(x);
          let abs = 0;
          for (const v of x) abs += Math.abs(v);
          const got = rt.reduceSum(x);
          expect(Math.abs(got - ref), `threads=${threads} n=${n}`).toBeLessThanOrEqual(1e-12 * abs);
        }
      }
    }
  });

  it("catches a dropped tail element or a duplicated range boundary", () => {
    // every element distinct powers of two: any lost or repeated element changes the sum exactly
    const rt = runtime(3);
    for (const n of [9, 17, 33, 47]) {
      const x = Float32Array.from({ length: n }, (_, i) => 2 ** (i % 40));
      expect(rt.reduceSum(x)).toBe(jsSum(x));
    }
  });

  it("async sums run off the JS thread and match", async () => {
    const rt = runtime(2);
    const xs = [randomArray((1 << 18) + 5, 1), randomArray(3, 2), randomArray(0, 3)];
    const got = await Promise.all(xs.map((x) => rt.reduceSumAsync(x)));
    got.forEach((g, i) => expect(g).toBeCloseTo(reduceSumRef(xs[i]!), 6));
  });

  it("rejects bad arguments with NATIVE_ARGUMENT naming them", () => {
    const rt = runtime(1);
    const code = (f: () => unknown) => {
      try {
        f();
      } catch (e) {
        return e instanceof VlaError ? `${e.code}: ${e.message}` : `other: ${String(e)}`;
      }
      return "no error";
    };
    expect(code(() => rt.reduceSum(new Float64Array(3) as unknown as Float32Array))).toBe("NATIVE_ARGUMENT: reduceSum: argument 'x' must be a Float32Array");
    expect(code(() => reduceSumRef([1, 2] as unknown as Float32Array))).toMatch(/argument 'x' must be a Float32Array/);
    expect(code(() => new Runtime({ threads: 0 }))).toMatch(/NATIVE_ARGUMENT: Runtime: option 'threads' must be an integer >= 1/);
    expect(code(() => new Runtime({ threads: 1.5 }))).toMatch(/option 'threads'/);
    expect(code(() => reduceSumCuda(new Float32Array(2)))).toMatch(loadAddon().buildInfo().cuda ? /./ : /built without CUDA/);
    const gone = new Runtime({ threads: 1 });
    gone.dispose();
    expect(() => gone.reduceSum(new Float32Array(1))).toThrow(/disposed/);
  });
});
