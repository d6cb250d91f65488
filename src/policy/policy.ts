/**
 * A policy: model + tokenizer + action spec/statistics + prompt + format, loaded from one
 * directory (see file.ts), turning (images, instruction, state) into an action chunk
 * through constrained decoding.
 *
 * actBatch() is the one way requests reach the model: every request is prepared on its
 * own (a bad one fails alone), the images of the whole batch go through the vision tower
 * in one call, and the prompts are decoded in one batched generation in which each
 * sequence can be cancelled. Calls are serialized on the policy, so no caller ever finds
 * a native handle busy.
 */
import path from "node:path";
import { z } from "zod";
import { ActionCodec } from "../actions/codec.js";
import { parseEnsembleConfig, type EnsembleConfig } from "../actions/ensembler.js";
import { getFormat, parseTextFormat, type TextFormat } from "../actions/format.js";
import { parseActionSpec, type ActionSpec } from "../actions/spec.js";
import { parseStats, type ActionStats } from "../actions/stats.js";
import type { RgbImage } from "../data/episode.js";
import { stackHistory, tileHorizontal } from "../data/image.js";
import { generateConstrainedBatch, type ActionAutomaton, type ConstrainedOptions } from "../engine/automaton.js";
import { MODEL_CONFIG_FILE, type DecoderModel } from "../engine/decoder.js";
import type { ModelOptions } from "../engine/decoder.js";
import { loadLanguageModel, type ImageEncoding, type VlmModel } from "../engine/vlm.js";
import { VlaError } from "../errors.js";
import { loadPeftAdapter } from "../io/adapter-export.js";
import { readJsonFile } from "../io/json-file.js";
import type { EncodedPrompt } from "../prompts/encode.js";
import { loadTemplate, type PromptTemplate } from "../prompts/template.js";
import { loadTokenizer, loadTokenizerDir, type TextTokenizer } from "../prompts/tokenizer.js";
import type { ImageLayout, ProcessedImage } from "../vision/processor.js";
import { readPolicyFile, type PolicyFileData } from "./file.js";
import { encodePolicyPrompt, policyAutomaton, stateText } from "./prompt.js";
import { TimestepStreams } from "./timesteps.js";
import type { ActItem, ActOptions, ActOutcome, ActRequest, ActResult, TimestepCallback } from "./types.js";

export type { ActItem, ActOptions, ActOutcome, ActRequest, ActResult, ActTimings, TimestepCallback } from "./types.js";

function rows(flat: Float32Array, D: number): number[][] {
  const out: number[][] = [];
  for (let i = 0; i < flat.length; i += D) out.push(Array.from(flat.subarray(i, i + D)));
  return out;
}

/** Distinct prompts a policy keeps encoded (see Policy.prompts). */
const PROMPT_CACHE_SIZE = 256;

/** What a request needs from the model after preparation. */
interface Prepared {
  ids: Int32Array;
  positions?: Int32Array;
  injectRows?: Int32Array;
  /** The preprocessed camera image (tiled), for the batch's vision-tower call. */
  image?: ProcessedImage;
}

const ContextSchema = z.object({ max_position_embeddings: z.number().int().positive().optional(), text_config: z.object({ max_position_embeddings: z.number().int().positive().optional() }).passthrough().optional() }).passthrough();

export class Policy {
  readonly dir: string;
  readonly spec: ActionSpec;
  readonly stats: ActionStats | undefined;
  readonly format: TextFormat;
  readonly codec: ActionCodec;
  readonly template: PromptTemplate;
  readonly tokenizer: TextTokenizer;
  readonly model: DecoderModel;
  readonly automaton: ActionAutomaton;
  readonly ensemble: EnsembleConfig;
  readonly addVisionId: boolean;
  /** Earlier frames stacked above the current ones (policy.json history; 0: none). */
  readonly history: number;
  /** The cameras the policy was trained on, in tiling order (policy.json), when it records them. */
  readonly cameras: readonly string[] | undefined;
  /** Present for vision-language models: images reach the model. */
  readonly vlm: VlmModel | undefined;
  /** Tokens the model was trained to attend over (config.json max_position_embeddings); prompts plus answers must fit. */
  readonly contextLength: number;
  /** The most tokens an answer can take (every character its own token), the generation's budget. */
  readonly maxAnswerTokens: number;
  /**
   * Encoded prompts by (instruction, state text, image tokens): a robot sends the same
   * instruction every step, and rendering the chat template is most of a prompt's cost.
   * Bounded: cleared when it reaches PROMPT_CACHE_SIZE entries.
   */
  private readonly prompts = new Map<string, EncodedPrompt>();
  /** The running actBatch call (calls are serialized). */
  private running: Promise<unknown> = Promise.resolve();
  private active = 0;
  private disposed = false;

  private constructor(dir: string, file: PolicyFileData, model: DecoderModel, vlm: VlmModel | undefined, contextLength: number) {
    this.dir = dir;
    this.vlm = vlm;
    this.spec = parseActionSpec(file.spec, `policy.json spec in ${dir}`);
    this.stats = file.stats === null ? undefined : parseStats(file.stats, `policy.json stats in ${dir}`, this.spec.dims);
    this.format = file.format === undefined ? getFormat(loadTemplate(file.template).format) : typeof file.format === "string" ? getFormat(file.format) : parseTextFormat(file.format);
    this.codec = new ActionCodec(this.spec, this.format, this.stats);
    this.template = loadTemplate(file.template);
    this.tokenizer = file.tokenizer ? loadTokenizer(file.tokenizer) : loadTokenizerDir(dir);
    this.model = model;
    if (this.tokenizer.vocabSize > model.config.native.vocabSize) {
      throw new VlaError("CONFIG_INVALID", `tokenizer '${this.tokenizer.name}' has ${this.tokenizer.vocabSize} tokens but the model's vocab_size is ${model.config.native.vocabSize}`, "use the tokenizer the model was trained with");
    }
    this.automaton = policyAutomaton(this.tokenizer, this.template, this.codec.grammar);
    this.ensemble = parseEnsembleConfig({ mode: "vla0-v1", gripperDims: this.spec.isGripper.flatMap((g, i) => (g ? [i] : [])), ...file.ensemble });
    this.addVisionId = file.addVisionId;
    this.history = file.history;
    this.cameras = file.cameras;
    this.contextLength = contextLength;
    const g = this.codec.grammar;
    this.maxAnswerTokens = g.count * Math.max(g.width ?? 0, g.maxDigits) + (g.count - 1) * Math.max(g.separator.length, g.timestepSeparator.length) + 1;
  }

  /**
   * Load a policy directory; `adapterDir` adds a PEFT LoRA adapter on top. dtype/device/isa as
   * for any model (src/engine/decoder.ts); under dtype "auto" fully fine-tuned weights (f32)
   * stay f32 and a bf16 base under an adapter stays bf16.
   */
  static load(dir: string, options: ModelOptions & { adapterDir?: string } = {}): Policy {
    const file = readPolicyFile(dir);
    const rel = (p: string): string => (path.isAbsolute(p) ? p : path.resolve(dir, p));
    const modelDir = file.model ? rel(file.model) : dir;
    const cfg = readJsonFile(path.join(modelDir, "config.json"), ContextSchema, MODEL_CONFIG_FILE);
    const contextLength = cfg.text_config?.max_position_embeddings ?? cfg.max_position_embeddings ?? 32768;
    const { adapterDir: _a, ...modelOptions } = options;
    // fully fine-tuned weights and a fine-tuned tower are f32 files: "auto" keeps them f32 (as if
    // trained); an explicit dtype is the user's choice for serving them
    const auto = options.dtype === undefined || options.dtype === "auto";
    const { model, vlm, dispose } = loadLanguageModel(modelDir, { ...modelOptions, ...(auto && file.weights ? { trainBase: true } : {}), ...(auto && file.visionWeights ? { trainVision: true } : {}) });
    try {
      if (file.weights) model.loadWeightsFile(rel(file.weights));
      if (file.visionWeights) {
        if (!vlm) throw new VlaError("CONFIG_INVALID", `${path.join(dir, "policy.json")} names visionWeights but ${modelDir} has no vision tower`, "remove visionWeights, or point model at the vision-language model it was trained from");
        vlm.loadVisionWeights(rel(file.visionWeights));
      }
      const adapter = options.adapterDir ?? (file.adapter ? rel(file.adapter) : undefined);
      if (adapter) model.loadAdapter(loadPeftAdapter(adapter));
      return new Policy(dir, file, model, vlm, contextLength);
    } catch (e) {
      dispose();
      throw e;
    }
  }

  /** The request's prompt (without an answer), from the cache when it was encoded before. */
  private encodePrompt(req: ActRequest, image?: ImageLayout): EncodedPrompt {
    const imageTokens = image ? [image.tokens] : undefined;
    const key = JSON.stringify([req.instruction, req.state && this.template.uses.has("state") ? stateText(req.state) : null, imageTokens ?? null, image?.expansion ?? null]);
    const hit = this.prompts.get(key);
    if (hit) return hit;
    const enc = encodePolicyPrompt({
      tokenizer: this.tokenizer,
      template: this.template,
      spec: this.spec,
      bins: this.codec.bins,
      instruction: req.instruction,
      ...(req.state ? { state: req.state } : {}),
      addVisionId: this.addVisionId,
      ...(imageTokens ? { imageTokens } : {}),
      ...(image?.expansion ? { imageExpansions: [image.expansion] } : {}),
    });
    if (this.prompts.size >= PROMPT_CACHE_SIZE) this.prompts.clear();
    this.prompts.set(key, enc);
    return enc;
  }

  /** The request's prompt as the model gets it (without the image features): ids, 3D positions and the image pad rows. */
  buildPrompt(req: ActRequest): { ids: number[]; positions?: Int32Array; injectRows?: Int32Array; imagesUsed: boolean } {
    const p = this.prepare(req);
    return { ids: Array.from(p.ids), ...(p.positions ? { positions: p.positions } : {}), ...(p.injectRows ? { injectRows: p.injectRows } : {}), imagesUsed: p.image !== undefined };
  }

  /** Prompt token ids for a request, text only (the answer is generated after them). */
  promptIds(req: ActRequest): number[] {
    return Array.from(this.encodePrompt(req).ids);
  }

  /**
   * Everything a request needs before the model, checked: for a vision-language model
   * with images, the cameras tiled side by side into one image (as VLA-0 trains; with history,
   * the earlier requests' tiles stacked above it) and
   * preprocessed, the prompt with its image pads and 3D positions; otherwise the text
   * prompt. A prompt and answer that do not fit the model's context are refused.
   */
  private prepare(req: ActRequest): Prepared {
    let image: ProcessedImage | undefined;
    if (this.vlm && req.images.length > 0) {
      const heights = new Set(req.images.map((i) => i.height));
      if (heights.size > 1) throw new VlaError("DATA_INVALID", `camera images have different heights (${[...heights].join(", ")})`, "send every camera at the same height; they are tiled side by side");
      if (this.cameras && req.images.length !== this.cameras.length) {
        throw new VlaError("DATA_INVALID", `the request has ${req.images.length} camera image${req.images.length === 1 ? "" : "s"} but the policy was trained on ${this.cameras.length} (${this.cameras.join(", ")})`, `send the images of ${this.cameras.join(", ")}, in that order`);
      }
      const tile = (images: RgbImage[]): RgbImage => (images.length === 1 ? (images[0] as RgbImage) : tileHorizontal(images));
      const current = tile(req.images);
      const previous = this.history > 0 ? (req.history ?? []).map((h, i) => {
        if (h.length !== req.images.length) throw new VlaError("DATA_INVALID", `history[${i}] has ${h.length} camera images but the request has ${req.images.length}`, "send each earlier observation with the same cameras, in the same order");
        return tile(h);
      }) : [];
      image = this.vlm.preprocess(stackHistory(current, previous.slice(-this.history), this.history));
    }
    const enc = this.encodePrompt(req, image);
    if (enc.ids.length + this.maxAnswerTokens > this.contextLength) {
      throw new VlaError("DATA_INVALID", `the prompt is ${enc.ids.length} tokens and its answer up to ${this.maxAnswerTokens}: over the model's context length of ${this.contextLength} tokens`, "shorten the instruction (or send smaller images)");
    }
    if (!image || !this.vlm) return { ids: enc.ids };
    const mm = this.vlm.multimodalInputs(enc.ids.length, enc.imageStarts, [image], enc.featureRows);
    return { ids: enc.ids, positions: mm.positions, injectRows: mm.injectRows, image };
  }

  /** The features of every prepared image, in one vision-tower call, split per request. */
  private async encodeImages(prepared: ReadonlyArray<Prepared | undefined>): Promise<Array<ImageEncoding | undefined>> {
    const out: Array<ImageEncoding | undefined> = prepared.map(() => undefined);
    const vlm = this.vlm;
    const withImages = prepared.flatMap((p, i) => (p?.image ? [{ i, image: p.image }] : []));
    if (!vlm || withImages.length === 0) return out;
    // (sum of tokens, C), images in order: each request's rows are contiguous
    const { features, deepstack } = await vlm.encode(withImages.map((x) => x.image));
    const C = vlm.vision.config.outHiddenSize;
    const total = features.length / C;
    const K = deepstack ? deepstack.length / features.length : 0;
    let row = 0;
    for (const x of withImages) {
      const n = x.image.tokens;
      // DeepStack (K, total, C): this request's rows of each block, as (K, n, C)
      const ds = deepstack ? new Float32Array(K * n * C) : undefined;
      for (let k = 0; k < K && ds && deepstack; k++) ds.set(deepstack.subarray((k * total + row) * C, (k * total + row + n) * C), k * n * C);
      out[x.i] = { features: features.subarray(row * C, (row + n) * C), ...(ds ? { deepstack: ds } : {}) };
      row += n;
    }
    return out;
  }

  /**
   * Predict one chunk. `onTimestep`, if given, is called with each timestep (raw and
   * normalized, D values) as soon as its last number is complete in the generated text.
   */
  async act(req: ActRequest, options: ActOptions = {}, onTimestep?: TimestepCallback): Promise<ActResult> {
    const [r] = await this.actBatch([{ req, options, ...(onTimestep ? { onTimestep } : {}) }]);
    if (r?.status === "ok") return r.result;
    throw r?.status === "failed" ? r.error : new VlaError("DATA_INVALID", "the request was cancelled");
  }

  /** Several requests decoded together; one outcome per item, in order. */
  actBatch(items: readonly ActItem[]): Promise<ActOutcome[]> {
    const run = this.running.then(() => this.runBatch(items));
    this.running = run.catch(() => undefined);
    return run;
  }

  /** Resolves when no call is running or waiting. */
  async idle(): Promise<void> {
    for (;;) {
      const r = this.running;
      await r;
      if (r === this.running) return;
    }
  }

  private async runBatch(items: readonly ActItem[]): Promise<ActOutcome[]> {
    if (this.disposed) throw new VlaError("NATIVE_ARGUMENT", `the policy in ${this.dir} was disposed`);
    this.active++;
    try {
      return await this.decodeBatch(items);
    } finally {
      this.active--;
    }
  }

  private async decodeBatch(items: readonly ActItem[]): Promise<ActOutcome[]> {
    const t0 = performance.now();
    const outcomes: Array<ActOutcome | undefined> = items.map(() => undefined);
    const prepared = items.map((it, i) => {
      try {
        return this.prepare(it.req);
      } catch (e) {
        outcomes[i] = { status: "failed", error: e as Error };
        return undefined;
      }
    });
    const t1 = performance.now();
    let features: Array<ImageEncoding | undefined>;
    try {
      features = await this.encodeImages(prepared);
    } catch (e) {
      // the tower failed on the batch's images: every request with images fails with it
      prepared.forEach((p, i) => {
        if (p?.image) outcomes[i] = { status: "failed", error: e as Error };
      });
      features = prepared.map(() => undefined);
      prepared.forEach((p, i) => {
        if (p?.image) prepared[i] = undefined;
      });
    }
    const t2 = performance.now();
    // the prepared requests, in one batched generation
    const live = prepared.flatMap((p, i) => (p ? [{ i, p, item: items[i] as ActItem }] : []));
    if (live.length === 0) return outcomes as ActOutcome[];
    const D = this.spec.dims;
    const streams = new TimestepStreams(this.codec, this.tokenizer, live.map(({ item }) => item.onTimestep));
    const options = live.map(({ i, p, item }): ConstrainedOptions => {
      const f = features[i];
      return {
        maxTokens: this.maxAnswerTokens,
        ...item.options,
        ...(p.positions ? { positions: p.positions } : {}),
        ...(p.injectRows && f ? { injectRows: p.injectRows, inject: f.features, ...(f.deepstack ? { deepstack: f.deepstack } : {}) } : {}),
        ...(item.cancel ? { cancel: item.cancel } : {}),
      };
    });
    let gens;
    try {
      gens = await generateConstrainedBatch(this.model, live.map(({ p }) => p.ids), this.automaton, options, streams.onTokens);
    } catch (e) {
      for (const { i } of live) outcomes[i] = { status: "failed", error: e as Error };
      return outcomes as ActOutcome[];
    }
    const t3 = performance.now();
    gens.forEach((g, j) => {
      const { i, p } = live[j]!;
      if (g.cancelled) {
        outcomes[i] = { status: "cancelled", generatedTokens: g.tokens.length };
        return;
      }
      streams.finish(j); // the end of sequence completes the last timestep
      const text = this.tokenizer.decode(Array.from(g.tokens));
      const decoded = this.codec.decode(text, "strict");
      if (!decoded.ok) {
        outcomes[i] = { status: "failed", error: new VlaError("PARSE_STRICT", `constrained decoding produced unparseable text (${decoded.error.message}): ${text}`, "this is a bug: please report it") };
        return;
      }
      outcomes[i] = {
        status: "ok",
        result: {
          text,
          chunk: rows(decoded.raw ?? decoded.normalized, D),
          normalized: rows(decoded.normalized, D),
          imagesUsed: p.image !== undefined,
          timings: {
            promptMs: t1 - t0,
            visionMs: t2 - t1,
            generateMs: t3 - t2,
            totalMs: performance.now() - t0,
            promptTokens: p.ids.length,
            generatedTokens: g.tokens.length,
            modelCalls: g.modelCalls,
            forcedTokens: g.forced,
            maskMs: g.maskMs,
            batchSize: live.length,
            queueMs: 0,
          },
        },
      };
    });
    return outcomes as ActOutcome[];
  }

  /** Normalized action (D) -> raw units. */
  denormalize(action: Float32Array): number[] {
    const n = this.codec.normalizer;
    return Array.from(action, (u, d) => (n ? n.denormalize(u, d) : u));
  }

  /** Free the native model; refused while a call runs (await idle() first). */
  dispose(): void {
    if (this.disposed) return;
    if (this.active > 0) throw new VlaError("NATIVE_ARGUMENT", `the policy in ${this.dir} is still running a batch`, "await policy.close() (or idle()) instead of disposing it under a running call");
    this.disposed = true;
    if (this.vlm) this.vlm.dispose();
    else this.model.dispose();
  }

  /** Wait for the calls that run or wait, then free the native model. */
  async close(): Promise<void> {
    await this.idle();
    this.dispose();
  }
}
