/**
 * Training examples from LeRobot datasets and recipes: for every frame of every
 * train (val) episode, the instruction and state, the target chunk as text in the
 * policy's format, tokenized with the policy prompt. One action spec for all
 * datasets; statistics over the train episodes of all of them.
 */
import { ActionCodec } from "../actions/codec.js";
import { getFormat, type TextFormat } from "../actions/format.js";
import { parseActionSpec, type ActionSpec } from "../actions/spec.js";
import { StatsAccumulator, type ActionStats } from "../actions/stats.js";
import { LeRobotDataset } from "../data/lerobot/dataset.js";
import { bindRecipe, loadRecipe, selectDims, splitEpisodes } from "../data/recipe.js";
import { episodeSamples, targetChunk } from "../data/samples.js";
import { stackHistory, tileHorizontal } from "../data/image.js";
import type { RgbImage } from "../data/episode.js";
import type { VlmModel } from "../engine/vlm.js";
import type { ImageLayout } from "../vision/processor.js";
import { VlaError } from "../errors.js";
import type { EncodedPrompt } from "../prompts/encode.js";
import { encodePolicyPrompt, stateText } from "../policy/prompt.js";
import type { PromptTemplate } from "../prompts/template.js";
import type { TextTokenizer } from "../prompts/tokenizer.js";
import type { FinetuneConfig } from "./config.js";

export interface TrainExample {
  source: number;
  episode: number;
  frame: number;
  instruction: string;
  state: Float32Array;
  /** (H, D) normalized target chunk. */
  target: Float32Array;
  encoded: EncodedPrompt;
  /**
   * Vision-language models: (S, L) positions of the whole sequence, image-pad rows, and
   * either their features (frozen tower: computed once) or the tiled camera image (the
   * tower is trained: features are computed every step).
   */
  image?: { positions: Int32Array; injectRows: Int32Array; /** (K, rows, C) Qwen3-VL's DeepStack features of a frozen tower */ deepstack?: Float32Array } & (
    | { inject: Float32Array; rgb?: undefined }
    | { rgb: RgbImage; inject?: undefined }
  );
}

export interface TrainData {
  spec: ActionSpec;
  stats: ActionStats;
  format: TextFormat;
  codec: ActionCodec;
  /** Per source dataset. */
  train: TrainExample[][];
  val: TrainExample[];
  weights: number[];
  /**
   * The camera names whose images are tiled into each prompt, in tiling order (the recipes' camera
   * map values), when every source tiles the same ones and a vision tower reads them; written into
   * policy.json so that evaluation sends those cameras.
   */
  cameras?: string[];
}

interface RawEpisode {
  source: number;
  episode: number;
  instruction: string[];
  /** (T) one tiled camera image per frame (vision-language models whose tower is trained; empty otherwise). */
  images: RgbImage[];
  /** (T) where each frame's image tokens go (vision-language models). */
  layouts?: ImageLayout[];
  /** Frozen tower: the frames' features, (image rows, C), and Qwen3-VL's DeepStack features (K, image rows, C). */
  features?: Float32Array;
  deepstack?: Float32Array;
  actions: Float32Array;
  states: Float32Array;
  T: number;
  A: number;
  S: number;
}

/** Rows [first, first + n) of every block of (K, total, C) DeepStack features, as (K, n, C). */
export function deepstackRows(ds: Float32Array, total: number, first: number, n: number, C: number): Float32Array {
  const K = ds.length / (total * C);
  const out = new Float32Array(K * n * C);
  for (let k = 0; k < K; k++) out.set(ds.subarray((k * total + first) * C, (k * total + first + n) * C), k * n * C);
  return out;
}

/**
 * Reads every data entry's episodes (and, with a frozen vision tower, computes each frame's
 * features once), fits the action statistics on the train split and encodes every example.
 * `progress` gets a line per episode read (a progress reporter throttles it): on the demo's
 * 12000 episodes this phase takes minutes.
 */
export async function buildTrainData(cfg: FinetuneConfig, tokenizer: TextTokenizer, template: PromptTemplate, log: (line: string) => void, vlm?: VlmModel, progress?: (line: string) => void): Promise<TrainData> {
  if (cfg.history > 0 && !vlm) throw new VlaError("CONFIG_INVALID", `history ${cfg.history}: history frames are camera frames, but ${cfg.model} is a text-only model`, "fine-tune a vision-language model (e.g. models/tiny-vlm), or drop --history");
  let spec: ActionSpec | undefined;
  let cameras: string[] | undefined;
  let sameCameras = true;
  const episodes: Array<{ ep: RawEpisode; split: "train" | "val" }> = [];
  // frozen tower: each episode's frames are encoded as it is read and only their features kept (the
  // demo's 123k tiled frames were all held as RGB first, 2.3 GB; `demo --steps 1` on its data: 142 s
  // then, 97 s and 0.8 GB RSS now). Batches of 256 frames across episodes measured slower (276 s).
  const C = vlm ? vlm.decoder.config.native.hiddenSize : 0;
  const t0 = performance.now();
  for (const [source, entry] of cfg.data.entries()) {
    const recipe = loadRecipe(entry.recipe);
    const ds = await LeRobotDataset.open(entry.dataset);
    const bound = bindRecipe(recipe, ds);
    const s = parseActionSpec({ ...recipe.actionSpec, ...cfg.action }, `actionSpec of recipe '${recipe.name}'${Object.keys(cfg.action).length > 0 ? ` with action ${JSON.stringify(cfg.action)}` : ""}`);
    if (spec && (spec.dims !== s.dims || spec.horizon !== s.horizon)) {
      throw new VlaError("CONFIG_INVALID", `data[${source}] (recipe '${recipe.name}') has ${s.horizon}x${s.dims} actions but data[0] has ${spec.horizon}x${spec.dims}`, "mix only datasets with the same action spec");
    }
    spec ??= s;
    const names = bound.cameras.map((c) => c.name);
    if (cameras === undefined) cameras = names;
    else if (names.join("\u0000") !== cameras.join("\u0000")) sameCameras = false;
    const split = splitEpisodes(recipe, ds.episodes.map((e) => e.index));
    const total = split.train.length + split.val.length;
    let read = 0;
    let frames = 0;
    for (const [part, list] of [["train", split.train], ["val", split.val]] as const) {
      for (const index of list) {
        const info = ds.episode(index);
        const keys = [bound.action.key, ...(bound.state ? [bound.state.key] : [])];
        const table = await ds.readEpisodeTable(info, { columns: [...new Set(keys)] });
        const T = table.length;
        const actions = selectDims(table.column(bound.action.key).data, T, bound.action);
        const states = bound.state ? selectDims(table.column(bound.state.key).data, T, bound.state) : new Float32Array(0);
        const instruction = Array.from({ length: T }, (_, t) => {
          const task = table.taskIndex[t] as number;
          return recipe.instruction ?? (task >= 0 ? ds.tasks.get(task) : undefined) ?? info.tasks[0] ?? "";
        });
        let images: RgbImage[] = [];
        if (vlm && bound.cameras.length > 0) {
          for await (const sample of episodeSamples(ds, bound, index, { horizon: 1, width: cfg.imageSize, height: cfg.imageSize })) {
            images.push(tileHorizontal(bound.cameras.map((c) => (sample.images[c.name] as RgbImage[])[0] as RgbImage)));
          }
          // history frames: frame t's image holds frames t-history .. t, as a policy's session gives them
          if (cfg.history > 0) images = images.map((img, t) => stackHistory(img, images.slice(Math.max(0, t - cfg.history), t), cfg.history));
        }
        const frozen = vlm !== undefined && images.length > 0 && !cfg.vision.train;
        const ep: RawEpisode = { source, episode: index, instruction, images: frozen ? [] : images, actions, states, T, A: bound.action.end - bound.action.start, S: bound.state ? bound.state.end - bound.state.start : 0 };
        if (vlm && images.length > 0) ep.layouts = images.map((img) => vlm.imageLayout(img.height, img.width));
        episodes.push({ ep, split: part });
        if (frozen) {
          const f = await vlm.imageFeatures(images);
          ep.features = f.features;
          if (f.deepstack) ep.deepstack = f.deepstack;
        }
        read++;
        frames += T;
        progress?.(`data[${source}]: episode ${read}/${total} read (${frames} frames${frozen ? ", vision features computed" : ""}, ${((performance.now() - t0) / 1000).toFixed(0)} s)`);
      }
    }
    log(`data[${source}]: ${entry.dataset} (recipe ${recipe.name}): ${split.train.length} train / ${split.val.length} val episodes`);
  }
  if (!spec) throw new VlaError("CONFIG_INVALID", "no data entries");
  const acc = new StatsAccumulator(spec.dims, spec.names);
  for (const { ep, split } of episodes) if (split === "train") acc.pushRows(ep.actions, ep.T);
  if (acc.rows === 0) throw new VlaError("DATA_INVALID", "the train split is empty", "give the recipes some train episodes");
  const stats = acc.finalize();
  const format = getFormat(cfg.format ?? template.format);
  const codec = new ActionCodec(spec, format, stats);
  const train: TrainExample[][] = cfg.data.map(() => []);
  const val: TrainExample[] = [];
  let featureCount = 0;
  // the same prompt and answer come back many times (few instructions, few distinct chunks
  // at a small bin count); rendering the chat template is most of the cost, so each distinct
  // one is encoded once (the encoding is read-only after this)
  const encodings = new Map<string, EncodedPrompt>();
  const withState = template.uses.has("state");
  for (const { ep, split } of episodes) {
    // frozen vision tower: every frame's features are computed once, here; a trained one
    // needs only where the image tokens go (features come every step from its current weights)
    const layouts = ep.layouts;
    const feats = ep.features;
    const perImage = layouts?.[0]?.tokens ?? 0;
    for (let t = 0; t < ep.T; t++) {
      const chunk = targetChunk(ep.actions, ep.T, ep.A, t, spec.horizon);
      const { text, bins } = codec.encodeRaw(chunk.actions);
      const state = ep.states.slice(t * ep.S, (t + 1) * ep.S);
      const key = JSON.stringify([ep.instruction[t], withState && ep.S > 0 ? stateText(state) : null, text, layouts ? perImage : null, layouts?.[t]?.expansion ?? null]);
      let encoded = encodings.get(key);
      if (!encoded) {
        encoded = encodePolicyPrompt({ tokenizer, template, spec, bins: codec.bins, instruction: ep.instruction[t] as string, ...(ep.S > 0 ? { state } : {}), answer: text, ...(layouts ? { imageTokens: [perImage] } : {}), ...(layouts?.[t]?.expansion ? { imageExpansions: [layouts[t]?.expansion] } : {}) });
        encodings.set(key, encoded);
      }
      const ex: TrainExample = { source: ep.source, episode: ep.episode, frame: t, instruction: ep.instruction[t] as string, state, target: codec.binsToNormalized(bins), encoded };
      if (layouts && vlm) {
        const mm = vlm.multimodalInputs(encoded.ids.length, encoded.imageStarts, [layouts[t] as ImageLayout], encoded.featureRows);
        ex.image = feats
          ? { positions: mm.positions, injectRows: mm.injectRows, inject: feats.slice(t * perImage * C, (t + 1) * perImage * C), ...(ep.deepstack ? { deepstack: deepstackRows(ep.deepstack, feats.length / C, t * perImage, perImage, C) } : {}) }
          : { positions: mm.positions, injectRows: mm.injectRows, rgb: ep.images[t] as RgbImage };
        featureCount++;
      }
      if (split === "train") train[ep.source]?.push(ex);
      else val.push(ex);
    }
  }
  if (vlm) log(cfg.vision.train ? `${featureCount} camera frames (image size ${cfg.imageSize}); the vision tower is trained` : `vision features for ${featureCount} frames (image size ${cfg.imageSize}, frozen tower)`);
  train.forEach((list, i) => {
    if (list.length === 0) throw new VlaError("DATA_INVALID", `data[${i}] has no train frames`, "check its recipe's splits");
  });
  return { spec, stats, format, codec, train, val, weights: cfg.data.map((d) => d.weight), ...(vlm && sameCameras && cameras && cameras.length > 0 ? { cameras } : {}) };
}
