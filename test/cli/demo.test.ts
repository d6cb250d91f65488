/** `vlatext demo` end to end at toy scale: data, tiny default model, fine-tuning, closed-loop table. */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { main } from "../../src/cli/main.js";
import { evaluateClosedLoop, policyActor } from "../../src/policy/evaluate.js";
import { readPolicyFile } from "../../src/policy/file.js";
import { Policy } from "../../src/policy/policy.js";
import { bufferIO } from "../support/io.js";

describe("vlatext demo", () => {
  it("runs the whole pipeline and reports untrained vs trained success", async () => {
    const out = fs.mkdtempSync(path.join(os.tmpdir(), "vlatext-demo-"));
    const io = bufferIO();
    expect(await main(["demo", "--output", out, "--episodes", "8", "--steps", "3", "--eval-episodes", "2", "--tasks", "reach,pick", "--from-scratch"], io)).toBe(0);
    expect(io.stdout()).toMatch(/family\s+untrained\s+trained\s+trained - untrained/);
    expect(io.stdout()).not.toMatch(/place|push/);
    // the table's counts are the closed loop's: evaluated again here, episode for episode
    const rows = Object.fromEntries(["reach", "pick"].map((f) => [f, new RegExp(`${f}\\s+(\\d)/2\\s+\\d+% \\[\\d+, \\d+\\]\\s+(\\d)/2\\s+\\d+% \\[\\d+, \\d+\\]\\s+[+-]\\d+ \\[[+-]\\d+, [+-]\\d+\\] pts`).exec(io.stdout())!.slice(1).map(Number)]));
    const world = { families: ["reach", "pick"] as const, episodes: 2, seed: 5000, size: 56, scene: { blocks: [1, 1] as [number, number], zones: [0, 0] as [number, number] } };
    for (const [k, dir] of [[0, path.join(out, "untrained")], [1, path.join(out, "run", "policy")]] as const) {
      const policy = Policy.load(dir);
      const r = await evaluateClosedLoop(policyActor(policy), world);
      policy.dispose();
      expect(r.families.map((f) => f.successes)).toEqual([rows.reach![k], rows.pick![k]]);
      const pct = new RegExp(`${k === 0 ? "success: untrained" : ", trained"} ([\\d.]+)%`).exec(io.stdout())![1];
      expect(Number(pct)).toBeCloseTo(100 * r.successRate, 1);
    }
    // the baseline is the same policy without the trained weights
    expect(readPolicyFile(path.join(out, "untrained")).weights).toBeUndefined();
    expect(readPolicyFile(path.join(out, "run", "policy")).weights).toMatch(/model\.safetensors$/);
    // progress in a log (not a TTY): whole lines, a few per phase, not one per item
    expect(io.stderr()).not.toMatch(/\r/);
    expect(io.stderr().split("\n").length).toBeLessThan(60);
    expect(fs.existsSync(path.join(out, "run", "policy", "policy.json"))).toBe(true);
    expect(fs.existsSync(path.join(out, "run", "loss.png"))).toBe(true);
    // the tiny model: one token per 56x56 camera, its sensor calibrated
    const pp = JSON.parse(fs.readFileSync(path.join(out, "model", "preprocessor_config.json"), "utf8")) as { patch_size: number };
    expect(pp.patch_size).toBe(28);
    expect(io.stderr()).toMatch(/sensor calibrated/);
  });

  it("fine-tuning the pretrained default helps: a clear, seeded margin on a small reach run", async () => {
    // the demo's own path (models/tiny-vlm), small: 1000 demonstrations, 2500 steps of 16, 20 episodes
    // (~50 s). Measured with today's weights (the top | wrist default): untrained 1/20, trained 19/20
    // (+90 [+64, +96] pts); seed 1: 1/20, 15/20 (the top | front default before them: 0/20, 16/20 and
    // seed 1 14/20; the moments-sensor weights before that: 10/20). Everything
    // is seeded, so the counts repeat on the same kernels (other kernels round differently: a few
    // episodes may change, not the margin); the test fails when fine-tuning stops helping as much (a
    // gain under 8 episodes of 20, or the difference's 95% interval reaching down to 0).
    const out = fs.mkdtempSync(path.join(os.tmpdir(), "vlatext-demo-helps-"));
    const io = bufferIO();
    expect(await main(["demo", "--output", out, "--episodes", "1000", "--steps", "2500", "--eval-episodes", "20"], io)).toBe(0);
    expect(io.stderr()).toMatch(/fine-tuning from the pretrained model .*models[/\\]tiny-vlm/);
    const m = /reach\s+(\d+)\/20\s+\d+% \[\d+, \d+\]\s+(\d+)\/20\s+\d+% \[\d+, \d+\]\s+([+-]\d+) \[([+-]\d+), ([+-]\d+)\] pts/.exec(io.stdout());
    expect(m, io.stdout()).not.toBeNull();
    const [untrained, trained, , lo] = m!.slice(1).map(Number) as [number, number, number, number];
    expect(trained - untrained).toBeGreaterThanOrEqual(8);
    expect(lo).toBeGreaterThan(0);
  }, 600_000);

  it("names an unknown task family before any work", async () => {
    const out = fs.mkdtempSync(path.join(os.tmpdir(), "vlatext-demo-"));
    const io = bufferIO();
    expect(await main(["demo", "--output", out, "--tasks", "reach,fly"], io)).not.toBe(0);
    expect(io.stderr()).toMatch(/--tasks names 'fly', which is not a task family/);
    expect(fs.readdirSync(out)).toEqual([]);
    for (const [args, msg] of [
      [["--from-scratch", "--model", "x"], /--model and --from-scratch exclude each other/],
      [["--set", "action.bins"], /--set 'action.bins' is not key=value/],
      [["--set", "action.bins=0"], /demo fine-tuning config[\s\S]*action\.bins/],
      [["--model", path.join(out, "nothing")], /has no config\.json[\s\S]*vlatext pretrain --output/],
    ] as const) {
      const e = bufferIO();
      expect(await main(["demo", "--output", out, ...args], e)).not.toBe(0);
      expect(e.stderr()).toMatch(msg);
      expect(fs.readdirSync(out)).toEqual([]);
    }
  });
});
