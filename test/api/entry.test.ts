/**
 * The library through its package entry point only (`import ... from "vlatext"`, resolved
 * by Node through package.json "exports" to the built dist/index.js, as a program that
 * depends on vlatext gets it): load a model of each registered VLM family, a Policy acting
 * on an image + instruction, fine-tuning from one config, and the HTTP server; failures are
 * VlaErrors with the CLI's codes and hints.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { createTinyDefaultModel, createTinyQwen3VlModel, createTinySmolVlmModel, finetune, loadModel, loadPolicy, MODEL_FAMILIES, serve, supportedFamilies, VlaError, type ActRequest, type FinetuneConfigInput } from "vlatext";

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "vlatext-api-"));

describe("vlatext as a library", () => {
  it("loads a model of each vision-language family and names an unsupported one", async () => {
    for (const [make, family] of [
      [() => createTinyDefaultModel(path.join(tmp, "qwen"), { seed: 1 }), "qwen2_5_vl"],
      [() => createTinySmolVlmModel(path.join(tmp, "smol"), { seed: 1 }), "smolvlm"],
      [() => createTinyQwen3VlModel(path.join(tmp, "qwen3vl"), { seed: 1 }), "qwen3_vl"],
    ] as const) {
      const m = loadModel(make());
      try {
        expect(m.vlm?.family).toBe(family);
        expect(MODEL_FAMILIES[family].vision.encoder).toBe(family === "smolvlm" ? "siglip" : family);
        const feats = await m.vlm!.imageFeatures([{ width: 28, height: 28, data: new Uint8Array(28 * 28 * 3).fill(100) }]);
        expect(feats.features.length).toBe(feats.processed[0]!.tokens * m.model.config.native.hiddenSize);
      } finally {
        m.dispose();
      }
    }
    const bad = path.join(tmp, "bad");
    fs.mkdirSync(bad);
    fs.writeFileSync(path.join(bad, "config.json"), JSON.stringify({ model_type: "mllama" }));
    try {
      loadModel(bad);
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(VlaError);
      expect((e as VlaError).code).toBe("CONFIG_INVALID");
      expect((e as VlaError).message).toMatch(/model_type 'mllama' is not a supported model family/);
      expect((e as VlaError).hint).toBe(`supported: ${supportedFamilies()}`);
    }
  });

  it("fine-tunes from one typed config, acts through a Policy, and serves it over HTTP", async () => {
    const { main } = await import("../../src/cli/main.js"); // only to generate a dataset, as a user would with `vlatext sim generate`
    const { bufferIO } = await import("../support/io.js");
    const data = path.join(tmp, "sim");
    expect(await main(["sim", "generate", "--out", data, "--episodes", "2", "--seed", "1", "--size", "16"], bufferIO())).toBe(0);
    const model = createTinySmolVlmModel(path.join(tmp, "smol-ft"), { seed: 2 });
    const config: FinetuneConfigInput = { model, output: path.join(tmp, "run"), data: [{ dataset: data, recipe: "toy-sim" }], steps: 2, batchSize: 2, imageSize: 28, lora: { rank: 4 } };
    const lines: string[] = [];
    const r = await finetune(config, { io: { log: (l) => lines.push(l) } });
    expect(r.steps).toBe(2);
    expect(lines.join("\n")).toMatch(/vision features for/);
    // the config is validated as the CLI's: the key is named
    await expect(finetune({ ...config, optimiser: { lr: 1 } } as FinetuneConfigInput)).rejects.toMatchObject({ code: "CONFIG_INVALID", message: expect.stringMatching(/optimiser/) });

    const policy = loadPolicy(r.policyDir);
    expect(policy.cameras).toEqual(["top", "front"]); // the toy-sim recipe's cameras, in tiling order
    const image = { width: 28, height: 28, data: new Uint8Array(28 * 28 * 3).fill(50) };
    const req: ActRequest = { instruction: "reach the red block", images: [image, image], state: [0, 0, 0.1, 0, 1] };
    await expect(policy.act({ ...req, images: [image] }, { temperature: 0 })).rejects.toMatchObject({ code: "DATA_INVALID" });
    const a = await policy.act(req, { temperature: 0 });
    expect(a.chunk).toHaveLength(8);
    expect(a.imagesUsed).toBe(true);

    const srv = await serve(policy, { port: 0 });
    try {
      const res = await fetch(`${srv.url}/health`);
      expect(res.status).toBe(200);
    } finally {
      await srv.close();
      await policy.close();
    }
    await expect(serve(path.join(tmp, "nowhere"), { port: 0 })).rejects.toBeInstanceOf(VlaError);
  });
});
