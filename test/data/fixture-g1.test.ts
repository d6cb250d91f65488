/**
 * The real LeRobot v2.1 fixture (Unitree G1, AV1 video): metadata, tables
 * against LeRobot's own per-episode statistics, and decoded frames at their
 * timestamps. Skipped, with the reason printed, where ../shared is absent.
 */
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { StatsAccumulator } from "../../src/actions/stats.js";
import { LeRobotDataset } from "../../src/data/lerobot/dataset.js";
import { bindRecipe, loadRecipe, splitEpisodes } from "../../src/data/recipe.js";
import { episodeSamples } from "../../src/data/samples.js";
import type { RgbImage } from "../../src/data/episode.js";
import { meanAbsDiff } from "./synth.js";

const FIXTURE = fileURLToPath(new URL("../../../shared/fixtures/lerobot-v21-g1", import.meta.url));
const exists = fs.existsSync(path.join(FIXTURE, "meta", "info.json"));
if (!exists) console.warn(`skipping the LeRobot v2.1 fixture tests: ${FIXTURE} is absent (it lives in ../shared beside the checkout)`);

const CAM = "observation.images.cam_high";
const W = 64;
const H = 48;

async function decodeAll(ds: LeRobotDataset, ep: number, timestamps?: number[]): Promise<Array<{ index: number; timestamp: number; pts: number; image: RgbImage }>> {
  const out = [];
  for await (const f of ds.readFrames(ep, CAM, { width: W, height: H, ...(timestamps ? { timestamps } : {}) })) out.push(f);
  return out;
}

describe.skipIf(!exists)("LeRobot v2.1 fixture lerobot-v21-g1", () => {
  it("metadata: v2.1, 30 fps, episodes 1 and 2 (not 0..N-1), 736 frames, 26-dim action", async () => {
    const ds = await LeRobotDataset.open(FIXTURE);
    expect(ds.version).toBe("v2.1");
    expect(ds.fps).toBe(30);
    expect(ds.episodes.map((e) => e.index)).toEqual([1, 2]);
    expect(ds.episodes.map((e) => e.length)).toEqual([393, 343]);
    expect(ds.totalFrames).toBe(736);
    expect(ds.feature("action").shape).toEqual([26]);
    expect(ds.names("action")[0]).toBe("kLeftShoulderPitch");
    expect(ds.cameraKeys).toEqual([CAM]);
    expect(ds.tasks.get(0)).toBe("Pick up the yellow bottle on the table.");
    expect(() => ds.episode(0)).toThrow(/episode 0 is not in .*episodes: 1-2/);
  });

  it("tables match LeRobot's own episodes_stats.jsonl (min/max exact, mean/std close)", async () => {
    const ds = await LeRobotDataset.open(FIXTURE);
    const lines = fs.readFileSync(path.join(FIXTURE, "meta", "episodes_stats.jsonl"), "utf8").trim().split("\n");
    for (const line of lines) {
      const ref = JSON.parse(line) as { episode_index: number; stats: Record<string, { min: number[]; max: number[]; mean: number[]; std: number[]; count: number[] }> };
      const t = await ds.readEpisodeTable(ref.episode_index);
      expect(t.length).toBe(ref.stats.action?.count[0]);
      expect(Array.from(t.frameIndex)).toEqual(Array.from({ length: t.length }, (_, k) => k));
      for (let k = 0; k < t.length; k++) expect(Math.abs((t.timestamp[k] as number) - k / 30)).toBeLessThan(1e-5);
      for (const key of ["action", "observation.state"]) {
        const col = t.column(key);
        expect(col.dims).toBe(26);
        const acc = new StatsAccumulator(26);
        acc.pushRows(col.data, t.length);
        const s = acc.finalize();
        const r = ref.stats[key] as { min: number[]; max: number[]; mean: number[]; std: number[] };
        for (let d = 0; d < 26; d++) {
          expect(s.min[d]).toBe(r.min[d]);
          expect(s.max[d]).toBe(r.max[d]);
          expect(s.mean[d]).toBeCloseTo(r.mean[d] as number, 5);
          expect(s.std[d]).toBeCloseTo(r.std[d] as number, 5);
        }
      }
    }
  });

  it("decodes every frame of both AV1 episodes at its timestamp, and seeks to the same frames", async () => {
    const ds = await LeRobotDataset.open(FIXTURE);
    for (const ep of ds.episodes) {
      const frames = await decodeAll(ds, ep.index);
      expect(frames).toHaveLength(ep.length);
      frames.forEach((f, k) => {
        expect(f.index).toBe(k);
        expect(Math.abs(f.timestamp - k / 30)).toBeLessThan(1e-5);
        // the decoded frame's own presentation time, read from the AV1 stream
        expect(Math.abs(f.pts - k / 30)).toBeLessThan(1e-3);
        expect(f.image.data.length).toBe(W * H * 3);
      });
      // the scene changes: neighbouring frames are not all identical
      const diffs = frames.slice(1).map((f, k) => meanAbsDiff(f.image.data, (frames[k] as { image: RgbImage }).image.data));
      expect(Math.max(...diffs)).toBeGreaterThan(1);
      // seeking straight to frame k gives the frame the full pass gave for k
      const picks = [1, Math.floor(ep.length / 2), ep.length - 1].filter((k) => (diffs[k - 1] as number) > 0.5);
      expect(picks.length).toBeGreaterThan(0);
      const sought = await decodeAll(ds, ep.index, picks.map((k) => k / 30));
      expect(sought.map((f) => f.index)).toEqual(picks.map((_, i) => i));
      sought.forEach((f, i) => {
        const k = picks[i] as number;
        const own = meanAbsDiff(f.image.data, (frames[k] as { image: RgbImage }).image.data);
        const prev = meanAbsDiff(f.image.data, (frames[k - 1] as { image: RgbImage }).image.data);
        expect(own).toBeLessThan(0.5);
        expect(own).toBeLessThan(prev);
      });
    }
  });

  it("a timestamp past the video's end is a VIDEO_DECODE error naming the file", async () => {
    const ds = await LeRobotDataset.open(FIXTURE);
    await expect(decodeAll(ds, 1, [13.0, 13.2])).rejects.toMatchObject({ code: "VIDEO_DECODE", message: expect.stringMatching(/t=13\.2000 s .*episode_000001\.mp4/s) });
  });

  it("the shipped recipe binds and streams padded samples for the val episode", async () => {
    const ds = await LeRobotDataset.open(FIXTURE);
    const bound = bindRecipe(loadRecipe("lerobot-v21-g1"), ds);
    expect(bound.action.end - bound.action.start).toBe(26);
    expect(bound.cameras).toEqual([{ key: CAM, name: "head", kind: "video", width: 640, height: 480 }]);
    expect(splitEpisodes(bound.recipe, [1, 2])).toEqual({ train: [1], val: [2] });
    const t2 = await ds.readEpisodeTable(2, { columns: ["action"] });
    let n = 0;
    let last;
    for await (const s of episodeSamples(ds, bound, 2, { horizon: 8, width: 32, height: 24 })) {
      n++;
      last = s;
    }
    expect(n).toBe(343);
    expect(last?.frameIndex).toBe(342);
    expect(last?.instruction).toBe("Pick up the yellow bottle on the table.");
    expect(Array.from(last?.mask ?? [])).toEqual([1, 0, 0, 0, 0, 0, 0, 0]);
    const lastAction = Array.from(t2.column("action").data.slice(342 * 26, 343 * 26));
    for (let h = 0; h < 8; h++) expect(Array.from(last?.actions.slice(h * 26, (h + 1) * 26) ?? [])).toEqual(lastAction);
    expect(last?.images.head?.[0]?.width).toBe(32);
  });
});
