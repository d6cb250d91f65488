import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { EpisodeData } from "../../src/data/episode.js";
import { LeRobotDataset } from "../../src/data/lerobot/dataset.js";
import { writeLeRobotV21 } from "../../src/data/lerobot/writer.js";
import { bindRecipe, parseRecipe } from "../../src/data/recipe.js";
import { episodeSamples, historyIndices, targetChunk, tileSampleImages, type Sample } from "../../src/data/samples.js";
import { synthEpisode, synthLayout } from "./synth.js";

describe("targetChunk", () => {
  // T = 5 steps of A = 2: row t is [t, 10 t]
  const T = 5;
  const A = 2;
  const acts = Float32Array.from({ length: T * A }, (_, i) => (i % 2 === 0 ? i / 2 : (10 * (i - 1)) / 2));

  it("inside the episode: rows t..t+H-1, mask all ones", () => {
    const c = targetChunk(acts, T, A, 1, 3);
    expect(Array.from(c.actions)).toEqual([1, 10, 2, 20, 3, 30]);
    expect(Array.from(c.mask)).toEqual([1, 1, 1]);
  });

  it("at the end: repeats the last action and masks the padding rows", () => {
    const c = targetChunk(acts, T, A, 3, 4);
    expect(Array.from(c.actions)).toEqual([3, 30, 4, 40, 4, 40, 4, 40]);
    expect(Array.from(c.mask)).toEqual([1, 1, 0, 0]);
    const last = targetChunk(acts, T, A, 4, 3);
    expect(Array.from(last.mask)).toEqual([1, 0, 0]);
    expect(Array.from(last.actions)).toEqual([4, 40, 4, 40, 4, 40]);
  });

  it("rejects frames outside the episode and misshapen actions", () => {
    expect(() => targetChunk(acts, T, A, 5, 2)).toThrow(/frame 5 is outside/);
    expect(() => targetChunk(acts, T, 3, 0, 2)).toThrow(/expected T\*A/);
  });

  it("history indices clamp at the episode start", () => {
    expect(historyIndices(0, 2, 1)).toEqual([0, 0, 0]);
    expect(historyIndices(5, 2, 2)).toEqual([1, 3, 5]);
    expect(historyIndices(3, 0, 1)).toEqual([3]);
  });
});

describe("episodeSamples", () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "vlatext-samples-"));
  afterAll(() => fs.rmSync(root, { recursive: true, force: true }));
  const dir = path.join(root, "ds");
  const layout = synthLayout("png", { top: { width: 16, height: 12 }, front: { width: 16, height: 12 } });
  const eps: EpisodeData[] = [synthEpisode(layout, 6, 1, "stack the blocks")];

  beforeAll(async () => {
    await writeLeRobotV21(dir, layout, eps);
  });

  async function collect(history: number, instruction?: string): Promise<Sample[]> {
    const ds = await LeRobotDataset.open(dir);
    const bound = bindRecipe(
      parseRecipe({
        name: "s",
        action: { feature: "action", slice: [0, 3] },
        state: { feature: "observation.state" },
        cameras: { "observation.images.front": "front", "observation.images.top": "top" },
        actionSpec: {},
        ...(instruction ? { instruction } : {}),
      }),
      ds,
    );
    const out: Sample[] = [];
    for await (const s of episodeSamples(ds, bound, 0, { horizon: 4, width: 16, height: 12, history, historyStride: 2 })) out.push(s);
    return out;
  }

  it("one sample per frame with state, sliced chunk, mask and history frames", async () => {
    const src = eps[0] as EpisodeData;
    const samples = await collect(1);
    expect(samples).toHaveLength(6);
    const s4 = samples[4] as Sample;
    expect(s4.instruction).toBe("stack the blocks");
    expect(Array.from(s4.state)).toEqual(Array.from(src.states.slice(4 * 3, 5 * 3)));
    expect(Array.from(s4.mask)).toEqual([1, 1, 0, 0]);
    // action slice [0, 3) of rows 4, 5, 5, 5
    const row = (t: number) => Array.from(src.actions.slice(t * 4, t * 4 + 3));
    expect(Array.from(s4.actions)).toEqual([...row(4), ...row(5), ...row(5), ...row(5)]);
    // history stride 2: frames 2 and 4, oldest first; png storage is lossless
    expect(Object.keys(s4.images)).toEqual(["front", "top"]);
    expect(s4.images.top?.map((f) => Array.from(f.data))).toEqual([2, 4].map((t) => Array.from(src.images.top?.[t]?.data ?? [])));
    expect(samples[1]?.images.front?.map((f) => f.data)).toEqual([0, 1].map((t) => src.images.front?.[t]?.data));
  });

  it("the recipe's instruction overrides the dataset task; tiling follows camera order", async () => {
    const src = eps[0] as EpisodeData;
    const [s0] = await collect(0, "do the thing");
    expect(s0?.instruction).toBe("do the thing");
    const tiles = tileSampleImages(s0 as Sample);
    expect(tiles).toHaveLength(1);
    const t = tiles[0];
    expect([t?.width, t?.height]).toEqual([32, 12]);
    // left half is 'front', right half is 'top' (recipe order), row by row
    for (let y = 0; y < 12; y++) {
      expect(Array.from(t?.data.slice(y * 96, y * 96 + 48) ?? [])).toEqual(Array.from(src.images.front?.[0]?.data.slice(y * 48, (y + 1) * 48) ?? []));
      expect(Array.from(t?.data.slice(y * 96 + 48, (y + 1) * 96) ?? [])).toEqual(Array.from(src.images.top?.[0]?.data.slice(y * 48, (y + 1) * 48) ?? []));
    }
  });
});
