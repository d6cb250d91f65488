/**
 * LeRobotDataset: read a LeRobot v2.1 or v3.0 dataset from disk (layouts in
 * format.ts). Metadata is loaded once by `open`; frame tables are read per
 * episode from parquet; camera frames are decoded on demand, from mp4 through
 * ffmpeg or from PNG/JPEG bytes stored in parquet.
 */
import path from "node:path";
import { VlaError } from "../../errors.js";
import type { RgbImage } from "../episode.js";
import { decodeImageBytes, resizeBilinear } from "../image.js";
import { decodeFrames, type Ffmpeg } from "./ffmpeg.js";
import { INDEX_COLUMNS, featureKind, featureNames, featureSize, formatPath, type Feature, type Info } from "./format.js";
import { loadMeta, type EpisodeInfo, type Version } from "./meta.js";
import { asNumber, copyList, openParquet, readRows, type ParquetFile } from "./parquet.js";

export type { EpisodeInfo, Version } from "./meta.js";

export interface NumericColumn {
  /** Values per row (product of the feature's shape). */
  dims: number;
  /** (T, dims) row-major; float32 features stay Float32Array, others are Float64Array. */
  data: Float32Array | Float64Array;
}

/** One episode's frame table. */
export class EpisodeTable {
  constructor(
    readonly episodeIndex: number,
    /** T */
    readonly length: number,
    /** (T) seconds from the episode's start. */
    readonly timestamp: Float64Array,
    /** (T) */
    readonly frameIndex: Int32Array,
    /** (T) -1 when the dataset has no task_index. */
    readonly taskIndex: Int32Array,
    readonly columns: Map<string, NumericColumn>,
    /** image feature -> T encoded PNG/JPEG images. */
    readonly images: Map<string, Uint8Array[]>,
  ) {}

  /** A numeric column by feature name; DATA_MISSING names the ones read. */
  column(key: string): NumericColumn {
    const c = this.columns.get(key);
    if (!c) throw new VlaError("DATA_MISSING", `episode ${this.episodeIndex} table has no column '${key}' (read: ${[...this.columns.keys()].join(", ")})`, "pass it in readEpisodeTable's columns, or check the feature name in meta/info.json");
    return c;
  }
}

export interface FrameRequest {
  width: number;
  height: number;
  /** Ascending seconds from the episode start; default: every row's timestamp. */
  timestamps?: ReadonlyArray<number>;
  ffmpeg?: Ffmpeg;
}

export interface Frame {
  /** Position in the requested timestamps (= row when all rows were requested). */
  index: number;
  /** The requested time (seconds from the episode start). */
  timestamp: number;
  /** When the returned frame was recorded: its video pts, or its table timestamp for images in parquet. */
  pts: number;
  image: RgbImage;
}

export class LeRobotDataset {
  private readonly parquetCache = new Map<string, Promise<ParquetFile>>();
  /** v3.0 data file -> episode_index -> its rows [start, end). */
  private readonly rowCache = new Map<string, Promise<Map<number, [number, number]>>>();

  private constructor(
    readonly dir: string,
    readonly version: Version,
    readonly info: Info,
    /** Episodes in index order, as listed by the metadata. */
    readonly episodes: ReadonlyArray<EpisodeInfo>,
    /** task_index -> task text. */
    readonly tasks: ReadonlyMap<number, string>,
  ) {}

  static async open(dir: string): Promise<LeRobotDataset> {
    const abs = path.resolve(dir);
    const m = await loadMeta(abs);
    return new LeRobotDataset(abs, m.version, m.info, m.episodes, m.tasks);
  }

  get fps(): number {
    return this.info.fps;
  }

  get features(): Readonly<Record<string, Feature>> {
    return this.info.features;
  }

  get totalFrames(): number {
    return this.episodes.reduce((s, e) => s + e.length, 0);
  }

  /** Camera features: video (mp4) and image (bytes in parquet). */
  get cameraKeys(): string[] {
    return Object.entries(this.info.features).filter(([, f]) => featureKind(f) === "video" || featureKind(f) === "image").map(([k]) => k);
  }

  /** A feature by name; DATA_MISSING lists the ones that exist. */
  feature(key: string): Feature {
    const f = this.info.features[key];
    if (!f) throw new VlaError("DATA_MISSING", `feature '${key}' does not exist in ${path.join(this.dir, "meta", "info.json")} (features: ${Object.keys(this.info.features).join(", ")})`, "use one of the listed feature names (see `vlatext dataset inspect`)");
    return f;
  }

  /** Per-dimension names of a vector feature, or dim0..dimN-1. */
  names(key: string): string[] {
    const f = this.feature(key);
    const n = featureNames(f);
    const size = featureSize(f);
    return n && n.length === size ? n : Array.from({ length: size }, (_, i) => `${key}[${i}]`);
  }

  episode(index: number): EpisodeInfo {
    const e = this.episodes.find((x) => x.index === index);
    if (!e) throw new VlaError("DATA_MISSING", `episode ${index} is not in ${this.dir} (episodes: ${summarizeIndexes(this.episodes.map((x) => x.index))})`, "episode indexes come from the dataset's metadata; they need not start at 0");
    return e;
  }

  /** The parquet file holding the episode's rows. */
  dataFile(ep: EpisodeInfo): string {
    const chunk = Math.floor(ep.index / this.info.chunks_size);
    const vars: Record<string, number> = this.version === "v2.1" ? { episode_chunk: chunk, episode_index: ep.index } : { chunk_index: span(ep, "data").chunk, file_index: span(ep, "data").file };
    return path.join(this.dir, formatPath(this.info.data_path, vars));
  }

  /** The mp4 holding the episode's frames for a video feature, and the episode's start time in it. */
  videoFile(ep: EpisodeInfo, key: string): { file: string; offset: number; duration: number | undefined } {
    const tpl = this.info.video_path;
    if (!tpl) throw new VlaError("DATA_INVALID", `${path.join(this.dir, "meta", "info.json")} has video feature '${key}' but no video_path`, "the info.json is incomplete; download the dataset again");
    if (this.version === "v2.1") {
      const vars = { episode_chunk: Math.floor(ep.index / this.info.chunks_size), episode_index: ep.index, video_key: key };
      return { file: path.join(this.dir, formatPath(tpl, vars)), offset: 0, duration: undefined };
    }
    const v = ep.videos?.[key];
    if (!v) throw new VlaError("DATA_INVALID", `episode ${ep.index} metadata has no videos/${key}/* columns`, "the episode metadata does not match info.json's features");
    return { file: path.join(this.dir, formatPath(tpl, { video_key: key, chunk_index: v.chunk, file_index: v.file })), offset: v.from, duration: v.to - v.from };
  }

  private parquet(file: string): Promise<ParquetFile> {
    let p = this.parquetCache.get(file);
    if (!p) {
      p = openParquet(file, "episode data");
      p.catch(() => this.parquetCache.delete(file));
      this.parquetCache.set(file, p);
    }
    return p;
  }

  /** Rows [start, end) of the episode inside its data file. */
  private async rowRange(ep: EpisodeInfo, pq: ParquetFile): Promise<[number, number]> {
    if (this.version === "v2.1") return [0, pq.rows];
    // v3.0: several episodes share a file; index their rows once by episode_index.
    let ranges = this.rowCache.get(pq.path);
    if (!ranges) {
      ranges = episodeRanges(pq);
      ranges.catch(() => this.rowCache.delete(pq.path));
      this.rowCache.set(pq.path, ranges);
    }
    const r = (await ranges).get(ep.index);
    if (!r) throw new VlaError("DATA_INVALID", `${pq.path} holds no rows of episode ${ep.index}`, "meta/episodes points at the wrong data file; re-export the dataset");
    return r;
  }

  /**
   * Read an episode's frame table. `columns` picks features (default: every
   * numeric feature); timestamp, frame_index and task_index are always read.
   */
  async readEpisodeTable(episode: number | EpisodeInfo, opts: { columns?: string[] } = {}): Promise<EpisodeTable> {
    const ep = typeof episode === "number" ? this.episode(episode) : episode;
    const wanted = opts.columns ?? Object.entries(this.info.features).filter(([k, f]) => featureKind(f) === "numeric" && !(INDEX_COLUMNS as readonly string[]).includes(k)).map(([k]) => k);
    for (const k of wanted) {
      const kind = featureKind(this.feature(k));
      if (kind === "video") throw new VlaError("DATA_INVALID", `feature '${k}' is a video; its frames are not in the table`, "read it with readFrames(episode, key, {width, height})");
      if (kind === "string") throw new VlaError("DATA_INVALID", `feature '${k}' holds strings, not numbers`, "leave it out of columns");
    }
    const pq = await this.parquet(this.dataFile(ep));
    const [start, end] = await this.rowRange(ep, pq);
    const T = end - start;
    if (T !== ep.length) throw new VlaError("DATA_INVALID", `${pq.path} has ${T} rows for episode ${ep.index} but the metadata says length ${ep.length}`, "the data file and meta/ disagree; re-download the dataset");
    const has = (c: string) => pq.columns.includes(c);
    if (!has("timestamp")) throw new VlaError("DATA_INVALID", `${pq.path} has no timestamp column`, "LeRobot frame tables carry a timestamp per row");
    const cols = [...new Set([...wanted, "timestamp", ...["frame_index", "task_index"].filter(has)])];
    const rows = await readRows(pq, cols, start, end);
    const timestamp = new Float64Array(T);
    const frameIndex = new Int32Array(T);
    const taskIndex = new Int32Array(T).fill(-1);
    const columns = new Map<string, NumericColumn>();
    const images = new Map<string, Uint8Array[]>();
    for (const k of wanted) {
      const f = this.feature(k);
      if (featureKind(f) === "image") {
        images.set(k, rows.map((r, t) => imageBytes(r[k], `${pq.path} ${k} row ${t}`)));
        continue;
      }
      const dims = featureSize(f);
      const data = f.dtype === "float32" ? new Float32Array(T * dims) : new Float64Array(T * dims);
      for (let t = 0; t < T; t++) copyList((rows[t] as Record<string, unknown>)[k], dims, data, t * dims, `${pq.path} ${k} row ${start + t}`);
      columns.set(k, { dims, data });
    }
    for (let t = 0; t < T; t++) {
      const r = rows[t] as Record<string, unknown>;
      timestamp[t] = asNumber(r.timestamp, `${pq.path} timestamp row ${start + t}`);
      frameIndex[t] = r.frame_index === undefined ? t : asNumber(r.frame_index, `${pq.path} frame_index`);
      if (r.task_index !== undefined) taskIndex[t] = asNumber(r.task_index, `${pq.path} task_index`);
    }
    return new EpisodeTable(ep.index, T, timestamp, frameIndex, taskIndex, columns, images);
  }

  /**
   * Stream an episode's camera frames as RGB8 of the requested size, one per
   * requested timestamp (default: one per row). A frame matches a timestamp
   * within 1/(2 fps); a missing frame is a VIDEO_DECODE error.
   */
  async *readFrames(episode: number | EpisodeInfo, key: string, req: FrameRequest): AsyncGenerator<Frame> {
    const ep = typeof episode === "number" ? this.episode(episode) : episode;
    const f = this.feature(key);
    const kind = featureKind(f);
    if (kind !== "video" && kind !== "image") throw new VlaError("DATA_INVALID", `feature '${key}' is ${f.dtype}, not a camera (cameras: ${this.cameraKeys.join(", ") || "none"})`, "pass a video or image feature");
    if (!(req.width >= 1 && req.height >= 1 && Number.isInteger(req.width) && Number.isInteger(req.height))) {
      throw new VlaError("DATA_INVALID", `frame size ${req.width}x${req.height} is not a positive integer size`, "pass e.g. {width: 224, height: 224}");
    }
    const tol = 1 / (2 * this.fps);
    const requested = req.timestamps ?? [];
    for (let i = 1; i < requested.length; i++) {
      if ((requested[i] as number) < (requested[i - 1] as number)) throw new VlaError("DATA_INVALID", `requested timestamps must ascend; ${requested[i]} follows ${requested[i - 1]}`, "sort the timestamps (frames stream in time order)");
    }
    let table: EpisodeTable | undefined;
    if (kind === "image" || !req.timestamps) table = await this.readEpisodeTable(ep, { columns: kind === "image" ? [key] : [] });
    const ts = req.timestamps ?? Array.from(table?.timestamp ?? []);
    if (kind === "image") {
      const t = table as EpisodeTable;
      const bytes = t.images.get(key) as Uint8Array[];
      let row = 0;
      for (const [i, want] of ts.entries()) {
        while (row < t.length && (t.timestamp[row] as number) < want - tol) row++;
        if (row >= t.length || Math.abs((t.timestamp[row] as number) - want) > tol) {
          throw new VlaError("VIDEO_DECODE", `episode ${ep.index} has no '${key}' image within ${tol.toFixed(4)} s of t=${want.toFixed(4)} s`, "request timestamps from the episode's table");
        }
        const img = decodeImageBytes(bytes[row] as Uint8Array, `episode ${ep.index} '${key}' row ${row}`);
        yield { index: i, timestamp: want, pts: t.timestamp[row] as number, image: img.width === req.width && img.height === req.height ? img : resizeBilinear(img, req.width, req.height) };
      }
      return;
    }
    const { file, offset, duration } = this.videoFile(ep, key);
    if (duration !== undefined) {
      for (const t of ts) {
        // frames of the episode sit at [0, duration); duration itself is the next episode's first frame
        if (t < -tol || t >= duration - tol) {
          throw new VlaError("DATA_INVALID", `timestamp ${t.toFixed(4)} s is outside episode ${ep.index}'s ${duration.toFixed(4)} s segment of ${file}`, "request timestamps from the episode's table");
        }
      }
    }
    const shifted = ts.map((t) => t + offset);
    for await (const fr of decodeFrames(file, { width: req.width, height: req.height, timestamps: shifted, tolerance: tol, ...(req.ffmpeg ? { ffmpeg: req.ffmpeg } : {}) })) {
      yield { index: fr.index, timestamp: ts[fr.index] as number, pts: fr.pts - offset, image: fr.image };
    }
  }
}

async function episodeRanges(pq: ParquetFile): Promise<Map<number, [number, number]>> {
  const out = new Map<number, [number, number]>();
  const rows = await readRows(pq, ["episode_index"]);
  for (const [i, r] of rows.entries()) {
    const e = asNumber(r.episode_index, `${pq.path} episode_index`);
    const cur = out.get(e);
    if (!cur) out.set(e, [i, i + 1]);
    else if (cur[1] === i) cur[1] = i + 1;
    else throw new VlaError("DATA_INVALID", `rows of episode ${e} in ${pq.path} are not contiguous`, "LeRobot v3.0 files store each episode's rows together; re-export the dataset");
  }
  return out;
}

function span(ep: EpisodeInfo, what: "data"): NonNullable<EpisodeInfo["data"]> {
  const s = ep[what];
  if (!s) throw new VlaError("DATA_INVALID", `episode ${ep.index} has no ${what} file location`, "v3.0 episode metadata needs data/chunk_index and data/file_index");
  return s;
}

function imageBytes(v: unknown, what: string): Uint8Array {
  const b = v && typeof v === "object" && "bytes" in v ? (v as { bytes: unknown }).bytes : v;
  if (b instanceof Uint8Array) return b;
  throw new VlaError("DATA_INVALID", `${what} holds no image bytes`, "image features are structs {bytes, path} with PNG/JPEG bytes embedded");
}

/** "1-3, 7" style summary of sorted integers. */
export function summarizeIndexes(xs: ReadonlyArray<number>): string {
  const parts: string[] = [];
  for (let i = 0; i < xs.length; ) {
    let j = i;
    while (j + 1 < xs.length && (xs[j + 1] as number) === (xs[j] as number) + 1) j++;
    parts.push(i === j ? String(xs[i]) : `${xs[i]}-${xs[j]}`);
    i = j + 1;
  }
  return parts.join(", ") || "none";
}
