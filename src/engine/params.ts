/**
 * A model's tensors (native/model/param_store.h), typed: names, shapes, storage types,
 * values and gradients in and out as f32, safetensors loading in place, the AdamW state
 * for checkpoints, and one optimizer step over several stores (a policy's language model
 * and vision tower) with one global clipping norm computed in native code.
 */
import { z } from "zod";
import { VlaError, formatZodIssues } from "../errors.js";
import { callNative, loadAddon, type NativeParamInfo, type NativeParamStore } from "./addon.js";

export const AdamWSchema = z
  .object({
    lr: z.number().min(0),
    beta1: z.number().min(0).lt(1).default(0.9),
    beta2: z.number().min(0).lt(1).default(0.999),
    eps: z.number().positive().default(1e-8),
    weightDecay: z.number().min(0).default(0.01),
    maxGradNorm: z.number().min(0).default(1),
  })
  .strict();
export type AdamWInput = z.input<typeof AdamWSchema>;

export interface OptimizerState {
  step: number;
  m: Float32Array;
  v: Float32Array;
}

export class ParamStore {
  /** owner: "decoder" or "vision tower", for messages. */
  constructor(
    private readonly native: NativeParamStore,
    readonly owner: string,
  ) {}

  /** The native handle, for optimizerStep. */
  nativeHandle(): NativeParamStore {
    return this.native;
  }

  info(): NativeParamInfo[] {
    return callNative(`${this.owner} parameters`, () => this.native.info());
  }
  get(name: string): Float32Array {
    return callNative(`${this.owner} get '${name}'`, () => this.native.get(name));
  }
  set(name: string, data: Float32Array): void {
    callNative(`${this.owner} set '${name}'`, () => this.native.set(name, data));
  }
  grad(name: string): Float32Array {
    return callNative(`${this.owner} gradient of '${name}'`, () => this.native.grad(name));
  }
  loadSafetensors(file: string, entries: Array<{ name: string; dtype: 0 | 1 | 2; offset: number }>): void {
    callNative(`loading ${file}`, () => this.native.loadSafetensors(file, entries));
  }
  zeroGrad(): void {
    callNative(`${this.owner} zeroGrad`, () => this.native.zeroGrad());
  }
  gradSqNorm(): number {
    return callNative(`${this.owner} gradSqNorm`, () => this.native.gradSqNorm());
  }
  get numElements(): number {
    return this.native.numElements;
  }
  get trainableSize(): number {
    return this.native.trainableSize;
  }
  get bytes(): number {
    return this.native.bytes;
  }
  get step(): number {
    return this.native.step;
  }
  /** AdamW's step count and moments over the trained tensors (for checkpoints). */
  getOptimizerState(): OptimizerState {
    return callNative(`${this.owner} getOptimizerState`, () => this.native.getOptimizerState());
  }
  setOptimizerState(state: OptimizerState): void {
    callNative(`${this.owner} setOptimizerState`, () => this.native.setOptimizerState(state));
  }
}

/**
 * One AdamW step over every trained tensor of `stores`, with the gradients clipped to
 * maxGradNorm by one global norm over all of them; zeroes the gradients. Returns the
 * norm before clipping.
 */
export function optimizerStep(stores: readonly ParamStore[], input: AdamWInput): number {
  const r = AdamWSchema.safeParse(input);
  if (!r.success) throw new VlaError("CONFIG_INVALID", `invalid optimizer config:\n${formatZodIssues(r.error.issues)}`);
  const addon = loadAddon();
  return callNative("optimizerStep", () => addon.optimizerStep(stores.map((s) => s.nativeHandle()), r.data));
}
