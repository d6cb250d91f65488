/** `vlatext serve`: the local inference server over a policy directory. */
import { Policy } from "../../serve/policy.js";
import { startServer } from "../../serve/server.js";
import { VlaError } from "../../errors.js";
import { intOpt, str, type CliCommand } from "../command.js";

export const serveCommand: CliCommand = {
  name: "serve",
  summary: "Serve a policy over HTTP (POST /v1/act, VLA-0's /predict_base64, /health, /metrics, /openapi.json)",
  details: `The policy directory holds a Hugging Face model (config.json, model.safetensors), its tokenizer (or
policy.json's "tokenizer"), and policy.json {spec, stats, template, format, ensemble}. Listens on 127.0.0.1
unless --host says otherwise; stops cleanly on Ctrl-C.`,
  options: {
    model: { type: "string" },
    adapter: { type: "string" },
    host: { type: "string" },
    port: { type: "string" },
    token: { type: "string" },
    "max-queue": { type: "string" },
    instruction: { type: "string" },
    threads: { type: "string" },
  },
  optionHelp: {
    model: { value: "dir", description: "Policy directory (required)" },
    adapter: { value: "dir", description: "PEFT LoRA adapter to apply on top" },
    host: { value: "addr", description: "Address to bind (default 127.0.0.1)" },
    port: { value: "n", description: "Port (default 8000; 0 picks a free one)" },
    token: { value: "secret", description: "Require 'Authorization: Bearer <secret>' (or set VLATEXT_TOKEN)" },
    "max-queue": { value: "n", description: "Requests waiting or running before 503 (default 16)" },
    instruction: { value: "text", description: "Default instruction for /predict_base64 requests without one" },
    threads: { value: "n", description: "CPU threads for the model (default: all cores)" },
  },
  async run(args, io) {
    const model = str(args, "model");
    if (!model) throw new VlaError("CLI_USAGE", "--model is required", "pass the policy directory, e.g. --model runs/demo/policy");
    const threads = intOpt(args, "threads", 0, 0);
    const adapter = str(args, "adapter");
    io.err(`loading policy from ${model}${adapter ? ` with adapter ${adapter}` : ""}…\n`);
    const policy = Policy.load(model, { ...(adapter ? { adapterDir: adapter } : {}), ...(threads > 0 ? { threads } : {}) });
    const token = str(args, "token") ?? process.env.VLATEXT_TOKEN;
    const instruction = str(args, "instruction");
    const srv = await startServer(policy, {
      host: str(args, "host") ?? "127.0.0.1",
      port: intOpt(args, "port", 8000, 0),
      maxQueue: intOpt(args, "max-queue", 16, 1),
      ...(token ? { token } : {}),
      ...(instruction ? { defaultInstruction: instruction } : {}),
    });
    io.out(`serving ${policy.spec.horizon}x${policy.spec.dims} action chunks on ${srv.url} (POST /v1/act, /predict_base64; GET /health, /metrics, /openapi.json)\n`);
    await new Promise<void>((resolve) => {
      const stop = (): void => {
        process.off("SIGINT", stop);
        process.off("SIGTERM", stop);
        resolve();
      };
      process.on("SIGINT", stop);
      process.on("SIGTERM", stop);
    });
    io.err("shutting down…\n");
    await srv.close();
    policy.dispose();
    return 0;
  },
};
