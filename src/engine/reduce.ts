/**
 * Typed wrappers over the addon's reduction, the first native op (it proves the
 * build path: SIMD dispatch, thread pool, async workers, CUDA). All sums add the
 * float32 values in double precision.
 *
 * Bad arguments (not a Float32Array; threads not an integer in [1, 4096]; simd not
 * "avx2"/"scalar", or "avx2" on a CPU without it) throw VlaError NATIVE_ARGUMENT
 * naming the argument; the checks live in the addon.
 */
import { VlaError } from "../errors.js";
import { callNative, callNativeAsync, loadAddon, type NativeReduceOptions, type NativeRuntime, type NativeThreadsOptions } from "./addon.js";

/** { threads?: integer in [1, 4096] (default: hardware concurrency), simd?: "avx2" | "scalar" (default: best available) } */
export type ReduceOptions = NativeReduceOptions;

/** Optimized sum of x (AVX2 when the CPU has it) on `threads` threads made for this call. */
export function reduceSum(x: Float32Array, options: ReduceOptions = {}): number {
  const addon = loadAddon();
  return callNative("reduceSum", () => addon.reduceSum(x, options));
}

/** Same as reduceSum, off the JavaScript thread. Do not resize or transfer x's buffer until it settles. */
export async function reduceSumAsync(x: Float32Array, options: ReduceOptions = {}): Promise<number> {
  const addon = loadAddon();
  return await callNativeAsync("reduceSumAsync", () => addon.reduceSumAsync(x, options));
}

/** The scalar reference sum (in-order double accumulation): the oracle for the optimized versions. */
export function reduceSumRef(x: Float32Array): number {
  const addon = loadAddon();
  return callNative("reduceSumRef", () => addon.reduceSumRef(x));
}

/** CUDA sum; NATIVE_LOAD when the addon was built without CUDA, NATIVE_DEVICE when no GPU can be used. */
export function reduceSumCuda(x: Float32Array): number {
  const f = loadAddon().reduceSumCuda;
  if (!f) throw new VlaError("NATIVE_LOAD", "this vlatext addon was built without CUDA", "build it with `npm run build:cuda` (needs nvcc) and load build-cmake/Release/vlatext.node, e.g. VLATEXT_ADDON=build-cmake/Release/vlatext.node");
  return callNative("reduceSumCuda", () => f(x));
}

/** A native runtime that owns a thread pool, reused across calls. Dispose it when done. */
export class Runtime {
  private readonly native: NativeRuntime;

  constructor(options: NativeThreadsOptions = {}) {
    const addon = loadAddon();
    this.native = callNative("Runtime", () => new addon.Runtime(options));
  }

  get threads(): number {
    return this.native.threads;
  }

  /** Sum of x in double precision, on the pool's threads. */
  reduceSum(x: Float32Array): number {
    return callNative("reduceSum", () => this.native.reduceSum(x));
  }

  /** Same, off the JavaScript thread. Do not resize or transfer x's buffer until it settles. */
  async reduceSumAsync(x: Float32Array): Promise<number> {
    return await callNativeAsync("reduceSumAsync", () => this.native.reduceSumAsync(x));
  }

  /** Stops the pool's threads; throws while async calls are still running. */
  dispose(): void {
    this.native.dispose();
  }
}
