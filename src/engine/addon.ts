/**
 * The one place the native addon is loaded, and its whole surface, typed.
 * Look-up order: $VLATEXT_ADDON, build/Release (node-gyp, `npm install`),
 * build-cmake/Release (cmake-js, `npm run build:cmake` / `build:cuda`).
 */
import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import { VlaError } from "../errors.js";

/** CPU instruction-set levels (native/core/cpu.h), lowest first. */
export const NATIVE_ISAS = ["portable", "avx2", "avx512", "avx512bf16", "amx"] as const;
export type NativeIsa = (typeof NATIVE_ISAS)[number];
/** Storage types of weights (native/core/dtype.h). */
export type NativeDType = "f32" | "bf16";
export type NativeDevice = "cpu" | "cuda";

/** Where a model runs: device, CPU threads, CPU instruction-set cap. */
export interface NativeBackendOptions {
  device?: NativeDevice;
  /** CPU worker threads; absent: all cores. */
  threads?: number;
  /** The highest CPU instruction set the kernels may use (the CPU's best when it is lower). */
  isa?: NativeIsa;
}

export interface BuildInfo {
  version: string;
  simd: "avx2" | "scalar";
  /** The best instruction-set level of this CPU. */
  isa: NativeIsa;
  threadsDefault: number;
  cuda: boolean;
}

export interface NativeRuntime {
  readonly threads: number;
  reduceSum(x: Float32Array): number;
  reduceSumAsync(x: Float32Array): Promise<number>;
  dispose(): void;
}

export interface NativeTensorInfo {
  name: string;
  shape: number[];
}

/** A tensor of a parameter store: its storage type, segment (0 base, 1 LoRA) and whether it is trained. */
export interface NativeParamInfo extends NativeTensorInfo {
  dtype: NativeDType;
  segment: number;
  trainable: boolean;
}

/** Every tensor of one model (native/model/param_store.h), from decoder.params or tower.params. */
export interface NativeParamStore {
  readonly numElements: number;
  readonly trainableSize: number;
  /** Values, gradients and moments, in bytes. */
  readonly bytes: number;
  /** AdamW steps taken. */
  readonly step: number;
  info(): NativeParamInfo[];
  get(name: string): Float32Array;
  set(name: string, data: Float32Array): void;
  /** The gradient (zeros for a frozen tensor). */
  grad(name: string): Float32Array;
  /** Map a safetensors file and fill tensors; offsets are absolute byte offsets; dtype 0 F32, 1 F16, 2 BF16 (converted to each tensor's storage type). */
  loadSafetensors(file: string, entries: Array<{ name: string; dtype: 0 | 1 | 2; offset: number }>): void;
  zeroGrad(): void;
  gradSqNorm(): number;
  /** AdamW's moments over the trained tensors in table order. */
  getOptimizerState(): { step: number; m: Float32Array; v: Float32Array };
  setOptimizerState(state: { step: number; m: Float32Array; v: Float32Array }): void;
}

export interface NativeBatch {
  B: number;
  T: number;
  /** (B*T) token ids. */
  tokens: Int32Array;
  /** (B*T) targets, -100 ignored (HF's labels shifted by one). */
  targets?: Int32Array;
  /** (S, B*T) positions per RoPE section; default 0..T-1. */
  positions?: Int32Array;
  /** (M) rows whose embedding is replaced by `inject`. */
  injectRows?: Int32Array;
  /** (M, C) injected embeddings. */
  inject?: Float32Array;
  /** (K, M, C) DeepStack features (Qwen3-VL): layer l < K's output gets deepstack[l] added at the injected rows. */
  deepstack?: Float32Array;
  /** Seed of the LoRA dropout masks for this pass; absent = no dropout. */
  dropoutSeed?: number;
}

export interface NativeDecoderConfig extends NativeBackendOptions {
  arch: 0 | 1 | 2;
  vocabSize: number;
  hiddenSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  intermediateSize: number;
  rmsNormEps: number;
  ropeTheta: number;
  tieEmbeddings: boolean;
  ropeSections?: Int32Array;
  /** Storage of the weight matrices and embeddings (default f32); bf16 only for frozen weights. */
  dtype?: NativeDType;
}

export interface NativeDecoder {
  /** Every tensor: base weights (segment 0) and LoRA adapters (segment 1). */
  readonly params: NativeParamStore;
  /** The backend it runs on, e.g. "cpu (2 threads, amx)". */
  readonly backend: string;
  enableLora(options: { rank: number; alpha: number; targets: string[]; seed: number; dropout: number }): void;
  /** Full fine-tuning on or off (fails for bf16 weights). Base weights are frozen by default. */
  setTrainBase(on: boolean): void;
  forward(batch: NativeBatch, wantLogits?: boolean): { lossSum: number; kept: number; logits?: Float32Array };
  forwardBackwardAsync(batch: NativeBatch, options?: { lossScale?: number; injectGrad?: boolean }): Promise<{ lossSum: number; kept: number; dInject?: Float32Array }>;
  zeroGrad(): void;
  getOptimizerState(): { step: number; m: Float32Array; v: Float32Array };
  setOptimizerState(state: { step: number; m: Float32Array; v: Float32Array }): void;
  generateConstrainedAsync(prompt: Int32Array, automaton: NativeAutomaton, options?: NativeGenOptions, onTokens?: (tokens: Int32Array) => void): Promise<NativeGenResult>;
  /** A batch: the sequences that need the model share one forward pass per step. */
  generateConstrainedAsync(prompts: Int32Array[], automaton: NativeAutomaton, options?: NativeGenOptions[], onTokens?: (seq: number, tokens: Int32Array) => void): Promise<NativeGenResult[]>;
  dispose(): void;
}

export interface NativeAdamW {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  maxGradNorm: number;
}

export interface NativeKvCache {
  readonly length: number;
  readonly capacity: number;
  /** Runs new tokens through the model, extending the cache; returns the last token's logits (V). */
  feed(tokens: Int32Array, options?: { positions?: Int32Array; injectRows?: Int32Array; inject?: Float32Array; deepstack?: Float32Array }): Float32Array;
  reset(): void;
}

export interface NativeAutomatonSpec {
  count: number;
  dims: number;
  bins: number;
  /** 0: plain integers without leading zeros. */
  width: number;
  separator: string;
  timestepSeparator: string;
  eos: number;
  tokenIds: Int32Array;
  tokenTexts: string[];
}

export interface NativeAutomaton {
  readonly memoSize: number;
  allowedAfter(tokens: Int32Array): Int32Array;
}

export interface NativeGenOptions {
  /** The prompt's positions (S, n) and injected embeddings (image features). */
  positions?: Int32Array;
  injectRows?: Int32Array;
  inject?: Float32Array;
  /** (K, M, C) DeepStack features for the prompt (see NativeBatch). */
  deepstack?: Float32Array;
  temperature?: number;
  seed?: number;
  jumpForward?: boolean;
  /** Compute the LM head only over the allowed tokens when at most this many are allowed (0: never). */
  sparseMax?: number;
  maxTokens?: number;
  /**
   * Cancellation flag of this sequence: element 0 is polled (relaxed atomic load) before
   * every step; non-zero stops the sequence (result.cancelled) while the rest of the batch
   * goes on. Put it on a SharedArrayBuffer and set it with Atomics.store; the call keeps the
   * array alive until it ends.
   */
  cancel?: Int32Array;
  /**
   * Speculative decoding (greedy, one prompt): tokens expected to come, e.g. the previous
   * action chunk's. Each model call verifies up to maxDraft (default 16) of them in one pass;
   * the output is plain greedy decoding's, in fewer model calls when the draft is good.
   */
  draft?: Int32Array;
  maxDraft?: number;
}

export interface NativeGenResult {
  tokens: Int32Array;
  finished: boolean;
  /** Stopped by its cancel flag; tokens holds what was generated until then. */
  cancelled: boolean;
  modelCalls: number;
  forced: number;
  sampled: number;
  maskMs: number;
  modelMs: number;
  headMs: number;
  totalMs: number;
  /** With a draft: draft tokens verified, and of those accepted. */
  drafted?: number;
  accepted?: number;
}

/** Qwen2.5-VL's tower (native/model/vision.h). */
export interface NativeQwenVisionConfig extends NativeBackendOptions {
  family?: "qwen2_5_vl";
  depth: number;
  hiddenSize: number;
  intermediateSize: number;
  numHeads: number;
  outHiddenSize: number;
  patchSize: number;
  spatialMergeSize: number;
  temporalPatchSize: number;
  windowSize: number;
  fullattBlockIndexes: Int32Array;
  rmsNormEps?: number;
  /** Base of the 2D rotary embedding (default 10000). */
  ropeTheta?: number;
  /** Storage of the weight matrices (default f32); bf16 only for a frozen tower. */
  dtype?: NativeDType;
}

/** SigLIP with SmolVLM2's pixel-shuffle connector (native/model/vision_siglip.h); inference only. */
export interface NativeSiglipVisionConfig extends NativeBackendOptions {
  family: "siglip";
  depth: number;
  hiddenSize: number;
  intermediateSize: number;
  numHeads: number;
  /** The language model's width (the connector's output). */
  outHiddenSize: number;
  patchSize: number;
  /** Tile side in pixels (every tile is imageSize x imageSize). */
  imageSize: number;
  scaleFactor: number;
  layerNormEps?: number;
  dtype?: NativeDType;
}

/** Qwen3-VL's tower with DeepStack mergers (native/model/vision_qwen3.h); inference only. */
export interface NativeQwen3VisionConfig extends NativeBackendOptions {
  family: "qwen3_vl";
  depth: number;
  hiddenSize: number;
  intermediateSize: number;
  numHeads: number;
  outHiddenSize: number;
  patchSize: number;
  spatialMergeSize: number;
  temporalPatchSize: number;
  /** side^2 learned positions, bilinearly resampled to each image's grid. */
  numPositionEmbeddings: number;
  /** Blocks whose outputs feed the DeepStack mergers (the output gets one more (U, C) block per entry). */
  deepstackVisualIndexes: Int32Array;
  ropeTheta?: number;
  dtype?: NativeDType;
}

export type NativeVisionConfig = NativeQwenVisionConfig | NativeSiglipVisionConfig | NativeQwen3VisionConfig;

export interface NativeVisionTower {
  readonly params: NativeParamStore;
  readonly backend: string;
  /** "qwen2_5_vl" or "siglip". */
  readonly family: string;
  /** Train (or freeze) the tower: gradients exist only while it is trained. Frozen by default. */
  setTrainable(on: boolean): void;
  /**
   * pixels (N, P), grids (t, h, w) per image (SigLIP: per tile) -> (N / merge^2 (scale^2), outHiddenSize).
   * train: keep this call's activations on the handle for the next backwardAsync.
   */
  forwardAsync(pixels: Float32Array, grids: Int32Array, train?: boolean): Promise<Float32Array>;
  /** dout: the gradient of the last training forward's output; parameter gradients accumulate. */
  backwardAsync(dout: Float32Array): Promise<void>;
  dispose(): void;
}

export interface NativeAddon {
  Decoder: new (config: NativeDecoderConfig) => NativeDecoder;
  VisionTower: new (config: NativeVisionConfig) => NativeVisionTower;
  ActionAutomaton: new (spec: NativeAutomatonSpec) => NativeAutomaton;
  /** Only ever constructed with a NativeDecoder from this addon. */
  KvCache: new (decoder: NativeDecoder, capacity: number) => NativeKvCache;
  buildInfo(): BuildInfo;
  /** The scalar reference: one double accumulator, in order. */
  reduceSumRef(x: Float32Array): number;
  /** Optimized sum on a thread pool made for this call (threads default: hardware concurrency). */
  reduceSum(x: Float32Array, options?: NativeReduceOptions): number;
  /** Same, off the JavaScript thread. */
  reduceSumAsync(x: Float32Array, options?: NativeReduceOptions): Promise<number>;
  /** Present only in CUDA builds; throws (status "NoDevice") when no GPU can be used. */
  reduceSumCuda?: (x: Float32Array) => number;
  Runtime: new (options?: NativeThreadsOptions) => NativeRuntime;
  /** One AdamW step over the trained tensors of all the stores, clipped by one global norm; zeroes the gradients; returns that norm (before clipping). */
  optimizerStep(stores: NativeParamStore[], options: NativeAdamW): number;
}

export interface NativeThreadsOptions {
  /** Integer in [1, 4096]; absent: std::thread::hardware_concurrency(). */
  threads?: number;
}

export interface NativeReduceOptions extends NativeThreadsOptions {
  /** Force one kernel: "scalar" (portable C++) or "avx2" (RangeError on a CPU without it); absent: the best available. */
  simd?: "avx2" | "scalar";
}

/** Names of native status codes (native/core/status.h), carried as `status` on errors from native calls. */
export type NativeStatus = "InvalidArgument" | "OutOfMemory" | "NoDevice" | "DeviceError" | "Cancelled" | "ThreadError" | "InvalidState";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");

export function addonCandidates(): string[] {
  const env = process.env.VLATEXT_ADDON;
  return [...(env ? [path.resolve(env)] : []), path.join(root, "build", "Release", "vlatext.node"), path.join(root, "build-cmake", "Release", "vlatext.node")];
}

let cached: NativeAddon | undefined;

/** Load the addon once per process (a module is loaded once by Node anyway). */
export function loadAddon(): NativeAddon {
  if (cached) return cached;
  const require = createRequire(import.meta.url);
  const tried: string[] = [];
  for (const file of addonCandidates()) {
    if (!fs.existsSync(file)) {
      tried.push(`${file} (missing)`);
      continue;
    }
    try {
      cached = require(file) as NativeAddon;
      return cached;
    } catch (e) {
      tried.push(`${file} (${(e as Error).message.split("\n")[0]})`);
    }
  }
  throw new VlaError("NATIVE_LOAD", `the vlatext native addon could not be loaded; tried:\n  ${tried.join("\n  ")}`, "run `npm install` (or `npm run build`) in the vlatext checkout to compile it");
}

/**
 * Convert an error thrown by the addon (every one carries `status`, native/napi/napi_util.h):
 * InvalidArgument (also TypeError/RangeError: a bad argument, named in the message) becomes
 * NATIVE_ARGUMENT; InvalidState (a disposed or busy handle) NATIVE_STATE; NoDevice/DeviceError
 * NATIVE_DEVICE; OutOfMemory/ThreadError NATIVE_RESOURCE; Cancelled NATIVE_CANCELLED. Anything
 * else is returned unchanged.
 */
export function nativeError(what: string, e: unknown): unknown {
  if (e instanceof VlaError || !(e instanceof Error)) return e;
  const status = (e as Error & { status?: unknown }).status;
  if (status === "InvalidState") return new VlaError("NATIVE_STATE", `${what}: ${e.message}`, "a handle was used after dispose(), or while an async call on it was still running: await every call first", { cause: e });
  if (status === "Cancelled") return new VlaError("NATIVE_CANCELLED", `${what}: ${e.message}`, undefined, { cause: e });
  if (e instanceof TypeError || e instanceof RangeError || status === "InvalidArgument") return new VlaError("NATIVE_ARGUMENT", `${what}: ${e.message}`, undefined, { cause: e });
  if (status === "NoDevice" || status === "DeviceError")
    return new VlaError("NATIVE_DEVICE", `${what}: ${e.message}`, "this call needs a working NVIDIA GPU and driver; use the CPU version instead", { cause: e });
  if (status === "OutOfMemory" || status === "ThreadError")
    return new VlaError("NATIVE_RESOURCE", `${what}: ${e.message}`, "use fewer threads or smaller inputs, or free memory", { cause: e });
  return e;
}

/** Run a native call, converting its errors with nativeError. */
export function callNative<T>(what: string, f: () => T): T {
  try {
    return f();
  } catch (e) {
    throw nativeError(what, e);
  }
}

/** Run an async native call; both the synchronous throw (bad arguments) and the rejection are converted. */
export async function callNativeAsync<T>(what: string, f: () => Promise<T>): Promise<T> {
  try {
    return await f();
  } catch (e) {
    throw nativeError(what, e);
  }
}
