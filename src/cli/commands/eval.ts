/** `vlatext eval --sim`: closed-loop success in the toy simulator, in this process or against a running server. */
import { VlaError } from "../../errors.js";
import { evaluateClosedLoop, policyActor, policyCameras, type Actor } from "../../policy/evaluate.js";
import { formatInterval } from "../../policy/interval.js";
import { Policy } from "../../policy/policy.js";
import { httpActor } from "../../serve/client.js";
import { TASK_FAMILIES, type TaskFamilyName } from "../../sim/tasks.js";
import { camerasOpt, flag, intOpt, str, type CliCommand } from "../command.js";
import { TabletopEnv } from "../../sim/env.js";
import { progressReporter } from "../progress.js";
import { table } from "../table.js";
import { MODEL_HELP, MODEL_OPTIONS, readModelOptions } from "../model-options.js";
import { readToken, TOKEN_HELP, TOKEN_OPTIONS } from "../token.js";

function families(v: string | undefined): TaskFamilyName[] {
  if (!v) return [...TASK_FAMILIES];
  const out = v.split(",").map((s) => s.trim()).filter(Boolean);
  for (const f of out) if (!(TASK_FAMILIES as string[]).includes(f)) throw new VlaError("CLI_USAGE", `--families: unknown task family '${f}'`, `use some of: ${TASK_FAMILIES.join(", ")}`);
  return out as TaskFamilyName[];
}

export const evalCommand: CliCommand = {
  name: "eval",
  summary: "Evaluate a policy closed loop in the toy simulator (--sim), in this process or through a running server",
  details: `Either --model DIR (the policy runs in this process) or --url of a running \`vlatext serve\` (every
step is a POST /v1/act). Each episode is one session (temporal ensembling as the policy configures it).
The report: successes per task family, requests, and generated answer tokens per chunk.`,
  options: {
    sim: { type: "boolean" },
    model: { type: "string" },
    adapter: { type: "string" },
    url: { type: "string" },
    ...TOKEN_OPTIONS,
    episodes: { type: "string" },
    families: { type: "string" },
    seed: { type: "string" },
    size: { type: "string" },
    cameras: { type: "string" },
    temperature: { type: "string" },
    json: { type: "boolean" },
    ...MODEL_OPTIONS,
  },
  optionHelp: {
    sim: { description: "Evaluate in the toy tabletop simulator (the only environment for now)" },
    model: { value: "dir", description: "Policy directory to run in this process" },
    adapter: { value: "dir", description: "PEFT adapter on top of --model" },
    url: { value: "url", description: "A running server instead of --model" },
    ...TOKEN_HELP,
    episodes: { value: "n", description: "Episodes per task family (default 10)" },
    families: { value: "a,b", description: `Task families (default ${TASK_FAMILIES.join(",")})` },
    seed: { value: "n", description: "First episode seed (default 1000)" },
    size: { value: "px", description: "Camera image size (default 64; use the size the policy was trained on)" },
    cameras: { value: "list", description: "Cameras sent, tiled in the order top, front, wrist (default: those the policy records in policy.json; top,front for older policies and --url)" },
    temperature: { value: "t", description: "Sampling temperature (default 0: greedy)" },
    json: { description: "Print the report as JSON" },
    ...MODEL_HELP,
  },
  async run(args, io) {
    if (!flag(args, "sim")) throw new VlaError("CLI_USAGE", "pass --sim (the toy tabletop simulator is the evaluation environment)", "e.g. vlatext eval --sim --model runs/demo/run/policy");
    const model = str(args, "model");
    const url = str(args, "url");
    if (!model === !url) throw new VlaError("CLI_USAGE", "give exactly one of --model or --url");
    const temperature = str(args, "temperature");
    // flags are checked before any work starts
    const episodes = intOpt(args, "episodes", 10, 1);
    const fams = families(str(args, "families"));
    const seed = intOpt(args, "seed", 1000, 0);
    const size = intOpt(args, "size", 64, 8);
    let cameras = camerasOpt(args, "cameras");
    if (temperature !== undefined && !(Number(temperature) >= 0)) throw new VlaError("CLI_USAGE", `--temperature must be a number >= 0, got '${temperature}'`);
    const act = temperature !== undefined ? { temperature: Number(temperature) } : {};
    const modelOptions = readModelOptions(args);
    const token = url ? readToken(args, io) : undefined;
    let policy: Policy | undefined;
    const progress = progressReporter(io);
    try {
      let actor: Actor;
      if (model) {
        const adapter = str(args, "adapter");
        policy = Policy.load(model, { ...modelOptions, ...(adapter ? { adapterDir: adapter } : {}) });
        cameras = policyCameras(policy, cameras);
        actor = policyActor(policy, act);
      } else actor = httpActor(url as string, { ...(token ? { token } : {}), ...act });
      const report = await evaluateClosedLoop(actor, {
        families: fams,
        episodes,
        seed,
        ...(cameras ? { env: new TabletopEnv({ size, cameras }) } : { size }),
        onEpisode: (e) => progress.update(`[${e.done}/${e.total}] ${e.family} #${e.episode}: ${e.success ? "success" : "fail"} in ${e.steps} steps`, e.done / e.total),
      });
      progress.done();
      if (flag(args, "json")) {
        io.out(JSON.stringify(report, null, 2) + "\n");
        return 0;
      }
      io.out(table(["family", "episodes", "success", "rate [95% CI]", "mean steps"], report.families.map((r) => [r.family, String(r.episodes), String(r.successes), formatInterval(r.interval), r.meanSteps.toFixed(1)])));
      io.out(`\noverall: ${formatInterval(report.interval)} (95% Wilson interval) of ${report.episodes} episodes, ${report.requests} requests (${report.tokensPerChunk.toFixed(1)} tokens/chunk) in ${report.seconds.toFixed(1)} s\n`);
      return 0;
    } finally {
      progress.done();
      policy?.dispose();
    }
  },
};
