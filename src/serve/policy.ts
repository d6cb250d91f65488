/**
 * A policy: model + tokenizer + action spec/statistics + prompt + format, loaded from
 * one directory, turning (images, instruction, state) into an action chunk through
 * constrained decoding. The directory holds a Hugging Face model (config.json,
 * model.safetensors), optionally its tokenizer files, and policy.json:
 *   { spec, stats, template, format, tokenizer?, addVisionId?, ensemble? }
 */
import fs from "node:fs";
import path from "node:path";
import { z } from "zod";
import { ActionCodec } from "../actions/codec.js";
import { parseEnsembleConfig, type EnsembleConfig } from "../actions/ensembler.js";
import { getFormat, parseTextFormat, TextFormatSchema, type TextFormat } from "../actions/format.js";
import { parseActionSpec, type ActionSpec } from "../actions/spec.js";
import { parseStats, type ActionStats } from "../actions/stats.js";
import type { RgbImage } from "../data/episode.js";
import { generateConstrainedBatch, type ActionAutomaton } from "../engine/automaton.js";
import type { DecoderModel } from "../engine/decoder.js";
import { loadLanguageModel, type VlmModel } from "../engine/vlm.js";
import { tileHorizontal } from "../data/image.js";
import { VlaError, formatZodIssues } from "../errors.js";
import { loadPeftAdapter } from "../io/adapter-export.js";
import { readSafetensors, safetensorsData } from "../io/safetensors.js";
import { encodePolicyPrompt, policyAutomaton, stateText } from "../prompts/policy-prompt.js";
import type { EncodedPrompt } from "../prompts/encode.js";
import { loadTemplate, type PromptTemplate } from "../prompts/template.js";
import { loadTokenizer, loadTokenizerDir, type TextTokenizer } from "../prompts/tokenizer.js";

export const PolicyFileSchema = z
  .object({
    /** Base model directory (default: the policy directory itself). */
    model: z.string().optional(),
    /** PEFT adapter directory on top of the base model. */
    adapter: z.string().optional(),
    /** Fully fine-tuned weights (safetensors) replacing the base model's. */
    weights: z.string().optional(),
    /** A fine-tuned vision tower ("visual.*" tensors) replacing the base model's. */
    visionWeights: z.string().optional(),
    spec: z.record(z.string(), z.unknown()),
    stats: z.unknown().nullable().default(null),
    template: z.string().default("vla0"),
    format: z.union([z.string(), TextFormatSchema]).optional(),
    tokenizer: z.string().optional(),
    addVisionId: z.boolean().default(true),
    /** Temporal ensembling for sessions (see src/actions/ensembler.ts); gripperDims default to the spec's. */
    ensemble: z.record(z.string(), z.unknown()).default({ mode: "vla0-v1" }),
  })
  .strict();
export type PolicyFile = z.input<typeof PolicyFileSchema>;

export interface ActRequest {
  images: RgbImage[];
  instruction: string;
  state?: number[];
}

export interface ActOptions {
  temperature?: number;
  seed?: number;
  jumpForward?: boolean;
  sparseMax?: number;
}

export interface ActResult {
  text: string;
  /** (H, D) raw units (denormalized), or normalized when the policy has no statistics. */
  chunk: number[][];
  /** (H, D) normalized to [-1, 1]. */
  normalized: number[][];
  /** Whether the images reached the model (a vision-language model was given images). */
  imagesUsed: boolean;
  timings: { promptMs: number; generateMs: number; totalMs: number; promptTokens: number; generatedTokens: number; modelCalls: number; forcedTokens: number; maskMs: number; batchSize: number };
}

export type TimestepCallback = (t: number, raw: number[], normalized: number[]) => void;

function rows(flat: Float32Array, D: number): number[][] {
  const out: number[][] = [];
  for (let i = 0; i < flat.length; i += D) out.push(Array.from(flat.subarray(i, i + D)));
  return out;
}

/** Distinct prompts a policy keeps encoded (see Policy.prompts). */
const PROMPT_CACHE_SIZE = 256;

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
  /** Present for vision-language models: images reach the model. */
  readonly vlm: VlmModel | undefined;
  /**
   * Encoded prompts by (instruction, state text, image tokens): a robot sends the same
   * instruction every step, and rendering the chat template is most of a prompt's cost.
   * Bounded: cleared when it reaches PROMPT_CACHE_SIZE entries.
   */
  private readonly prompts = new Map<string, EncodedPrompt>();

  private constructor(dir: string, file: z.output<typeof PolicyFileSchema>, model: DecoderModel, vlm: VlmModel | undefined) {
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
  }

  /** Load a policy directory; `adapterDir` adds a PEFT LoRA adapter on top. */
  static load(dir: string, options: { adapterDir?: string; threads?: number } = {}): Policy {
    const pf = path.join(dir, "policy.json");
    if (!fs.existsSync(pf)) throw new VlaError("FILE_NOT_FOUND", `no policy.json in ${dir}`, "a policy directory holds the model, its tokenizer and policy.json (spec, stats, template, format)");
    let json: unknown;
    try {
      json = JSON.parse(fs.readFileSync(pf, "utf8"));
    } catch (e) {
      throw new VlaError("CONFIG_INVALID", `${pf} is not valid JSON: ${(e as Error).message}`);
    }
    const r = PolicyFileSchema.safeParse(json);
    if (!r.success) throw new VlaError("CONFIG_INVALID", `${pf}:\n${formatZodIssues(r.error.issues)}`);
    const rel = (p: string): string => (path.isAbsolute(p) ? p : path.resolve(dir, p));
    const modelDir = r.data.model ? rel(r.data.model) : dir;
    const { model, vlm, dispose } = loadLanguageModel(modelDir, options.threads ? { threads: options.threads } : {});
    try {
      if (r.data.weights) {
        const st = readSafetensors(rel(r.data.weights));
        for (const p of model.paramInfo()) model.setParam(p.name, safetensorsData(st, p.name));
      }
      if (r.data.visionWeights) {
        if (!vlm) throw new VlaError("CONFIG_INVALID", `${pf} names visionWeights but ${modelDir} has no vision tower`, "remove visionWeights, or point model at the vision-language model it was trained from");
        vlm.loadVisionWeights(rel(r.data.visionWeights));
      }
      const adapter = options.adapterDir ?? (r.data.adapter ? rel(r.data.adapter) : undefined);
      if (adapter) model.loadAdapter(loadPeftAdapter(adapter));
      return new Policy(dir, r.data, model, vlm);
    } catch (e) {
      dispose();
      throw e;
    }
  }

  /** The request's prompt (without an answer), from the cache when it was encoded before. */
  private encodePrompt(req: ActRequest, imageTokens?: readonly number[]): EncodedPrompt {
    const key = JSON.stringify([req.instruction, req.state && this.template.uses.has("state") ? stateText(req.state) : null, imageTokens ?? null]);
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
    });
    if (this.prompts.size >= PROMPT_CACHE_SIZE) this.prompts.clear();
    this.prompts.set(key, enc);
    return enc;
  }

  /** Prompt token ids for a request, text only (the answer is generated after them). */
  promptIds(req: ActRequest): number[] {
    return Array.from(this.encodePrompt(req).ids);
  }

  /**
   * The full prompt: for a vision-language model with images, the cameras tiled side by
   * side into one image (as VLA-0 trains), its features injected at the image pads, and
   * 3D positions; otherwise the text prompt.
   */
  async buildPrompt(req: ActRequest): Promise<{ ids: number[]; positions?: Int32Array; injectRows?: Int32Array; inject?: Float32Array; imagesUsed: boolean }> {
    if (!this.vlm || req.images.length === 0) return { ids: this.promptIds(req), imagesUsed: false };
    const heights = new Set(req.images.map((i) => i.height));
    if (heights.size > 1) throw new VlaError("DATA_INVALID", `camera images have different heights (${[...heights].join(", ")})`, "send every camera at the same height; they are tiled side by side");
    const image = req.images.length === 1 ? (req.images[0] as RgbImage) : tileHorizontal(req.images);
    const feats = await this.vlm.imageFeatures([image]);
    const enc = this.encodePrompt(req, feats.processed.map((p) => p.tokens));
    const mm = this.vlm.multimodalInputs(enc.ids.length, enc.imageStarts, feats.processed);
    return { ids: Array.from(enc.ids), positions: mm.positions, injectRows: mm.injectRows, inject: feats.features, imagesUsed: true };
  }

  /**
   * Predict a chunk. `onTimestep`, if given, is called with each timestep (raw and
   * normalized, D values) as soon as its last number is complete in the generated text.
   */
  async act(req: ActRequest, options: ActOptions = {}, onTimestep?: TimestepCallback): Promise<ActResult> {
    const [r] = await this.actBatch([{ req, options, ...(onTimestep ? { onTimestep } : {}) }]);
    return r as ActResult;
  }

  /** Several requests decoded together (one forward pass per step for all that need the model). */
  async actBatch(items: ReadonlyArray<{ req: ActRequest; options?: ActOptions; onTimestep?: TimestepCallback }>): Promise<ActResult[]> {
    const t0 = performance.now();
    const built = await Promise.all(items.map((it) => this.buildPrompt(it.req)));
    const prompts = built.map((b) => b.ids);
    const t1 = performance.now();
    const D = this.spec.dims;
    const grammar = this.codec.grammar;
    const streams = items.map((it) => ({ cb: it.onTimestep, streamed: 0, text: "", state: grammar.start() as ReturnType<typeof grammar.start> | null }));
    const emit = (i: number, upTo: number): void => {
      const s = streams[i]!;
      const numbers = s.text.split(/[^0-9]+/).filter((x) => x.length > 0).map(Number);
      for (; s.streamed < upTo; s.streamed++) {
        const bins = numbers.slice(s.streamed * D, (s.streamed + 1) * D);
        s.cb?.(s.streamed, Array.from(this.codec.normalizer ? this.codec.binsToRaw(bins) : this.codec.binsToNormalized(bins)), Array.from(this.codec.binsToNormalized(bins)));
      }
    };
    const onTokens = streams.some((s) => s.cb)
      ? (i: number, tokens: Int32Array): void => {
          const s = streams[i]!;
          if (!s.cb) return;
          for (const t of tokens) {
            const piece = this.tokenizer.decodeOne(t);
            s.text += piece;
            s.state = s.state && grammar.advance(s.state, piece);
          }
          // numbers before the current one are complete (ActionGrammar.num counts started numbers)
          if (s.state) emit(i, Math.floor(s.state.num / D));
        }
      : undefined;
    const maxTokens = 4 * grammar.count * (grammar.maxDigits + 3);
    const gens = await generateConstrainedBatch(
      this.model,
      prompts,
      this.automaton,
      items.map((it, i) => {
        const b = built[i] as (typeof built)[number];
        return { maxTokens, ...it.options, ...(b.positions ? { positions: b.positions } : {}), ...(b.injectRows && b.inject ? { injectRows: b.injectRows, inject: b.inject } : {}) };
      }),
      onTokens,
    );
    const t2 = performance.now();
    return gens.map((g, i) => {
      if (streams[i]!.cb) emit(i, this.spec.horizon); // the end of sequence completes the last timestep
      const text = this.tokenizer.decode(Array.from(g.tokens));
      const decoded = this.codec.decode(text, "strict");
      if (!decoded.ok) throw new VlaError("PARSE_STRICT", `constrained decoding produced unparseable text (${decoded.error.message}): ${text}`, "this is a bug: please report it");
      return {
        text,
        chunk: rows(decoded.raw ?? decoded.normalized, D),
        normalized: rows(decoded.normalized, D),
        imagesUsed: (built[i] as (typeof built)[number]).imagesUsed,
        timings: {
          promptMs: t1 - t0,
          generateMs: t2 - t1,
          totalMs: performance.now() - t0,
          promptTokens: prompts[i]!.length,
          generatedTokens: g.tokens.length,
          modelCalls: g.modelCalls,
          forcedTokens: g.forced,
          maskMs: g.maskMs,
          batchSize: items.length,
        },
      };
    });
  }

  /** Normalized action (D) -> raw units. */
  denormalize(action: Float32Array): number[] {
    const n = this.codec.normalizer;
    return Array.from(action, (u, d) => (n ? n.denormalize(u, d) : u));
  }

  dispose(): void {
    if (this.vlm) this.vlm.dispose();
    else this.model.dispose();
  }
}
