/**
 * Export (and re-import) a trained LoRA adapter in the two formats people load:
 *
 * - PEFT: adapter_config.json + adapter_model.safetensors, tensors named
 *   `base_model.model.<module>.lora_A.weight` (r, in) and `.lora_B.weight` (out, r).
 * - llama.cpp's GGUF LoRA (what convert_lora_to_gguf.py writes): general.type
 *   "adapter", adapter.type "lora", adapter.lora.alpha, tensors
 *   `blk.N.<attn_q|attn_k|attn_v|attn_output|ffn_gate|ffn_up|ffn_down>.weight.lora_a`
 *   (r, in) and `.lora_b` (out, r). For the `llama` architecture, B's rows of q and k
 *   are permuted like the base weights (see gguf-decoder.ts).
 */
import fs from "node:fs";
import path from "node:path";
import { z } from "zod";
import { VlaError } from "../errors.js";
import { readJsonFile } from "./json-file.js";
import { writeGguf, type GgufTensorIn, type GgufValue } from "./gguf.js";
import { permuteForInterleavedRope } from "./gguf-decoder.js";
import { readSafetensors, safetensorsData, writeSafetensors } from "./safetensors.js";

export interface AdapterTensor {
  /** Our (HF module) name, e.g. model.layers.0.self_attn.q_proj.lora_A.weight */
  name: string;
  shape: number[];
  data: Float32Array;
}

export interface AdapterInfo {
  rank: number;
  alpha: number;
  targets: string[];
  baseModel: string;
  tensors: AdapterTensor[];
}

const PEFT_PREFIX = "base_model.model.";

export const PeftConfigSchema = z
  .object({
    peft_type: z.literal("LORA"),
    r: z.number().int().min(1),
    lora_alpha: z.number().positive(),
    target_modules: z.union([z.array(z.string()), z.string()]),
    lora_dropout: z.number().min(0).default(0),
    bias: z.string().default("none"),
    use_rslora: z.boolean().default(false),
    use_dora: z.boolean().default(false),
    fan_in_fan_out: z.boolean().default(false),
  })
  .passthrough();

function atomicDir(dir: string, write: (tmp: string) => void): void {
  const tmp = `${dir}.tmp-${process.pid}`;
  fs.rmSync(tmp, { recursive: true, force: true });
  fs.mkdirSync(tmp, { recursive: true });
  write(tmp);
  fs.rmSync(dir, { recursive: true, force: true });
  fs.renameSync(tmp, dir);
}

export function savePeftAdapter(dir: string, a: AdapterInfo): void {
  atomicDir(dir, (tmp) => {
    const config = {
      base_model_name_or_path: a.baseModel,
      peft_type: "LORA",
      task_type: "CAUSAL_LM",
      r: a.rank,
      lora_alpha: a.alpha,
      lora_dropout: 0,
      target_modules: a.targets,
      bias: "none",
      fan_in_fan_out: false,
      inference_mode: true,
      init_lora_weights: true,
      modules_to_save: null,
      use_rslora: false,
      use_dora: false,
    };
    fs.writeFileSync(path.join(tmp, "adapter_config.json"), JSON.stringify(config, null, 2) + "\n");
    writeSafetensors(path.join(tmp, "adapter_model.safetensors"), a.tensors.map((t) => ({ name: PEFT_PREFIX + t.name, shape: t.shape, data: t.data })), { format: "pt" });
  });
}

export function loadPeftAdapter(dir: string): AdapterInfo {
  const cfgFile = path.join(dir, "adapter_config.json");
  const r = { data: readJsonFile(cfgFile, PeftConfigSchema, { what: "LoRA adapter config", code: "CONFIG_INVALID", hint: "point at a PEFT LoRA adapter directory (adapter_config.json as PEFT saves it); export the adapter again if it is truncated" }) };
  if (r.data.use_dora || r.data.use_rslora || r.data.fan_in_fan_out || r.data.bias !== "none") {
    throw new VlaError("CONFIG_INVALID", `${cfgFile}: DoRA, rsLoRA, fan_in_fan_out and LoRA biases are not supported`);
  }
  const st = readSafetensors(path.join(dir, "adapter_model.safetensors"));
  const tensors: AdapterTensor[] = [];
  for (const [name, e] of st.tensors) {
    if (!name.startsWith(PEFT_PREFIX)) throw new VlaError("FILE_INVALID", `${dir}: unexpected adapter tensor '${name}'`, `PEFT names start with ${PEFT_PREFIX}`);
    tensors.push({ name: name.slice(PEFT_PREFIX.length).replace(".lora_A.default.", ".lora_A.").replace(".lora_B.default.", ".lora_B."), shape: e.shape, data: safetensorsData(st, name) });
  }
  const targets = typeof r.data.target_modules === "string" ? [r.data.target_modules] : r.data.target_modules;
  return { rank: r.data.r, alpha: r.data.lora_alpha, targets, baseModel: String((r.data as Record<string, unknown>).base_model_name_or_path ?? ""), tensors };
}

const GGUF_NAMES: Record<string, string> = {
  "self_attn.q_proj": "attn_q",
  "self_attn.k_proj": "attn_k",
  "self_attn.v_proj": "attn_v",
  "self_attn.o_proj": "attn_output",
  "mlp.gate_proj": "ffn_gate",
  "mlp.up_proj": "ffn_up",
  "mlp.down_proj": "ffn_down",
};

/** Write llama.cpp's GGUF LoRA adapter. `arch` and head counts decide the q/k permutation. */
export function saveGgufAdapter(file: string, a: AdapterInfo, base: { arch: "llama" | "qwen2" | "qwen3"; numHeads: number; numKvHeads: number; headDim: number }): void {
  const metadata: Array<[string, GgufValue]> = [
    ["general.architecture", { type: "string", value: base.arch }],
    ["general.type", { type: "string", value: "adapter" }],
    ["general.name", { type: "string", value: "vlatext-lora" }],
    ["adapter.type", { type: "string", value: "lora" }],
    ["adapter.lora.alpha", { type: "f32", value: a.alpha }],
  ];
  const tensors: GgufTensorIn[] = [];
  for (const t of a.tensors) {
    const m = /^model\.layers\.(\d+)\.(self_attn\.[qkvo]_proj|mlp\.(?:gate|up|down)_proj)\.lora_([AB])\.weight$/.exec(t.name);
    if (!m) throw new VlaError("FILE_INVALID", `adapter tensor '${t.name}' has no llama.cpp equivalent`);
    const [, layer, module, ab] = m as unknown as [string, string, string, "A" | "B"];
    let data = t.data;
    if (ab === "B" && base.arch === "llama" && (module === "self_attn.q_proj" || module === "self_attn.k_proj")) {
      data = permuteForInterleavedRope(data, module === "self_attn.q_proj" ? base.numHeads : base.numKvHeads, base.headDim, t.shape[1] as number);
    }
    tensors.push({ name: `blk.${layer}.${GGUF_NAMES[module]}.weight.lora_${ab.toLowerCase()}`, shape: t.shape, type: "f32", data });
  }
  writeGguf(file, metadata, tensors);
}
