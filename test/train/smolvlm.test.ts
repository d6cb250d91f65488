/**
 * SmolVLM2 end to end on a tiny random directory (src/models/tiny-smolvlm.ts: its config,
 * processor, SigLIP encoder and Llama decoder, a BPE tokenizer with SmolVLM2's image tokens
 * and transformers' SmolVLM chat template): `vlatext finetune` (LoRA, and full) on simulator
 * images with the encoder frozen, the run's policy through `vlatext serve` answering
 * /v1/act with an image, and the encoder trained with the language model (vision.train).
 */
import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { main } from "../../src/cli/main.js";
import { createTinySmolVlmModel } from "../../src/models/tiny-smolvlm.js";
import { Policy } from "../../src/policy/policy.js";
import { parseFinetuneConfig } from "../../src/train/config.js";
import { finetune } from "../../src/train/trainer.js";
import { pngBody, post } from "../support/http.js";
import { bufferIO } from "../support/io.js";

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "vlatext-smolvlm-"));
const modelDir = createTinySmolVlmModel(path.join(tmp, "tiny-smolvlm"), { seed: 5 });
const simData = path.join(tmp, "sim-data");
const data = JSON.stringify([{ dataset: simData, recipe: "toy-sim" }]);

describe("SmolVLM2: finetune and serve", () => {
  it("fine-tunes with LoRA through the CLI (frozen SigLIP features, tiles + global image in every prompt) and serves the run over HTTP", async () => {
    expect(await main(["sim", "generate", "--out", simData, "--episodes", "3", "--seed", "2", "--size", "16"], bufferIO())).toBe(0);
    const out = path.join(tmp, "lora");
    const io = bufferIO();
    const args = ["finetune", "--model", modelDir, "--output", out, "--data", data, "--steps", "3", "--batchSize", "2", "--imageSize", "28", "--lora.rank", "4", "--optimizer.lr", "3e-3", "--evalEvery", "3", "--evalSamples", "1"];
    expect(await main(args, io), io.stderr()).toBe(0);
    expect(io.stderr() + io.stdout()).toMatch(/vision features for \d+ frames/);
    const metrics = fs.readFileSync(path.join(out, "metrics.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l) as Record<string, number>);
    expect(metrics).toHaveLength(3);
    expect(metrics.every((m) => Number.isFinite(m.loss))).toBe(true);
    expect(metrics[2]!.parsed).toBe(1); // constrained decoding through the native automaton with this tokenizer

    const policyDir = fs.readdirSync(out).includes("policy.json") ? out : path.join(out, "policy");
    const policy = Policy.load(policyDir);
    expect(policy.vlm?.family).toBe("smolvlm");
    // the policy was trained on two cameras (top, front): two 8x16 images tile into one 16x16
    const img = { width: 8, height: 16, data: Uint8Array.from({ length: 8 * 16 * 3 }, (_, i) => (i * 29) % 256) };
    const built = policy.buildPrompt({ instruction: "reach the red block", images: [img, img] });
    // 16x16 -> 64x64 -> 2x2 tiles + the global image, 4 features each
    expect(built.injectRows).toHaveLength(20);
    expect(built.ids.filter((t) => t === policy.tokenizer.tokenId("<fake_token_around_image>"))).toHaveLength(6);
    expect(built.ids.filter((t) => t === policy.tokenizer.tokenId("<global-img>"))).toHaveLength(1);
    policy.dispose();

    const child = spawn(process.execPath, ["--import", "tsx", "test/support/cli-entry.ts", "serve", "--model", policyDir, "--port", "0"], { stdio: ["ignore", "pipe", "pipe"] });
    try {
      const url = await new Promise<string>((resolve, reject) => {
        let text = "";
        child.stdout.on("data", (d: Buffer) => {
          text += d.toString();
          const m = /on (http:\/\/[^ ]+) /.exec(text);
          if (m) resolve(m[1]!);
        });
        child.on("exit", (code) => reject(new Error(`serve exited early (${code})`)));
        setTimeout(() => reject(new Error(`no server URL in time: ${text}`)), 60_000);
      });
      const r = await post(url, "/v1/act", { instruction: "reach the red block", images: [pngBody(img), pngBody(img)], state: [0, 0, 0.1, 0, 1], temperature: 0 });
      expect(r.status).toBe(200);
      expect(r.json.imagesUsed).toBe(true);
      expect(r.json.chunk).toHaveLength(8);
    } finally {
      const exited = new Promise((resolve) => child.on("exit", resolve));
      child.kill("SIGINT");
      await exited;
    }
  });

  it("fine-tunes every weight of the language model (lora off), and the SigLIP encoder with it (vision.train)", async () => {
    const quiet = { log: () => undefined, progress: () => undefined };
    const r = await finetune(parseFinetuneConfig({ model: modelDir, output: path.join(tmp, "full"), data: [{ dataset: simData, recipe: "toy-sim" }], lora: { enabled: false }, optimizer: { lr: 1e-3 }, steps: 2, batchSize: 2, imageSize: 28 }), quiet);
    expect(r.losses.every((l) => Number.isFinite(l.loss))).toBe(true);
    // the SigLIP encoder trained too (vision.train): its weights move, are saved and served
    const vt = await finetune(parseFinetuneConfig({ model: modelDir, output: path.join(tmp, "vt"), data: [{ dataset: simData, recipe: "toy-sim" }], vision: { train: true }, optimizer: { lr: 1e-3 }, steps: 2, batchSize: 2, imageSize: 28 }), quiet);
    expect(vt.losses.every((l) => Number.isFinite(l.loss))).toBe(true);
    const ckpt = path.join(vt.runDir, "checkpoints", "step-0000002");
    const { readSafetensors, safetensorsData } = await import("../../src/io/safetensors.js");
    const before = safetensorsData(readSafetensors(path.join(modelDir, "model.safetensors")), "model.vision_model.embeddings.patch_embedding.weight");
    const after = safetensorsData(readSafetensors(path.join(ckpt, "vision.safetensors")), "vision_model.embeddings.patch_embedding.weight");
    expect(after.some((v, i) => Math.abs(v - before[i]!) > 1e-6)).toBe(true);
    const served = Policy.load(vt.policyDir);
    expect(served.vlm?.family).toBe("smolvlm");
    served.dispose();
  });
});
