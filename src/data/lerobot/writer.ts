/**
 * Write episodes as a LeRobot v2.1 or v3.0 dataset (layouts in format.ts).
 * Camera frames go into parquet as PNG bytes (imageStorage "png") or into
 * mp4 files through ffmpeg (imageStorage "mp4": libx264, else mpeg4; yuv420p).
 *
 * Output is written to a temp folder beside `dir` and renamed into place at
 * the end, so a failed or interrupted write leaves no half dataset behind.
 * Episodes are consumed one at a time (sync or async iterables), so a
 * producer can stream them.
 */
import fs from "node:fs";
import path from "node:path";
import { VlaError } from "../../errors.js";
import type { DatasetLayout, EpisodeData } from "../episode.js";
import { describeFfmpeg, findFfmpeg, videoCodecArgs, VideoEncoder, type Ffmpeg } from "./ffmpeg.js";
import { DEFAULT_CHUNKS_SIZE, V21_DATA_PATH, V21_VIDEO_PATH, V30_DATA_PATH, V30_EPISODES_PATH, V30_VIDEO_PATH, formatPath } from "./format.js";
import { writeParquet, type ColumnSpec } from "./parquet.js";
import {
  aggregateStats,
  appendColumns,
  cameraKey,
  commitDir,
  episodeColumns,
  episodeStats,
  layoutFeatures,
  tempDirFor,
  validateEpisode,
  validateLayout,
  writeJson,
  writeJsonl,
  type FeatureStats,
} from "./writer-common.js";

export interface WriteOptions {
  /** Replace `dir` when it exists (default: refuse). */
  overwrite?: boolean;
  ffmpeg?: Ffmpeg;
  /** Files per chunk folder (LeRobot default 1000). */
  chunksSize?: number;
}

export interface WriteSummary {
  dir: string;
  version: "v2.1" | "v3.0";
  episodes: number;
  frames: number;
  tasks: number;
  /** Set for imageStorage "mp4": the codec and the ffmpeg that wrote it. */
  video?: { codec: string; ffmpeg: string };
}

type Episodes = Iterable<EpisodeData> | AsyncIterable<EpisodeData>;

function videoSetup(layout: DatasetLayout, opts: WriteOptions): { ff: Ffmpeg; codec: string } | undefined {
  if (layout.imageStorage !== "mp4" || Object.keys(layout.cameras).length === 0) return undefined;
  const ff = opts.ffmpeg ?? findFfmpeg();
  return { ff, codec: videoCodecArgs(ff).codec };
}

async function encodeEpisode(file: string, frames: EpisodeData["images"][string], layout: DatasetLayout, ff: Ffmpeg, name: string): Promise<void> {
  const cam = layout.cameras[name] as { width: number; height: number };
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const enc = new VideoEncoder(file, { width: cam.width, height: cam.height, fps: layout.fps, ffmpeg: ff });
  try {
    for (const img of frames) await enc.write(img);
    await enc.finish();
  } catch (e) {
    enc.abort();
    throw e;
  }
}

function baseInfo(version: string, layout: DatasetLayout, episodes: number, frames: number, tasks: number): Record<string, unknown> {
  return { codebase_version: version, robot_type: layout.robotType, total_episodes: episodes, total_frames: frames, total_tasks: tasks };
}

/** Write a LeRobot v2.1 dataset: one parquet (and one mp4 per camera) per episode. */
export async function writeLeRobotV21(dir: string, layout: DatasetLayout, episodes: Episodes, opts: WriteOptions = {}): Promise<WriteSummary> {
  validateLayout(layout);
  const video = videoSetup(layout, opts);
  const chunksSize = opts.chunksSize ?? DEFAULT_CHUNKS_SIZE;
  const tmp = tempDirFor(dir, opts.overwrite ?? false);
  try {
    const tasks = new Map<string, number>();
    const epLines: unknown[] = [];
    const statLines: unknown[] = [];
    let n = 0;
    let frames = 0;
    for await (const ep of episodes) {
      validateEpisode(ep, layout, n);
      const taskIndex = tasks.get(ep.task) ?? tasks.size;
      tasks.set(ep.task, taskIndex);
      const chunk = Math.floor(n / chunksSize);
      const dataFile = path.join(tmp, formatPath(V21_DATA_PATH, { episode_chunk: chunk, episode_index: n }));
      fs.mkdirSync(path.dirname(dataFile), { recursive: true });
      writeParquet(dataFile, episodeColumns(ep, layout, n, frames, taskIndex));
      if (video) {
        for (const name of Object.keys(layout.cameras)) {
          const file = path.join(tmp, formatPath(V21_VIDEO_PATH, { episode_chunk: chunk, episode_index: n, video_key: cameraKey(name) }));
          await encodeEpisode(file, ep.images[name] ?? [], layout, video.ff, name);
        }
      }
      epLines.push({ episode_index: n, tasks: [ep.task], length: ep.length, ...(ep.success !== undefined ? { success: ep.success } : {}) });
      statLines.push({ episode_index: n, stats: episodeStats(ep, layout, n, frames, taskIndex) });
      frames += ep.length;
      n++;
    }
    if (n === 0) throw new VlaError("DATA_INVALID", `no episodes to write to ${dir}`, "the episode source yielded nothing");
    const cams = video ? Object.keys(layout.cameras).length : 0;
    writeJson(path.join(tmp, "meta", "info.json"), {
      ...baseInfo("v2.1", layout, n, frames, tasks.size),
      total_videos: n * cams,
      total_chunks: Math.ceil(n / chunksSize),
      chunks_size: chunksSize,
      fps: layout.fps,
      splits: { train: `0:${n}` },
      data_path: V21_DATA_PATH,
      video_path: video ? V21_VIDEO_PATH : null,
      features: layoutFeatures(layout, video?.codec, false),
    });
    writeJsonl(path.join(tmp, "meta", "episodes.jsonl"), epLines);
    writeJsonl(path.join(tmp, "meta", "tasks.jsonl"), [...tasks].map(([task, task_index]) => ({ task_index, task })));
    writeJsonl(path.join(tmp, "meta", "episodes_stats.jsonl"), statLines);
    commitDir(tmp, dir);
    return { dir: path.resolve(dir), version: "v2.1", episodes: n, frames, tasks: tasks.size, ...(video ? { video: { codec: video.codec, ffmpeg: describeFfmpeg(video.ff) } } : {}) };
  } catch (e) {
    fs.rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
}

/** LeRobot's update_chunk_file_indices: files fill a chunk, then the next chunk starts at file 0. */
function nextFile(chunk: number, file: number, chunksSize: number): [number, number] {
  return file + 1 >= chunksSize ? [chunk + 1, 0] : [chunk, file + 1];
}

/** pandas metadata making `task` the index of meta/tasks.parquet, as LeRobot's write_tasks leaves it. */
const TASKS_PANDAS_META = JSON.stringify({
  index_columns: ["task"],
  column_indexes: [{ name: null, field_name: null, pandas_type: "unicode", numpy_type: "object", metadata: { encoding: "UTF-8" } }],
  columns: [
    { name: "task_index", field_name: "task_index", pandas_type: "int64", numpy_type: "int64", metadata: null },
    { name: "task", field_name: "task", pandas_type: "unicode", numpy_type: "object", metadata: null },
  ],
  creator: { library: "vlatext", version: "0.1.0" },
  pandas_version: "2.2.3",
});

/**
 * Write a LeRobot v3.0 dataset: `episodesPerFile` episodes share each data
 * parquet and each camera's mp4 (frames concatenated, so episode k of a file
 * starts at from_timestamp = frames before it / fps).
 */
export async function writeLeRobotV30(dir: string, layout: DatasetLayout, episodes: Episodes, opts: WriteOptions & { episodesPerFile: number }): Promise<WriteSummary> {
  validateLayout(layout);
  if (!Number.isInteger(opts.episodesPerFile) || opts.episodesPerFile < 1) {
    throw new VlaError("DATA_INVALID", `episodesPerFile is ${opts.episodesPerFile}`, "pass a positive integer (episodes per data/video file)");
  }
  const video = videoSetup(layout, opts);
  const chunksSize = opts.chunksSize ?? DEFAULT_CHUNKS_SIZE;
  const tmp = tempDirFor(dir, opts.overwrite ?? false);
  const names = Object.keys(layout.cameras);
  let encoders: Map<string, VideoEncoder> | undefined;
  try {
    const tasks = new Map<string, number>();
    const epRows: Array<Record<string, unknown>> = [];
    const allStats: Array<Record<string, FeatureStats>> = [];
    let cols: ColumnSpec[] = [];
    let [chunk, file] = [0, 0];
    let inFile = 0;
    let framesInFile = 0;
    let n = 0;
    let frames = 0;
    const flush = async () => {
      const dataFile = path.join(tmp, formatPath(V30_DATA_PATH, { chunk_index: chunk, file_index: file }));
      fs.mkdirSync(path.dirname(dataFile), { recursive: true });
      writeParquet(dataFile, cols);
      for (const enc of encoders?.values() ?? []) await enc.finish();
      encoders = undefined;
      cols = [];
      inFile = 0;
      framesInFile = 0;
      [chunk, file] = nextFile(chunk, file, chunksSize);
    };
    for await (const ep of episodes) {
      validateEpisode(ep, layout, n);
      const taskIndex = tasks.get(ep.task) ?? tasks.size;
      tasks.set(ep.task, taskIndex);
      appendColumns(cols, episodeColumns(ep, layout, n, frames, taskIndex));
      const row: Record<string, unknown> = { episode_index: n, tasks: [ep.task], length: ep.length };
      row["data/chunk_index"] = chunk;
      row["data/file_index"] = file;
      row.dataset_from_index = frames;
      row.dataset_to_index = frames + ep.length;
      if (video) {
        encoders ??= new Map(
          names.map((name) => {
            const f = path.join(tmp, formatPath(V30_VIDEO_PATH, { video_key: cameraKey(name), chunk_index: chunk, file_index: file }));
            fs.mkdirSync(path.dirname(f), { recursive: true });
            const cam = layout.cameras[name] as { width: number; height: number };
            return [name, new VideoEncoder(f, { width: cam.width, height: cam.height, fps: layout.fps, ffmpeg: video.ff })];
          }),
        );
        for (const name of names) {
          const enc = encoders.get(name) as VideoEncoder;
          for (const img of ep.images[name] ?? []) await enc.write(img);
          const key = cameraKey(name);
          row[`videos/${key}/chunk_index`] = chunk;
          row[`videos/${key}/file_index`] = file;
          row[`videos/${key}/from_timestamp`] = framesInFile / layout.fps;
          row[`videos/${key}/to_timestamp`] = (framesInFile + ep.length) / layout.fps;
        }
      }
      if (ep.success !== undefined) row.success = ep.success;
      const stats = episodeStats(ep, layout, n, frames, taskIndex);
      allStats.push(stats);
      for (const [k, s] of Object.entries(stats)) {
        if (Array.isArray(s.min[0])) continue; // image stats (3,1,1) live in meta/stats.json only
        for (const stat of ["min", "max", "mean", "std", "count"] as const) row[`stats/${k}/${stat}`] = s[stat];
      }
      row["meta/episodes/chunk_index"] = 0;
      row["meta/episodes/file_index"] = 0;
      epRows.push(row);
      frames += ep.length;
      framesInFile += ep.length;
      n++;
      if (++inFile === opts.episodesPerFile) await flush();
    }
    if (n === 0) throw new VlaError("DATA_INVALID", `no episodes to write to ${dir}`, "the episode source yielded nothing");
    if (inFile > 0) await flush();
    writeEpisodesMeta(path.join(tmp, formatPath(V30_EPISODES_PATH, { chunk_index: 0, file_index: 0 })), epRows);
    writeParquet(
      path.join(tmp, "meta", "tasks.parquet"),
      [
        { name: "task_index", kind: "scalar", type: "int64", data: [...tasks.values()] },
        { name: "task", kind: "scalar", type: "string", data: [...tasks.keys()] },
      ],
      { pandas: TASKS_PANDAS_META },
    );
    const keys = Object.keys(allStats[0] ?? {});
    writeJson(path.join(tmp, "meta", "stats.json"), Object.fromEntries(keys.map((k) => [k, aggregateStats(allStats.map((s) => s[k] as FeatureStats))])));
    writeJson(path.join(tmp, "meta", "info.json"), {
      ...baseInfo("v3.0", layout, n, frames, tasks.size),
      chunks_size: chunksSize,
      data_files_size_in_mb: 100,
      video_files_size_in_mb: 200,
      fps: layout.fps,
      splits: { train: `0:${n}` },
      data_path: V30_DATA_PATH,
      video_path: video ? V30_VIDEO_PATH : null,
      features: layoutFeatures(layout, video?.codec, true),
    });
    commitDir(tmp, dir);
    return { dir: path.resolve(dir), version: "v3.0", episodes: n, frames, tasks: tasks.size, ...(video ? { video: { codec: video.codec, ffmpeg: describeFfmpeg(video.ff) } } : {}) };
  } catch (e) {
    for (const enc of encoders?.values() ?? []) enc.abort();
    fs.rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
}

/** meta/episodes/chunk-000/file-000.parquet: one row per episode, columns typed by name. */
function writeEpisodesMeta(file: string, rows: ReadonlyArray<Record<string, unknown>>): void {
  const names = [...new Set(rows.flatMap((r) => Object.keys(r)))];
  const cols: ColumnSpec[] = names.map((name) => {
    const data = rows.map((r) => r[name] ?? null);
    if (name === "tasks") return { name, kind: "list", type: "string", data };
    if (name === "success") return { name, kind: "scalar", type: "bool", data };
    if (name.startsWith("stats/")) return { name, kind: "list", type: name.endsWith("/count") ? "int64" : "float64", data };
    if (name.endsWith("_timestamp")) return { name, kind: "scalar", type: "float64", data };
    return { name, kind: "scalar", type: "int64", data };
  });
  fs.mkdirSync(path.dirname(file), { recursive: true });
  writeParquet(file, cols);
}
