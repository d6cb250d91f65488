/** `vlatext serve`: the local inference server over a policy directory. */
import { VlaError } from "../../errors.js";
import { Policy } from "../../policy/policy.js";
import { DEFAULT_LIMITS } from "../../serve/limits.js";
import { startServer } from "../../serve/server.js";
import { intOpt, str, type CliCommand } from "../command.js";
import { MODEL_HELP, MODEL_OPTIONS, readModelOptions } from "../model-options.js";
import { readToken, TOKEN_HELP, TOKEN_OPTIONS } from "../token.js";

export const serveCommand: CliCommand = {
  name: "serve",
  summary: "Serve a policy over HTTP (POST /v1/act, VLA-0's /predict_base64 and /predict_base64_stream, /health, /metrics, /openapi.json)",
  details: `The policy directory holds a Hugging Face model (config.json, model.safetensors), its tokenizer (or
policy.json's "tokenizer"), and policy.json {spec, stats, template, format, ensemble}. Listens on 127.0.0.1
unless --host says otherwise. Simultaneous requests are batched (one vision-tower call and one batched
generation per batch); past --max-queue waiting or running requests, 503 with Retry-After.
The bearer token comes from --token-file or $VLATEXT_TOKEN (--token works but shows in \`ps\`).
Ctrl-C or SIGTERM: stop accepting, let running requests finish for up to --grace seconds, cancel the
rest, free the model and exit 0; a second signal cancels at once.`,
  options: {
    model: { type: "string" },
    adapter: { type: "string" },
    host: { type: "string" },
    port: { type: "string" },
    ...TOKEN_OPTIONS,
    "max-queue": { type: "string" },
    "max-batch": { type: "string" },
    deadline: { type: "string" },
    grace: { type: "string" },
    "max-image-side": { type: "string" },
    instruction: { type: "string" },
    ...MODEL_OPTIONS,
  },
  optionHelp: {
    model: { value: "dir", description: "Policy directory (required)" },
    adapter: { value: "dir", description: "PEFT LoRA adapter to apply on top" },
    host: { value: "addr", description: "Address to bind (default 127.0.0.1)" },
    port: { value: "n", description: "Port (default 8000; 0 picks a free one)" },
    ...TOKEN_HELP,
    "max-queue": { value: "n", description: "Requests waiting or running before 503 (default 64)" },
    "max-batch": { value: "n", description: "Requests decoded together (default 16)" },
    deadline: { value: "s", description: "A request's time limit, queue time included; past it 504 (default 60)" },
    grace: { value: "s", description: "On shutdown, how long running requests may finish (default 10)" },
    "max-image-side": { value: "px", description: `Largest image side accepted, read from the header before decoding (default ${DEFAULT_LIMITS.maxImageSide})` },
    instruction: { value: "text", description: "Default instruction for VLA-0 requests without one" },
    ...MODEL_HELP,
  },
  async run(args, io) {
    const model = str(args, "model");
    if (!model) throw new VlaError("CLI_USAGE", "--model is required", "pass the policy directory, e.g. --model runs/demo/run/policy");
    const modelOptions = readModelOptions(args);
    const adapter = str(args, "adapter");
    const token = readToken(args, io);
    const graceS = intOpt(args, "grace", 10, 0);
    const side = intOpt(args, "max-image-side", DEFAULT_LIMITS.maxImageSide, 8);
    const serverOptions = {
      host: str(args, "host") ?? "127.0.0.1",
      port: intOpt(args, "port", 8000, 0),
      maxQueue: intOpt(args, "max-queue", 64, 1),
      maxBatch: intOpt(args, "max-batch", 16, 1),
      deadlineMs: intOpt(args, "deadline", 60, 1) * 1000,
      limits: { maxImageSide: side, maxRequestPixels: Math.max(DEFAULT_LIMITS.maxRequestPixels, 4 * side * side) },
      ...(token ? { token } : {}),
      ...(str(args, "instruction") ? { defaultInstruction: str(args, "instruction") as string } : {}),
    };
    io.err(`loading policy from ${model}${adapter ? ` with adapter ${adapter}` : ""}…\n`);
    const policy = Policy.load(model, { ...modelOptions, ...(adapter ? { adapterDir: adapter } : {}) });
    let srv;
    try {
      srv = await startServer(policy, serverOptions);
    } catch (e) {
      policy.dispose();
      throw e;
    }
    io.out(`serving ${policy.spec.horizon}x${policy.spec.dims} action chunks on ${srv.url} (POST /v1/act, /predict_base64, /predict_base64_stream; GET /health, /metrics, /openapi.json)\n`);
    const signal = await new Promise<string>((resolve) => {
      const stop = (s: string): void => {
        process.off("SIGINT", onInt);
        process.off("SIGTERM", onTerm);
        resolve(s);
      };
      const onInt = (): void => stop("SIGINT");
      const onTerm = (): void => stop("SIGTERM");
      process.on("SIGINT", onInt);
      process.on("SIGTERM", onTerm);
    });
    const running = srv.scheduler.depth;
    io.err(`${signal}: shutting down${running > 0 ? `; ${running} request(s) get up to ${graceS} s to finish (send the signal again to cancel them now)` : ""}…\n`);
    const now = (): void => {
      io.err("cancelling the running requests…\n");
      srv.scheduler.cancelAll("closing");
    };
    process.once("SIGINT", now);
    process.once("SIGTERM", now);
    try {
      await srv.close({ graceMs: graceS * 1000 });
    } finally {
      process.off("SIGINT", now);
      process.off("SIGTERM", now);
    }
    // no model call runs any more: the native handles can go
    await policy.close();
    io.err("stopped\n");
    return 0;
  },
};
