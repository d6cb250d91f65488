/**
 * The embedded default (models/tiny-vlm, made by `vlatext pretrain`): it loads in vlatext,
 * its pretrain.json describes the very weights shipped, transformers' from_pretrained loads
 * the same directory and computes the same logits (test/goldens/make_tiny_vlm_golden.py),
 * and pretraining is deterministic (the same config gives the same bytes).
 *
 * Tolerances: input ids and the greedy answer exact; pixel_values 1e-5 absolute (the
 * processor is bit-exact up to float rounding, as in test/vision/hf-goldens.test.ts);
 * logits max |ours - HF| <= 1e-4 * max |HF| (f32 both sides, summation order differs).
 */
import { createHash } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { main } from "../../src/cli/main.js";
import { decodeImageBytes } from "../../src/data/image.js";
import { VlmModel } from "../../src/engine/vlm.js";
import { readSafetensors, safetensorsData } from "../../src/io/safetensors.js";
import { pretrainedCameras, pretrainedDefaultDir, requirePretrained } from "../../src/models/pretrained.js";
import { LeRobotDataset } from "../../src/data/lerobot/dataset.js";
import { loadRecipe } from "../../src/data/recipe.js";
import { Policy } from "../../src/policy/policy.js";
import { loadTokenizerDir } from "../../src/prompts/tokenizer.js";
import { FIRST_LOSSES, encodeQuestion, kernelPath, parsePretrainConfig, pretrain, pretrainHeldOut } from "../../src/train/pretrain.js";
import { bufferIO } from "../support/io.js";

const goldenDir = path.join(path.dirname(fileURLToPath(import.meta.url)), "..", "goldens", "tiny-vlm");
const sha256 = (file: string) => createHash("sha256").update(fs.readFileSync(file)).digest("hex");
const quiet = { log: () => {}, progress: () => {} };

describe("the pretrained default (models/tiny-vlm)", () => {
  const dir = pretrainedDefaultDir();

  /** Skips the test, saying why, when this machine's kernels are not the ones pretrain.json's numbers came from. */
  const skipOnOtherKernels = (ctx: { skip: (note: string) => void }, kernels: string, what: string): void => {
    const vlm = VlmModel.load(dir);
    const here = kernelPath(vlm.decoder.backend);
    vlm.dispose();
    if (here !== kernels) ctx.skip(`${what} with the ${kernels} kernels; this machine runs ${here}`);
  };

  it("loads in vlatext, and pretrain.json describes the shipped weights", () => {
    requirePretrained(dir);
    const info = JSON.parse(fs.readFileSync(path.join(dir, "pretrain.json"), "utf8")) as { sha256: string; seconds: number; config: unknown; heldOutExactMatch: Record<string, number> };
    expect(info.sha256).toBe(sha256(path.join(dir, "model.safetensors")));
    // made by the documented command: its config is that of `vlatext pretrain --output models/tiny-vlm --cameras top,wrist`
    expect(parsePretrainConfig({ ...(info.config as object), output: dir })).toEqual(parsePretrainConfig({ output: dir, cameras: ["top", "wrist"] }));
    const vlm = VlmModel.load(dir);
    try {
      expect(vlm.imageTokenId).toBeDefined();
      expect(vlm.decoder.numParams).toBeGreaterThan(0);
    } finally {
      vlm.dispose();
    }
    // small enough to ship
    expect(fs.statSync(path.join(dir, "model.safetensors")).size).toBeLessThan(20 * 1024 * 1024);
  });

  it("is what the code makes: the documented run's first steps of both stages give pretrain.json's losses, bit for bit", async (ctx) => {
    const info = JSON.parse(fs.readFileSync(path.join(dir, "pretrain.json"), "utf8")) as { config: { vision: object }; kernels: string; firstLosses: number[]; vision?: { firstLosses: number[] } };
    expect(info.firstLosses.length).toBe(FIRST_LOSSES);
    expect(info.vision?.firstLosses.length, "the shipped default was made with the vision stage").toBe(FIRST_LOSSES);
    // other kernels (another vector width) sum in another order: other bytes, by design
    skipOnOtherKernels(ctx, info.kernels, "the shipped model was made");
    const root = fs.mkdtempSync(path.join(os.tmpdir(), "vlatext-pretrain-first-"));
    const remake = "the code no longer makes the shipped weights: rerun `vlatext pretrain --output models/tiny-vlm --cameras top,wrist` and the golden script (README)";
    // both stages warm up over their first 100 steps, whatever their length: a short run of the same config is the long run's start
    await pretrain(parsePretrainConfig({ ...info.config, output: path.join(root, "v"), vision: { ...info.config.vision, steps: FIRST_LOSSES }, steps: 0, evalEpisodes: 0 }), quiet);
    const v = JSON.parse(fs.readFileSync(path.join(root, "v", "pretrain.json"), "utf8")) as { vision: { firstLosses: number[] } };
    expect(v.vision.firstLosses, `vision stage: ${remake}`).toEqual(info.vision!.firstLosses);
    // the language stage on the shipped tower (vision.from): the same decoder start, the same features, the same batches
    const r = await pretrain(parsePretrainConfig({ ...info.config, output: path.join(root, "m"), vision: { ...info.config.vision, from: dir }, steps: FIRST_LOSSES, evalEpisodes: 0 }), quiet);
    expect(r.losses.map((l) => l.loss), `language stage: ${remake}`).toEqual(info.firstLosses);
  }, 600_000);

  it("answers the held-out questions as pretrain.json says (exact match and coordinate error, re-measured)", async (ctx) => {
    const info = JSON.parse(fs.readFileSync(path.join(dir, "pretrain.json"), "utf8")) as { config: object; kernels: string; heldOutExactMatch: Record<string, number>; heldOutNumericError: Record<string, { meanAbsUnits: number; malformed: number; questions: number }> };
    // measured on those kernels: another rounding can flip a greedy answer
    skipOnOtherKernels(ctx, info.kernels, "pretrain.json was measured");
    const r = await pretrainHeldOut(dir, parsePretrainConfig({ ...info.config, output: dir }));
    expect(r.accuracy).toEqual(info.heldOutExactMatch);
    expect(Object.keys(r.numericError).sort()).toEqual(["block", "gripper", "offset", "zone"]);
    for (const [k, e] of Object.entries(r.numericError)) {
      const want = info.heldOutNumericError[k]!;
      expect(e.questions).toBe(want.questions);
      expect(e.malformed).toBe(want.malformed);
      // the same greedy answers: the same error, to rounding
      expect(e.meanAbsUnits).toBeCloseTo(want.meanAbsUnits, 9);
    }
  });

  it("gives the logits transformers' from_pretrained gives (golden)", async () => {
    const meta = JSON.parse(fs.readFileSync(path.join(goldenDir, "meta.json"), "utf8")) as { model_sha256: string; question: string; transformers: string };
    expect(meta.model_sha256, "the golden was made from other weights: run python3 test/goldens/make_tiny_vlm_golden.py --model models/tiny-vlm --out test/goldens/tiny-vlm").toBe(sha256(path.join(dir, "model.safetensors")));
    const g = readSafetensors(path.join(goldenDir, "golden.safetensors"));
    const image = decodeImageBytes(fs.readFileSync(path.join(goldenDir, "scene.png")), "scene.png");
    const vlm = VlmModel.load(dir);
    try {
      const feats = await vlm.imageFeatures([image]);
      expect([feats.processed[0]!.grid.t, feats.processed[0]!.grid.h, feats.processed[0]!.grid.w]).toEqual(Array.from(safetensorsData(g, "image_grid_thw")));
      const pv = safetensorsData(g, "pixel_values");
      expect(feats.processed[0]!.pixels.length).toBe(pv.length);
      let pixErr = 0;
      pv.forEach((v, i) => (pixErr = Math.max(pixErr, Math.abs(v - (feats.processed[0]!.pixels[i] as number)))));
      expect(pixErr).toBeLessThanOrEqual(1e-5);
      // vlatext's own prompt for the question is HF's chat template, token for token (the answer cut off)
      const tok = loadTokenizerDir(dir);
      const enc = encodeQuestion(tok, meta.question, "0", feats.processed[0]!.tokens);
      const want = Array.from(safetensorsData(g, "input_ids"));
      expect(Array.from(enc.ids.slice(0, enc.answerStart))).toEqual(want);
      const ids = Int32Array.from(want);
      const mm = vlm.multimodalInputs(ids.length, enc.imageStarts, feats.processed);
      const logits = vlm.decoder.logits({ B: 1, T: ids.length, tokens: ids, positions: mm.positions, injectRows: mm.injectRows, inject: feats.features });
      const hf = safetensorsData(g, "logits");
      expect(logits.length).toBe(hf.length);
      let err = 0;
      let scale = 0;
      hf.forEach((v, i) => {
        err = Math.max(err, Math.abs(v - (logits[i] as number)));
        scale = Math.max(scale, Math.abs(v));
      });
      expect(err / scale).toBeLessThanOrEqual(1e-4);
    } finally {
      vlm.dispose();
    }
  });
});

describe("vlatext pretrain", () => {
  // the tower trained too (the slower path), so both the decoder's and the tower's steps are covered
  const tiny = { steps: 3, batchSize: 2, episodes: 2, every: 6, evalEpisodes: 1, trainVision: true, vision: { steps: 3, batchSize: 2 }, model: { hiddenSize: 32, layers: 1, visionHidden: 16, visionDepth: 1, patchSize: 14 }, logEvery: 1 };

  it("is deterministic: the same config gives the same bytes, another seed others", async () => {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), "vlatext-pretrain-"));
    const a = await pretrain(parsePretrainConfig({ ...tiny, output: path.join(root, "a") }), quiet);
    const b = await pretrain(parsePretrainConfig({ ...tiny, output: path.join(root, "b") }), quiet);
    const c = await pretrain(parsePretrainConfig({ ...tiny, seed: 1, output: path.join(root, "c") }), quiet);
    expect(a.losses.map((l) => l.loss)).toEqual(b.losses.map((l) => l.loss));
    expect(a.sha256).toBe(b.sha256);
    expect(sha256(path.join(root, "a", "model.safetensors"))).toBe(a.sha256);
    expect(c.sha256).not.toBe(a.sha256);
    for (const f of ["config.json", "tokenizer.json", "preprocessor_config.json"]) expect(fs.readFileSync(path.join(root, "a", f), "utf8")).toBe(fs.readFileSync(path.join(root, "b", f), "utf8"));
    // a real step: the loss moves, and the result loads as a vision-language model
    expect(a.losses[2]!.loss).not.toBe(a.losses[0]!.loss);
    VlmModel.load(path.join(root, "a")).dispose();
    expect(Object.keys(a.accuracy).length).toBeGreaterThan(0);
    // the vision stage ran first and is recorded; vision.from takes another run's tower instead of running it
    const info = JSON.parse(fs.readFileSync(path.join(root, "a", "pretrain.json"), "utf8")) as { vision?: { firstLosses: number[] } };
    expect(info.vision?.firstLosses.length).toBe(3);
    const d = await pretrain(parsePretrainConfig({ ...tiny, trainVision: false, vision: { from: path.join(root, "a") }, output: path.join(root, "d") }), quiet);
    const [ta, td] = [readSafetensors(path.join(root, "a", "model.safetensors")), readSafetensors(path.join(root, "d", "model.safetensors"))];
    const towerNames = [...ta.tensors.keys()].filter((n) => n.startsWith("model.visual."));
    expect(towerNames.length).toBeGreaterThan(4);
    for (const n of towerNames) expect(Array.from(safetensorsData(td, n))).toEqual(Array.from(safetensorsData(ta, n)));
    expect(d.sha256).not.toBe(a.sha256);
    await expect(pretrain(parsePretrainConfig({ ...tiny, vision: { from: path.join(root, "nowhere") }, output: path.join(root, "e") }), quiet)).rejects.toThrow(/vision\.from: .*nowhere.*does not exist/);
    // steps 0: the vision stage alone, the tower a run with a language stage (tower frozen there) goes on with
    const v = await pretrain(parsePretrainConfig({ ...tiny, trainVision: false, steps: 0, output: path.join(root, "v") }), quiet);
    const g = await pretrain(parsePretrainConfig({ ...tiny, trainVision: false, output: path.join(root, "g") }), quiet);
    expect([v.losses.length, Object.keys(v.accuracy).length, g.losses.length]).toEqual([0, 0, 3]);
    const [tv, tg] = [readSafetensors(path.join(root, "v", "model.safetensors")), readSafetensors(path.join(root, "g", "model.safetensors"))];
    for (const n of towerNames) expect(Array.from(safetensorsData(tv, n))).toEqual(Array.from(safetensorsData(tg, n)));
    expect(towerNames.some((n) => Array.from(safetensorsData(tv, n)).some((x, i) => x !== safetensorsData(ta, n)[i])), "the language stage trained the tower (trainVision)").toBe(true);
    expect(() => parsePretrainConfig({ ...tiny, steps: 0, vision: { steps: 0 }, output: path.join(root, "f") })).toThrow(/steps 0 and vision\.steps 0 train nothing/);
    // the coordinate questions' greedy answers are measured: finite errors, malformed answers counted
    const errs = Object.values(a.numericError);
    expect(errs.length).toBeGreaterThan(0);
    for (const e of errs) {
      expect(e.malformed).toBeLessThanOrEqual(e.questions);
      if (e.malformed < e.questions) expect(Number.isFinite(e.meanAbsCm) && e.meanAbsCm >= 0).toBe(true);
    }
  });

  it("names the kernels a result depends on, not the thread count", () => {
    expect(kernelPath("cpu (2 threads, avx512bf16)")).toBe("cpu avx512bf16");
    expect(kernelPath("cpu (1 threads, avx2)")).toBe(kernelPath("cpu (16 threads, avx2)"));
    expect(kernelPath("cpu (2 threads, avx2)")).not.toBe(kernelPath("cpu (2 threads, avx512)"));
  });

  it("runs from the CLI, writes pretrain.json, and names bad options before any work", async () => {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), "vlatext-pretrain-cli-"));
    const io = bufferIO();
    expect(await main(["pretrain", "--output", path.join(root, "m"), "--steps", "2", "--batch-size", "2", "--episodes", "1", "--eval-episodes", "0", "--vision-steps", "2", "--vision-hidden", "16", "--hidden", "48", "--layers", "1"], io)).toBe(0);
    expect(io.stdout()).toMatch(/pretrained model in .* \(\d+ s; model\.safetensors sha256 [0-9a-f]{64}\)/);
    expect(io.stderr()).not.toMatch(/\r/);
    const written = JSON.parse(fs.readFileSync(path.join(root, "m", "pretrain.json"), "utf8")) as { config: { steps: number; vision: { steps: number }; model: { visionHidden: number; hiddenSize: number; layers: number } }; vision?: unknown };
    expect([written.config.steps, written.config.vision.steps, written.config.model.visionHidden, written.config.model.hiddenSize, written.config.model.layers]).toEqual([2, 2, 16, 48, 1]);
    // the language model the weights describe is the one asked for (and transformers reads it from config.json)
    const hf = JSON.parse(fs.readFileSync(path.join(root, "m", "config.json"), "utf8")) as { text_config?: { hidden_size: number; num_hidden_layers: number }; hidden_size?: number; num_hidden_layers?: number };
    expect([hf.text_config?.hidden_size ?? hf.hidden_size, hf.text_config?.num_hidden_layers ?? hf.num_hidden_layers]).toEqual([48, 1]);
    expect(written.vision).toBeDefined();
    const bad = bufferIO();
    expect(await main(["pretrain", "--output", path.join(root, "x"), "--lr", "abc"], bad)).not.toBe(0);
    expect(bad.stderr()).toMatch(/lr/);
    expect(fs.existsSync(path.join(root, "x"))).toBe(false);
    for (const [opt, value, said] of [["--hidden", "40", /--hidden must be a multiple of 16/], ["--hidden", "8", /--hidden must be an integer >= 16/], ["--layers", "0", /--layers must be an integer >= 1/]] as const) {
      const e = bufferIO();
      expect(await main(["pretrain", "--output", path.join(root, "x"), opt, value], e)).not.toBe(0);
      expect(e.stderr()).toMatch(said);
      expect(fs.existsSync(path.join(root, "x"))).toBe(false);
    }
  });

  it("--cameras: a model pretrained on the wrist camera records it, and the demo fine-tunes and evaluates it on those cameras", async () => {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), "vlatext-pretrain-wrist-"));
    const model = path.join(root, "m");
    const io = bufferIO();
    expect(await main(["pretrain", "--output", model, "--cameras", "wrist,top", "--steps", "2", "--batch-size", "2", "--episodes", "2", "--eval-episodes", "1", "--vision-steps", "2", "--vision-hidden", "16"], io)).toBe(0);
    const written = JSON.parse(fs.readFileSync(path.join(model, "pretrain.json"), "utf8")) as { config: { cameras: string[] } };
    expect(written.config.cameras).toEqual(["top", "wrist"]);
    expect(pretrainedCameras(model)).toEqual(["top", "wrist"]);
    // the shipped default sees top | wrist (its pretrain.json says so); a directory whose pretrain.json names none gets the default pair
    expect(pretrainedCameras(pretrainedDefaultDir())).toEqual(["top", "wrist"]);
    const old = path.join(root, "old");
    fs.mkdirSync(old);
    fs.writeFileSync(path.join(old, "pretrain.json"), JSON.stringify({ ...written, config: { ...written.config, cameras: undefined } }));
    expect(pretrainedCameras(old)).toEqual(["top", "front"]);
    const demo = bufferIO();
    const out = path.join(root, "demo");
    expect(await main(["demo", "--output", out, "--model", model, "--tasks", "pick", "--episodes", "3", "--steps", "2", "--eval-episodes", "1"], demo)).toBe(0);
    const ds = await LeRobotDataset.open(path.join(out, "data"));
    expect(ds.cameraKeys).toEqual(["observation.images.top", "observation.images.wrist"]);
    // top | wrist has a shipped recipe (the embedded default's cameras): nothing written
    expect(fs.existsSync(path.join(out, "recipe.json"))).toBe(false);
    expect(loadRecipe("toy-sim-top-wrist").cameras).toEqual({ "observation.images.top": "top", "observation.images.wrist": "wrist" });
    expect(demo.stdout()).toMatch(/pick\s+\d\/1/);
    expect(demo.stderr()).not.toMatch(/was pretrained on/);
    // the policy records its cameras: eval sends those by default and refuses others; a request with
    // another number of camera images is refused instead of being tiled into an image it never saw
    const policyDir = path.join(out, "run", "policy");
    expect((JSON.parse(fs.readFileSync(path.join(policyDir, "policy.json"), "utf8")) as { cameras?: string[] }).cameras).toEqual(["top", "wrist"]);
    const evalDefault = bufferIO();
    expect(await main(["eval", "--sim", "--model", policyDir, "--families", "pick", "--episodes", "1", "--size", "56", "--json"], evalDefault)).toBe(0);
    const evalNamed = bufferIO();
    expect(await main(["eval", "--sim", "--model", policyDir, "--families", "pick", "--episodes", "1", "--size", "56", "--json", "--cameras", "top,wrist"], evalNamed)).toBe(0);
    const outcome = (r: ReturnType<typeof bufferIO>) => (JSON.parse(r.stdout()) as { families: unknown[] }).families;
    expect(outcome(evalDefault)).toEqual(outcome(evalNamed));
    const evalOther = bufferIO();
    expect(await main(["eval", "--sim", "--model", policyDir, "--families", "pick", "--episodes", "1", "--size", "56", "--cameras", "top,front"], evalOther)).not.toBe(0);
    expect(evalOther.stderr()).toMatch(/--cameras top,front: the policy in .* was trained on top,wrist/);
    const policy = Policy.load(policyDir);
    try {
      const img = { width: 56, height: 56, data: new Uint8Array(56 * 56 * 3).fill(120) };
      await expect(policy.act({ images: [img, img, img], instruction: "pick up the red block", state: [0, 0, 0.1, 0, 1] })).rejects.toThrow(/3 camera images but the policy was trained on 2 \(top, wrist\)/);
    } finally {
      policy.dispose();
    }
    // other cameras than the model's are allowed, with a note (and a recipe written for a pair none ships);
    // --from-scratch has only the default pair
    const other = bufferIO();
    expect(await main(["demo", "--output", path.join(root, "other"), "--model", model, "--cameras", "wrist,front", "--tasks", "reach", "--episodes", "2", "--steps", "1", "--eval-episodes", "1"], other)).toBe(0);
    expect(other.stderr()).toMatch(/was pretrained on top,wrist; fine-tuning it on front,wrist/);
    expect(loadRecipe(path.join(root, "other", "recipe.json")).cameras).toEqual({ "observation.images.front": "front", "observation.images.wrist": "wrist" });
    expect((JSON.parse(fs.readFileSync(path.join(root, "other", "run", "policy", "policy.json"), "utf8")) as { cameras?: string[] }).cameras).toEqual(["front", "wrist"]);
    const bad = bufferIO();
    expect(await main(["demo", "--output", path.join(root, "bad"), "--from-scratch", "--cameras", "top,wrist"], bad)).not.toBe(0);
    expect(bad.stderr()).toMatch(/--from-scratch calibrates its sensor on the default cameras/);
    expect(fs.existsSync(path.join(root, "bad"))).toBe(false);
  }, 300_000);
});
