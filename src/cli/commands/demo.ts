/**
 * `vlatext demo`: the embedded default end to end, no download: simulator
 * demonstrations -> the tiny default Qwen2.5-VL model -> fine-tuning -> closed-loop
 * success in the simulator, untrained vs trained.
 */
import fs from "node:fs";
import path from "node:path";
import { createTinyDefaultModel } from "../../models/tiny-default.js";
import { evaluateInSim, type SimEvalReport } from "../../serve/eval.js";
import { Policy } from "../../serve/policy.js";
import { startServer } from "../../serve/server.js";
import { generateDataset } from "../../sim/generate.js";
import { parseFinetuneConfig } from "../../train/config.js";
import { finetune } from "../../train/trainer.js";
import { intOpt, str, type CliCommand, type CliIO } from "../command.js";
import { VlaError } from "../../errors.js";
import { table } from "../table.js";

async function evaluate(policyDir: string, episodes: number, seed: number, io: CliIO, label: string): Promise<SimEvalReport> {
  const policy = Policy.load(policyDir);
  const srv = await startServer(policy, { maxQueue: 4 });
  try {
    let n = 0;
    return await evaluateInSim({ url: srv.url, episodes, seed, size: 56, onEpisode: () => io.err(`\r${label}: episode ${++n}   `) });
  } finally {
    io.err("\n");
    await srv.close();
    policy.dispose();
  }
}

export const demoCommand: CliCommand = {
  name: "demo",
  summary: "Generate simulator data, create the tiny default model, fine-tune it, and evaluate closed loop (no download)",
  options: { output: { type: "string" }, episodes: { type: "string" }, steps: { type: "string" }, "eval-episodes": { type: "string" }, seed: { type: "string" }, hidden: { type: "string" }, layers: { type: "string" } },
  optionHelp: {
    output: { value: "dir", description: "Run directory (default runs/demo)" },
    episodes: { value: "n", description: "Demonstrations to generate (default 160)" },
    steps: { value: "n", description: "Fine-tuning steps (default 400)" },
    "eval-episodes": { value: "n", description: "Closed-loop episodes per task family (default 10)" },
    seed: { value: "n", description: "Seed for data, model and training (default 0)" },
    hidden: { value: "n", description: "Language model width of the tiny default model (default 64; a multiple of 16)" },
    layers: { value: "n", description: "Language model layers of the tiny default model (default 2)" },
  },
  async run(args, io) {
    const out = path.resolve(io.cwd, str(args, "output") ?? "runs/demo");
    const episodes = intOpt(args, "episodes", 160, 1);
    const steps = intOpt(args, "steps", 400, 1);
    const evalEpisodes = intOpt(args, "eval-episodes", 10, 1);
    const seed = intOpt(args, "seed", 0, 0);
    const hidden = intOpt(args, "hidden", 64, 16);
    const layers = intOpt(args, "layers", 2, 1);
    if (hidden % 16 !== 0) throw new VlaError("CLI_USAGE", `--hidden must be a multiple of 16, got ${hidden}`);
    const t0 = performance.now();
    fs.mkdirSync(out, { recursive: true });
    const dataDir = path.join(out, "data");
    io.err(`[1/4] generating ${episodes} demonstrations…\n`);
    if (!fs.existsSync(path.join(dataDir, "meta", "info.json"))) await generateDataset(dataDir, { episodes, seed, size: 56, storage: "png" }, undefined, { overwrite: true });
    io.err(`[2/4] creating the tiny default model…\n`);
    const modelDir = createTinyDefaultModel(path.join(out, "model"), { seed, hiddenSize: hidden, layers });
    io.err(`[3/4] fine-tuning (${steps} steps)…\n`);
    const run = path.join(out, "run");
    fs.rmSync(run, { recursive: true, force: true });
    const cfg = parseFinetuneConfig({
      model: modelDir,
      output: run,
      data: [{ dataset: dataDir, recipe: "toy-sim" }],
      lora: { enabled: false },
      optimizer: { lr: 1e-3, weightDecay: 0, maxGradNorm: 1 },
      schedule: { type: "cosine", warmupSteps: 20 },
      batchSize: 8,
      steps,
      seed,
      imageSize: 56,
      logEvery: 10,
    });
    const trained = await finetune(cfg, { log: (l) => io.err(`${l}\n`), progress: (l) => io.err(io.isTTY ? `\r${l}\x1b[K` : `${l}\n`) });
    io.err(`\n[4/4] closed-loop evaluation (${evalEpisodes} episodes per task family)…\n`);
    const untrainedDir = path.join(out, "untrained");
    fs.mkdirSync(untrainedDir, { recursive: true });
    const policyJson = JSON.parse(fs.readFileSync(path.join(trained.policyDir, "policy.json"), "utf8")) as Record<string, unknown>;
    delete policyJson.weights;
    delete policyJson.adapter;
    delete policyJson.visionWeights;
    fs.writeFileSync(path.join(untrainedDir, "policy.json"), JSON.stringify(policyJson, null, 2));
    const before = await evaluate(untrainedDir, evalEpisodes, 5000, io, "untrained");
    const after = await evaluate(trained.policyDir, evalEpisodes, 5000, io, "trained");
    const lastLoss = trained.losses[trained.losses.length - 1]?.loss ?? NaN;
    io.out(
      table(
        ["family", "untrained", "trained"],
        before.families.map((f, i) => [f.family, `${f.successes}/${f.episodes}`, `${after.families[i]?.successes ?? 0}/${after.families[i]?.episodes ?? 0}`]),
      ),
    );
    io.out(`\nsuccess: untrained ${(100 * before.successRate).toFixed(1)}%, trained ${(100 * after.successRate).toFixed(1)}% (final loss ${lastLoss.toFixed(3)}); ${((performance.now() - t0) / 1000).toFixed(0)} s in all\n`);
    io.out(`run saved in ${out} (policy: ${trained.policyDir}; serve it with: vlatext serve --model ${trained.policyDir})\n`);
    return 0;
  },
};
