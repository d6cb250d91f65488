/**
 * Broken datasets fail with a VlaError whose code says what kind of problem
 * it is and whose message names the file or key.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LeRobotDataset } from "../../src/data/lerobot/dataset.js";
import { writeLeRobotV21, writeLeRobotV30 } from "../../src/data/lerobot/writer.js";
import { synthEpisode, synthLayout } from "./synth.js";

const root = fs.mkdtempSync(path.join(os.tmpdir(), "vlatext-err-"));
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

const base21 = path.join(root, "base21");
const base30 = path.join(root, "base30");

beforeAll(async () => {
  const layout = synthLayout("mp4", { top: { width: 16, height: 16 } });
  const eps = [synthEpisode(layout, 10, 1, "a"), synthEpisode(layout, 6, 2, "b")];
  await writeLeRobotV21(base21, layout, eps);
  await writeLeRobotV30(base30, layout, eps, { episodesPerFile: 2 });
});

/** A private copy of a base dataset to break. */
function copy(base: string, name: string): string {
  const dir = path.join(root, name);
  fs.cpSync(base, dir, { recursive: true });
  return dir;
}

async function drain<T>(it: AsyncIterable<T>): Promise<number> {
  let n = 0;
  for await (const _ of it) n++;
  return n;
}

describe("dataset errors", () => {
  it("truncated parquet: DATA_INVALID naming the file", async () => {
    const dir = copy(base21, "truncated");
    const file = path.join(dir, "data/chunk-000/episode_000001.parquet");
    const bytes = fs.readFileSync(file);
    fs.writeFileSync(file, bytes.subarray(0, Math.floor(bytes.length / 2)));
    const ds = await LeRobotDataset.open(dir);
    await expect(ds.readEpisodeTable(0)).resolves.toBeDefined();
    await expect(ds.readEpisodeTable(1)).rejects.toMatchObject({ code: "DATA_INVALID", message: expect.stringContaining("episode_000001.parquet"), hint: expect.stringContaining("again") });
  });

  it("truncated v3.0 episode metadata fails at open", async () => {
    const dir = copy(base30, "truncated-meta");
    const file = path.join(dir, "meta/episodes/chunk-000/file-000.parquet");
    fs.writeFileSync(file, fs.readFileSync(file).subarray(0, 100));
    await expect(LeRobotDataset.open(dir)).rejects.toMatchObject({ code: "DATA_INVALID", message: expect.stringContaining("file-000.parquet") });
  });

  it("missing video: DATA_MISSING naming the mp4", async () => {
    const dir = copy(base21, "novideo");
    fs.rmSync(path.join(dir, "videos/chunk-000/observation.images.top/episode_000000.mp4"));
    const ds = await LeRobotDataset.open(dir);
    await expect(drain(ds.readFrames(0, "observation.images.top", { width: 16, height: 16 }))).rejects.toMatchObject({
      code: "DATA_MISSING",
      message: expect.stringContaining("observation.images.top/episode_000000.mp4"),
    });
  });

  it("a video shorter than its table: VIDEO_DECODE naming the missing time", async () => {
    const dir = copy(base21, "shortvideo");
    const v = (ep: number) => path.join(dir, `videos/chunk-000/observation.images.top/episode_00000${ep}.mp4`);
    fs.copyFileSync(v(1), v(0)); // 6 frames where the table has 10
    const ds = await LeRobotDataset.open(dir);
    await expect(drain(ds.readFrames(0, "observation.images.top", { width: 16, height: 16 }))).rejects.toMatchObject({
      code: "VIDEO_DECODE",
      message: expect.stringMatching(/t=0\.6000 s \(request 6 of 10\).*episode_000000\.mp4/s),
    });
  });

  it("a feature that does not exist: DATA_MISSING naming it and listing the real ones", async () => {
    const ds = await LeRobotDataset.open(base21);
    await expect(ds.readEpisodeTable(0, { columns: ["observation.nope"] })).rejects.toMatchObject({ code: "DATA_MISSING", message: expect.stringMatching(/'observation\.nope'.*action/s) });
    await expect(drain(ds.readFrames(0, "observation.images.side", { width: 8, height: 8 }))).rejects.toMatchObject({ code: "DATA_MISSING", message: expect.stringContaining("observation.images.side") });
    await expect(drain(ds.readFrames(0, "action", { width: 8, height: 8 }))).rejects.toMatchObject({ code: "DATA_INVALID", message: expect.stringContaining("not a camera") });
  });

  it("missing or malformed metadata", async () => {
    await expect(LeRobotDataset.open(path.join(root, "nowhere"))).rejects.toMatchObject({ code: "DATA_MISSING" });
    const dir = copy(base21, "badinfo");
    fs.writeFileSync(path.join(dir, "meta/info.json"), JSON.stringify({ codebase_version: "v1.6", fps: 10, total_episodes: 1, total_frames: 1, data_path: "x", features: {} }));
    await expect(LeRobotDataset.open(dir)).rejects.toMatchObject({ code: "DATA_INVALID", message: expect.stringContaining("v1.6") });
    fs.writeFileSync(path.join(dir, "meta/info.json"), "{\"fps\": ");
    await expect(LeRobotDataset.open(dir)).rejects.toMatchObject({ code: "DATA_INVALID", message: expect.stringContaining("info.json") });
    const dir2 = copy(base21, "badjsonl");
    fs.appendFileSync(path.join(dir2, "meta/episodes.jsonl"), '{"episode_index": 5, "tasks": "x"}\n');
    await expect(LeRobotDataset.open(dir2)).rejects.toMatchObject({ code: "DATA_INVALID", message: expect.stringMatching(/episodes\.jsonl:3.*tasks/s) });
  });

  it("metadata length disagreeing with the data file is caught", async () => {
    const dir = copy(base21, "badlength");
    const f = path.join(dir, "meta/episodes.jsonl");
    fs.writeFileSync(f, fs.readFileSync(f, "utf8").replace('"length":10', '"length":11'));
    const ds = await LeRobotDataset.open(dir);
    await expect(ds.readEpisodeTable(0)).rejects.toMatchObject({ code: "DATA_INVALID", message: expect.stringMatching(/10 rows .* length 11/) });
  });

  it("v3.0: a timestamp outside the episode's segment of the shared video is refused", async () => {
    const ds = await LeRobotDataset.open(base30);
    await expect(drain(ds.readFrames(0, "observation.images.top", { width: 16, height: 16, timestamps: [0.5, 1.0] }))).rejects.toMatchObject({ code: "DATA_INVALID", message: expect.stringContaining("outside episode 0") });
    expect(await drain(ds.readFrames(0, "observation.images.top", { width: 16, height: 16, timestamps: [0, 0.9] }))).toBe(2);
    expect(await drain(ds.readFrames(1, "observation.images.top", { width: 16, height: 16, timestamps: [0, 0.5] }))).toBe(2);
  });
});
