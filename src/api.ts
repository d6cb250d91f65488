/**
 * The library's entry points, typed, for programs that use vlatext without the CLI. Each
 * does what its CLI verb does and fails the same way (a VlaError with the same code, message
 * and hint the CLI prints as `error [CODE]`):
 *   loadModel(dir)                 a Hugging Face directory of any registered family
 *   loadPolicy(dir) / Policy.load  a policy directory (act on images + instruction)
 *   finetune(config)               `vlatext finetune`: the config validated as the CLI's
 *   serve(dir | policy, options)   `vlatext serve`: the HTTP server, closed by the caller
 */
import { DecoderModel, type ModelOptions } from "./engine/decoder.js";
import { loadLanguageModel, VlmModel } from "./engine/vlm.js";
import { Policy } from "./policy/policy.js";
import { startServer, type RunningServer, type ServerOptions } from "./serve/server.js";
import { parseFinetuneConfig, type FinetuneConfigInput } from "./train/config.js";
import { finetune as runFinetune, type FinetuneResult, type TrainerIO } from "./train/trainer.js";

export interface LoadedModel {
  /** The language model (a VLM's decoder). */
  model: DecoderModel;
  /** The vision-language model when the family has a vision encoder. */
  vlm: VlmModel | undefined;
  dispose(): void;
}

/** Load a model directory through the architecture registry (an unsupported family is named, with the supported ones). */
export function loadModel(dir: string, options: ModelOptions & { trainBase?: boolean; trainVision?: boolean } = {}): LoadedModel {
  return loadLanguageModel(dir, options);
}

/** Load a policy directory (policy.json beside or pointing at its model); `adapterDir` adds a PEFT LoRA adapter. */
export function loadPolicy(dir: string, options: ModelOptions & { adapterDir?: string } = {}): Policy {
  return Policy.load(dir, options);
}

export interface FinetuneOptions {
  /** Where log lines and progress go (default: nowhere). */
  io?: Partial<TrainerIO>;
  /** Continue the run in config.output from its last checkpoint. */
  resume?: boolean;
  /** Stops the run after the current step (a checkpoint is written). */
  signal?: AbortSignal;
}

/** Fine-tune as `vlatext finetune` does, from one config (validated: unknown or mistyped keys are named before any work). */
export async function finetune(config: FinetuneConfigInput, options: FinetuneOptions = {}): Promise<FinetuneResult> {
  const cfg = parseFinetuneConfig(config);
  const io: TrainerIO = { log: options.io?.log ?? (() => undefined), progress: options.io?.progress ?? (() => undefined) };
  return await runFinetune(cfg, io, { ...(options.resume ? { resume: true } : {}), ...(options.signal ? { signal: options.signal } : {}) });
}

export interface ServeHandle extends RunningServer {
  policy: Policy;
  /** Graceful shutdown, then the policy's native handles freed when serve() loaded it. */
  close(options?: { graceMs?: number }): Promise<void>;
}

/**
 * Serve a policy over HTTP as `vlatext serve` does (default host 127.0.0.1, port 8000; port 0
 * picks a free one). Given a directory, the policy is loaded (and freed on close); given a
 * Policy, the caller keeps it.
 */
export async function serve(policy: string | Policy, options: ServerOptions & ModelOptions & { adapterDir?: string } = {}): Promise<ServeHandle> {
  const { dtype, device, threads, isa, adapterDir, ...server } = options;
  const owned = typeof policy === "string";
  const p = typeof policy === "string" ? Policy.load(policy, { ...(dtype ? { dtype } : {}), ...(device ? { device } : {}), ...(threads ? { threads } : {}), ...(isa ? { isa } : {}), ...(adapterDir ? { adapterDir } : {}) }) : policy;
  let srv: RunningServer;
  try {
    srv = await startServer(p, { host: "127.0.0.1", port: 8000, ...server });
  } catch (e) {
    if (owned) p.dispose();
    throw e;
  }
  return {
    ...srv,
    policy: p,
    close: async (o?: { graceMs?: number }) => {
      await srv.close(o);
      if (owned) await p.close();
    },
  };
}
