/** Typed wrappers over the addon's reduction (the first native op; proves the build path). */
import { VlaError } from "../errors.js";
import { callNative, loadAddon, type NativeRuntime } from "./addon.js";

/** A native runtime: owns a thread pool. Dispose it when done. */
export class Runtime {
  private readonly native: NativeRuntime;

  constructor(options: { threads?: number } = {}) {
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

  /** Same, off the JavaScript thread. Do not modify x until the promise settles. */
  async reduceSumAsync(x: Float32Array): Promise<number> {
    return await callNative("reduceSumAsync", () => this.native.reduceSumAsync(x));
  }

  dispose(): void {
    this.native.dispose();
  }
}

/** The scalar reference sum (the oracle for the optimized versions). */
export function reduceSumRef(x: Float32Array): number {
  return callNative("reduceSumRef", () => loadAddon().reduceSumRef(x));
}

/** CUDA sum; throws when the addon was built without CUDA or no GPU is present. */
export function reduceSumCuda(x: Float32Array): number {
  const f = loadAddon().reduceSumCuda;
  if (!f) throw new VlaError("NATIVE_LOAD", "this addon was built without CUDA", "build it with `npm run build:cuda`");
  return callNative("reduceSumCuda", () => f(x));
}
