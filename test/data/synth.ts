/**
 * Synthetic episodes for writer/reader round trips: every frame differs from
 * its neighbours (a square moves, the background shifts), so a reader that
 * returns the wrong frame is caught; values are deterministic per seed.
 */
import type { DatasetLayout, EpisodeData, RgbImage } from "../../src/data/episode.js";
import { Rng } from "../../src/data/rng.js";

export function synthFrame(width: number, height: number, t: number, cam: number): RgbImage {
  const data = new Uint8Array(width * height * 3);
  const sq = Math.max(4, Math.floor(Math.min(width, height) / 4));
  const x0 = (t * 3 + cam * 5) % (width - sq);
  const y0 = (t * 2) % (height - sq);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const o = (y * width + x) * 3;
      const inSq = x >= x0 && x < x0 + sq && y >= y0 && y < y0 + sq;
      data[o] = inSq ? 230 : (40 + t * 7 + cam * 50) % 200;
      data[o + 1] = inSq ? 220 : (60 + x * 2) % 200;
      data[o + 2] = inSq ? 30 : (80 + y * 3 + cam * 20) % 200;
    }
  }
  return { width, height, data };
}

export function synthLayout(imageStorage: "png" | "mp4", cameras: Record<string, { width: number; height: number }> = { top: { width: 32, height: 24 }, front: { width: 16, height: 16 } }): DatasetLayout {
  return {
    fps: 10,
    robotType: "synthetic",
    actionNames: ["x", "y", "z", "gripper"],
    stateNames: ["q0", "q1", "q2"],
    cameras,
    imageStorage,
  };
}

export function synthEpisode(layout: DatasetLayout, length: number, seed: number, task: string): EpisodeData {
  const rng = new Rng(seed);
  const A = layout.actionNames.length;
  const S = layout.stateNames.length;
  const actions = Float32Array.from({ length: length * A }, () => rng.uniform(-1, 1));
  const states = Float32Array.from({ length: length * S }, () => rng.uniform(-2, 2));
  const images: Record<string, RgbImage[]> = {};
  Object.entries(layout.cameras).forEach(([name, c], cam) => {
    images[name] = Array.from({ length }, (_, t) => synthFrame(c.width, c.height, t + seed, cam));
  });
  return { task, actions, states, images, length, success: seed % 2 === 0 };
}

/** Mean absolute difference per byte. */
export function meanAbsDiff(a: Uint8Array, b: Uint8Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += Math.abs((a[i] as number) - (b[i] as number));
  return s / a.length;
}
