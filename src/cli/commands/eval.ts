/** `vlatext eval --sim`: closed-loop success in the toy simulator, through the server protocol. */
import { VlaError } from "../../errors.js";
import { evaluateInSim } from "../../serve/eval.js";
import { Policy } from "../../serve/policy.js";
import { startServer, type RunningServer } from "../../serve/server.js";
import { TASK_FAMILIES, type TaskFamilyName } from "../../sim/tasks.js";
import { flag, intOpt, str, type CliCommand } from "../command.js";
import { table } from "../table.js";

function families(v: string | undefined): TaskFamilyName[] {
  if (!v) return [...TASK_FAMILIES];
  const out = v.split(",").map((s) => s.trim()).filter(Boolean);
  for (const f of out) if (!(TASK_FAMILIES as string[]).includes(f)) throw new VlaError("CLI_USAGE", `--families: unknown task family '${f}'`, `use some of: ${TASK_FAMILIES.join(", ")}`);
  return out as TaskFamilyName[];
}

export const evalCommand: CliCommand = {
  name: "eval",
  summary: "Evaluate a policy closed loop in the toy simulator (--sim), through the HTTP server protocol",
  details: `Either --model DIR (a server is started in this process on a free port) or --url of a running
\`vlatext serve\`. Each episode is one session (temporal ensembling as the policy configures it).`,
  options: {
    sim: { type: "boolean" },
    model: { type: "string" },
    adapter: { type: "string" },
    url: { type: "string" },
    token: { type: "string" },
    episodes: { type: "string" },
    families: { type: "string" },
    seed: { type: "string" },
    temperature: { type: "string" },
    json: { type: "boolean" },
  },
  optionHelp: {
    sim: { description: "Evaluate in the toy tabletop simulator (the only environment for now)" },
    model: { value: "dir", description: "Policy directory to serve in-process" },
    adapter: { value: "dir", description: "PEFT adapter on top of --model" },
    url: { value: "url", description: "A running server instead of --model" },
    token: { value: "secret", description: "Bearer token for --url" },
    episodes: { value: "n", description: "Episodes per task family (default 10)" },
    families: { value: "a,b", description: `Task families (default ${TASK_FAMILIES.join(",")})` },
    seed: { value: "n", description: "First episode seed (default 1000)" },
    temperature: { value: "t", description: "Sampling temperature (default 0: greedy)" },
    json: { description: "Print the report as JSON" },
  },
  async run(args, io) {
    if (!flag(args, "sim")) throw new VlaError("CLI_USAGE", "pass --sim (the toy tabletop simulator is the evaluation environment)", "e.g. vlatext eval --sim --model runs/demo/policy");
    const model = str(args, "model");
    const url = str(args, "url");
    if (!model === !url) throw new VlaError("CLI_USAGE", "give exactly one of --model or --url");
    const temperature = str(args, "temperature");
    // flags are checked before any work starts
    const episodes = intOpt(args, "episodes", 10, 1);
    const fams = families(str(args, "families"));
    const seed = intOpt(args, "seed", 1000, 0);
    if (temperature !== undefined && !(Number(temperature) >= 0)) throw new VlaError("CLI_USAGE", `--temperature must be a number >= 0, got '${temperature}'`);
    let policy: Policy | undefined;
    let srv: RunningServer | undefined;
    try {
      let base = url ?? "";
      if (model) {
        const adapter = str(args, "adapter");
        policy = Policy.load(model, adapter ? { adapterDir: adapter } : {});
        srv = await startServer(policy, { maxQueue: 4 });
        base = srv.url;
      }
      let done = 0;
      const report = await evaluateInSim({
        url: base,
        ...(str(args, "token") ? { token: str(args, "token") as string } : {}),
        families: fams,
        episodes,
        seed,
        ...(temperature !== undefined ? { temperature: Number(temperature) } : {}),
        onEpisode: (f, e, ok, steps) => {
          done++;
          io.err(`\r[${done}/${episodes * fams.length}] ${f} #${e}: ${ok ? "success" : "fail"} in ${steps} steps   ${io.isTTY ? "" : "\n"}`);
        },
      });
      io.err("\n");
      if (flag(args, "json")) {
        io.out(JSON.stringify(report, null, 2) + "\n");
        return 0;
      }
      io.out(table(["family", "episodes", "success", "rate", "mean steps"], report.families.map((r) => [r.family, String(r.episodes), String(r.successes), `${((100 * r.successes) / r.episodes).toFixed(0)}%`, r.meanSteps.toFixed(1)])));
      io.out(`\noverall: ${(100 * report.successRate).toFixed(1)}% of ${report.episodes} episodes, ${report.requests} requests in ${report.seconds.toFixed(1)} s\n`);
      return 0;
    } finally {
      await srv?.close();
      policy?.dispose();
    }
  },
};
