/**
 * What a run keeps and reads back: the last N checkpoints (keepCheckpoints), and on
 * --resume, a truncated or wrong-typed state.json or metrics.jsonl answers
 * error [CHECKPOINT_INVALID] naming the file; a metrics line cut short by a kill is dropped.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { main } from "../../src/cli/main.js";
import { createTinyDefaultModel } from "../../src/models/tiny-default.js";
import { generateDataset } from "../../src/sim/generate.js";
import { bufferIO } from "../support/io.js";

const root = fs.mkdtempSync(path.join(os.tmpdir(), "vlatext-resume-"));
let args: string[];
beforeAll(async () => {
  const data = path.join(root, "data");
  await generateDataset(data, { episodes: 3, seed: 1, size: 28, storage: "png" });
  const model = createTinyDefaultModel(path.join(root, "model"), { seed: 1, hiddenSize: 32, layers: 1, visionDepth: 1, visionHidden: 16 });
  args = ["finetune", "--model", model, "--output", path.join(root, "run"), "--data", JSON.stringify([{ dataset: data, recipe: "toy-sim" }]), "--batchSize", "2", "--imageSize", "28", "--lora.enabled", "false", "--checkpointEvery", "1"];
});

const ckpts = () => fs.readdirSync(path.join(root, "run", "checkpoints")).sort();
const metricSteps = () => fs.readFileSync(path.join(root, "run", "metrics.jsonl"), "utf8").trim().split("\n").map((l) => (JSON.parse(l) as { step: number }).step);

describe("checkpoints and resume", () => {
  it("keeps the last N checkpoints, and names a broken state.json or metrics.jsonl on --resume", async () => {
    const io = bufferIO();
    expect(await main([...args, "--steps", "4", "--keepCheckpoints", "2"], io)).toBe(0);
    expect(ckpts()).toEqual(["step-0000003", "step-0000004"]);
    // a truncated state.json: named, with what to do
    const state = path.join(root, "run", "checkpoints", "step-0000004", "state.json");
    const text = fs.readFileSync(state, "utf8");
    fs.writeFileSync(state, text.slice(0, text.length / 2));
    const bad = bufferIO();
    expect(await main([...args, "--steps", "6", "--keepCheckpoints", "2", "--resume"], bad)).toBe(1);
    expect(bad.stderr()).toContain(`error [CHECKPOINT_INVALID]: checkpoint state ${state} is not valid JSON (truncated or corrupt?)`);
    expect(bad.stderr()).toMatch(/hint: delete .*step-0000004 to resume from the checkpoint before it/);
    // wrong-typed: the field is named
    fs.writeFileSync(state, JSON.stringify({ ...JSON.parse(text), step: "four" }));
    const typed = bufferIO();
    expect(await main([...args, "--steps", "6", "--resume"], typed)).toBe(1);
    expect(typed.stderr()).toMatch(/error \[CHECKPOINT_INVALID\]: checkpoint state .*state\.json has wrong or missing fields:\n\s+step: /);
    // following the hint works; a metrics line a killed run left half-written is dropped
    fs.rmSync(path.dirname(state), { recursive: true });
    fs.appendFileSync(path.join(root, "run", "metrics.jsonl"), '{"step": 4, "loss": 1.2');
    const ok = bufferIO();
    expect(await main([...args, "--steps", "6", "--keepCheckpoints", "2", "--resume"], ok)).toBe(0);
    expect(ok.stderr()).toMatch(/resumed from .*step-0000003 at step 3/);
    expect(metricSteps()).toEqual([1, 2, 3, 4, 5, 6]);
    expect(ckpts()).toEqual(["step-0000005", "step-0000006"]);
    // a corrupt line in the middle of metrics.jsonl is named (the history before the checkpoint comes from it)
    const metrics = path.join(root, "run", "metrics.jsonl");
    const lines = fs.readFileSync(metrics, "utf8").split("\n");
    lines[1] = lines[1]!.slice(0, 10);
    fs.writeFileSync(metrics, lines.join("\n"));
    const broken = bufferIO();
    expect(await main([...args, "--steps", "8", "--resume"], broken)).toBe(1);
    expect(broken.stderr()).toContain(`error [CHECKPOINT_INVALID]: training metrics ${metrics}:2 is not valid JSON`);
  });
});
