/** `vlatext finetune`: LoRA or full fine-tuning from a config file, every key overridable by flag. */
import { VlaError } from "../../errors.js";
import { applyOverrides, configPaths, deepMerge, parseFinetuneConfig, PRESETS, readConfigFile } from "../../train/config.js";
import { finetune } from "../../train/trainer.js";
import { flag, str, type CliCommand, type OptionSpec } from "../command.js";

const PATHS = configPaths();

const options: OptionSpec = {
  config: { type: "string" },
  preset: { type: "string" },
  resume: { type: "boolean" },
  ...Object.fromEntries(PATHS.map((p) => [p.path, { type: "string" as const }])),
};

export const finetuneCommand: CliCommand = {
  name: "finetune",
  summary: "Fine-tune a model on LeRobot datasets (LoRA or full); checkpoints, metrics, resume",
  details: `Settings come from --config (JSON or YAML), then --preset, then flags. Every config key is a flag
with its dotted path, e.g. --optimizer.lr 1e-4 --lora.rank 8; --data takes JSON:
  --data '[{"dataset":"runs/sim-data","recipe":"toy-sim"}]'
Unknown keys and wrong types stop the run before any work starts. Ctrl-C saves a checkpoint and exits;
--resume continues the last checkpoint in --output exactly (same data order and optimizer state).`,
  options,
  optionHelp: {
    config: { value: "file", description: "Config file (JSON or YAML)" },
    preset: { value: "name", description: `Preset defaults: ${Object.keys(PRESETS).join(", ")}` },
    resume: { description: "Continue from the last checkpoint in the output directory" },
    ...Object.fromEntries(PATHS.map((p) => [p.path, { value: p.kind, description: `config key ${p.path}` }])),
  },
  async run(args, io) {
    let raw: Record<string, unknown> = {};
    const file = str(args, "config");
    if (file) raw = readConfigFile(file);
    const preset = str(args, "preset");
    if (preset) {
      if (!(preset in PRESETS)) throw new VlaError("CONFIG_INVALID", `unknown preset '${preset}'`, `presets: ${Object.keys(PRESETS).join(", ")}`);
      raw = deepMerge(PRESETS[preset as keyof typeof PRESETS] as unknown as Record<string, unknown>, raw);
    }
    const overrides = PATHS.flatMap((p) => {
      const v = str(args, p.path);
      return v === undefined ? [] : [[p.path, v] as [string, string]];
    });
    const cfg = parseFinetuneConfig(applyOverrides(raw, overrides), file ? `config ${file}` : "config");
    const ac = new AbortController();
    const onSigint = (): void => {
      io.err("\ninterrupted: saving a checkpoint…\n");
      ac.abort();
    };
    process.on("SIGINT", onSigint);
    try {
      const r = await finetune(
        cfg,
        {
          log: (l) => io.err(`${l}\n`),
          progress: (l) => io.err(io.isTTY ? `\r${l}\x1b[K` : `${l}\n`),
        },
        { resume: flag(args, "resume"), signal: ac.signal },
      );
      io.err("\n");
      io.out(`${r.stopped ? "stopped" : "finished"} at step ${r.steps}; run: ${r.runDir}; policy: ${r.policyDir} (serve it with: vlatext serve --model ${r.policyDir})\n`);
      return r.stopped ? 130 : 0;
    } finally {
      process.off("SIGINT", onSigint);
    }
  },
};
