/**
 * The embedded tiny default model (Qwen2.5-VL architecture, created here): it saves as
 * a Hugging Face directory, loads back, and takes LoRA training steps on a real image
 * batch (two simulator cameras tiled), images injected at the <|image_pad|> rows with
 * 3D M-RoPE positions. Config errors name what is unsupported.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { ActionCodec } from "../../src/actions/codec.js";
import { getFormat } from "../../src/actions/format.js";
import { parseActionSpec, VLA0_SPEC } from "../../src/actions/spec.js";
import { tileHorizontal } from "../../src/data/image.js";
import { VlmModel } from "../../src/engine/vlm.js";
import { towerFdMismatches } from "../support/tower-fd.js";
import { createTinyDefaultModel } from "../../src/models/tiny-default.js";
import { renderChat } from "../../src/prompts/chat.js";
import { buildTrainingExample, encodeSegments } from "../../src/prompts/encode.js";
import { loadTemplate, renderTemplate } from "../../src/prompts/template.js";
import { loadTokenizerDir } from "../../src/prompts/tokenizer.js";
import { TabletopEnv } from "../../src/sim/env.js";

const dir = createTinyDefaultModel(fs.mkdtempSync(path.join(os.tmpdir(), "vlatext-tiny-")), { seed: 1 });

describe("tiny default Qwen2.5-VL model", () => {
  it("trains with LoRA on a real image batch", async () => {
    const tok = loadTokenizerDir(dir, "tiny");
    const vlm = VlmModel.load(dir);
    const env = new TabletopEnv({ size: 56 });
    const spec = parseActionSpec(VLA0_SPEC);
    const codec = new ActionCodec(spec, getFormat("vla0"));
    const rows: Array<{ tokens: Int32Array; targets: Int32Array; positions: Int32Array; injectRows: Int32Array; inject: Float32Array }> = [];
    for (const seed of [1, 2]) {
      const obs = env.reset(seed);
      const image = tileHorizontal([obs.images.top!, obs.images.front!]); // 112 x 56
      const feats = await vlm.imageFeatures([image]);
      expect(feats.processed[0]!.grid).toEqual({ t: 1, h: 4, w: 8 });
      const answer = codec.encodeNormalized(Float32Array.from({ length: 56 }, (_, i) => Math.sin(i + seed))).text;
      const segs = renderChat(tok, renderTemplate(loadTemplate("vla0"), { horizon: 8, dims: 7, bins: 1000, instruction: obs.instruction, images: 1 }), { answer, addVisionId: true });
      const enc = encodeSegments(tok, segs, { imageTokens: [feats.processed[0]!.tokens] });
      expect(Array.from(enc.ids).filter((t) => t === vlm.imageTokenId)).toHaveLength(8);
      const ex = buildTrainingExample(enc);
      const T = ex.inputIds.length - 1;
      const mm = vlm.multimodalInputs(T, enc.imageStarts, feats.processed);
      rows.push({ tokens: ex.inputIds.slice(0, T), targets: ex.labels.slice(1), positions: mm.positions, injectRows: mm.injectRows, inject: feats.features });
    }
    // one sequence per step (different lengths): a LoRA step each, loss finite and falling on repetition
    vlm.decoder.enableLora({ rank: 4, alpha: 8, targets: "all-linear" });
    const losses: number[] = [];
    for (let step = 0; step < 6; step++) {
      const r = rows[step % 2]!;
      const res = await vlm.decoder.forwardBackward({ B: 1, T: r.tokens.length, tokens: r.tokens, targets: r.targets, positions: r.positions, injectRows: r.injectRows, inject: r.inject });
      losses.push(res.loss);
      vlm.decoder.optimizerStep({ lr: 5e-3 });
    }
    losses.forEach((l) => expect(Number.isFinite(l)).toBe(true));
    expect(losses[4]!).toBeLessThan(losses[0]!);
    // the image features matter: other features, other loss
    const r0 = rows[0]!;
    const base = vlm.decoder.loss({ B: 1, T: r0.tokens.length, tokens: r0.tokens, targets: r0.targets, positions: r0.positions, injectRows: r0.injectRows, inject: r0.inject }).loss;
    const other = vlm.decoder.loss({ B: 1, T: r0.tokens.length, tokens: r0.tokens, targets: r0.targets, positions: r0.positions, injectRows: r0.injectRows, inject: r0.inject.map((v) => -v) }).loss;
    expect(Math.abs(other - base)).toBeGreaterThan(1e-6);
    vlm.dispose();
  });

  it("trains the vision tower through the language model's loss: finite differences of the whole pipeline", async () => {
    // loss(tower weights) = the LM's mean answer loss with the tower's features injected;
    // analytic: tower forward (train) -> LM forward/backward (dInject) -> tower backward.
    // f32 central differences with e = 1e-2: the loss (~7) rounds at ~1e-6, so fd carries up to
    // ~1e-6 / e of noise on gradients of 1e-5..1e-3; tolerance 3e-2 * max|grad of the tensor| + 2e-6.
    const tok = loadTokenizerDir(dir, "tiny");
    const vlm = VlmModel.load(dir);
    vlm.vision.setTrainable(true);
    try {
      const obs = new TabletopEnv({ size: 28 }).reset(3);
      const image = tileHorizontal([obs.images.top!, obs.images.front!]); // 56 x 28 -> (1, 2, 4): 2 merged tokens
      const proc = await vlm.imageFeatures([image]);
      const codec = new ActionCodec(parseActionSpec({ ...VLA0_SPEC, horizon: 1 }), getFormat("vla0"));
      const answer = codec.encodeNormalized(Float32Array.from({ length: 7 }, (_, i) => Math.cos(i))).text;
      const segs = renderChat(tok, renderTemplate(loadTemplate("terse"), { horizon: 1, dims: 7, bins: 1000, instruction: obs.instruction, images: 1 }), { answer, addVisionId: true });
      const enc = encodeSegments(tok, segs, { imageTokens: [proc.processed[0]!.tokens] });
      const ex = buildTrainingExample(enc);
      const T = ex.inputIds.length - 1;
      const mm = vlm.multimodalInputs(T, enc.imageStarts, proc.processed);
      const batch = { B: 1, T, tokens: ex.inputIds.slice(0, T), targets: ex.labels.slice(1), positions: mm.positions, injectRows: mm.injectRows };
      // larger weights than the default init, so that every tensor carries a visible gradient
      const r = (() => { let x = 7; return () => ((x = (x * 1103515245 + 12345) % 2 ** 31) / 2 ** 31) * 2 - 1; })();
      for (const p of vlm.vision.paramInfo()) if (!/norm|ln_q/.test(p.name)) vlm.vision.setParam(p.name, Float32Array.from(vlm.vision.getParam(p.name), () => r() * 0.2));
      const loss = async () => vlm.decoder.loss({ ...batch, inject: (await vlm.imageFeatures([image])).features }).loss;
      const feats = await vlm.imageFeatures([image], { train: true });
      const res = await vlm.decoder.forwardBackward({ ...batch, inject: feats.features }, { injectGrad: true });
      expect(Math.abs(res.loss - (await loss()))).toBeLessThan(1e-6);
      await vlm.backwardImages(res.dInject!);
      const e = 1e-2;
      expect(await towerFdMismatches(vlm, ["visual.patch_embed.proj.weight", "visual.blocks.0.attn.qkv.weight", "visual.blocks.1.mlp.up_proj.bias", "visual.merger.ln_q.weight", "visual.merger.mlp.0.weight", "visual.merger.mlp.2.bias"], loss, e, 2e-6)).toEqual([]);
    } finally {
      vlm.dispose();
    }
  });

  it("names what is unsupported", () => {
    const bad = fs.mkdtempSync(path.join(os.tmpdir(), "vlatext-bad-"));
    const cfg = JSON.parse(fs.readFileSync(path.join(dir, "config.json"), "utf8")) as Record<string, unknown>;
    fs.writeFileSync(path.join(bad, "config.json"), JSON.stringify({ ...cfg, model_type: "llava" }));
    expect(() => VlmModel.load(bad)).toThrow(/model_type 'llava'.* is not a supported model family[\s\S]*supported: qwen2_5_vl \(Qwen2.5-VL\), qwen3_vl \(Qwen3-VL\), smolvlm \(SmolVLM2\)/);
    fs.writeFileSync(path.join(bad, "config.json"), JSON.stringify({ ...cfg, vision_config: { ...(cfg.vision_config as object), hidden_act: "quick_gelu" } }));
    expect(() => VlmModel.load(bad)).toThrow(/quick_gelu/);
    fs.writeFileSync(path.join(bad, "config.json"), JSON.stringify({ ...cfg, vision_config: { ...(cfg.vision_config as object), rope_parameters: { rope_type: "yarn" } } }));
    expect(() => VlmModel.load(bad)).toThrow(/rope_parameters.rope_type 'yarn' is not supported/);
    fs.writeFileSync(path.join(bad, "config.json"), JSON.stringify({ ...cfg, rope_scaling: undefined, rope_parameters: { rope_type: "linear", factor: 2 } }));
    expect(() => VlmModel.load(bad)).toThrow(/rope_parameters type 'linear' is not supported/);
  });
});

describe("a vision-language policy", () => {
  it("sees the cameras: tiled, encoded, injected, with 3D positions; over HTTP too", async () => {
    const { Policy } = await import("../../src/policy/policy.js");
    const { startServer } = await import("../../src/serve/server.js");
    const { TINY_STATS } = await import("../support/tiny-policy.js");
    const pdir = fs.mkdtempSync(path.join(os.tmpdir(), "vlatext-vlm-policy-"));
    fs.writeFileSync(path.join(pdir, "policy.json"), JSON.stringify({ model: dir, tokenizer: dir, spec: VLA0_SPEC, stats: TINY_STATS, template: "vla0" }));
    const policy = Policy.load(pdir);
    expect(policy.vlm).toBeDefined();
    const env = new TabletopEnv({ size: 56 });
    const obs = env.reset(4);
    const req = { images: [obs.images.top!, obs.images.front!], instruction: obs.instruction, state: Array.from(obs.state) };
    const built = await policy.buildPrompt(req);
    expect(built.imagesUsed).toBe(true);
    expect(built.ids.filter((t) => t === policy.vlm!.imageTokenId)).toHaveLength(8);
    expect(built.positions!.length).toBe(3 * built.ids.length);
    const r = await policy.act(req);
    expect(r.imagesUsed).toBe(true);
    expect(r.chunk).toHaveLength(8);
    const srv = await startServer(policy);
    try {
      const body = { instruction: obs.instruction, images: [obs.images.top!, obs.images.front!].map((i) => ({ rgb: Buffer.from(i.data).toString("base64"), width: i.width, height: i.height })) };
      const res = await fetch(`${srv.url}/v1/act`, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
      const json = (await res.json()) as { imagesUsed: boolean; text: string };
      expect(res.status).toBe(200);
      expect(json.imagesUsed).toBe(true);
      const odd = await fetch(`${srv.url}/v1/act`, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ instruction: "x", images: [body.images[0], { rgb: Buffer.alloc(30 * 20 * 3).toString("base64"), width: 30, height: 20 }] }) });
      expect(odd.status).toBe(400);
      expect(((await odd.json()) as { error: string }).error).toMatch(/different heights \(56, 20\)/);
    } finally {
      await srv.close();
      policy.dispose();
    }
  });
});
