import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import type { EpisodeData } from "../../src/data/episode.js";
import { LeRobotDataset } from "../../src/data/lerobot/dataset.js";
import { probeVideo } from "../../src/data/lerobot/ffmpeg.js";
import { V21_DATA_PATH, V21_VIDEO_PATH } from "../../src/data/lerobot/format.js";
import { writeLeRobotV21, writeLeRobotV30 } from "../../src/data/lerobot/writer.js";
import { meanAbsDiff, synthEpisode, synthLayout } from "./synth.js";

const root = fs.mkdtempSync(path.join(os.tmpdir(), "vlatext-rt-"));
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

const LENGTHS = [12, 9, 7];
const TASKS = ["pick the cube", "place the cube", "pick the cube"];

function episodes(storage: "png" | "mp4"): EpisodeData[] {
  const layout = synthLayout(storage);
  return LENGTHS.map((T, i) => synthEpisode(layout, T, i + 1, TASKS[i] as string));
}

async function expectTablesExact(ds: LeRobotDataset, eps: EpisodeData[]): Promise<void> {
  let global = 0;
  for (const [i, src] of eps.entries()) {
    const t = await ds.readEpisodeTable(i, { columns: ["action", "observation.state", "index"] });
    expect(t.length).toBe(src.length);
    expect(Array.from(t.column("action").data)).toEqual(Array.from(src.actions));
    expect(Array.from(t.column("observation.state").data)).toEqual(Array.from(src.states));
    expect(Array.from(t.frameIndex)).toEqual(Array.from({ length: src.length }, (_, k) => k));
    for (let k = 0; k < src.length; k++) expect(t.timestamp[k]).toBeCloseTo(k / 10, 6);
    expect(Array.from(t.column("index").data)).toEqual(Array.from({ length: src.length }, (_, k) => global + k));
    expect(ds.tasks.get(t.taskIndex[0] as number)).toBe(TASKS[i]);
    global += src.length;
  }
}

/**
 * Every decoded frame is near its source frame and nearer to it than to the
 * neighbouring source frames (so an off-by-one frame would fail), for both
 * cameras of every episode.
 */
async function expectFrames(ds: LeRobotDataset, eps: EpisodeData[], maxMad: number): Promise<void> {
  for (const [i, src] of eps.entries()) {
    for (const [name, key] of [["top", "observation.images.top"], ["front", "observation.images.front"]] as const) {
      const frames = src.images[name] as EpisodeData["images"][string];
      const { width, height } = frames[0] as { width: number; height: number };
      let n = 0;
      for await (const f of ds.readFrames(i, key, { width, height })) {
        expect(f.index).toBe(n);
        expect(f.pts).toBeCloseTo(n / 10, 3);
        const own = meanAbsDiff(f.image.data, (frames[n] as { data: Uint8Array }).data);
        expect(own).toBeLessThanOrEqual(maxMad);
        for (const j of [n - 1, n + 1]) {
          const other = frames[j];
          if (other) expect(meanAbsDiff(f.image.data, other.data)).toBeGreaterThan(own);
        }
        n++;
      }
      expect(n).toBe(src.length);
    }
  }
}

describe("LeRobot v2.1 round trip", () => {
  it("png storage reads back tables and frames exactly", async () => {
    const eps = episodes("png");
    const dir = path.join(root, "v21-png");
    const summary = await writeLeRobotV21(dir, synthLayout("png"), eps);
    expect(summary).toMatchObject({ version: "v2.1", episodes: 3, frames: 28, tasks: 2 });
    const ds = await LeRobotDataset.open(dir);
    expect(ds.version).toBe("v2.1");
    expect(ds.episodes.map((e) => [e.index, e.length, e.tasks[0]])).toEqual(LENGTHS.map((T, i) => [i, T, TASKS[i]]));
    expect(ds.episodes[1]?.extra.success).toBe(true);
    expect(ds.feature("observation.images.top")).toMatchObject({ dtype: "image", shape: [24, 32, 3] });
    expect(ds.names("action")).toEqual(["x", "y", "z", "gripper"]);
    await expectTablesExact(ds, eps);
    await expectFrames(ds, eps, 0);
    const info = JSON.parse(fs.readFileSync(path.join(dir, "meta", "info.json"), "utf8")) as Record<string, unknown>;
    expect(info.data_path).toBe(V21_DATA_PATH);
    expect(info.video_path).toBeNull();
    const stats = fs.readFileSync(path.join(dir, "meta", "episodes_stats.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l) as { stats: Record<string, { min: unknown; count: number[] }> });
    expect(stats).toHaveLength(3);
    expect(stats[0]?.stats.action?.count).toEqual([12]);
    expect((stats[0]?.stats["observation.images.top"]?.min as number[][][]).length).toBe(3);
  });

  it("mp4 storage uses LeRobot's paths and decodes close to the source frames", async () => {
    const eps = episodes("mp4");
    const dir = path.join(root, "v21-mp4");
    const summary = await writeLeRobotV21(dir, synthLayout("mp4"), eps);
    expect(summary.video?.codec).toMatch(/^(h264|mpeg4)$/);
    const ds = await LeRobotDataset.open(dir);
    expect(ds.info.video_path).toBe(V21_VIDEO_PATH);
    const vid = ds.videoFile(ds.episode(2), "observation.images.top").file;
    expect(vid).toBe(path.join(dir, "videos/chunk-000/observation.images.top/episode_000002.mp4"));
    expect(probeVideo(vid)).toMatchObject({ width: 32, height: 24 });
    await expectTablesExact(ds, eps);
    // lossy codec on 32x24 frames with hard edges: a few levels of error per byte
    await expectFrames(ds, eps, 8);
  });
});

describe("LeRobot v3.0 round trip", () => {
  it("multi-episode files: tables exact, frames from the right offset of the shared mp4", async () => {
    const eps = episodes("mp4");
    const dir = path.join(root, "v30-mp4");
    await writeLeRobotV30(dir, synthLayout("mp4"), eps, { episodesPerFile: 2 });
    for (const f of ["data/chunk-000/file-000.parquet", "data/chunk-000/file-001.parquet", "meta/tasks.parquet", "meta/episodes/chunk-000/file-000.parquet", "meta/stats.json"]) {
      expect(fs.existsSync(path.join(dir, f)), f).toBe(true);
    }
    expect(fs.existsSync(path.join(dir, "data/chunk-000/file-002.parquet"))).toBe(false);
    const ds = await LeRobotDataset.open(dir);
    expect(ds.version).toBe("v3.0");
    expect(ds.tasks.get(0)).toBe("pick the cube");
    const [e0, e1, e2] = ds.episodes;
    expect(e1?.data).toEqual({ chunk: 0, file: 0, from: 12, to: 21 });
    expect(e1?.videos?.["observation.images.top"]).toEqual({ chunk: 0, file: 0, from: 1.2, to: 2.1 });
    expect(e2?.videos?.["observation.images.front"]).toMatchObject({ file: 1, from: 0 });
    expect(e0?.extra.success).toBe(false);
    // the shared video of file 0 holds both episodes back to back
    const shared = ds.videoFile(e1 as NonNullable<typeof e1>, "observation.images.top");
    expect(shared.offset).toBeCloseTo(1.2, 9);
    expect(probeVideo(shared.file).duration).toBeCloseTo(2.1, 1);
    await expectTablesExact(ds, eps);
    await expectFrames(ds, eps, 8);
    const stats = JSON.parse(fs.readFileSync(path.join(dir, "meta", "stats.json"), "utf8")) as Record<string, { count: number[]; min: number[] }>;
    expect(stats.action?.count).toEqual([28]);
    const allActions = eps.flatMap((e) => Array.from(e.actions));
    expect(stats.action?.min[0]).toBeCloseTo(Math.min(...allActions.filter((_, i) => i % 4 === 0)), 6);
  });

  it("png storage in multi-episode parquet reads back exactly", async () => {
    const eps = episodes("png");
    const dir = path.join(root, "v30-png");
    await writeLeRobotV30(dir, synthLayout("png"), eps, { episodesPerFile: 3 });
    const ds = await LeRobotDataset.open(dir);
    expect(ds.episodes.map((e) => e.data?.file)).toEqual([0, 0, 0]);
    await expectTablesExact(ds, eps);
    await expectFrames(ds, eps, 0);
  });
});

describe("writer safety", () => {
  it("a bad episode leaves neither the folder nor a temp folder behind", async () => {
    const layout = synthLayout("png");
    const good = synthEpisode(layout, 5, 1, "t");
    const bad = { ...synthEpisode(layout, 5, 2, "t"), actions: new Float32Array(3) };
    const dir = path.join(root, "bad");
    async function* stream() {
      yield good;
      yield bad;
    }
    await expect(writeLeRobotV21(dir, layout, stream())).rejects.toMatchObject({ code: "DATA_INVALID", message: expect.stringContaining("episode 1: actions hold 3 values") });
    expect(fs.readdirSync(root).filter((f) => f.includes("bad"))).toEqual([]);
  });

  it("refuses to overwrite an existing folder unless asked", async () => {
    const layout = synthLayout("png");
    const dir = path.join(root, "exists");
    fs.mkdirSync(dir);
    await expect(writeLeRobotV21(dir, layout, [synthEpisode(layout, 3, 1, "t")])).rejects.toMatchObject({ code: "DATA_INVALID" });
    await writeLeRobotV21(dir, layout, [synthEpisode(layout, 3, 1, "t")], { overwrite: true });
    expect((await LeRobotDataset.open(dir)).totalFrames).toBe(3);
  });

  it("rejects odd camera sizes for mp4", async () => {
    const layout = synthLayout("mp4", { top: { width: 31, height: 24 } });
    await expect(writeLeRobotV21(path.join(root, "odd"), layout, [])).rejects.toMatchObject({ code: "DATA_INVALID", message: expect.stringContaining("even") });
  });
});
