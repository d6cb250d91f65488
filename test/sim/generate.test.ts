import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { runCommand } from "../../src/cli/command.js";
import { simCommand } from "../../src/cli/commands/sim.js";
import { decodeImageBytes } from "../../src/data/image.js";
import { LeRobotDataset } from "../../src/data/lerobot/dataset.js";
import { TabletopEnv } from "../../src/sim/env.js";
import { generateEpisodes, parseGenerateOptions, recordEpisode } from "../../src/sim/generate.js";
import { mixSeed } from "../../src/sim/rng.js";
import { bufferIO } from "../support/io.js";

const root = fs.mkdtempSync(path.join(os.tmpdir(), "vlatext-sim-"));
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

function run(argv: string[]) {
  const io = { ...bufferIO(), cwd: root };
  return runCommand(simCommand, argv, io, "vlatext sim").then((code) => ({ code, out: io.stdout(), err: io.stderr() }));
}

describe("vlatext sim generate", () => {
  it("writes a LeRobot v2.1 dataset whose rows and frames are the expert's episodes", async () => {
    const r = await run(["generate", "--out", "ds", "--episodes", "4", "--tasks", "pick,push", "--size", "32", "--seed", "5"]);
    expect(r.err).toMatch(/episodes 4\/4\s+frames \d+\s+[\d.]+ eps\/s/);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/LeRobot v2\.1, 4 episodes/);

    const ds = await LeRobotDataset.open(path.join(root, "ds"));
    expect(ds.version).toBe("v2.1");
    expect(ds.episodes.length).toBe(4);
    expect(ds.info.robot_type).toBe("vlatext-tabletop");
    expect(ds.names("action")).toEqual(["x", "y", "z", "roll", "pitch", "yaw", "gripper"]);
    expect(ds.names("observation.state")).toEqual(["x", "y", "z", "yaw", "gripper_open"]);
    expect(ds.cameraKeys.sort()).toEqual(["observation.images.front", "observation.images.top"]);
    expect(ds.feature("observation.images.top").shape).toEqual([32, 32, 3]);
    for (const e of ds.episodes) expect(e.extra.success).toBe(true);

    // episode 1 is the second family (push) with seed mixSeed(5, 1, 0) unless the expert needed a retry
    const env = new TabletopEnv({ size: 32 });
    const opts = parseGenerateOptions({ episodes: 4, seed: 5, tasks: ["pick", "push"], size: 32 });
    const gen = [...generateEpisodes(opts, 1, 2)][0];
    expect(gen?.family).toBe("push");
    const direct = recordEpisode(env, gen?.seed ?? -1, "push");
    expect(gen?.seed).toBe(mixSeed(5, 1, (gen?.attempts ?? 1) - 1));
    const t = await ds.readEpisodeTable(1, { columns: ["action", "observation.state", "observation.images.top"] });
    expect(t.length).toBe(direct.length);
    expect(Array.from(t.column("action").data)).toEqual(Array.from(direct.actions));
    expect(Array.from(t.column("observation.state").data)).toEqual(Array.from(direct.states));
    expect(ds.tasks.get(t.taskIndex[0] as number)).toBe(direct.task);
    const png = t.images.get("observation.images.top")?.[3];
    expect(png).toBeDefined();
    expect(Array.from(decodeImageBytes(png as Uint8Array, "frame 3").data)).toEqual(Array.from(direct.images.top?.[3]?.data ?? []));
  });

  it("--cameras records the named cameras (in tiling order), the wrist camera's frames as the environment renders them", async () => {
    const r = await run(["generate", "--out", "wrist", "--episodes", "2", "--tasks", "pick", "--size", "24", "--cameras", "wrist,top"]);
    expect(r.code).toBe(0);
    const ds = await LeRobotDataset.open(path.join(root, "wrist"));
    expect(ds.cameraKeys).toEqual(["observation.images.top", "observation.images.wrist"]);
    const gen = [...generateEpisodes(parseGenerateOptions({ episodes: 2, tasks: ["pick"], size: 24, cameras: ["top", "wrist"] }), 0, 1)][0];
    const t = await ds.readEpisodeTable(0, { columns: ["observation.images.wrist"] });
    const png = t.images.get("observation.images.wrist")?.[2];
    expect(Array.from(decodeImageBytes(png as Uint8Array, "frame 2").data)).toEqual(Array.from(gen?.episode.images.wrist?.[2]?.data ?? []));
    for (const [bad, msg] of [
      ["top,side", /--cameras: unknown camera 'side'[\s\S]*top, front, wrist/],
      ["top,top", /--cameras: a camera is named twice in 'top,top'/],
      [",", /--cameras: no camera named/],
    ] as const) {
      const b = await run(["generate", "--out", "never", "--episodes", "1", "--cameras", bad]);
      expect(b.code).toBe(1);
      expect(b.err).toMatch(msg);
    }
    expect(fs.existsSync(path.join(root, "never"))).toBe(false);
    expect(() => parseGenerateOptions({ episodes: 1, cameras: ["top", "top"] })).toThrow(/name each camera once/);
  });

  it("refuses an existing folder unless --overwrite, and names a bad task family", async () => {
    fs.mkdirSync(path.join(root, "taken"));
    fs.writeFileSync(path.join(root, "taken", "x"), "");
    const again = await run(["generate", "--out", "taken", "--episodes", "1", "--size", "16"]);
    expect(again.code).toBe(1);
    expect(again.err).toMatch(/error \[/);
    const over = await run(["generate", "--out", "taken", "--episodes", "1", "--size", "16", "--overwrite"]);
    expect(over.code).toBe(0);
    const bad = await run(["generate", "--out", "x", "--tasks", "pick,fly"]);
    expect(bad.code).toBe(1);
    expect(bad.err).toMatch(/--tasks: unknown task family 'fly'[\s\S]*reach, pick, place, push/);
    const noOut = await run(["generate", "--episodes", "2"]);
    expect(noOut.err).toMatch(/--out is required/);
  });

  it("--storage mp4 writes one video per camera and episode; odd sizes are refused", async () => {
    const r = await run(["generate", "--out", "vid", "--episodes", "2", "--tasks", "reach", "--size", "16", "--storage", "mp4"]);
    expect(r.err.split("\n").find((l) => l.startsWith("error"))).toBeUndefined();
    expect(r.code).toBe(0);
    const ds = await LeRobotDataset.open(path.join(root, "vid"));
    expect(ds.feature("observation.images.front").dtype).toBe("video");
    for (const e of ds.episodes) for (const k of ds.cameraKeys) expect(fs.existsSync(ds.videoFile(e, k).file)).toBe(true);
    const odd = await run(["generate", "--out", "odd", "--episodes", "1", "--size", "15", "--storage", "mp4"]);
    expect(odd.code).toBe(1);
    expect(odd.err).toMatch(/size 15 is odd/);
  });

  it("--help lists the options", async () => {
    const r = await run(["generate", "--help"]);
    expect(r.code).toBe(0);
    for (const f of ["--out", "--episodes", "--seed", "--tasks", "--size", "--storage", "--settle-steps"]) expect(r.out).toContain(f);
  });
});

describe("generateEpisodes", () => {
  // noise as large as the expert's speed makes it fail often: failed seeds are retried, or kept on request
  const sloppy = { episodes: 8, tasks: ["place" as const], size: 8, expert: { noise: 0.02, pauseProb: 0 } };

  it("retries a failed seed with the next attempt seed, so every episode is a success", () => {
    const gs = [...generateEpisodes(parseGenerateOptions(sloppy))];
    expect(gs.every((g) => g.episode.success)).toBe(true);
    expect(gs.some((g) => g.attempts > 1)).toBe(true);
    for (const g of gs) expect(g.seed).toBe(mixSeed(0, g.index, g.attempts - 1));
  });

  it("keepFailures records failed episodes (success: false, full step limit)", () => {
    const gs = [...generateEpisodes(parseGenerateOptions({ ...sloppy, keepFailures: true }))];
    const failed = gs.filter((g) => !g.episode.success);
    expect(failed.length).toBeGreaterThan(0);
    for (const g of failed) expect(g.episode.length).toBe(130);
    expect(gs.every((g) => g.attempts === 1)).toBe(true);
  });

  it("passes scene options to the world: one block and no zone cannot host 'place'", () => {
    const one = parseGenerateOptions({ episodes: 2, tasks: ["reach"], size: 8, scene: { blocks: [1, 1], zones: [0, 0] } });
    expect([...generateEpisodes(one)].every((g) => g.episode.success)).toBe(true);
    expect(() => [...generateEpisodes(parseGenerateOptions({ ...one, tasks: ["place"] }))]).toThrow(/can host a 'place' task/);
    expect(() => parseGenerateOptions({ episodes: 1, scene: { blocks: [0, 1] } })).toThrow(/scene\.blocks/);
  });

  it("settleSteps records that many expert frames after the success, at the goal", () => {
    const base = { episodes: 3, tasks: ["reach" as const], size: 8, scene: { blocks: [1, 1] as [number, number], zones: [0, 0] as [number, number] } };
    const plain = [...generateEpisodes(parseGenerateOptions(base))];
    const settled = [...generateEpisodes(parseGenerateOptions({ ...base, settleSteps: 5 }))];
    const env = new TabletopEnv({ size: 8, cameras: [], scene: base.scene });
    for (const [i, g] of settled.entries()) {
      const p = plain[i];
      expect(g.episode.success).toBe(true);
      expect(g.seed).toBe(p?.seed);
      expect(g.episode.length).toBe((p?.episode.length ?? 0) + 5);
      // the frames up to the success are the same recording
      expect(Array.from(g.episode.states.slice(0, (p?.episode.length ?? 0) * 5))).toEqual(Array.from(p?.episode.states ?? []));
      // the settle frames stay at the goal: the fingertips within reach distance of the block in plan
      env.reset(g.seed, "reach");
      const b = env.world.block(0);
      for (let t = p?.episode.length ?? 0; t < g.episode.length; t++) {
        const [x, y] = [g.episode.states[t * 5] as number, g.episode.states[t * 5 + 1] as number];
        expect(Math.hypot(x - b.x, y - b.y)).toBeLessThan(0.025);
      }
      expect(g.episode.images.top?.length).toBe(g.episode.length);
    }
    expect(() => parseGenerateOptions({ ...base, settleSteps: -1 })).toThrow(/settleSteps/);
  });

  it("gives up with SIM_INVALID when the expert cannot solve an episode in 20 attempts", () => {
    const hopeless = parseGenerateOptions({ ...sloppy, episodes: 1, expert: { noise: 0.02, pauseProb: 0.5, maxPause: 10 } });
    expect(() => [...generateEpisodes(hopeless)]).toThrow(/the expert failed episode 0 \('place'\) 20 times/);
  });
});

describe("vlatext sim render", () => {
  it("writes top | front side by side, upscaled, after k expert steps", async () => {
    const r = await run(["render", "--seed", "2", "--task", "pick", "--steps", "5", "--size", "32", "--scale", "2", "--out", "scene.png"]);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^pick: ".*" after 5 expert step\(s\)/);
    const img = decodeImageBytes(fs.readFileSync(path.join(root, "scene.png")), "scene.png");
    expect([img.width, img.height]).toEqual([2 * 32 * 2, 32 * 2]);
    const three = await run(["render", "--seed", "2", "--task", "pick", "--size", "16", "--scale", "1", "--cameras", "wrist,front,top", "--out", "three.png"]);
    expect(three.out).toMatch(/\(top \| front \| wrist, 16x16 each/);
    expect(decodeImageBytes(fs.readFileSync(path.join(root, "three.png")), "three.png").width).toBe(3 * 16);
  });
});
