/**
 * A vision encoder in the native engine (native/model/vision_encoder.h): Qwen2.5-VL's tower,
 * configured here from `vision_config` (unsupported settings are named), or SmolVLM2's SigLIP
 * and Qwen3-VL's tower, configured by their family files (families/). A forward for
 * inference, and for Qwen2.5-VL's tower fine-tuning: a training forward, a backward from the
 * gradient of its output, and AdamW on its own parameters (clipped with the language model's
 * gradients as one norm).
 */
import { z } from "zod";
import { VlaError, formatZodIssues } from "../errors.js";
import { callNative, callNativeAsync, loadAddon, type NativeQwenVisionConfig, type NativeTensorInfo, type NativeVisionConfig, type NativeVisionTower } from "./addon.js";
import { optimizerStep, ParamStore, type AdamWInput, type OptimizerState } from "./params.js";

const VisionConfigSchema = z
  .object({
    depth: z.number().int().min(1),
    hidden_size: z.number().int().min(1),
    intermediate_size: z.number().int().min(1),
    num_heads: z.number().int().min(1),
    out_hidden_size: z.number().int().min(1),
    patch_size: z.number().int().min(1).default(14),
    spatial_merge_size: z.number().int().min(1).default(2),
    temporal_patch_size: z.number().int().min(1).default(2),
    window_size: z.number().int().min(1).default(112),
    fullatt_block_indexes: z.array(z.number().int().min(0)).default([]),
    hidden_act: z.string().default("silu"),
    in_chans: z.number().int().optional(),
    in_channels: z.number().int().optional(),
    /** transformers >= 5: {rope_type: "axial", rope_theta}. */
    rope_parameters: z.object({ rope_type: z.string().optional(), rope_theta: z.number().positive().optional() }).passthrough().optional(),
  })
  .passthrough();

export function parseVisionConfig(json: unknown, source = "vision_config"): NativeQwenVisionConfig {
  const r = VisionConfigSchema.safeParse(json);
  if (!r.success) throw new VlaError("CONFIG_INVALID", `${source} is not a Qwen2.5-VL vision config:\n${formatZodIssues(r.error.issues)}`);
  const c = r.data;
  if (c.hidden_act !== "silu") throw new VlaError("CONFIG_INVALID", `${source}.hidden_act '${c.hidden_act}' is not supported (Qwen2.5-VL uses silu; Qwen2-VL's quick_gelu towers are not)`);
  const chans = c.in_chans ?? c.in_channels ?? 3;
  if (chans !== 3) throw new VlaError("CONFIG_INVALID", `${source}: ${chans} input channels are not supported (RGB only)`);
  if (c.hidden_size % c.num_heads !== 0 || (c.hidden_size / c.num_heads) % 4 !== 0) throw new VlaError("CONFIG_INVALID", `${source}: hidden_size / num_heads must be a multiple of 4 (2D rotary embedding)`);
  const ropeType = c.rope_parameters?.rope_type;
  if (ropeType !== undefined && ropeType !== "axial" && ropeType !== "default") throw new VlaError("CONFIG_INVALID", `${source}.rope_parameters.rope_type '${ropeType}' is not supported (Qwen2.5-VL's tower uses 2D axial rotary embeddings)`);
  for (const b of c.fullatt_block_indexes) if (b >= c.depth) throw new VlaError("CONFIG_INVALID", `${source}.fullatt_block_indexes names block ${b} but depth is ${c.depth}`);
  return {
    depth: c.depth,
    hiddenSize: c.hidden_size,
    intermediateSize: c.intermediate_size,
    numHeads: c.num_heads,
    outHiddenSize: c.out_hidden_size,
    patchSize: c.patch_size,
    spatialMergeSize: c.spatial_merge_size,
    temporalPatchSize: c.temporal_patch_size,
    windowSize: c.window_size,
    fullattBlockIndexes: Int32Array.from(c.fullatt_block_indexes),
    ...(c.rope_parameters?.rope_theta !== undefined ? { ropeTheta: c.rope_parameters.rope_theta } : {}),
  };
}

export class VisionModel {
  readonly config: NativeVisionConfig;
  private readonly native: NativeVisionTower;
  /** The tower's tensors ("visual.*"). */
  readonly params: ParamStore;
  private disposed = false;

  constructor(config: NativeVisionConfig) {
    this.config = config;
    const addon = loadAddon();
    this.native = callNative("VisionTower", () => new addon.VisionTower(config));
    this.params = new ParamStore(this.native.params, "vision tower");
  }

  private live(): NativeVisionTower {
    if (this.disposed) throw new VlaError("NATIVE_STATE", "this VisionModel was disposed", "load the model again");
    return this.native;
  }

  paramInfo(): NativeTensorInfo[] {
    this.live();
    return this.params.info().map((t) => ({ name: t.name, shape: t.shape }));
  }

  setParam(name: string, data: Float32Array): void {
    this.live();
    this.params.set(name, data);
  }

  getParam(name: string): Float32Array {
    this.live();
    return this.params.get(name);
  }

  getParamGrad(name: string): Float32Array {
    this.live();
    return this.params.grad(name);
  }

  /** Train (or freeze) the tower; it is frozen by default and keeps gradients only while trained. */
  setTrainable(on: boolean): void {
    callNative("VisionTower.setTrainable", () => this.live().setTrainable(on));
  }

  /**
   * Image features for the language model: (patches / merge^2, outHiddenSize), images in
   * order. train: keep the activations for the next backward().
   */
  async forward(pixels: Float32Array, grids: ReadonlyArray<{ t: number; h: number; w: number }>, options: { train?: boolean } = {}): Promise<Float32Array> {
    return await callNativeAsync("vision forward", () => this.live().forwardAsync(pixels, Int32Array.from(grids.flatMap((g) => [g.t, g.h, g.w])), options.train ?? false));
  }

  /** Backward of the last training forward: dout is the gradient of its output; parameter gradients accumulate. */
  async backward(dout: Float32Array): Promise<void> {
    await callNativeAsync("vision backward", () => this.live().backwardAsync(dout));
  }

  zeroGrad(): void {
    this.params.zeroGrad();
  }

  /** Sum of the squared parameter gradients. */
  gradSqNorm(): number {
    return this.params.gradSqNorm();
  }

  /** AdamW on the tower alone (clipped by its own norm); a policy steps the tower with its language model through optimizerStep([...]). */
  optimizerStep(input: AdamWInput): number {
    this.live();
    return optimizerStep([this.params], input);
  }

  getOptimizerState(): OptimizerState {
    return this.params.getOptimizerState();
  }

  setOptimizerState(state: OptimizerState): void {
    this.params.setOptimizerState(state);
  }

  dispose(): void {
    if (this.disposed) return;
    callNative("VisionTower.dispose", () => this.native.dispose());
    this.disposed = true;
  }
}
