/**
 * Fine-tuning end to end on a tiny random model (real Qwen tokenizer): a generated
 * simulator dataset, metrics and checkpoints, --resume reproducing the uninterrupted
 * loss sequence exactly, config typos rejected before any work, the real LeRobot
 * fixture for a few steps, and the resulting policy served.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { main } from "../../src/cli/main.js";
import { Policy } from "../../src/policy/policy.js";
import { parseFinetuneConfig } from "../../src/train/config.js";
import { finetune } from "../../src/train/trainer.js";
import { bufferIO } from "../support/io.js";
import { writeTinyPolicy } from "../support/tiny-policy.js";

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "vlatext-ft-"));
const modelDir = writeTinyPolicy(11);
const simData = path.join(tmp, "sim-data");
const fixture = path.resolve("../shared/fixtures/lerobot-v21-g1");
const quiet = { log: () => undefined, progress: () => undefined };

function losses(runDir: string): number[] {
  return fs.readFileSync(path.join(runDir, "metrics.jsonl"), "utf8").trim().split("\n").map((l) => (JSON.parse(l) as { loss: number }).loss);
}

describe("vlatext finetune", () => {
  it("generates a simulator dataset to train on", async () => {
    const io = bufferIO();
    expect(await main(["sim", "generate", "--out", simData, "--episodes", "6", "--seed", "5", "--size", "16"], io)).toBe(0);
    expect(fs.existsSync(path.join(simData, "meta", "info.json"))).toBe(true);
  });

  it("rejects config typos before any work, naming the key", async () => {
    const cfgFile = path.join(tmp, "typo.json");
    fs.writeFileSync(cfgFile, JSON.stringify({ model: modelDir, output: path.join(tmp, "typo-run"), data: [{ dataset: simData, recipe: "toy-sim" }], optimiser: { lr: 1 } }));
    const io = bufferIO();
    expect(await main(["finetune", "--config", cfgFile], io)).toBe(1);
    expect(io.stderr()).toMatch(/CONFIG_INVALID[\s\S]*optimiser/);
    const wrongType = bufferIO();
    expect(await main(["finetune", "--model", modelDir, "--output", path.join(tmp, "x"), "--data", `[{"dataset":"${simData}","recipe":"toy-sim"}]`, "--optimizer.lr", "fast"], wrongType)).toBe(1);
    expect(wrongType.stderr()).toMatch(/--optimizer\.lr must be a number, got 'fast'/);
    const unknownFlag = bufferIO();
    expect(await main(["finetune", "--optimizer.lrr", "1"], unknownFlag)).toBe(2);
    expect(unknownFlag.stderr()).toMatch(/optimizer\.lrr/);
    expect(() => parseFinetuneConfig({ model: "m", output: "o", data: [{ dataset: "d", recipe: "r" }], steps: "10" })).toThrow(/steps/);
    expect(fs.existsSync(path.join(tmp, "typo-run"))).toBe(false);
  });

  it("trains, writes metrics/checkpoints/loss.png, and --resume continues exactly", async () => {
    const base = { model: modelDir, tokenizer: "qwen", data: [{ dataset: simData, recipe: "toy-sim" }], batchSize: 2, gradAccum: 2, seed: 3, optimizer: { lr: 3e-3 }, lora: { rank: 4, alpha: 8, dropout: 0.1 } };
    const full = await finetune(parseFinetuneConfig({ ...base, output: path.join(tmp, "full"), steps: 6 }), quiet);
    expect(full.losses).toHaveLength(6);
    const a = losses(full.runDir);
    expect(a.every(Number.isFinite)).toBe(true);
    expect(a[5]!).toBeLessThan(a[0]!); // it learns
    expect(fs.existsSync(path.join(full.runDir, "loss.png"))).toBe(true);
    const split = parseFinetuneConfig({ ...base, output: path.join(tmp, "split"), steps: 6, checkpointEvery: 3 });
    // "kill" after step 3: abort once the step-3 checkpoint exists
    const ac = new AbortController();
    const watcher = setInterval(() => {
      if (fs.existsSync(path.join(split.output, "checkpoints", "step-0000003"))) ac.abort();
    }, 5);
    const first = await finetune(split, quiet, { signal: ac.signal });
    clearInterval(watcher);
    expect(first.stopped).toBe(true);
    await expect(finetune(split, quiet)).rejects.toThrow(/already has checkpoints[\s\S]*--resume/);
    const second = await finetune(split, quiet, { resume: true });
    expect(second.steps).toBe(6);
    expect(losses(second.runDir)).toEqual(a); // bit-identical loss sequence
    // the run's policy serves
    const policy = Policy.load(second.policyDir);
    const r = await policy.act({ images: [], instruction: "reach the red block", state: [0, 0, 0.1, 0, 1] });
    expect(r.chunk).toHaveLength(8);
    policy.dispose();
  });

  it("--resume after SIGKILL reproduces the uninterrupted run's losses", async () => {
    const { spawn } = await import("node:child_process");
    const out = path.join(tmp, "killed");
    const args = ["--import", "tsx", "test/support/cli-entry.ts", "finetune", "--model", modelDir, "--tokenizer", "qwen", "--output", out, "--data", JSON.stringify([{ dataset: simData, recipe: "toy-sim" }]), "--batchSize", "2", "--gradAccum", "2", "--seed", "3", "--optimizer.lr", "3e-3", "--lora.rank", "4", "--lora.alpha", "8", "--lora.dropout", "0.1", "--steps", "6", "--checkpointEvery", "2"];
    const child = spawn(process.execPath, args, { stdio: "ignore" });
    await new Promise<void>((resolve, reject) => {
      const t = setInterval(() => {
        if (fs.existsSync(path.join(out, "checkpoints", "step-0000002"))) {
          clearInterval(t);
          child.kill("SIGKILL");
          resolve();
        }
      }, 10);
      child.on("exit", () => {
        clearInterval(t);
        reject(new Error("finished before it could be killed"));
      });
    });
    await new Promise((r) => child.on("exit", r));
    const io = bufferIO();
    expect(await main(args.slice(3).concat(["--resume"]), io)).toBe(0);
    expect(io.stdout()).toMatch(/finished at step 6/);
    expect(losses(out)).toEqual(losses(path.join(tmp, "full")));
  });

  it.skipIf(!fs.existsSync(fixture))("fine-tunes on the real LeRobot fixture for a few steps (26-dim actions)", async () => {
    const r = await finetune(parseFinetuneConfig({ model: modelDir, tokenizer: "qwen", output: path.join(tmp, "fixture"), data: [{ dataset: fixture, recipe: "lerobot-v21-g1" }], steps: 2, batchSize: 1, evalEvery: 2, evalSamples: 1 }), quiet);
    expect(r.losses).toHaveLength(2);
    const m = fs.readFileSync(path.join(r.runDir, "metrics.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l) as Record<string, number>);
    expect(m[1]!.parsed).toBe(1); // constrained decoding: the sample parses
    expect(Number.isFinite(m[1]!.valLoss)).toBe(true);
  });
});

describe("vision-language fine-tuning", () => {
  it("trains the tiny default Qwen2.5-VL on simulator images (features precomputed, 3D positions) and serves the result", async () => {
    const { createTinyDefaultModel } = await import("../../src/models/tiny-default.js");
    const vlmDir = createTinyDefaultModel(path.join(tmp, "tiny-vlm"), { seed: 2 });
    const lines: string[] = [];
    const progress: string[] = [];
    const r = await finetune(parseFinetuneConfig({ model: vlmDir, output: path.join(tmp, "vlm-run"), data: [{ dataset: simData, recipe: "toy-sim" }], lora: { enabled: false }, optimizer: { lr: 1e-3 }, steps: 3, batchSize: 2, imageSize: 28, evalEvery: 3, evalSamples: 1 }), { log: (l) => lines.push(l), progress: (l) => progress.push(l) });
    expect(lines.join("\n")).toMatch(/vision features for \d+ frames/);
    // reading the data (minutes at the demo's size) reports each episode read, the last one all of them
    expect(progress.find((l) => l.startsWith("data[0]:"))).toMatch(/^data\[0\]: episode 1\/\d+ read \(\d+ frames, vision features computed, \d+ s\)$/);
    const last = progress.filter((l) => l.startsWith("data[0]:")).at(-1)!;
    expect(/episode (\d+)\/(\d+)/.exec(last)!.slice(1, 3).map(Number)).toEqual(Array(2).fill(Number(/\/(\d+)/.exec(last)![1])));
    expect(r.losses.every((l) => Number.isFinite(l.loss))).toBe(true);
    const m = fs.readFileSync(path.join(r.runDir, "metrics.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l) as Record<string, number>);
    expect(m[2]!.parsed).toBe(1);
    const policy = Policy.load(r.policyDir);
    expect(policy.vlm).toBeDefined();
    const img = { width: 16, height: 16, data: new Uint8Array(16 * 16 * 3).fill(90) };
    const a = await policy.act({ images: [img, img], instruction: "reach the red block", state: [0, 0, 0.1, 0, 1] });
    expect(a.imagesUsed).toBe(true);
    policy.dispose();
  });

  it("trains the vision tower too (vision.train): the tower changes, is saved and served, and --resume continues exactly", async () => {
    const { createTinyDefaultModel } = await import("../../src/models/tiny-default.js");
    const { VlmModel } = await import("../../src/engine/vlm.js");
    const { readSafetensors, safetensorsData } = await import("../../src/io/safetensors.js");
    const vlmDir = createTinyDefaultModel(path.join(tmp, "tiny-vlm-t"), { seed: 4 });
    const base = { model: vlmDir, data: [{ dataset: simData, recipe: "toy-sim" }], lora: { enabled: false }, vision: { train: true }, optimizer: { lr: 1e-3 }, batchSize: 2, gradAccum: 2, imageSize: 28, seed: 1 };
    const lines: string[] = [];
    const full = await finetune(parseFinetuneConfig({ ...base, output: path.join(tmp, "vt-full"), steps: 4, evalEvery: 4, evalSamples: 1 }), { log: (l) => lines.push(l), progress: () => undefined });
    expect(lines.join("\n")).toMatch(/the vision tower is trained/);
    const ckpt = path.join(full.runDir, "checkpoints", "step-0000004");
    for (const f of ["vision.safetensors", "vision-optimizer.safetensors", "model.safetensors"]) expect(fs.existsSync(path.join(ckpt, f)), f).toBe(true);
    // the tower's weights moved away from the base model's
    const before = safetensorsData(readSafetensors(path.join(vlmDir, "model.safetensors")), "model.visual.patch_embed.proj.weight");
    const after = safetensorsData(readSafetensors(path.join(ckpt, "vision.safetensors")), "visual.patch_embed.proj.weight");
    expect(after.some((v, i) => Math.abs(v - before[i]!) > 1e-5)).toBe(true);
    // resumed after step 2: the same losses as the uninterrupted run
    const split = parseFinetuneConfig({ ...base, output: path.join(tmp, "vt-split"), steps: 4, checkpointEvery: 2, evalEvery: 4, evalSamples: 1 });
    const ac = new AbortController();
    const watcher = setInterval(() => {
      if (fs.existsSync(path.join(split.output, "checkpoints", "step-0000002"))) ac.abort();
    }, 5);
    await finetune(split, quiet, { signal: ac.signal });
    clearInterval(watcher);
    const second = await finetune(split, quiet, { resume: true });
    expect(second.steps).toBe(4);
    expect(losses(second.runDir)).toEqual(losses(full.runDir));
    // the policy serves the trained tower: its features are the checkpoint's, not the base model's
    const policy = Policy.load(full.policyDir);
    const img = { width: 28, height: 28, data: Uint8Array.from({ length: 28 * 28 * 3 }, (_, i) => (i * 37) % 256) };
    const served = (await policy.vlm!.imageFeatures([img])).features;
    const baseVlm = VlmModel.load(vlmDir);
    const baseFeats = (await baseVlm.imageFeatures([img])).features;
    baseVlm.loadVisionWeights(path.join(ckpt, "vision.safetensors"));
    const trainedFeats = (await baseVlm.imageFeatures([img])).features;
    baseVlm.dispose();
    expect(Array.from(served)).toEqual(Array.from(trainedFeats));
    expect(served.some((v, i) => v !== baseFeats[i])).toBe(true);
    policy.dispose();
    // a text-only model has no tower to train: said before any work
    await expect(finetune(parseFinetuneConfig({ ...base, model: modelDir, tokenizer: "qwen", output: path.join(tmp, "vt-text") }), quiet)).rejects.toThrow(/vision.train is set but .* has no vision tower/);
  });
});
