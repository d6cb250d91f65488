/**
 * The decoder-only language model in the native engine, typed: load from a
 * Hugging Face directory, add LoRA, train, read logits, generate.
 */
import fs from "node:fs";
import path from "node:path";
import { z } from "zod";
import { VlaError, formatZodIssues } from "../errors.js";
import { readJsonFile, type JsonFileKind } from "../io/json-file.js";
import { readSafetensorsHeader, type SafetensorsHeader } from "../io/safetensors.js";
import type { AdapterInfo } from "../io/adapter-export.js";
import { callNative, callNativeAsync, loadAddon, type NativeBackendOptions, type NativeBatch, type NativeDecoder, type NativeDType, type NativeKvCache, type NativeTensorInfo } from "./addon.js";
import { parseDecoderConfig, type DecoderModelConfig } from "./config.js";
import { AdamWSchema, optimizerStep, ParamStore, type AdamWInput, type OptimizerState } from "./params.js";

export { AdamWSchema, type AdamWInput } from "./params.js";

/** A model directory's config.json, for readJsonFile. */
export const MODEL_CONFIG_FILE: JsonFileKind = { what: "model config", code: "CONFIG_INVALID", hint: "a Hugging Face model directory holds config.json as transformers saves it; download or export the model again" };

export const LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"] as const;

export const LoraConfigSchema = z
  .object({
    rank: z.number().int().min(1).max(1024).default(8),
    alpha: z.number().positive().default(16),
    /** Module names, or "all-linear" for all seven projections. */
    targets: z.union([z.literal("all-linear"), z.array(z.enum(LORA_TARGETS)).min(1)]).default("all-linear"),
    /** Dropout on the adapter's input during training passes (PEFT's lora_dropout). */
    dropout: z.number().min(0).lt(1).default(0),
    seed: z.number().int().min(0).default(0),
  })
  .strict();
export type LoraConfigInput = z.input<typeof LoraConfigSchema>;

/**
 * How a model is held in memory and where it runs: the storage type of its weight matrices
 * (f32; bf16 for frozen weights — half the memory, and the bf16 kernels; "auto": bf16 when
 * the checkpoint stores them as bf16 and they are not trained) and the backend.
 */
export type ModelDType = NativeDType | "auto";
export interface ModelOptions extends NativeBackendOptions {
  dtype?: ModelDType;
}

export interface TrainBatch {
  B: number;
  T: number;
  /** (B*T) inputs. */
  tokens: Int32Array;
  /** (B*T) the token each position must predict (next token), -100 = no loss. */
  targets: Int32Array;
  positions?: Int32Array;
  injectRows?: Int32Array;
  inject?: Float32Array;
  /** (K, M, C) DeepStack features (Qwen3-VL), added after the first K layers at injectRows. */
  deepstack?: Float32Array;
  /** Seed of this pass's LoRA dropout masks (forwardBackward picks one when absent). */
  dropoutSeed?: number;
}

export class DecoderModel {
  readonly config: DecoderModelConfig;
  /** Storage type of the weight matrices and embeddings. */
  readonly dtype: NativeDType;
  private readonly native: NativeDecoder;
  /** Every tensor: base weights (segment 0) and LoRA adapters (segment 1). */
  readonly params: ParamStore;
  private disposed = false;

  constructor(config: DecoderModelConfig, options: Omit<ModelOptions, "dtype"> & { dtype?: NativeDType } = {}) {
    this.config = config;
    this.dtype = options.dtype ?? "f32";
    const addon = loadAddon();
    const backend = { ...(options.threads ? { threads: options.threads } : {}), ...(options.device ? { device: options.device } : {}), ...(options.isa ? { isa: options.isa } : {}) };
    this.native = callNative("Decoder", () => new addon.Decoder({ ...config.native, ...backend, dtype: this.dtype }));
    this.params = new ParamStore(this.native.params, "decoder");
  }

  /**
   * Load config.json and model.safetensors (or a sharded index) from a Hugging Face directory.
   * dtype "auto" (the default): bf16 when the checkpoint's matrices are bf16 and `trainBase` is
   * false, else f32.
   */
  static load(dir: string, options: ModelOptions & { config?: DecoderModelConfig; fileNames?: (name: string) => string[]; trainBase?: boolean } = {}): DecoderModel {
    const cfgFile = path.join(dir, "config.json");
    if (!fs.existsSync(cfgFile)) throw new VlaError("FILE_NOT_FOUND", `no config.json in ${dir}`, "point at a Hugging Face model directory");
    const json = readJsonFile(cfgFile, z.unknown(), MODEL_CONFIG_FILE);
    const config = options.config ?? parseDecoderConfig(json, cfgFile);
    const dtype = resolveDType(options.dtype, () => checkpointDType(dir, options.fileNames ?? ((n) => [n])), options.trainBase ?? false);
    const { config: _c, fileNames: _f, trainBase: _t, ...backend } = options;
    const model = new DecoderModel(config, { ...backend, dtype });
    try {
      model.loadWeights(dir, options.fileNames);
    } catch (e) {
      model.dispose();
      throw e;
    }
    return model;
  }

  /**
   * Read every parameter from the directory's safetensors file(s) (one file, or shards
   * listed in model.safetensors.index.json). Headers are checked here; the native side
   * memory-maps each file and converts F32/F16/BF16 into the parameters.
   */
  loadWeights(dir: string, fileNames: (name: string) => string[] = (n) => [n]): void {
    const headers = new Map<string, SafetensorsHeader>();
    const header = (f: string): SafetensorsHeader => {
      let h = headers.get(f);
      if (!h) {
        h = readSafetensorsHeader(path.join(dir, f));
        headers.set(f, h);
      }
      return h;
    };
    const index = path.join(dir, "model.safetensors.index.json");
    let where: (name: string) => string | undefined;
    if (fs.existsSync(index)) {
      const parsed = readJsonFile(index, z.object({ weight_map: z.record(z.string(), z.string()) }), { what: "safetensors index", code: "FILE_INVALID", hint: "the index lists each tensor's shard ({weight_map: {name: file}}); download the model again" });
      where = (n) => parsed.weight_map[n];
    } else {
      if (!fs.existsSync(path.join(dir, "model.safetensors"))) throw new VlaError("FILE_NOT_FOUND", `no model.safetensors or model.safetensors.index.json in ${dir}`);
      where = (n) => (header("model.safetensors").tensors.has(n) ? "model.safetensors" : undefined);
    }
    // the stored name of each parameter: the first candidate the checkpoint has
    const stored = (name: string): string => fileNames(name).find((c) => where(c) !== undefined) ?? name;
    const perFile = new Map<string, Array<{ name: string; dtype: 0 | 1 | 2; offset: number }>>();
    for (const p of this.paramInfo()) {
      const name = stored(p.name);
      const file = where(name);
      if (!file) throw new VlaError("FILE_INVALID", `${dir}: tensor '${name}' (shape [${p.shape}]) is missing`, `a ${this.config.family} model with this config.json needs it`);
      const h = header(file);
      const entry = h.tensors.get(name);
      if (!entry) throw new VlaError("FILE_INVALID", `${path.join(dir, file)}: tensor '${name}' is missing (the index says it is here)`);
      if (entry.shape.join(",") !== p.shape.join(",")) {
        throw new VlaError("FILE_INVALID", `${path.join(dir, file)}: tensor '${p.name}' has shape [${entry.shape}] but config.json implies [${p.shape}]`, "the weights do not match config.json");
      }
      const list = perFile.get(file) ?? [];
      list.push({ name: p.name, dtype: entry.dtype === "F32" ? 0 : entry.dtype === "F16" ? 1 : 2, offset: h.dataStart + entry.begin });
      perFile.set(file, list);
    }
    for (const [file, entries] of perFile) this.params.loadSafetensors(path.join(dir, file), entries);
  }

  /** Every base weight from one safetensors file under its own name (fully fine-tuned weights), mapped, not read into JavaScript. */
  loadWeightsFile(file: string): void {
    const h = readSafetensorsHeader(file);
    const entries: Array<{ name: string; dtype: 0 | 1 | 2; offset: number }> = [];
    for (const p of this.paramInfo()) {
      const e = h.tensors.get(p.name);
      if (!e) throw new VlaError("FILE_INVALID", `${file}: tensor '${p.name}' is missing`, "a fully fine-tuned weights file holds every base tensor of the model");
      if (e.shape.join(",") !== p.shape.join(",")) throw new VlaError("FILE_INVALID", `${file}: tensor '${p.name}' has shape [${e.shape}] but the model needs [${p.shape}]`, "the weights were trained for another model");
      entries.push({ name: p.name, dtype: e.dtype === "F32" ? 0 : e.dtype === "F16" ? 1 : 2, offset: h.dataStart + e.begin });
    }
    this.params.loadSafetensors(file, entries);
  }

  /** The native handle, for engine modules (automaton, server) that call it directly. */
  nativeHandle(): NativeDecoder {
    return this.live();
  }

  private live(): NativeDecoder {
    if (this.disposed) throw new VlaError("NATIVE_STATE", "this DecoderModel was disposed", "load the model again");
    return this.native;
  }

  /** The base model's tensors (segment 0 of the store). */
  paramInfo(): NativeTensorInfo[] {
    this.live();
    return this.params.info().filter((t) => t.segment === 0).map((t) => ({ name: t.name, shape: t.shape }));
  }
  /** The LoRA adapters' tensors (segment 1), empty without adapters. */
  loraInfo(): NativeTensorInfo[] {
    this.live();
    return this.params.info().filter((t) => t.segment === 1).map((t) => ({ name: t.name, shape: t.shape }));
  }
  /** Parameters of the base model. */
  get numParams(): number {
    return this.paramInfo().reduce((a, t) => a + t.shape.reduce((x, y) => x * y, 1), 0);
  }
  /** The backend it runs on, e.g. "cpu (2 threads, amx)". */
  get backend(): string {
    return this.live().backend;
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
  setLora(name: string, data: Float32Array): void {
    this.setParam(name, data);
  }
  getLora(name: string): Float32Array {
    return this.getParam(name);
  }
  getLoraGrad(name: string): Float32Array {
    return this.getParamGrad(name);
  }

  /** Add LoRA adapters (PEFT init: A kaiming-uniform, B zero); base weights become frozen. */
  enableLora(input: LoraConfigInput): void {
    const r = LoraConfigSchema.safeParse(input);
    if (!r.success) throw new VlaError("CONFIG_INVALID", `invalid LoRA config:\n${formatZodIssues(r.error.issues)}`);
    const c = r.data;
    const targets = c.targets === "all-linear" ? [...LORA_TARGETS] : c.targets;
    callNative("enableLora", () => this.live().enableLora({ rank: c.rank, alpha: c.alpha, targets, seed: c.seed, dropout: c.dropout }));
    this.loraSettings = { rank: c.rank, alpha: c.alpha, targets };
  }

  private loraSettings: { rank: number; alpha: number; targets: string[] } | undefined;
  /** Training passes so far: the default dropout seed of the next one. */
  private passes = 0;

  /** The current LoRA adapter, for export (PEFT or GGUF). */
  exportAdapter(baseModel = ""): AdapterInfo {
    if (!this.loraSettings) throw new VlaError("CONFIG_INVALID", "this model has no LoRA adapter to export", "call enableLora() and train first");
    const tensors = this.loraInfo().map((t) => ({ name: t.name, shape: t.shape, data: this.getLora(t.name) }));
    return { ...this.loraSettings, baseModel, tensors };
  }

  /** Install an adapter (e.g. from loadPeftAdapter); every tensor must match this model. */
  loadAdapter(a: AdapterInfo): void {
    const targets = a.targets.filter((t): t is (typeof LORA_TARGETS)[number] => (LORA_TARGETS as readonly string[]).includes(t));
    if (targets.length !== a.targets.length) throw new VlaError("CONFIG_INVALID", `adapter targets [${a.targets}] include modules this engine does not have`, `supported: ${LORA_TARGETS.join(", ")}`);
    this.enableLora({ rank: a.rank, alpha: a.alpha, targets });
    const expected = new Map(this.loraInfo().map((t) => [t.name, t.shape]));
    for (const t of a.tensors) {
      const shape = expected.get(t.name);
      if (!shape) throw new VlaError("FILE_INVALID", `adapter tensor '${t.name}' does not belong to this model`);
      if (shape.join(",") !== t.shape.join(",")) throw new VlaError("FILE_INVALID", `adapter tensor '${t.name}' has shape [${t.shape}], the model needs [${shape}]`);
      this.setLora(t.name, t.data);
      expected.delete(t.name);
    }
    if (expected.size > 0) throw new VlaError("FILE_INVALID", `adapter is missing ${expected.size} tensors, e.g. '${[...expected.keys()][0]}'`);
  }

  /** Train all base weights too (full fine-tuning); they are frozen by default. Needs f32 weights. */
  setTrainBase(on: boolean): void {
    callNative("setTrainBase", () => this.live().setTrainBase(on));
  }

  /** Next-token logits (B*T, V) for a batch (no gradients). */
  logits(batch: Omit<NativeBatch, "targets">): Float32Array {
    const r = callNative("forward", () => this.live().forward(batch, true));
    return r.logits as Float32Array;
  }

  /** Mean loss of a batch without touching gradients (no dropout unless batch.dropoutSeed is set). */
  loss(batch: TrainBatch): { loss: number; kept: number } {
    const r = callNative("forward", () => this.live().forward(batch, false));
    return { loss: r.kept > 0 ? r.lossSum / r.kept : 0, kept: r.kept };
  }

  /**
   * Forward and backward off the JS thread; gradients accumulate. lossScale defaults to
   * 1 / (kept targets), i.e. the gradient of the mean loss of this batch.
   */
  async forwardBackward(batch: TrainBatch, options: { lossScale?: number; injectGrad?: boolean } = {}): Promise<{ loss: number; kept: number; dInject?: Float32Array }> {
    const b = batch.dropoutSeed === undefined ? { ...batch, dropoutSeed: this.passes } : batch;
    this.passes = (this.passes + 1) % 2 ** 31;
    const r = await callNativeAsync("forwardBackward", () => this.live().forwardBackwardAsync(b, options));
    return { loss: r.kept > 0 ? r.lossSum / r.kept : 0, kept: r.kept, ...(r.dInject ? { dInject: r.dInject } : {}) };
  }

  /**
   * Clip, apply AdamW to this model's trained tensors, zero gradients; returns the gradient
   * norm before clipping. A policy that trains its vision tower too steps both stores at once
   * with optimizerStep([model.params, tower.params], ...) (src/engine/params.ts).
   */
  optimizerStep(input: AdamWInput): number {
    this.live();
    return optimizerStep([this.params], input);
  }

  zeroGrad(): void {
    this.live();
    this.params.zeroGrad();
  }

  /** AdamW's step count and moments (for checkpoints). */
  getOptimizerState(): OptimizerState {
    this.live();
    return this.params.getOptimizerState();
  }

  setOptimizerState(state: OptimizerState): void {
    this.live();
    this.params.setOptimizerState(state);
  }

  /** The LoRA adapter settings, when one is installed. */
  get lora(): { rank: number; alpha: number; targets: string[] } | undefined {
    return this.loraSettings;
  }

  /** A KV cache for incremental decoding of one sequence (see generate()). */
  newCache(capacity: number): KvCache {
    const addon = loadAddon();
    return new KvCache(callNative("KvCache", () => new addon.KvCache(this.live(), capacity)));
  }

  /**
   * Greedy (temperature 0) or sampled generation for one sequence with a KV cache:
   * the prompt is prefilled in one batch, then one token per step. `allow` is the
   * logits hook the constrained decoder uses: it returns the token ids allowed next
   * (undefined = all). Returns the generated ids (without the end token).
   */
  generate(prompt: number[], options: { maxNew: number; eos?: number; temperature?: number; random?: () => number; allow?: (generated: number[]) => readonly number[] | undefined }): number[] {
    if (prompt.length === 0) throw new VlaError("NATIVE_ARGUMENT", "generate needs a non-empty prompt");
    const cache = this.newCache(prompt.length + options.maxNew);
    const out: number[] = [];
    let logits = cache.feed(Int32Array.from(prompt));
    for (let step = 0; step < options.maxNew; step++) {
      // without a constraint every token is a candidate: picked from the logits directly (a
      // V-long candidate list per token was most of a 152k-vocabulary model's decode time)
      const allowed = options.allow?.(out);
      if (allowed?.length === 0) break;
      const next = pickToken(logits, allowed, options.temperature ?? 0, options.random ?? Math.random);
      if (next === options.eos) break;
      out.push(next);
      if (step + 1 < options.maxNew) logits = cache.feed(Int32Array.of(next));
    }
    return out;
  }

  dispose(): void {
    if (this.disposed) return;
    callNative("Decoder.dispose", () => this.native.dispose());
    this.disposed = true;
  }
}

/** Incremental decoding state of one sequence on a decoder (its errors converted like every native call). */
export class KvCache {
  constructor(private readonly native: NativeKvCache) {}
  get length(): number {
    return this.native.length;
  }
  get capacity(): number {
    return this.native.capacity;
  }
  /** Runs new tokens through the model, extending the cache; returns the last token's logits (V). */
  feed(tokens: Int32Array, options?: { positions?: Int32Array; injectRows?: Int32Array; inject?: Float32Array; deepstack?: Float32Array }): Float32Array {
    return callNative("KvCache.feed", () => this.native.feed(tokens, options));
  }
  reset(): void {
    this.native.reset();
  }
}

/** The storage type a load resolves to: explicit, or "auto" from the checkpoint's matrices and whether they are trained. */
export function resolveDType(requested: ModelDType | undefined, stored: () => "F32" | "F16" | "BF16" | undefined, trained: boolean): NativeDType {
  if (requested === "f32" || requested === "bf16") {
    if (requested === "bf16" && trained) throw new VlaError("CONFIG_INVALID", "dtype bf16 cannot be used for weights that are trained (full fine-tuning keeps f32 master weights)", "use dtype f32 (or auto), or LoRA");
    return requested;
  }
  return !trained && stored() === "BF16" ? "bf16" : "f32";
}

/**
 * The storage type of a checkpoint's embedding matrix (its matrices are stored alike), from
 * the safetensors header (the index's shard when there is an index, as loadWeights reads it);
 * undefined when it cannot tell (loadWeights then names the problem).
 */
function checkpointDType(dir: string, fileNames: (name: string) => string[]): "F32" | "F16" | "BF16" | undefined {
  try {
    const index = path.join(dir, "model.safetensors.index.json");
    let file = path.join(dir, "model.safetensors");
    if (fs.existsSync(index)) {
      const map = readJsonFile(index, z.object({ weight_map: z.record(z.string(), z.string()) }), MODEL_CONFIG_FILE).weight_map;
      const name = fileNames("model.embed_tokens.weight").find((n) => map[n] !== undefined);
      if (!name) return undefined;
      file = path.join(dir, map[name] as string);
    }
    const h = readSafetensorsHeader(file);
    const name = fileNames("model.embed_tokens.weight").find((n) => h.tensors.has(n));
    const dt = name ? h.tensors.get(name)?.dtype : undefined;
    return dt === "F32" || dt === "F16" || dt === "BF16" ? dt : undefined;
  } catch {
    return undefined;
  }
}

/** Greedy (temperature <= 0) or softmax sampling at `temperature` among the candidate ids (all tokens when undefined). */
export function pickToken(logits: Float32Array, candidates: readonly number[] | undefined, temperature: number, random: () => number): number {
  const n = candidates ? candidates.length : logits.length;
  const at = candidates ? (i: number): number => candidates[i] as number : (i: number): number => i;
  if (temperature <= 0) {
    // greedy: the first of the largest
    let best = at(0);
    let bv = logits[best] as number;
    for (let i = 1; i < n; i++) {
      const t = at(i);
      if ((logits[t] as number) > bv) (best = t), (bv = logits[t] as number);
    }
    return best;
  }
  let m = -Infinity;
  for (let i = 0; i < n; i++) m = Math.max(m, logits[at(i)] as number);
  const w = new Float64Array(n);
  let sum = 0;
  for (let i = 0; i < n; i++) sum += w[i] = Math.exp(((logits[at(i)] as number) - m) / temperature);
  let u = random() * sum;
  for (let i = 0; i < n; i++) {
    u -= w[i] as number;
    if (u <= 0) return at(i);
  }
  return at(n - 1);
}
