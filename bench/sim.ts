/**
 * Toy simulator throughput: frames rendered per second (per camera image, at
 * several sizes), physics steps per second, expert episodes per second with
 * and without rendering, and the whole `sim generate` pipeline (expert,
 * renders, LeRobot v2.1 writer) in episodes per second.
 * Run: npx tsx bench/sim.ts [episodes=200] [--mp4]
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { TabletopEnv } from "../src/sim/env.js";
import { generateDataset, generateEpisodes, parseGenerateOptions } from "../src/sim/generate.js";
import { Renderer } from "../src/sim/render.js";
import { World } from "../src/sim/world.js";
import { ScriptedExpert } from "../src/sim/expert.js";
import { TASK_FAMILIES } from "../src/sim/tasks.js";

const episodes = Number(process.argv.slice(2).find((a) => /^\d+$/.test(a)) ?? 200);
const mp4 = process.argv.includes("--mp4");

function rate(label: string, unit: string, n: number, ms: number): void {
  console.log(`${label.padEnd(44)} ${((n * 1000) / ms).toFixed(0).padStart(9)} ${unit}/s   (${n} in ${(ms / 1000).toFixed(2)} s)`);
}

function timed<T>(f: () => T): { ms: number; value: T } {
  const t0 = performance.now();
  const value = f();
  return { ms: performance.now() - t0, value };
}

// Scenes mid-episode (gripper, held blocks) so rendering sees the usual triangle count.
const env = new TabletopEnv({ cameras: [] });
const worlds: World[] = [];
for (let s = 0; s < 64; s++) {
  env.reset(s, TASK_FAMILIES[s % TASK_FAMILIES.length]);
  const ex = new ScriptedExpert(env.task, env.world, s);
  for (let k = 0; k < 12 && !env.step(ex.act(env.world)).done; k++);
  worlds.push(new World(env.world.snapshot()));
}

console.log(`toy simulator benchmark (node ${process.version}, ${os.cpus().length} cpus: ${os.cpus()[0]?.model ?? "?"})\n`);
for (const size of [64, 128, 224]) {
  const r = new Renderer(size, size);
  const reps = Math.max(1, Math.round(40000 / size ** 2) * 10);
  for (const w of worlds) r.renderAll(w, ["top", "front"]); // warm up
  const t = timed(() => {
    for (let i = 0; i < reps; i++) for (const w of worlds) r.renderAll(w, ["top", "front"]);
  });
  rate(`render ${size}x${size}, top + front`, "frames", reps * worlds.length * 2, t.ms);
}

{
  const noRender = new TabletopEnv({ cameras: [] });
  let steps = 0;
  let eps = 0;
  const t = timed(() => {
    for (let s = 0; s < 400; s++) {
      noRender.reset(s, TASK_FAMILIES[s % 4]);
      const ex = new ScriptedExpert(noRender.task, noRender.world, s);
      let r;
      do {
        r = noRender.step(ex.act(noRender.world));
        steps++;
      } while (!r.done);
      eps++;
    }
  });
  rate("expert episodes, no rendering", "episodes", eps, t.ms);
  rate("  physics + expert steps", "steps", steps, t.ms);
}

{
  const opts = parseGenerateOptions({ episodes });
  let frames = 0;
  const t = timed(() => {
    for (const g of generateEpisodes(opts)) frames += g.episode.length;
  });
  rate("expert episodes rendered at 64x64 (2 cams)", "episodes", episodes, t.ms);
  rate("  frames (steps x 2 cameras)", "frames", frames * 2, t.ms);
}

for (const storage of mp4 ? (["png", "mp4"] as const) : (["png"] as const)) {
  const dir = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "vlatext-simbench-")), "ds");
  const t0 = performance.now();
  const s = await generateDataset(dir, { episodes, storage });
  rate(`sim generate --episodes ${episodes} --storage ${storage}`, "episodes", s.episodes, performance.now() - t0);
  fs.rmSync(path.dirname(dir), { recursive: true, force: true });
}
