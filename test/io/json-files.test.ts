/**
 * Every JSON file a run reads, hit with a truncated and a wrong-typed copy: each answers
 * a VlaError with its code that names the file (never a raw SyntaxError or a stack trace).
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { loadStats } from "../../src/actions/stats.js";
import { main } from "../../src/cli/main.js";
import { loadInfo, loadMeta } from "../../src/data/lerobot/meta.js";
import { writeLeRobotV21 } from "../../src/data/lerobot/writer.js";
import { loadRecipe } from "../../src/data/recipe.js";
import { DecoderModel } from "../../src/engine/decoder.js";
import { loadLanguageModel, VlmModel } from "../../src/engine/vlm.js";
import type { ErrorCode } from "../../src/errors.js";
import { readRunMetrics, readSweepResult } from "../../src/experiments/sweep.js";
import { loadPeftAdapter } from "../../src/io/adapter-export.js";
import { readSafetensors } from "../../src/io/safetensors.js";
import { createTinyDefaultModel } from "../../src/models/tiny-default.js";
import { Policy } from "../../src/policy/policy.js";
import { loadTokenizerDir } from "../../src/prompts/tokenizer.js";
import { readCheckpointState } from "../../src/train/checkpoint.js";
import { readConfigFile } from "../../src/train/config.js";
import { synthEpisode, synthLayout } from "../data/synth.js";
import { bufferIO } from "../support/io.js";
import { hfConfigJson, tinyConfig } from "../support/tiny-models.js";
import { writeTinyPolicy } from "../support/tiny-policy.js";

const root = fs.mkdtempSync(path.join(os.tmpdir(), "vlatext-jsonfiles-"));
let vlmDir: string;
let datasetDir: string;
beforeAll(async () => {
  vlmDir = createTinyDefaultModel(path.join(root, "vlm"), { seed: 2, hiddenSize: 32, layers: 1, visionHidden: 16, visionDepth: 1 });
  datasetDir = path.join(root, "ds");
  const layout = synthLayout("png");
  await writeLeRobotV21(datasetDir, layout, [synthEpisode(layout, 4, 1, "a"), synthEpisode(layout, 3, 2, "b")]);
});

/** A fresh copy of `src` (a directory) to break. */
function copyOf(src: string, name: string): string {
  const dst = path.join(root, `${name}-${Math.random().toString(36).slice(2)}`);
  fs.cpSync(src, dst, { recursive: true });
  return dst;
}

/** Write `text` over the file, run `f`, and check the error's code and that it names the file. */
async function expectCoded(file: string, text: string, f: () => unknown, code: ErrorCode, more?: RegExp): Promise<void> {
  fs.writeFileSync(file, text);
  let err: unknown;
  try {
    await f();
  } catch (e) {
    err = e;
  }
  expect(err, `${file} with ${text.slice(0, 40)}`).toBeDefined();
  expect((err as { code?: string }).code, String(err)).toBe(code);
  expect((err as Error).message).toContain(file);
  if (more) expect((err as Error).message).toMatch(more);
}

const truncated = (json: unknown): string => {
  const t = JSON.stringify(json, null, 2);
  return t.slice(0, Math.floor(t.length / 2));
};

interface Case {
  name: string;
  /** Returns the file to break and the call that reads it. */
  setup: () => { file: string; valid: unknown; wrong: unknown; read: () => unknown };
  code: ErrorCode;
}

const cases: Case[] = [
  {
    name: "policy.json (Policy.load)",
    code: "CONFIG_INVALID",
    setup: () => {
      const dir = writeTinyPolicy(1);
      const file = path.join(dir, "policy.json");
      return { file, valid: JSON.parse(fs.readFileSync(file, "utf8")), wrong: { spec: 5, template: 3 }, read: () => Policy.load(dir) };
    },
  },
  {
    name: "model config.json (DecoderModel.load)",
    code: "CONFIG_INVALID",
    setup: () => {
      const dir = writeTinyPolicy(1);
      const file = path.join(dir, "config.json");
      return { file, valid: JSON.parse(fs.readFileSync(file, "utf8")), wrong: { model_type: "qwen2", vocab_size: "many" }, read: () => DecoderModel.load(dir) };
    },
  },
  {
    name: "model config.json (loadLanguageModel)",
    code: "CONFIG_INVALID",
    setup: () => {
      const dir = copyOf(vlmDir, "vlm");
      const file = path.join(dir, "config.json");
      return { file, valid: JSON.parse(fs.readFileSync(file, "utf8")), wrong: [1, 2], read: () => loadLanguageModel(dir) };
    },
  },
  {
    name: "vision-language config.json (VlmModel.load)",
    code: "CONFIG_INVALID",
    setup: () => {
      const dir = copyOf(vlmDir, "vlm");
      const file = path.join(dir, "config.json");
      const valid = JSON.parse(fs.readFileSync(file, "utf8")) as Record<string, unknown>;
      return { file, valid, wrong: { ...valid, vision_config: { ...(valid.vision_config as object), depth: "two" } }, read: () => VlmModel.load(dir) };
    },
  },
  {
    name: "preprocessor_config.json",
    code: "CONFIG_INVALID",
    setup: () => {
      const dir = copyOf(vlmDir, "vlm");
      const file = path.join(dir, "preprocessor_config.json");
      return { file, valid: JSON.parse(fs.readFileSync(file, "utf8")), wrong: { min_pixels: "small" }, read: () => VlmModel.load(dir) };
    },
  },
  {
    name: "model.safetensors.index.json",
    code: "FILE_INVALID",
    setup: () => {
      const dir = fs.mkdtempSync(path.join(root, "sharded-"));
      fs.writeFileSync(path.join(dir, "config.json"), JSON.stringify(hfConfigJson(tinyConfig("qwen2", true))));
      return { file: path.join(dir, "model.safetensors.index.json"), valid: { weight_map: { a: "model-00001.safetensors" } }, wrong: { weight_map: ["a"] }, read: () => DecoderModel.load(dir) };
    },
  },
  {
    name: "tokenizer.json",
    code: "TOKENIZER_LOAD",
    setup: () => {
      const dir = copyOf(vlmDir, "tok");
      const file = path.join(dir, "tokenizer.json");
      return { file, valid: JSON.parse(fs.readFileSync(file, "utf8")), wrong: { model: 3 }, read: () => loadTokenizerDir(dir) };
    },
  },
  {
    name: "tokenizer_config.json",
    code: "TOKENIZER_LOAD",
    setup: () => {
      const dir = copyOf(vlmDir, "tok");
      const file = path.join(dir, "tokenizer_config.json");
      return { file, valid: JSON.parse(fs.readFileSync(file, "utf8")), wrong: { chat_template: 5 }, read: () => loadTokenizerDir(dir) };
    },
  },
  {
    name: "statistics file",
    code: "STATS_INVALID",
    setup: () => {
      const file = path.join(root, `stats-${Math.random()}.json`);
      return { file, valid: { dims: 1, names: ["x"], count: 1, min: [0], max: [1], mean: [0], std: [1], q01: [0], q99: [1] }, wrong: { dims: "one" }, read: () => loadStats(file) };
    },
  },
  {
    name: "recipe",
    code: "CONFIG_INVALID",
    setup: () => {
      const file = path.join(root, `recipe-${Math.random()}.json`);
      return { file, valid: { name: "r", action: { source: "action" } }, wrong: { name: 5 }, read: () => loadRecipe(file) };
    },
  },
  {
    name: "finetune config (JSON)",
    code: "CONFIG_INVALID",
    setup: () => {
      const file = path.join(root, `cfg-${Math.random()}.json`);
      return { file, valid: { model: "m", output: "o" }, wrong: ["model"], read: () => readConfigFile(file) };
    },
  },
  {
    name: "LeRobot meta/info.json",
    code: "DATA_INVALID",
    setup: () => {
      const dir = copyOf(datasetDir, "ds");
      const file = path.join(dir, "meta", "info.json");
      const valid = JSON.parse(fs.readFileSync(file, "utf8")) as Record<string, unknown>;
      return { file, valid, wrong: { ...valid, fps: "ten" }, read: () => loadInfo(dir) };
    },
  },
  {
    name: "LeRobot meta/episodes.jsonl",
    code: "DATA_INVALID",
    setup: () => {
      const dir = copyOf(datasetDir, "ds");
      const file = path.join(dir, "meta", "episodes.jsonl");
      return { file, valid: { episode_index: 0, tasks: ["a"], length: 4 }, wrong: { episode_index: "zero", tasks: ["a"], length: 4 }, read: () => loadMeta(dir) };
    },
  },
  {
    name: "LeRobot meta/tasks.jsonl",
    code: "DATA_INVALID",
    setup: () => {
      const dir = copyOf(datasetDir, "ds");
      const file = path.join(dir, "meta", "tasks.jsonl");
      return { file, valid: { task_index: 0, task: "a" }, wrong: { task_index: 0, task: 7 }, read: () => loadMeta(dir) };
    },
  },
  {
    name: "PEFT adapter_config.json",
    code: "CONFIG_INVALID",
    setup: () => {
      const dir = fs.mkdtempSync(path.join(root, "adapter-"));
      return { file: path.join(dir, "adapter_config.json"), valid: { peft_type: "LORA", r: 8, lora_alpha: 16, target_modules: ["q_proj"] }, wrong: { r: "eight" }, read: () => loadPeftAdapter(dir) };
    },
  },
  {
    name: "checkpoint state.json",
    code: "CHECKPOINT_INVALID",
    setup: () => {
      const dir = fs.mkdtempSync(path.join(root, "ckpt-"));
      return { file: path.join(dir, "state.json"), valid: { step: 1, optimizerStep: 1, config: {}, spec: {}, stats: {}, template: { name: "t", text: "" }, format: {}, kind: "lora" }, wrong: { step: "one" }, read: () => readCheckpointState(dir) };
    },
  },
  {
    name: "a run's metrics.jsonl (sweep)",
    code: "FILE_INVALID",
    setup: () => {
      const dir = fs.mkdtempSync(path.join(root, "run-"));
      return { file: path.join(dir, "metrics.jsonl"), valid: { step: 1, loss: 2 }, wrong: { step: "1" }, read: () => readRunMetrics(dir) };
    },
  },
  {
    name: "sweep-result.json",
    code: "FILE_INVALID",
    setup: () => {
      const file = path.join(root, `sweep-result-${Math.random()}.json`);
      return { file, valid: [{ variant: "base", settings: {}, ensemble: "none", steps: 1, trainSeconds: 1, finalLoss: 1 }], wrong: [{ variant: 1 }], read: () => readSweepResult(file) };
    },
  },
];

describe("every JSON file a run reads fails with a code that names it", () => {
  for (const c of cases) {
    it(c.name, async () => {
      const { file, valid, wrong, read } = c.setup();
      const text = (v: unknown) => (file.endsWith(".jsonl") ? `${JSON.stringify(v)}\n${JSON.stringify(v)}\n` : JSON.stringify(v, null, 2));
      // truncated: mid-file for JSON Lines (a last line cut short is a killed writer's, tolerated where that is normal)
      await expectCoded(file, file.endsWith(".jsonl") ? `${truncated(valid)}\n${JSON.stringify(valid)}\n` : truncated(valid), read, c.code, /not valid JSON \(truncated or corrupt\?\)/);
      await expectCoded(file, text(wrong), read, c.code);
    });
  }

  it("safetensors: a truncated header is named too", () => {
    const dir = writeTinyPolicy(1);
    const file = path.join(dir, "model.safetensors");
    fs.truncateSync(file, 20);
    expect(() => readSafetensors(file)).toThrow(expect.objectContaining({ code: "FILE_INVALID", message: expect.stringContaining(file) }));
  });

  it("through the CLI: error [CODE] naming the file, never a stack trace", async () => {
    const cfg = path.join(root, "bad-config.json");
    fs.writeFileSync(cfg, '{"model": "m", "out');
    const io = bufferIO();
    expect(await main(["finetune", "--config", cfg], io)).toBe(1);
    expect(io.stderr()).toMatch(new RegExp(`^error \\[CONFIG_INVALID\\]: config file ${cfg.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&")} is not valid JSON`));
    expect(io.stderr()).not.toMatch(/at .*\.ts:\d+/);
    const spec = path.join(root, "bad-spec.json");
    fs.writeFileSync(spec, '{"names": [');
    const io2 = bufferIO();
    expect(await main(["prompt", "--spec", spec], io2)).toBe(1);
    expect(io2.stderr()).toMatch(/error \[SPEC_INVALID\]: --spec action spec .*bad-spec\.json is not valid JSON/);
    const pol = writeTinyPolicy(1);
    fs.writeFileSync(path.join(pol, "policy.json"), '{"spec": {"names"');
    const io3 = bufferIO();
    expect(await main(["serve", "--model", pol, "--port", "0"], io3)).toBe(1);
    expect(io3.stderr()).toMatch(/error \[CONFIG_INVALID\]: policy file .*policy\.json is not valid JSON/);
  });
});
