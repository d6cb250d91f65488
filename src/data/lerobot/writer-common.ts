/**
 * Pieces shared by the v2.1 and v3.0 writers: layout and episode validation,
 * the features block of info.json, per-episode statistics in LeRobot's shape,
 * the frame-table columns, and atomic output folders.
 */
import fs from "node:fs";
import path from "node:path";
import { VlaError } from "../../errors.js";
import type { DatasetLayout, EpisodeData } from "../episode.js";
import { checkImage, encodePng } from "../image.js";
import type { Feature } from "./format.js";
import type { ColumnSpec } from "./parquet.js";

/** Feature key for a layout camera: "top" -> "observation.images.top"; full keys pass through. */
export function cameraKey(name: string): string {
  return name.startsWith("observation.") ? name : `observation.images.${name}`;
}

export function validateLayout(layout: DatasetLayout): void {
  const bad = (msg: string, hint: string) => new VlaError("DATA_INVALID", `dataset layout: ${msg}`, hint);
  if (!(layout.fps > 0) || !Number.isFinite(layout.fps)) throw bad(`fps is ${layout.fps}`, "pass a positive frame rate");
  if (layout.actionNames.length === 0) throw bad("actionNames is empty", "name every action dimension");
  for (const [name, cam] of Object.entries(layout.cameras)) {
    if (!Number.isInteger(cam.width) || !Number.isInteger(cam.height) || cam.width < 1 || cam.height < 1) throw bad(`camera '${name}' has size ${cam.width}x${cam.height}`, "use positive integer sizes");
    if (layout.imageStorage === "mp4" && (cam.width % 2 !== 0 || cam.height % 2 !== 0)) {
      throw bad(`camera '${name}' is ${cam.width}x${cam.height}; mp4 (yuv420p) needs even sizes`, "use even camera sizes, or imageStorage 'png'");
    }
  }
}

export function validateEpisode(ep: EpisodeData, layout: DatasetLayout, n: number): void {
  const A = layout.actionNames.length;
  const S = layout.stateNames.length;
  const T = ep.length;
  const bad = (msg: string, hint: string) => new VlaError("DATA_INVALID", `episode ${n}: ${msg}`, hint);
  if (!Number.isInteger(T) || T < 1) throw bad(`length is ${T}`, "an episode needs at least one frame");
  if (typeof ep.task !== "string" || ep.task.length === 0) throw bad("task is empty", "give every episode its instruction");
  if (ep.actions.length !== T * A) throw bad(`actions hold ${ep.actions.length} values, expected T*A = ${T}*${A}`, "actions are (T, A) row-major with A = actionNames.length");
  if (ep.states.length !== T * S) throw bad(`states hold ${ep.states.length} values, expected T*S = ${T}*${S}`, "states are (T, S) row-major with S = stateNames.length");
  for (const [i, v] of ep.actions.entries()) if (!Number.isFinite(v)) throw bad(`action value ${i} (row ${Math.floor(i / A)}) is ${v}`, "actions must be finite");
  for (const [i, v] of ep.states.entries()) if (!Number.isFinite(v)) throw bad(`state value ${i} (row ${Math.floor(i / S)}) is ${v}`, "states must be finite");
  for (const [name, cam] of Object.entries(layout.cameras)) {
    const frames = ep.images[name];
    if (!frames) throw bad(`has no images for camera '${name}' (has: ${Object.keys(ep.images).join(", ") || "none"})`, "provide T frames for every layout camera");
    if (frames.length !== T) throw bad(`camera '${name}' has ${frames.length} frames, expected ${T}`, "provide one frame per step");
    for (const [t, img] of frames.entries()) {
      checkImage(img, `episode ${n} camera '${name}' frame ${t}`);
      if (img.width !== cam.width || img.height !== cam.height) throw bad(`camera '${name}' frame ${t} is ${img.width}x${img.height}, layout says ${cam.width}x${cam.height}`, "render at the layout's size");
    }
  }
}

export function videoInfo(layout: DatasetLayout, name: string, codec: string): Record<string, unknown> {
  const cam = layout.cameras[name] as { width: number; height: number };
  return {
    "video.height": cam.height,
    "video.width": cam.width,
    "video.codec": codec,
    "video.pix_fmt": "yuv420p",
    "video.is_depth_map": false,
    "video.fps": layout.fps,
    "video.channels": 3,
    has_audio: false,
  };
}

/** The `features` block of info.json. `perFeatureFps` adds "fps" to non-video features (v3.0). */
export function layoutFeatures(layout: DatasetLayout, videoCodec: string | undefined, perFeatureFps: boolean): Record<string, Feature> {
  const fps = perFeatureFps ? { fps: layout.fps } : {};
  const out: Record<string, Feature> = {};
  for (const [name, cam] of Object.entries(layout.cameras)) {
    const shape = [cam.height, cam.width, 3];
    const names = ["height", "width", "channel"];
    out[cameraKey(name)] =
      layout.imageStorage === "mp4" ? { dtype: "video", shape, names, info: videoInfo(layout, name, videoCodec ?? "h264") } : { dtype: "image", shape, names, ...fps };
  }
  if (layout.stateNames.length > 0) out["observation.state"] = { dtype: "float32", shape: [layout.stateNames.length], names: layout.stateNames, ...fps };
  out.action = { dtype: "float32", shape: [layout.actionNames.length], names: layout.actionNames, ...fps };
  out.timestamp = { dtype: "float32", shape: [1], names: null, ...fps };
  for (const k of ["frame_index", "episode_index", "index", "task_index"]) out[k] = { dtype: "int64", shape: [1], names: null, ...fps };
  return out;
}

/** LeRobot per-feature statistics; arrays have the feature's stat shape ((D) or (3,1,1) for images). */
export interface FeatureStats {
  min: number[] | number[][][];
  max: number[] | number[][][];
  mean: number[] | number[][][];
  std: number[] | number[][][];
  count: number[];
}

/** Stats of (T, D) row-major values: population std, as LeRobot computes them. */
export function vectorStats(data: ArrayLike<number>, T: number, D: number): FeatureStats & { min: number[] } {
  const min = new Array<number>(D).fill(Infinity);
  const max = new Array<number>(D).fill(-Infinity);
  const sum = new Float64Array(D);
  const sq = new Float64Array(D);
  for (let t = 0; t < T; t++) {
    for (let d = 0; d < D; d++) {
      const x = data[t * D + d] as number;
      if (x < (min[d] as number)) min[d] = x;
      if (x > (max[d] as number)) max[d] = x;
      sum[d] = (sum[d] as number) + x;
    }
  }
  const mean = Array.from(sum, (s) => s / T);
  for (let t = 0; t < T; t++) {
    for (let d = 0; d < D; d++) {
      const e = (data[t * D + d] as number) - (mean[d] as number);
      sq[d] = (sq[d] as number) + e * e;
    }
  }
  return { min, max, mean, std: Array.from(sq, (s) => Math.sqrt(s / T)), count: [T] };
}

/**
 * Per-channel stats of frames scaled to [0, 1], shaped (3, 1, 1) like LeRobot's image stats.
 * Pixels are bytes, so a histogram of the 256 values per channel gives the same min, max,
 * mean and population std as a pass over every pixel (each value as float32 v / 255).
 */
export function imageStats(frames: ReadonlyArray<{ data: Uint8Array }>): FeatureStats {
  const hist = new Float64Array(3 * 256);
  for (const f of frames) {
    const d = f.data;
    for (let i = 0; i + 2 < d.length; i += 3) {
      const r = d[i] as number;
      const g = 256 + (d[i + 1] as number);
      const b = 512 + (d[i + 2] as number);
      hist[r] = (hist[r] as number) + 1;
      hist[g] = (hist[g] as number) + 1;
      hist[b] = (hist[b] as number) + 1;
    }
  }
  const min: number[][][] = [];
  const max: number[][][] = [];
  const mean: number[][][] = [];
  const std: number[][][] = [];
  for (let c = 0; c < 3; c++) {
    let n = 0;
    let sum = 0;
    let lo = Infinity;
    let hi = -Infinity;
    for (let v = 0; v < 256; v++) {
      const k = hist[c * 256 + v] as number;
      if (k === 0) continue;
      const x = Math.fround(v / 255);
      n += k;
      sum += k * x;
      lo = Math.min(lo, x);
      hi = Math.max(hi, x);
    }
    const m = sum / n;
    let sq = 0;
    for (let v = 0; v < 256; v++) sq += (hist[c * 256 + v] as number) * (Math.fround(v / 255) - m) ** 2;
    min.push([[lo]]);
    max.push([[hi]]);
    mean.push([[m]]);
    std.push([[Math.sqrt(sq / n)]]);
  }
  return { min, max, mean, std, count: [frames.length] };
}

export function episodeStats(ep: EpisodeData, layout: DatasetLayout, episodeIndex: number, globalStart: number, taskIndex: number): Record<string, FeatureStats> {
  const T = ep.length;
  const seq = (f: (t: number) => number) => Float64Array.from({ length: T }, (_, t) => f(t));
  const out: Record<string, FeatureStats> = {};
  for (const name of Object.keys(layout.cameras)) out[cameraKey(name)] = imageStats(ep.images[name] ?? []);
  if (layout.stateNames.length > 0) out["observation.state"] = vectorStats(ep.states, T, layout.stateNames.length);
  out.action = vectorStats(ep.actions, T, layout.actionNames.length);
  out.timestamp = vectorStats(seq((t) => Math.fround(t / layout.fps)), T, 1);
  out.frame_index = vectorStats(seq((t) => t), T, 1);
  out.episode_index = vectorStats(seq(() => episodeIndex), T, 1);
  out.index = vectorStats(seq((t) => globalStart + t), T, 1);
  out.task_index = vectorStats(seq(() => taskIndex), T, 1);
  return out;
}

/** Combine per-episode vector stats (LeRobot's aggregate_feature_stats: weighted mean, pooled variance). */
export function aggregateStats(parts: ReadonlyArray<FeatureStats>): FeatureStats {
  const flat = (v: FeatureStats["min"]) => (v as unknown[]).flat(2) as number[];
  const shapeLike = (ref: FeatureStats["min"], v: number[]) => (Array.isArray(ref[0]) ? v.map((x) => [[x]]) : v);
  const first = parts[0] as FeatureStats;
  const D = flat(first.mean).length;
  const total = parts.reduce((s, p) => s + (p.count[0] as number), 0);
  const min = new Array<number>(D).fill(Infinity);
  const max = new Array<number>(D).fill(-Infinity);
  const mean = new Array<number>(D).fill(0);
  for (const p of parts) {
    const w = (p.count[0] as number) / total;
    flat(p.min).forEach((x, d) => (min[d] = Math.min(min[d] as number, x)));
    flat(p.max).forEach((x, d) => (max[d] = Math.max(max[d] as number, x)));
    flat(p.mean).forEach((x, d) => (mean[d] = (mean[d] as number) + w * x));
  }
  const variance = new Array<number>(D).fill(0);
  for (const p of parts) {
    const w = (p.count[0] as number) / total;
    const m = flat(p.mean);
    flat(p.std).forEach((s, d) => (variance[d] = (variance[d] as number) + w * (s * s + ((m[d] as number) - (mean[d] as number)) ** 2)));
  }
  return {
    min: shapeLike(first.min, min) as FeatureStats["min"],
    max: shapeLike(first.min, max) as FeatureStats["min"],
    mean: shapeLike(first.min, mean) as FeatureStats["min"],
    std: shapeLike(first.min, variance.map(Math.sqrt)) as FeatureStats["min"],
    count: [total],
  };
}

/** Frame-table columns for one episode (PNG-encodes camera frames when imageStorage is "png"). */
export function episodeColumns(ep: EpisodeData, layout: DatasetLayout, episodeIndex: number, globalStart: number, taskIndex: number): ColumnSpec[] {
  const T = ep.length;
  const A = layout.actionNames.length;
  const S = layout.stateNames.length;
  const rows = <V>(f: (t: number) => V) => Array.from({ length: T }, (_, t) => f(t));
  const cols: ColumnSpec[] = [];
  if (layout.imageStorage === "png") {
    for (const name of Object.keys(layout.cameras)) {
      const frames = ep.images[name] ?? [];
      cols.push({ name: cameraKey(name), kind: "image", data: rows((t) => ({ bytes: encodePng(frames[t] as EpisodeData["images"][string][number]), path: null })) });
    }
  }
  if (S > 0) cols.push({ name: "observation.state", kind: "list", type: "float32", data: rows((t) => ep.states.subarray(t * S, (t + 1) * S)) });
  cols.push({ name: "action", kind: "list", type: "float32", data: rows((t) => ep.actions.subarray(t * A, (t + 1) * A)) });
  cols.push({ name: "timestamp", kind: "scalar", type: "float32", data: rows((t) => Math.fround(t / layout.fps)) });
  cols.push({ name: "frame_index", kind: "scalar", type: "int64", data: rows((t) => t) });
  cols.push({ name: "episode_index", kind: "scalar", type: "int64", data: rows(() => episodeIndex) });
  cols.push({ name: "index", kind: "scalar", type: "int64", data: rows((t) => globalStart + t) });
  cols.push({ name: "task_index", kind: "scalar", type: "int64", data: rows(() => taskIndex) });
  return cols;
}

/** Append the rows of `add` to `into` (same column names and order). */
export function appendColumns(into: ColumnSpec[], add: ReadonlyArray<ColumnSpec>): void {
  if (into.length === 0) {
    for (const c of add) into.push({ ...c, data: [...c.data] } as ColumnSpec);
    return;
  }
  for (const [i, c] of add.entries()) (into[i]?.data as unknown[]).push(...c.data);
}

/** A fresh temp folder beside `dir`; refuses an existing `dir` unless overwrite. */
export function tempDirFor(dir: string, overwrite: boolean): string {
  const abs = path.resolve(dir);
  if (fs.existsSync(abs) && !overwrite) {
    throw new VlaError("DATA_INVALID", `output folder ${abs} already exists`, "remove it, choose another folder, or pass overwrite: true");
  }
  fs.mkdirSync(path.dirname(abs), { recursive: true });
  return fs.mkdtempSync(path.join(path.dirname(abs), `.${path.basename(abs)}.tmp-`));
}

/** Move the finished temp folder into place (replacing `dir` when it exists). */
export function commitDir(tmp: string, dir: string): void {
  const abs = path.resolve(dir);
  if (fs.existsSync(abs)) {
    const old = `${tmp}.old`;
    fs.renameSync(abs, old);
    fs.renameSync(tmp, abs);
    fs.rmSync(old, { recursive: true, force: true });
  } else fs.renameSync(tmp, abs);
}

export function writeJson(file: string, value: unknown): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, JSON.stringify(value, null, 4) + "\n");
}

export function writeJsonl(file: string, values: ReadonlyArray<unknown>): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, values.map((v) => JSON.stringify(v)).join("\n") + "\n");
}
