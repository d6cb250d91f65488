/**
 * The LeRobot dataset formats, as published by huggingface/lerobot
 * (src/lerobot/datasets/utils.py, dataset_metadata.py, dataset_reader.py and
 * scripts/convert_dataset_v21_to_v30.py), and their zod schemas.
 *
 * ## v2.1 (codebase_version "v2.1")
 *
 *   meta/info.json            fps, robot_type, features, totals, chunks_size,
 *                             data_path  "data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet"
 *                             video_path "videos/chunk-{episode_chunk:03d}/{video_key}/episode_{episode_index:06d}.mp4"
 *   meta/episodes.jsonl       {"episode_index": 1, "tasks": ["..."], "length": 393} per line
 *   meta/tasks.jsonl          {"task_index": 0, "task": "..."} per line
 *   meta/episodes_stats.jsonl {"episode_index": 1, "stats": {feature: {min, max, mean, std, count}}}
 *   data/...                  one parquet file per episode
 *   videos/...                one mp4 per episode and camera; frame k has pts k/fps
 *
 * episode_chunk = floor(episode_index / chunks_size). Episode indexes need not
 * be 0..N-1: the list comes from meta/episodes.jsonl.
 *
 * ## v3.0 (codebase_version "v3.0")
 *
 *   meta/info.json            as v2.1 without total_chunks/total_videos, plus
 *                             data_files_size_in_mb / video_files_size_in_mb,
 *                             data_path  "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
 *                             video_path "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
 *   meta/tasks.parquet        columns task_index (int64) and task (the pandas index, a string column)
 *   meta/stats.json           aggregated {feature: {min, max, mean, std, count}}
 *   meta/episodes/chunk-XXX/file-YYY.parquet, one row per episode:
 *       episode_index, tasks (list<string>), length,
 *       data/chunk_index, data/file_index,
 *       dataset_from_index, dataset_to_index    global row range ("index" column) of the episode,
 *       videos/<key>/chunk_index, videos/<key>/file_index,
 *       videos/<key>/from_timestamp, videos/<key>/to_timestamp   seconds inside that mp4,
 *       meta/episodes/chunk_index, meta/episodes/file_index,
 *       stats/<feature>/{min,max,mean,std,count}
 *   data/chunk-XXX/file-YYY.parquet      many episodes per file, rows in episode order
 *   videos/<key>/chunk-XXX/file-YYY.mp4  many episodes per file, concatenated
 *
 * Per-row `timestamp` restarts at 0 in every episode (frame_index / fps); the
 * frame for a row of episode e lives at from_timestamp(e) + timestamp in the
 * episode's video file (LeRobot's _query_videos shifts query timestamps the
 * same way).
 *
 * Frame rows, both versions: one column per feature. Vector features are
 * list<float32>; scalars (timestamp float32, frame_index, episode_index,
 * index, task_index int64) are plain columns; "image" features are a struct
 * {bytes: binary (PNG or JPEG), path: string}; "video" features have no
 * column, their frames live in the mp4 files.
 */
import { z } from "zod";
import { VlaError } from "../../errors.js";

export const DEFAULT_CHUNKS_SIZE = 1000;
export const V21_DATA_PATH = "data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet";
export const V21_VIDEO_PATH = "videos/chunk-{episode_chunk:03d}/{video_key}/episode_{episode_index:06d}.mp4";
export const V30_DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet";
export const V30_VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4";
export const V30_EPISODES_PATH = "meta/episodes/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet";

/** Columns every frame row carries besides the features a robot defines. */
export const INDEX_COLUMNS = ["timestamp", "frame_index", "episode_index", "index", "task_index"] as const;

const Names = z.union([z.array(z.string()), z.array(z.array(z.string())), z.record(z.string(), z.array(z.string())), z.null()]).optional();

export const FeatureSchema = z
  .object({
    dtype: z.string().min(1),
    shape: z.array(z.number().int().min(0)),
    names: Names,
    info: z.record(z.string(), z.unknown()).nullable().optional(),
    fps: z.number().optional(),
  })
  .loose();
export type Feature = z.infer<typeof FeatureSchema>;

export const InfoSchema = z
  .object({
    codebase_version: z.string().regex(/^v\d+\.\d+$/, "must look like 'v2.1' or 'v3.0'"),
    robot_type: z.string().nullable().optional(),
    fps: z.number().positive(),
    total_episodes: z.number().int().min(0),
    total_frames: z.number().int().min(0),
    total_tasks: z.number().int().min(0).optional(),
    chunks_size: z.number().int().min(1).default(DEFAULT_CHUNKS_SIZE),
    data_path: z.string().min(1),
    video_path: z.string().nullable().optional(),
    features: z.record(z.string(), FeatureSchema),
  })
  .loose();
export type Info = z.infer<typeof InfoSchema>;

export const V21EpisodeLine = z
  .object({ episode_index: z.number().int().min(0), tasks: z.array(z.string()), length: z.number().int().min(0) })
  .loose();
export const V21TaskLine = z.object({ task_index: z.number().int().min(0), task: z.string() }).loose();

/** Flatten LeRobot's `names` (list, list of lists, or {axis: list}) to one list, or undefined. */
export function featureNames(f: Feature): string[] | undefined {
  const n = f.names;
  if (n === undefined || n === null) return undefined;
  if (Array.isArray(n)) {
    const flat = n.flatMap((x) => (Array.isArray(x) ? x : [x]));
    return flat.length > 0 ? flat : undefined;
  }
  const first = Object.values(n)[0];
  return first && first.length > 0 ? first : undefined;
}

/** Product of a feature's shape (1 for a scalar). */
export function featureSize(f: Feature): number {
  return f.shape.reduce((a, b) => a * b, 1);
}

export type FeatureKind = "video" | "image" | "numeric" | "string";

export function featureKind(f: Feature): FeatureKind {
  if (f.dtype === "video") return "video";
  if (f.dtype === "image") return "image";
  if (f.dtype === "string") return "string";
  return "numeric";
}

/**
 * Fill a LeRobot path template: Python str.format fields such as
 * `{episode_index:06d}` or `{video_key}`. Only the `0Nd` and plain forms occur.
 */
export function formatPath(template: string, vars: Record<string, string | number>): string {
  return template.replace(/\{([a-z_]+)(?::0?(\d+)d)?\}/g, (_whole, name: string, width: string | undefined) => {
    const v = vars[name];
    if (v === undefined) {
      throw new VlaError("DATA_INVALID", `path template '${template}' uses {${name}} which is not known here (known: ${Object.keys(vars).join(", ")})`, "fix data_path/video_path in meta/info.json");
    }
    if (width === undefined) return String(v);
    return String(v).padStart(Number(width), "0");
  });
}
