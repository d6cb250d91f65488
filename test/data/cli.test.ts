import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadStats } from "../../src/actions/stats.js";
import { runCommand } from "../../src/cli/command.js";
import { datasetCommand } from "../../src/cli/commands/dataset.js";
import { writeLeRobotV21 } from "../../src/data/lerobot/writer.js";
import { bufferIO } from "../support/io.js";
import { synthEpisode, synthLayout } from "./synth.js";

const root = fs.mkdtempSync(path.join(os.tmpdir(), "vlatext-cli-"));
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));
const dir = path.join(root, "ds");
const layout = synthLayout("mp4", { top: { width: 16, height: 16 } });
const eps = [synthEpisode(layout, 5, 1, "pick"), synthEpisode(layout, 4, 2, "place"), synthEpisode(layout, 3, 3, "pick")];

beforeAll(async () => {
  await writeLeRobotV21(dir, layout, eps);
});

const FIXTURE = fileURLToPath(new URL("../../../shared/fixtures/lerobot-v21-g1", import.meta.url));
const hasFixture = fs.existsSync(path.join(FIXTURE, "meta", "info.json"));
if (!hasFixture) console.warn(`skipping 'vlatext dataset inspect' on the real fixture: ${FIXTURE} is absent`);

function run(argv: string[]) {
  const io = { ...bufferIO(), cwd: root };
  return runCommand(datasetCommand, argv, io, "vlatext dataset").then((code) => ({ code, out: io.stdout(), err: io.stderr() }));
}

describe("vlatext dataset", () => {
  it("inspect shows version, fps, episodes, features, cameras and stats", async () => {
    const r = await run(["inspect", dir]);
    expect(r.err).toBe("");
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/version\s+v2\.1\s+robot synthetic\s+fps 10/);
    expect(r.out).toMatch(/episodes\s+3 \(indexes 0-2\)\s+frames 12\s+tasks 2/);
    expect(r.out).toMatch(/observation\.images\.top\s+video \(mp4\)\s+16x16\s+(h264|mpeg4)/);
    expect(r.out).toMatch(/statistics of 'action' \(4 dims, 12 rows\)/);
    const minX = Math.min(...eps.flatMap((e) => Array.from(e.actions).filter((_, i) => i % 4 === 0)));
    expect(r.out).toMatch(new RegExp(`\\nx\\s+${minX.toFixed(4).replace(".", "\\.")}\\s`));
  });

  it("stats writes action statistics that loadStats reads, and state statistics on request", async () => {
    const r = await run(["stats", dir, "--out", "a.json", "--state-out", "s.json"]);
    expect(r.code).toBe(0);
    const a = loadStats(path.join(root, "a.json"), 4);
    expect(a.count).toBe(12);
    expect(a.names).toEqual(["x", "y", "z", "gripper"]);
    const all = eps.flatMap((e) => Array.from(e.actions).filter((_, i) => i % 4 === 3));
    expect(a.max[3]).toBeCloseTo(Math.max(...all), 6);
    expect(a.mean[3]).toBeCloseTo(all.reduce((s, x) => s + x, 0) / all.length, 6);
    expect(loadStats(path.join(root, "s.json"), 3).names).toEqual(["q0", "q1", "q2"]);
  });

  it("stats --recipe --split uses the recipe's features, slice and episodes", async () => {
    const recipe = path.join(root, "r.json");
    fs.writeFileSync(
      recipe,
      JSON.stringify({ name: "r", action: { feature: "action", slice: [1, 3] }, cameras: { "observation.images.top": "top" }, actionSpec: { names: ["y", "z"] }, splits: { train: [0, 2], val: [1] } }),
    );
    const r = await run(["stats", dir, "--recipe", recipe, "--split", "val", "--out", "val.json"]);
    expect(r.code).toBe(0);
    const s = loadStats(path.join(root, "val.json"), 2);
    expect(s.count).toBe(4);
    expect(s.names).toEqual(["y", "z"]);
    expect(s.min[0]).toBeCloseTo(Math.min(...Array.from(eps[1]?.actions ?? []).filter((_, i) => i % 4 === 1)), 6);
  });

  it("usage errors and data errors come back as exit codes with hints", async () => {
    expect((await run(["stats"])).code).toBe(1);
    const bad = await run(["stats", dir, "--split", "val"]);
    expect(bad.code).toBe(1);
    expect(bad.err).toMatch(/--split val needs --recipe/);
    const missing = await run(["inspect", path.join(root, "nope")]);
    expect(missing.code).toBe(1);
    expect(missing.err).toMatch(/\[DATA_MISSING\].*nope/);
    expect((await run(["frobnicate"])).code).toBe(2);
  });

  it.skipIf(!hasFixture)("inspect on the real fixture reports episodes 1-2, 736 frames and the AV1 stream", async () => {
    const r = await run(["inspect", FIXTURE, "--no-stats"]);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/episodes\s+2 \(indexes 1-2\)\s+frames 736/);
    expect(r.out).toMatch(/observation\.images\.cam_high\s+video \(mp4\)\s+640x480\s+av1/);
    expect(r.out).not.toContain("statistics of");
  });
});
