/** `vlatext finetune`: LoRA or full fine-tuning from a config file, every key overridable by flag. */
import { VlaError } from "../../errors.js";
import { applyOverrides, configPaths, deepMerge, parseFinetuneConfig, PRESETS, readConfigFile } from "../../train/config.js";
import { finetune } from "../../train/trainer.js";
import { parseSweepSpec, runSweep, sweepSummary, sweepTable, sweepVariants } from "../../experiments/sweep.js";
import { flag, str, type CliCommand, type OptionSpec } from "../command.js";
import { progressReporter } from "../progress.js";
import { table } from "../table.js";

const PATHS = configPaths();

const options: OptionSpec = {
  config: { type: "string" },
  preset: { type: "string" },
  resume: { type: "boolean" },
  sweep: { type: "string" },
  ...Object.fromEntries(PATHS.map((p) => [p.path, { type: "string" as const }])),
};

export const finetuneCommand: CliCommand = {
  name: "finetune",
  summary: "Fine-tune a model on LeRobot datasets (LoRA or full); checkpoints, metrics, resume",
  details: `Settings come from --config (JSON or YAML), then --preset, then flags. Every config key is a flag
with its dotted path, e.g. --optimizer.lr 1e-4 --lora.rank 8; --data takes JSON:
  --data '[{"dataset":"runs/sim-data","recipe":"toy-sim"}]'
Unknown keys and wrong types stop the run before any work starts. Ctrl-C saves a checkpoint and exits;
--resume continues the last checkpoint in --output exactly (same data order and optimizer state).

--sweep trains one run per combination of config values under --output and compares them in one
table (sweep.md, sweep.json): answer tokens per chunk, loss, validation L1 and parse rate, and
closed-loop success in the simulator for simulator datasets (with 95% Wilson intervals), under each
ensembling mode. seeds=0,1,2 trains every variant once per seed and adds a table pooled over seeds:
success with its interval, each seed's rate, and the difference to the first variant with its interval
(real when it excludes 0). Give a file (JSON/YAML: {axes: {key: [values]}, seeds: [n], ensemble: [modes],
eval: {episodes, families, seed}}) or inline:
  --sweep 'format=vla0,terse; action.bins=1000,100; maskActions.enabled=true,false; ensemble=none,vla0-v1; episodes=5'
  --sweep 'format=vla0,terse; seeds=0,1,2; episodes=50; families=reach'
A sweep that stops resumes where it was when run again (finished variants are kept).`,
  options,
  optionHelp: {
    config: { value: "file", description: "Config file (JSON or YAML)" },
    preset: { value: "name", description: `Preset defaults: ${Object.keys(PRESETS).join(", ")}` },
    resume: { description: "Continue from the last checkpoint in the output directory" },
    sweep: { value: "file|spec", description: "Train and compare every combination of config values (see above)" },
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
    const merged = applyOverrides(raw, overrides);
    const sweepArg = str(args, "sweep");
    const sweep = sweepArg !== undefined ? parseSweepSpec(sweepArg, io.cwd) : undefined;
    if (sweep && flag(args, "resume")) throw new VlaError("CLI_USAGE", "--resume does not apply to --sweep", "run the same sweep again: finished variants are kept and a stopped one resumes");
    // the run's config, or every variant's, is validated before any work starts
    const cfg = sweep ? sweepVariants(merged, sweep)[0]?.config : parseFinetuneConfig(merged, file ? `config ${file}` : "config");
    if (!cfg) throw new VlaError("CONFIG_INVALID", "the sweep has no variants");
    const ac = new AbortController();
    const onSigint = (): void => {
      io.err("\ninterrupted: saving a checkpoint…\n");
      ac.abort();
    };
    const progress = progressReporter(io);
    const trainerIO = { log: (l: string) => progress.log(l), progress: (l: string) => progress.update(l) };
    process.on("SIGINT", onSigint);
    try {
      if (sweep) {
        const res = await runSweep(merged, sweep, { ...trainerIO, signal: ac.signal });
        progress.done();
        const t = sweepTable(res.rows);
        io.out(table(t.headers, t.cells));
        const pooled = sweepSummary(res.rows);
        if (pooled) io.out(`\npooled over training seeds (95% intervals; a difference is real when its interval excludes 0):\n${table(pooled.headers, pooled.cells)}`);
        io.out(`\n${ac.signal.aborted ? "stopped (run the same command again to continue)" : "sweep finished"}: ${res.rows.length} row(s) in ${res.dir}/sweep.md and sweep.json\n`);
        return ac.signal.aborted ? 130 : 0;
      }
      const r = await finetune(cfg, trainerIO, { resume: flag(args, "resume"), signal: ac.signal });
      progress.done();
      io.out(`${r.stopped ? "stopped" : "finished"} at step ${r.steps}; run: ${r.runDir}; policy: ${r.policyDir} (serve it with: vlatext serve --model ${r.policyDir})\n`);
      return r.stopped ? 130 : 0;
    } finally {
      progress.done();
      process.off("SIGINT", onSigint);
    }
  },
};
