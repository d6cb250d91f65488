/**
 * Training samples from a bound recipe: for frame t of an episode, the camera
 * images (t and optional history frames), the instruction, the state at t and
 * the target action chunk t..t+H-1 (H, A). Past the episode's end the chunk
 * repeats the last action and the mask marks those rows as padding (LeRobot's
 * `action_is_pad`, VLA-0's chunk targets).
 */
import { VlaError } from "../errors.js";
import type { RgbImage } from "./episode.js";
import type { Ffmpeg } from "./lerobot/ffmpeg.js";
import type { Frame, LeRobotDataset } from "./lerobot/dataset.js";
import { tileHorizontal } from "./image.js";
import { selectDims, type BoundRecipe } from "./recipe.js";

export interface ChunkTarget {
  /** (H, A) row-major. */
  actions: Float32Array;
  /** (H) 1 = a real step, 0 = padding (repeats the episode's last action). */
  mask: Uint8Array;
}

/** Actions t..t+H-1 of a (T, A) episode, padded by repeating row T-1. */
export function targetChunk(actions: ArrayLike<number>, T: number, A: number, t: number, H: number): ChunkTarget {
  if (!(t >= 0 && t < T)) throw new VlaError("DATA_INVALID", `frame ${t} is outside the episode's ${T} frames`, "pick t in [0, T)");
  if (actions.length !== T * A) throw new VlaError("DATA_INVALID", `actions hold ${actions.length} values, expected T*A = ${T}*${A}`);
  const out = new Float32Array(H * A);
  const mask = new Uint8Array(H);
  for (let h = 0; h < H; h++) {
    const real = t + h < T;
    const row = real ? t + h : T - 1;
    mask[h] = real ? 1 : 0;
    for (let a = 0; a < A; a++) out[h * A + a] = actions[row * A + a] as number;
  }
  return { actions: out, mask };
}

/** Frame indexes t - history*stride, ..., t - stride, t (oldest first), clamped at 0. */
export function historyIndices(t: number, history: number, stride: number): number[] {
  return Array.from({ length: history + 1 }, (_, i) => Math.max(0, t - (history - i) * stride));
}

export interface Sample {
  episodeIndex: number;
  /** Row t of the episode. */
  frameIndex: number;
  timestamp: number;
  instruction: string;
  /** Camera name -> history+1 frames (oldest first, frame t last), in the recipe's camera order. */
  images: Record<string, RgbImage[]>;
  /** (S) state at t; empty when the recipe has no state. */
  state: Float32Array;
  /** (H, A) target chunk. */
  actions: Float32Array;
  /** (H) 1 = real step, 0 = padding. */
  mask: Uint8Array;
}

export interface SampleOptions {
  /** H: chunk length. */
  horizon: number;
  /** Size every camera frame is decoded (and scaled) to. */
  width: number;
  height: number;
  /** Extra past frames per camera (default 0). */
  history?: number;
  /** Steps between history frames (default 1). */
  historyStride?: number;
  ffmpeg?: Ffmpeg;
}

/**
 * Stream the samples of one episode in frame order. Camera frames are decoded
 * once, in lockstep, keeping only the frames history still needs.
 */
export async function* episodeSamples(ds: LeRobotDataset, bound: BoundRecipe, episodeIndex: number, opts: SampleOptions): AsyncGenerator<Sample> {
  const { horizon: H, width, height } = opts;
  const history = opts.history ?? 0;
  const stride = opts.historyStride ?? 1;
  if (!Number.isInteger(H) || H < 1) throw new VlaError("DATA_INVALID", `horizon is ${H}`, "pass a positive chunk length");
  if (!Number.isInteger(history) || history < 0 || !Number.isInteger(stride) || stride < 1) {
    throw new VlaError("DATA_INVALID", `history ${history} / stride ${stride} are invalid`, "history >= 0 and historyStride >= 1, integers");
  }
  const ep = ds.episode(episodeIndex);
  const keys = [bound.action.key, ...(bound.state ? [bound.state.key] : [])];
  const table = await ds.readEpisodeTable(ep, { columns: [...new Set(keys)] });
  const T = table.length;
  const A = bound.action.end - bound.action.start;
  const actions = selectDims(table.column(bound.action.key).data, T, bound.action);
  const states = bound.state ? selectDims(table.column(bound.state.key).data, T, bound.state) : new Float32Array(0);
  const S = bound.state ? bound.state.end - bound.state.start : 0;
  const streams = bound.cameras.map((c) => ({
    cam: c,
    it: ds.readFrames(ep, c.key, { width, height, timestamps: Array.from(table.timestamp), ...(opts.ffmpeg ? { ffmpeg: opts.ffmpeg } : {}) }),
    recent: new Map<number, RgbImage>(),
  }));
  try {
    for (let t = 0; t < T; t++) {
      for (const s of streams) {
        const next = await s.it.next();
        const fr = next.value as Frame | undefined;
        if (next.done || !fr || fr.index !== t) throw new VlaError("VIDEO_DECODE", `episode ${ep.index} camera '${s.cam.key}' gave no frame for row ${t}`, "the dataset's video and table disagree");
        s.recent.set(t, fr.image);
        s.recent.delete(t - history * stride - 1);
      }
      const idx = historyIndices(t, history, stride);
      const images: Record<string, RgbImage[]> = {};
      for (const s of streams) images[s.cam.name] = idx.map((i) => s.recent.get(i) as RgbImage);
      const task = table.taskIndex[t] as number;
      const instruction = bound.recipe.instruction ?? (task >= 0 ? ds.tasks.get(task) : undefined) ?? ep.tasks[0] ?? "";
      const chunk = targetChunk(actions, T, A, t, H);
      yield {
        episodeIndex: ep.index,
        frameIndex: t,
        timestamp: table.timestamp[t] as number,
        instruction,
        images,
        state: states.slice(t * S, (t + 1) * S),
        actions: chunk.actions,
        mask: chunk.mask,
      };
    }
  } finally {
    for (const s of streams) await s.it.return(undefined);
  }
}

/** For each history step, the cameras tiled left to right in `order` (default: the sample's camera order). */
export function tileSampleImages(sample: Sample, order: ReadonlyArray<string> = Object.keys(sample.images)): RgbImage[] {
  const first = sample.images[order[0] ?? ""];
  if (!first) throw new VlaError("DATA_INVALID", `sample has no camera '${order[0]}' (cameras: ${Object.keys(sample.images).join(", ")})`, "tile cameras the recipe names");
  return first.map((_, h) =>
    tileHorizontal(
      order.map((name) => {
        const frames = sample.images[name];
        if (!frames) throw new VlaError("DATA_INVALID", `sample has no camera '${name}' (cameras: ${Object.keys(sample.images).join(", ")})`, "tile cameras the recipe names");
        return frames[h] as RgbImage;
      }),
    ),
  );
}
