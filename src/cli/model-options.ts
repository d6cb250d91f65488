/** The flags that say how a command holds and runs a model: --dtype, --device, --isa, --threads. */
import { NATIVE_ISAS, type NativeIsa } from "../engine/addon.js";
import type { ModelOptions } from "../engine/decoder.js";
import { VlaError } from "../errors.js";
import { intOpt, str, type ParsedArgs } from "./command.js";

export const MODEL_OPTIONS = { dtype: { type: "string" }, device: { type: "string" }, isa: { type: "string" }, threads: { type: "string" } } as const;

export const MODEL_HELP = {
  dtype: { value: "auto|f32|bf16", description: "Storage of the weight matrices: auto keeps a bf16 checkpoint bf16 (f32 for fully fine-tuned weights), bf16 halves an f32 one's memory (default auto)" },
  device: { value: "cpu|cuda", description: "Where the model runs (cuda needs a CUDA build of vlatext and an NVIDIA GPU; default cpu)" },
  isa: { value: NATIVE_ISAS.join("|"), description: "Highest CPU instruction set the kernels may use (default: the CPU's best)" },
  threads: { value: "n", description: "CPU threads for the model (default: all cores)" },
};

/** The model options of parsed flags; a bad value is a CLI_USAGE error naming the flag. */
export function readModelOptions(args: ParsedArgs): ModelOptions {
  const dtype = str(args, "dtype") ?? "auto";
  if (dtype !== "auto" && dtype !== "f32" && dtype !== "bf16") throw new VlaError("CLI_USAGE", `--dtype must be auto, f32 or bf16, got '${dtype}'`);
  const device = str(args, "device") ?? "cpu";
  if (device !== "cpu" && device !== "cuda") throw new VlaError("CLI_USAGE", `--device must be cpu or cuda, got '${device}'`);
  const isa = str(args, "isa");
  if (isa !== undefined && !(NATIVE_ISAS as readonly string[]).includes(isa)) throw new VlaError("CLI_USAGE", `--isa must be one of ${NATIVE_ISAS.join(", ")}, got '${isa}'`);
  const threads = intOpt(args, "threads", 0, 0);
  return { dtype, device, ...(isa ? { isa: isa as NativeIsa } : {}), ...(threads > 0 ? { threads } : {}) };
}
