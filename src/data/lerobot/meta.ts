/**
 * Loading LeRobot metadata: meta/info.json for both versions, the episode and
 * task lists from meta/*.jsonl (v2.x) or meta/episodes/**.parquet and
 * meta/tasks.parquet (v3.0). See format.ts for the layouts.
 */
import fs from "node:fs";
import path from "node:path";
import { VlaError } from "../../errors.js";
import { readJsonFile, readJsonLines, type JsonFileKind } from "../../io/json-file.js";
import { InfoSchema, V21EpisodeLine, V21TaskLine, featureKind, type Info } from "./format.js";
import { asNumber, openParquet, readRows } from "./parquet.js";

export type Version = "v2.1" | "v3.0";

/** Where an episode's frames live in a v3.0 dataset. */
export interface FileSpan {
  chunk: number;
  file: number;
  /** v3.0 data: global row range [from, to); video: seconds [from, to) in the mp4. */
  from: number;
  to: number;
}

export interface EpisodeInfo {
  /** The episode_index as stored (not necessarily 0..N-1). */
  index: number;
  /** Frames T. */
  length: number;
  tasks: string[];
  /** v3.0 only. */
  data?: FileSpan;
  /** v3.0 only: camera key -> span of the episode in that camera's mp4. */
  videos?: Record<string, FileSpan>;
  /** Extra per-episode fields (e.g. "success" written by vlatext's simulator). */
  extra: Record<string, unknown>;
}

export interface DatasetMeta {
  version: Version;
  info: Info;
  episodes: EpisodeInfo[];
  /** task_index -> task text. */
  tasks: Map<number, string>;
}

/** A LeRobot metadata file, for readJsonFile / readJsonLines. */
function metaFile(what: string, hint: string): JsonFileKind {
  return { what, code: "DATA_INVALID", hint, missingCode: "DATA_MISSING", missingHint: "point at a LeRobot dataset folder (it holds meta/info.json); download the dataset again if its meta/ folder is incomplete" };
}

export function loadInfo(dir: string): { info: Info; version: Version } {
  const file = path.join(dir, "meta", "info.json");
  const r = { data: readJsonFile(file, InfoSchema, metaFile("dataset info", "this is not a LeRobot v2.1/v3.0 info.json, or it is truncated; download the dataset again")) };
  const v = r.data.codebase_version;
  let version: Version;
  if (v === "v2.0" || v === "v2.1") version = "v2.1";
  else if (v === "v3.0") version = "v3.0";
  else {
    throw new VlaError("DATA_INVALID", `${file}: codebase_version ${v} is not supported (only v2.0, v2.1 and v3.0)`, "convert the dataset with LeRobot's scripts (e.g. convert_dataset_v21_to_v30)");
  }
  return { info: r.data, version };
}

function loadV21(dir: string, info: Info): DatasetMeta {
  const tasks = new Map<number, string>();
  const tasksFile = path.join(dir, "meta", "tasks.jsonl");
  for (const { value } of readJsonLines(tasksFile, V21TaskLine, metaFile("task list", 'each line is {"task_index": N, "task": "..."}; a truncated file: download the dataset again')).rows) {
    tasks.set(value.task_index, value.task);
  }
  const episodes: EpisodeInfo[] = [];
  const epFile = path.join(dir, "meta", "episodes.jsonl");
  for (const { value } of readJsonLines(epFile, V21EpisodeLine, metaFile("episode list", 'each line is {"episode_index": N, "tasks": [...], "length": T}; a truncated file: download the dataset again')).rows) {
    const { episode_index, tasks: epTasks, length, ...extra } = value;
    episodes.push({ index: episode_index, length, tasks: epTasks, extra });
  }
  return { version: "v2.1", info, episodes: sortUnique(episodes, epFile), tasks };
}

function sortUnique(episodes: EpisodeInfo[], source: string): EpisodeInfo[] {
  episodes.sort((a, b) => a.index - b.index);
  for (let i = 1; i < episodes.length; i++) {
    if (episodes[i]?.index === episodes[i - 1]?.index) {
      throw new VlaError("DATA_INVALID", `${source} lists episode ${episodes[i]?.index} twice`, "remove the duplicate line");
    }
  }
  return episodes;
}

function listParquet(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  const out: string[] = [];
  for (const chunk of fs.readdirSync(dir).filter((d) => /^chunk-\d+$/.test(d)).sort()) {
    for (const f of fs.readdirSync(path.join(dir, chunk)).filter((x) => /^file-\d+\.parquet$/.test(x)).sort()) out.push(path.join(dir, chunk, f));
  }
  return out;
}

async function loadV30(dir: string, info: Info): Promise<DatasetMeta> {
  const tasks = new Map<number, string>();
  const tasksPq = await openParquet(path.join(dir, "meta", "tasks.parquet"), "task table");
  const textCol = ["task", "__index_level_0__"].find((c) => tasksPq.columns.includes(c));
  if (!textCol) throw new VlaError("DATA_INVALID", `${tasksPq.path} has no 'task' column (columns: ${tasksPq.columns.join(", ")})`, "meta/tasks.parquet holds task_index and task");
  for (const row of await readRows(tasksPq, ["task_index", textCol])) {
    tasks.set(asNumber(row.task_index, `${tasksPq.path} task_index`), String(row[textCol]));
  }
  const files = listParquet(path.join(dir, "meta", "episodes"));
  if (files.length === 0) throw new VlaError("DATA_MISSING", `no episode metadata under ${path.join(dir, "meta", "episodes")} (expected chunk-XXX/file-YYY.parquet)`, "the dataset's meta/ folder is incomplete; download it again");
  const videoKeys = Object.entries(info.features).filter(([, f]) => featureKind(f) === "video").map(([k]) => k);
  const episodes: EpisodeInfo[] = [];
  for (const file of files) {
    const pq = await openParquet(file, "episode metadata");
    const need = ["episode_index", "length", "tasks", "data/chunk_index", "data/file_index", "dataset_from_index", "dataset_to_index"];
    for (const k of videoKeys) for (const s of ["chunk_index", "file_index", "from_timestamp", "to_timestamp"]) need.push(`videos/${k}/${s}`);
    const missing = need.filter((c) => !pq.columns.includes(c));
    if (missing.length > 0) throw new VlaError("DATA_INVALID", `${file} lacks column(s) ${missing.join(", ")}`, "this is not LeRobot v3.0 episode metadata, or it was written for other cameras");
    const extraCols = pq.columns.filter((c) => !need.includes(c) && !c.startsWith("stats/") && !c.startsWith("meta/episodes/"));
    for (const row of await readRows(pq, [...need, ...extraCols])) {
      const num = (k: string) => asNumber(row[k], `${file} ${k}`);
      const videos: Record<string, FileSpan> = {};
      for (const k of videoKeys) {
        videos[k] = { chunk: num(`videos/${k}/chunk_index`), file: num(`videos/${k}/file_index`), from: num(`videos/${k}/from_timestamp`), to: num(`videos/${k}/to_timestamp`) };
      }
      const t = row.tasks;
      const extra: Record<string, unknown> = {};
      for (const c of extraCols) extra[c] = typeof row[c] === "bigint" ? Number(row[c]) : row[c];
      episodes.push({
        index: num("episode_index"),
        length: num("length"),
        tasks: Array.isArray(t) ? t.map(String) : typeof t === "string" ? [t] : [],
        data: { chunk: num("data/chunk_index"), file: num("data/file_index"), from: num("dataset_from_index"), to: num("dataset_to_index") },
        videos,
        extra,
      });
    }
  }
  return { version: "v3.0", info, episodes: sortUnique(episodes, path.join(dir, "meta", "episodes")), tasks };
}

export async function loadMeta(dir: string): Promise<DatasetMeta> {
  if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) throw new VlaError("DATA_MISSING", `dataset folder not found: ${dir}`, "pass the folder that holds meta/info.json");
  const { info, version } = loadInfo(dir);
  return version === "v2.1" ? loadV21(dir, info) : loadV30(dir, info);
}
