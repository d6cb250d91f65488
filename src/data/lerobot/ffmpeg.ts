/**
 * ffmpeg as a child process: find it, probe a video, stream decoded RGB
 * frames with their presentation times, and encode RGB frames to mp4.
 *
 * Which ffmpeg: $VLATEXT_FFMPEG, else `ffmpeg` on PATH (the system one,
 * `apt-get install -y ffmpeg`), else the static build shipped by the optional
 * npm package @ffmpeg-installer/<platform>-<arch> (ffmpeg 4.x from 2018: it
 * decodes AV1 only through libaom, slowly; a system ffmpeg is preferred).
 *
 * Frame times come from the `showinfo` filter (one log line per frame, in
 * output order), so every decoded frame is matched to a requested timestamp
 * by its real pts, never by counting.
 */
import { execFileSync, spawn } from "node:child_process";
import fs from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { VlaError } from "../../errors.js";
import type { RgbImage } from "../episode.js";

export interface Ffmpeg {
  path: string;
  source: "env" | "system" | "npm";
  version: string;
  /** libavformat (major, minor): decides -fps_mode (>= 59.27) vs -vsync. */
  avformat: [number, number];
}

const INSTALL_HINT = "install the system ffmpeg (apt-get install -y ffmpeg) or set VLATEXT_FFMPEG=/path/to/ffmpeg";

function onPath(name: string, envPath: string | undefined): string | undefined {
  for (const dir of (envPath ?? "").split(path.delimiter)) {
    if (!dir) continue;
    const p = path.join(dir, name);
    try {
      fs.accessSync(p, fs.constants.X_OK);
      if (fs.statSync(p).isFile()) return p;
    } catch {
      // not here
    }
  }
  return undefined;
}

function npmFfmpeg(): string | undefined {
  try {
    const req = createRequire(import.meta.url);
    const pkg = req.resolve(`@ffmpeg-installer/${process.platform}-${process.arch}/package.json`);
    const bin = path.join(path.dirname(pkg), process.platform === "win32" ? "ffmpeg.exe" : "ffmpeg");
    return fs.existsSync(bin) ? bin : undefined;
  } catch {
    return undefined;
  }
}

/** path -> what `ffmpeg -version` said (the source can differ per call). */
const cache = new Map<string, Pick<Ffmpeg, "version" | "avformat">>();

/** Resolve ffmpeg (see the file comment for the order); throws VIDEO_DECODE when none runs. */
export function findFfmpeg(env: NodeJS.ProcessEnv = process.env): Ffmpeg {
  const fromEnv = env.VLATEXT_FFMPEG;
  let found: { path: string; source: Ffmpeg["source"] } | undefined;
  if (fromEnv) found = { path: fromEnv, source: "env" };
  else {
    const sys = onPath("ffmpeg", env.PATH);
    if (sys) found = { path: sys, source: "system" };
    else {
      const npm = npmFfmpeg();
      if (npm) found = { path: npm, source: "npm" };
    }
  }
  if (!found) throw new VlaError("VIDEO_DECODE", "no ffmpeg found (VLATEXT_FFMPEG unset, none on PATH, @ffmpeg-installer not installed)", INSTALL_HINT);
  const hit = cache.get(found.path);
  if (hit) return { ...found, ...hit };
  let text: string;
  try {
    text = execFileSync(found.path, ["-hide_banner", "-version"], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
  } catch (e) {
    throw new VlaError("VIDEO_DECODE", `ffmpeg at ${found.path} (${found.source}) does not run: ${(e as Error).message}`, INSTALL_HINT, { cause: e });
  }
  const version = /ffmpeg version (\S+)/.exec(text)?.[1] ?? "unknown";
  const av = /libavformat\s+(\d+)\.\s*(\d+)/.exec(text);
  const probed: Pick<Ffmpeg, "version" | "avformat"> = { version, avformat: [Number(av?.[1] ?? 0), Number(av?.[2] ?? 0)] };
  cache.set(found.path, probed);
  return { ...found, ...probed };
}

export function describeFfmpeg(ff: Ffmpeg): string {
  return `ffmpeg ${ff.version} (${ff.source}: ${ff.path})`;
}

function passthroughArgs(ff: Ffmpeg): string[] {
  const [maj, min] = ff.avformat;
  return maj > 59 || (maj === 59 && min >= 27) ? ["-fps_mode", "passthrough"] : ["-vsync", "passthrough"];
}

const encoderCache = new Map<string, Set<string>>();

/** Names of the video encoders this ffmpeg has. */
export function ffmpegEncoders(ff: Ffmpeg): Set<string> {
  const hit = encoderCache.get(ff.path);
  if (hit) return hit;
  const text = execFileSync(ff.path, ["-hide_banner", "-encoders"], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
  const set = new Set<string>();
  for (const line of text.split("\n")) {
    const m = /^\s*V\S*\s+(\S+)/.exec(line);
    if (m?.[1]) set.add(m[1]);
  }
  encoderCache.set(ff.path, set);
  return set;
}

export interface VideoProbe {
  codec: string;
  width: number;
  height: number;
  fps: number | undefined;
  duration: number | undefined;
}

/** Read codec, size, fps and duration from `ffmpeg -i` (no ffprobe needed). */
export function probeVideo(file: string, ff: Ffmpeg = findFfmpeg()): VideoProbe {
  if (!fs.existsSync(file)) throw new VlaError("DATA_MISSING", `video file not found: ${file}`, "the dataset is incomplete; download it again");
  let text = "";
  try {
    execFileSync(ff.path, ["-hide_banner", "-nostdin", "-i", file], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
  } catch (e) {
    text = String((e as { stderr?: unknown }).stderr ?? "");
  }
  const m = /Stream #\d+:\d+.*?: Video: (\w+).*?, (\d+)x(\d+)/.exec(text);
  if (!m) throw new VlaError("VIDEO_DECODE", `${describeFfmpeg(ff)} finds no video stream in ${file}:\n${tail(text)}`, "the file is corrupt or not a video; export it again");
  const fps = /, ([\d.]+) fps/.exec(text)?.[1];
  const d = /Duration: (\d+):(\d+):([\d.]+)/.exec(text);
  return {
    codec: m[1] as string,
    width: Number(m[2]),
    height: Number(m[3]),
    fps: fps ? Number(fps) : undefined,
    duration: d ? Number(d[1]) * 3600 + Number(d[2]) * 60 + Number(d[3]) : undefined,
  };
}

function tail(text: string, lines = 12): string {
  return text.split("\n").filter((l) => l.trim() && !l.includes("Parsed_showinfo")).slice(-lines).join("\n");
}

export interface DecodeRequest {
  width: number;
  height: number;
  /** Ascending times (seconds, in the file's own timeline) to fetch a frame for. */
  timestamps: ReadonlyArray<number>;
  /** A decoded frame serves a request when |pts - t| <= tolerance. */
  tolerance: number;
  ffmpeg?: Ffmpeg;
}

export interface DecodedFrame {
  /** Position in the requested timestamps. */
  index: number;
  /** Requested time. */
  timestamp: number;
  /** Presentation time of the decoded frame. */
  pts: number;
  image: RgbImage;
}

/**
 * Stream the frames at `timestamps` from `file`, scaled (bilinear) to
 * width x height RGB8. Seeks to the first timestamp and stops after the last.
 * Throws VIDEO_DECODE when a requested time has no frame within tolerance.
 */
export async function* decodeFrames(file: string, req: DecodeRequest): AsyncGenerator<DecodedFrame> {
  const ts = req.timestamps;
  if (ts.length === 0) return;
  for (let i = 1; i < ts.length; i++) {
    if ((ts[i] as number) < (ts[i - 1] as number)) throw new VlaError("VIDEO_DECODE", `requested timestamps must ascend; ${ts[i]} follows ${ts[i - 1]}`, "sort the timestamps");
  }
  if (!fs.existsSync(file)) throw new VlaError("DATA_MISSING", `video file not found: ${file}`, "the dataset is incomplete; download it again or fix video_path in meta/info.json");
  const ff = req.ffmpeg ?? findFfmpeg();
  const { width: w, height: h, tolerance: tol } = req;
  const start = Math.max(0, (ts[0] as number) - tol);
  const end = (ts[ts.length - 1] as number) + 2 * tol;
  const args = ["-hide_banner", "-nostdin", "-nostats", "-loglevel", "info"];
  if (start > 0) args.push("-ss", start.toFixed(6));
  // trim (not -to) ends the stream inside the filter graph, before showinfo, so
  // every logged frame reaches stdout; -copyts keeps the file's own timeline.
  args.push("-copyts", "-i", file, "-an", "-sn", "-vf", `trim=end=${end.toFixed(6)},scale=${w}:${h}:flags=bilinear,showinfo`);
  args.push(...passthroughArgs(ff), "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1");
  const child = spawn(ff.path, args, { stdio: ["ignore", "pipe", "pipe"] });
  const frameBytes = w * h * 3;
  const frames: Buffer[] = [];
  const times: number[] = [];
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  let timeBase: number | undefined;
  let codec = "";
  let log = "";
  let lineBuf = "";
  let exit: { code: number | null; error?: Error } | undefined;
  let wake: (() => void) | undefined;
  const notify = () => {
    const f = wake;
    wake = undefined;
    f?.();
  };
  child.stdout.on("data", (chunk: Buffer) => {
    pending.push(chunk);
    pendingBytes += chunk.length;
    if (pendingBytes >= frameBytes) {
      let all = Buffer.concat(pending);
      while (all.length >= frameBytes) {
        frames.push(Buffer.from(all.subarray(0, frameBytes)));
        all = all.subarray(frameBytes);
      }
      pending = all.length > 0 ? [all] : [];
      pendingBytes = all.length;
      if (frames.length > 8) child.stdout.pause();
      notify();
    }
  });
  child.stderr.setEncoding("utf8");
  child.stderr.on("data", (text: string) => {
    lineBuf += text;
    const lines = lineBuf.split(/\r?\n|\r/);
    lineBuf = lines.pop() ?? "";
    for (const line of lines) {
      const m = /\bn:\s*\d+\s+pts:\s*(-?\d+)\s+pts_time:(\S+)/.exec(line);
      if (m) {
        times.push(timeBase !== undefined ? Number(m[1]) * timeBase : Number(m[2]));
        continue;
      }
      const tb = /config in time_base:\s*(\d+)\/(\d+)/.exec(line);
      if (tb && Number(tb[2]) > 0 && timeBase === undefined) timeBase = Number(tb[1]) / Number(tb[2]);
      const c = /Stream #\d+:\d+.*?: Video: (\w+)/.exec(line);
      if (c && !codec) codec = c[1] as string;
      if (log.length < 64_000) log += line + "\n";
    }
    notify();
  });
  child.on("error", (error) => {
    exit = { code: null, error };
    notify();
  });
  child.on("close", (code) => {
    exit ??= { code };
    notify();
  });
  const what = `${file} (${w}x${h}, ${describeFfmpeg(ff)})`;
  const decodeHint = () =>
    codec === "av1" && ff.source === "npm"
      ? `this video is AV1 and the npm-bundled ffmpeg may not decode it: ${INSTALL_HINT}`
      : `check the file plays (ffmpeg -i ${file} -f null -); ${INSTALL_HINT}`;
  let r = 0;
  let lastPts = -Infinity;
  let gapAt: number | undefined;
  try {
    while (r < ts.length) {
      if (frames.length > 0 && times.length > 0) {
        const buf = frames.shift() as Buffer;
        const pts = times.shift() as number;
        if (frames.length < 4) child.stdout.resume();
        if ((ts[r] as number) < pts - tol) {
          gapAt = pts; // a requested time fell between two decoded frames
          break;
        }
        lastPts = pts;
        let first = true;
        while (r < ts.length && Math.abs((ts[r] as number) - pts) <= tol) {
          const data = first ? new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength) : new Uint8Array(buf);
          first = false;
          yield { index: r, timestamp: ts[r] as number, pts, image: { width: w, height: h, data } };
          r++;
        }
        continue;
      }
      if (exit) break;
      await new Promise<void>((resolve) => (wake = resolve));
    }
    if (r < ts.length) {
      if (exit?.error) throw new VlaError("VIDEO_DECODE", `cannot run ${describeFfmpeg(ff)}: ${exit.error.message}`, INSTALL_HINT, { cause: exit.error });
      if (exit && exit.code !== 0) throw new VlaError("VIDEO_DECODE", `ffmpeg failed (exit ${exit.code}) decoding ${what}:\n${tail(log)}`, decodeHint());
      const before = Number.isFinite(lastPts) ? `frame before it at ${lastPts.toFixed(4)} s` : "no frame before it";
      const after = gapAt !== undefined ? `next frame at ${gapAt.toFixed(4)} s` : "no frame after it (the video ends)";
      throw new VlaError(
        "VIDEO_DECODE",
        `no frame within ${tol.toFixed(4)} s of t=${(ts[r] as number).toFixed(4)} s (request ${r} of ${ts.length}) in ${what}; ${before}, ${after}`,
        "the video and the data table disagree (dropped frames or a short video); re-export the dataset or drop this episode",
      );
    }
  } finally {
    if (!exit) {
      child.stdout.destroy();
      child.stderr.destroy();
      child.kill("SIGKILL");
    }
  }
}

export interface EncodeOptions {
  width: number;
  height: number;
  fps: number;
  ffmpeg?: Ffmpeg;
}

/** The codec arguments for mp4 output: libx264 when present, else mpeg4. */
export function videoCodecArgs(ff: Ffmpeg): { codec: string; args: string[] } {
  const enc = ffmpegEncoders(ff);
  if (enc.has("libx264")) return { codec: "h264", args: ["-c:v", "libx264", "-preset", "veryfast", "-crf", "18", "-g", "2"] };
  if (enc.has("mpeg4")) return { codec: "mpeg4", args: ["-c:v", "mpeg4", "-q:v", "2", "-g", "2"] };
  throw new VlaError("VIDEO_ENCODE", `${describeFfmpeg(ff)} has neither libx264 nor mpeg4 encoders`, INSTALL_HINT);
}

/** An ffmpeg process encoding RGB8 frames, written in order, to one mp4 (yuv420p). */
export class VideoEncoder {
  readonly file: string;
  readonly codec: string;
  private readonly opts: EncodeOptions;
  private readonly child: ReturnType<typeof spawn>;
  private readonly done: Promise<{ code: number | null; error?: Error }>;
  private log = "";
  frames = 0;

  constructor(file: string, opts: EncodeOptions) {
    const ff = opts.ffmpeg ?? findFfmpeg();
    if (opts.width % 2 !== 0 || opts.height % 2 !== 0) {
      throw new VlaError("VIDEO_ENCODE", `cannot encode ${opts.width}x${opts.height} frames to ${file}: yuv420p mp4 needs even width and height`, "use even camera sizes, or imageStorage 'png'");
    }
    const { codec, args } = videoCodecArgs(ff);
    this.file = file;
    this.codec = codec;
    this.opts = opts;
    const argv = ["-hide_banner", "-nostats", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", `${opts.width}x${opts.height}`, "-r", String(opts.fps), "-i", "pipe:0"];
    argv.push("-an", ...args, "-pix_fmt", "yuv420p", "-y", file);
    this.child = spawn(ff.path, argv, { stdio: ["pipe", "ignore", "pipe"] });
    this.child.stderr?.setEncoding("utf8");
    this.child.stderr?.on("data", (t: string) => {
      if (this.log.length < 16_000) this.log += t;
    });
    this.done = new Promise((resolve) => {
      this.child.on("error", (error) => resolve({ code: null, error }));
      this.child.on("close", (code) => resolve({ code }));
    });
  }

  /** Append one frame (must match the encoder's size); waits when the pipe is full. */
  async write(img: RgbImage): Promise<void> {
    if (img.width !== this.opts.width || img.height !== this.opts.height) {
      throw new VlaError("VIDEO_ENCODE", `frame ${this.frames} for ${this.file} is ${img.width}x${img.height}, expected ${this.opts.width}x${this.opts.height}`, "every frame of a camera must have the camera's size");
    }
    const stdin = this.child.stdin;
    if (!stdin || stdin.destroyed) throw await this.failure();
    this.frames++;
    const ok = stdin.write(img.data);
    if (!ok) {
      const drained = await Promise.race([new Promise<boolean>((res) => stdin.once("drain", () => res(true))), this.done.then(() => false)]);
      if (!drained) throw await this.failure();
    }
  }

  private async failure(): Promise<VlaError> {
    const r = await this.done;
    const why = r.error ? r.error.message : `exit ${r.code}: ${this.log.trim()}`;
    return new VlaError("VIDEO_ENCODE", `ffmpeg failed writing ${this.file}: ${why}`, INSTALL_HINT);
  }

  /** Close the stream and wait for the file; throws VIDEO_ENCODE on failure. */
  async finish(): Promise<void> {
    this.child.stdin?.end();
    const r = await this.done;
    if (r.error || r.code !== 0) throw await this.failure();
  }

  /** Kill the process (on error paths). */
  abort(): void {
    this.child.kill("SIGKILL");
  }
}
