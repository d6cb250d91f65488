/**
 * vlatext against Hugging Face transformers (+ PEFT) and llama.cpp on the same random
 * weights, in one run (issue 19, item 6). For each shape it:
 *   1. builds a random transformers model (bench/vs-hf.py build): config.json +
 *      model.safetensors, and the initial PEFT LoRA adapter every LoRA run starts from;
 *   2. exports those weights as GGUF f32, f16 and bf16 with vlatext's own exporter;
 *   3. trains (B=4, T=128, one fixed random batch, every position a target; AdamW lr 1e-4,
 *      wd 0.01, clip 1.0; warm-up steps, then timed ones): HF+PEFT LoRA r16/alpha 32 on
 *      all seven projections and vlatext LoRA, HF and vlatext full fine-tunes, all fp32,
 *      then HF LoRA in bf16 (bf16 weights, and fp32 weights under bf16 autocast) against
 *      vlatext LoRA on a bf16 base;
 *   4. decodes greedily (32-token prompt + 64 new tokens, batch 1): HF generate, vlatext
 *      (f32 and bf16 weights), llama.cpp via node-llama-cpp on the f32, f16 and bf16 GGUF;
 *   5. checks that they ran the same model: fp32 losses and gradient norms step by step
 *      (step 0 within 1e-4), vlatext f32's and llama.cpp f32's (with an f32 KV cache)
 *      greedy tokens equal to HF's; 16-bit runs and llama.cpp's default f16 KV cache are
 *      reported, not judged (tolerances and measurements: bench/vs-hf-report.ts);
 *   6. prints one table of ratios against the issue's goals and writes the raw results
 *      to runs/bench/vs-hf-<shape>.json (job logs beside it).
 * vlatext's bf16 rows pass DecoderModel.load(dir, { dtype: "bf16" }) and count only when
 * the engine then reports bf16 tensors (paramInfo() dtype); otherwise they read
 * "unsupported" with the reason (bench/vs-hf-worker.ts, loadModel).
 * Every contestant runs in its own process with the same thread count; peak RSS is
 * that process's VmHWM. The model family is Qwen2 (q/k/v biases, tied embeddings) by
 * default: vlatext's GGUF export and llama.cpp both support it, so the decode comparison
 * uses the very weights the training runs use (--arch llama builds a Llama instead).
 *
 *   npx tsx bench/vs-hf.ts --shape 20m|200m|all [--quick] [--threads N]   (--help for all options)
 *
 * Needs Python with torch, transformers and peft: pip install torch transformers peft
 * (tested with torch 2.13 CPU, transformers 5.18, peft 0.21). npm test never runs this.
 */
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import type { z } from "zod";
import { table } from "../src/cli/table.js";
import { BuildResultSchema, DecodeResultSchema, ExportResultSchema, hfConfig, makeInputs, SHAPES, TrainResultSchema, UnsupportedSchema, type Arch, type DecodeResult, type JobOutcome, type ShapeName, type TrainResult } from "./vs-hf-lib.js";
import { agreementChecks, goalRows, type Check, type Results, type TrainKey } from "./vs-hf-report.js";

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), "..");
const HELP = `usage: npx tsx bench/vs-hf.ts [options]

  --shape NAME     20m | 200m | all (= 20m then 200m) | tiny (checks the driver only)   [20m]
  --quick          a smoke run: 1 warm-up + 2 timed steps, 1 decode run
  --threads N      threads for every contestant (torch.set_num_threads, vlatext, llama.cpp)  [all cores: ${os.availableParallelism()}]
  --arch NAME      qwen2 | llama   [qwen2]
  --warmup N       warm-up training steps   [2; 1 at 200m]
  --steps N        timed training steps     [5; 3 at 200m]
  --reps N         timed decode runs (the median is reported)   [3]
  --new N          new tokens per decode run   [64]
  --only WHAT      train | decode   [both]
  --python PATH    the Python with torch, transformers, peft   [python3]
  --out DIR        where results and logs go   [runs/bench]
  --keep           keep the model and GGUF files (in the system temp dir)
  --help           this text

Writes <out>/vs-hf-<shape>.json (every job's raw result, the checks, the table) and the
job logs in <out>/vs-hf-<shape>-logs/. Exit status 1 when an agreement check fails or a
contestant crashes, 2 on bad options or missing Python packages.`;

function main(): number {
  let args;
  try {
    args = parseArgs({
      options: {
        shape: { type: "string", default: "20m" },
        quick: { type: "boolean", default: false },
        threads: { type: "string", default: String(os.availableParallelism()) },
        arch: { type: "string", default: "qwen2" },
        warmup: { type: "string" },
        steps: { type: "string" },
        reps: { type: "string" },
        new: { type: "string", default: "64" },
        only: { type: "string" },
        python: { type: "string", default: "python3" },
        out: { type: "string", default: path.join(root, "runs", "bench") },
        keep: { type: "boolean", default: false },
        help: { type: "boolean", default: false },
      },
      strict: true,
    }).values;
  } catch (e) {
    console.error(`${(e as Error).message}\n\n${HELP}`);
    return 2;
  }
  if (args.help) {
    console.log(HELP);
    return 0;
  }
  const int = (v: string | undefined, name: string, min: number): number | undefined => {
    if (v === undefined) return undefined;
    const n = Number(v);
    if (!Number.isInteger(n) || n < min) throw new UsageError(`--${name} must be an integer >= ${min}, got '${v}'`);
    return n;
  };
  try {
    const shapes: ShapeName[] = args.shape === "all" ? ["20m", "200m"] : [args.shape as ShapeName];
    if (!shapes.every((s) => s in SHAPES)) throw new UsageError(`--shape must be one of ${Object.keys(SHAPES).join(", ")} or all, got '${args.shape}'`);
    if (args.arch !== "qwen2" && args.arch !== "llama") throw new UsageError(`--arch must be qwen2 or llama, got '${args.arch}'`);
    if (args.only !== undefined && args.only !== "train" && args.only !== "decode") throw new UsageError(`--only must be train or decode, got '${args.only}'`);
    const missing = checkPython(args.python);
    if (missing) {
      console.error(missing);
      return 2;
    }
    let status = 0;
    for (const shape of shapes) {
      const big = shape === "200m";
      const settings: Settings = {
        shape,
        arch: args.arch,
        threads: int(args.threads, "threads", 1)!,
        warmup: int(args.warmup, "warmup", 0) ?? (args.quick || big ? 1 : 2),
        steps: int(args.steps, "steps", 1) ?? (args.quick ? 2 : big ? 3 : 5),
        reps: int(args.reps, "reps", 1) ?? (args.quick ? 1 : 3),
        newTokens: int(args.new, "new", 1)!,
        train: args.only !== "decode",
        decode: args.only !== "train",
        python: args.python,
        out: path.resolve(args.out),
        keep: args.keep,
        quick: args.quick,
      };
      status = Math.max(status, runShape(settings));
    }
    return status;
  } catch (e) {
    if (e instanceof UsageError) {
      console.error(`${e.message}\n(--help lists the options)`);
      return 2;
    }
    throw e;
  }
}

class UsageError extends Error {}

interface Settings {
  shape: ShapeName;
  arch: Arch;
  threads: number;
  warmup: number;
  steps: number;
  reps: number;
  newTokens: number;
  train: boolean;
  decode: boolean;
  python: string;
  out: string;
  keep: boolean;
  quick: boolean;
}

/** Undefined when the Python packages import; otherwise what is missing and how to install it. */
function checkPython(python: string): string | undefined {
  const r = spawnSync(python, ["-c", "import torch, transformers, peft; print(torch.__version__, transformers.__version__, peft.__version__)"], { encoding: "utf8" });
  if (r.status === 0) return undefined;
  const why = r.error ? `${python} could not be run (${r.error.message})` : (r.stderr.trim().split("\n").pop() ?? `exit status ${r.status}`);
  return `bench/vs-hf needs Python with torch, transformers and peft: ${why}\n  hint: pip install torch transformers peft   (tested: torch 2.13 CPU, transformers 5.18, peft 0.21), or pass --python /path/to/python`;
}

function runShape(s: Settings): number {
  const s0 = SHAPES[s.shape];
  const work = fs.mkdtempSync(path.join(os.tmpdir(), `vlatext-vs-hf-${s.shape}-`));
  const logs = path.join(s.out, `vs-hf-${s.shape}-logs`);
  fs.rmSync(logs, { recursive: true, force: true });
  fs.mkdirSync(logs, { recursive: true });
  const model = path.join(work, "model");
  const inputsFile = path.join(work, "inputs.json");
  const lora = { rank: 16, alpha: 32 };
  const B = 4;
  const T = 128;
  const started = new Date();
  const load0 = os.loadavg();
  console.log(`== vs-hf ${s.shape}: ${s.arch}, V=${s0.V} C=${s0.C} L=${s0.L} NH=${s0.NH}/KV=${s0.KV} hd=64 F=${s0.F}, tied embeddings (${s0.note})`);
  console.log(`   ${s.threads} thread${s.threads === 1 ? "" : "s"} for every contestant; training B=${B} T=${T}, ${s.warmup} warm-up + ${s.steps} timed steps; decode ${s.newTokens} new tokens after 32, median of ${s.reps}${s.quick ? "; --quick: a smoke run, not numbers to quote" : ""}`);
  console.log(`   ${os.cpus()[0]?.model ?? "cpu"}, ${os.availableParallelism()} cores, load average ${load0.map((x) => x.toFixed(2)).join(" ")}; logs: ${logs}`);
  if (load0[0]! > 0.25 * os.availableParallelism()) {
    console.log(`   warning: other processes keep ${load0[0]!.toFixed(1)} of ${os.availableParallelism()} cores busy. Multi-threaded timings then measure the contention more than the code`);
    console.log(`   (thread pools that spin: on a busy 2-core machine llama.cpp ran a 1M-parameter model at ~20-120 tokens/s on 2 threads, ~2000 on 1;`);
    console.log(`   HF's 20m LoRA fell from ~1000 tokens/s on 1 thread to ~200 on 2). Quote numbers from a quiet machine; --threads 1 gives a steadier smoke run.`);
  }
  console.log("");

  const env = { ...process.env, OMP_NUM_THREADS: String(s.threads), MKL_NUM_THREADS: String(s.threads), OPENBLAS_NUM_THREADS: String(s.threads), PYTHONUNBUFFERED: "1", TOKENIZERS_PARALLELISM: "false" };
  const py = path.join(root, "bench", "vs-hf.py");
  const worker = path.join(root, "bench", "vs-hf-worker.ts");
  const jobsTotal = (s.decode ? 2 : 1) + (s.train ? 7 : 0) + (s.decode ? 6 : 0);
  let jobNo = 0;
  const results: Results = { train: {}, decode: {} };
  const raw: Record<string, unknown> = {};

  /** One job in its own process: its stderr to a log file, its last stdout line its result. */
  function job<T>(name: string, label: string, cmd: string, args: string[], schema: z.ZodType<T>, summary: (r: T) => string): JobOutcome<T> {
    jobNo++;
    const log = path.join(logs, `${name}.log`);
    process.stdout.write(`[${String(jobNo).padStart(2)}/${jobsTotal}] ${label.padEnd(44)} `);
    const t0 = performance.now();
    const fd = fs.openSync(log, "w");
    fs.writeSync(fd, `$ ${cmd} ${args.map((x) => (/[\s"{}]/.test(x) ? `'${x}'` : x)).join(" ")}\n`);
    const r = spawnSync(cmd, args, { cwd: root, env, stdio: ["ignore", "pipe", fd], encoding: "utf8", maxBuffer: 256 * 2 ** 20 });
    fs.closeSync(fd);
    const secs = ((performance.now() - t0) / 1000).toFixed(0);
    const last = r.stdout?.trim().split("\n").pop() ?? "";
    let outcome: JobOutcome<T>;
    if (r.status !== 0 || r.error) {
      const tail = fs.readFileSync(log, "utf8").trim().split("\n").slice(-6).join("\n      ");
      outcome = { failed: `${r.error ? r.error.message : `exit status ${r.status ?? r.signal}`}; see ${log}:\n      ${tail}` };
    } else {
      try {
        const json: unknown = JSON.parse(last);
        const un = UnsupportedSchema.safeParse(json);
        outcome = un.success ? { unsupported: un.data.unsupported } : { ok: schema.parse(json) };
      } catch (e) {
        outcome = { failed: `its result line is not valid (${(e as Error).message.split("\n")[0]}); see ${log}` };
      }
    }
    raw[name] = "ok" in outcome ? outcome.ok : outcome;
    console.log("ok" in outcome ? `${summary(outcome.ok)}  (${secs}s)` : "unsupported" in outcome ? `-- ${outcome.unsupported}` : `FAILED: ${outcome.failed}`);
    return outcome;
  }
  const mib = (kib: number): string => `${(kib / 1024).toFixed(0)} MiB`;
  const trainSummary = (r: TrainResult): string => `${r.tokensPerSec.toFixed(1)} tokens/s, peak RSS ${mib(r.peakRssKiB)}, loss ${r.losses[0]!.toFixed(5)} -> ${r.losses[r.losses.length - 1]!.toFixed(5)}`;
  const decodeSummary = (r: DecodeResult): string => `${r.tokensPerSec.toFixed(1)} tokens/s${r.feedTokensPerSec ? ` (engine alone ${r.feedTokensPerSec.toFixed(1)})` : ""}, peak RSS ${mib(r.peakRssKiB)}`;

  const build = job("build", "build the random model (transformers)", s.python, [py, "build", "--out", model, "--config", JSON.stringify(hfConfig(s.shape, s.arch, lora)), "--seed", "0"], BuildResultSchema, (r) => `${(r.params / 1e6).toFixed(1)}M parameters, LoRA ${(r.loraParams / 1e6).toFixed(2)}M; torch ${r.versions.torch}, transformers ${r.versions.transformers}, peft ${r.versions.peft}`);
  if (!("ok" in build)) return finish(1);
  fs.writeFileSync(inputsFile, JSON.stringify(makeInputs(s0.V, B, T, 32, 1234)));
  const common = ["--inputs", inputsFile, "--threads", String(s.threads)];
  const tsx = (args: string[]): [string, string[]] => [process.execPath, ["--import", "tsx", worker, ...args]];

  let gguf: Record<string, string> | undefined;
  if (s.decode) {
    const e = job("export-gguf", "export GGUF f32 / f16 / bf16 (vlatext)", ...tsx(["export", "--model", model, "--out", path.join(work, "gguf")]), ExportResultSchema, (r) => Object.entries(r.bytes).map(([k, v]) => `${k} ${(v / 2 ** 20).toFixed(0)} MiB`).join(", "));
    if ("ok" in e) gguf = e.ok.files;
  }
  if (s.train) {
    const steps = ["--warmup", String(s.warmup), "--steps", String(s.steps)];
    const runs: Array<[TrainKey, string, "hf" | "vlatext", string[]]> = [
      ["lora", "HF+PEFT LoRA fp32", "hf", ["--mode", "lora"]],
      ["lora", "vlatext LoRA f32", "vlatext", ["--mode", "lora"]],
      ["full", "HF full fine-tune fp32", "hf", ["--mode", "full"]],
      ["full", "vlatext full fine-tune f32", "vlatext", ["--mode", "full"]],
      ["lora-bf16", "HF+PEFT LoRA, bf16 weights", "hf", ["--mode", "lora", "--dtype", "bf16", "--bf16", "weights"]],
      ["lora-bf16", "vlatext LoRA, bf16 base", "vlatext", ["--mode", "lora", "--dtype", "bf16"]],
      ["lora-autocast", "HF+PEFT LoRA, bf16 autocast", "hf", ["--mode", "lora", "--dtype", "bf16", "--bf16", "autocast"]],
    ];
    for (const [key, label, who, extra] of runs) {
      const args = [...extra, "--model", model, ...common, ...steps];
      const r = who === "hf" ? job(`train-${key}-hf`, label, s.python, [py, "train", ...args], TrainResultSchema, trainSummary) : job(`train-${key}-vlatext`, label, ...tsx(["train", ...args]), TrainResultSchema, trainSummary);
      (results.train[key] ??= {})[who] = r;
    }
  }
  if (s.decode) {
    const dec = ["--new", String(s.newTokens), "--reps", String(s.reps)];
    results.decode.hf = job("decode-hf", "HF generate fp32", s.python, [py, "decode", "--model", model, ...common, ...dec], DecodeResultSchema, decodeSummary);
    results.decode["vlatext-f32"] = job("decode-vlatext-f32", "vlatext decode f32", ...tsx(["decode", "--model", model, "--dtype", "f32", ...common, ...dec]), DecodeResultSchema, decodeSummary);
    results.decode["vlatext-bf16"] = job("decode-vlatext-bf16", "vlatext decode bf16 weights", ...tsx(["decode", "--model", model, "--dtype", "bf16", ...common, ...dec]), DecodeResultSchema, decodeSummary);
    for (const t of ["f32", "f16", "bf16"] as const) {
      const file = gguf?.[t];
      results.decode[`llamacpp-${t}`] = file
        ? job(`decode-llamacpp-${t}`, `llama.cpp decode ${t} GGUF`, ...tsx(["llamacpp", "--gguf", file, ...common, ...dec]), DecodeResultSchema, decodeSummary)
        : { failed: "no GGUF file (the export failed)" };
    }
  }
  return finish(0);

  function finish(status: number): number {
    const checks: Check[] = agreementChecks(results);
    const rows = goalRows(results, s.shape);
    console.log(`\n== agreement: did every contestant run the same model?`);
    for (const c of checks) console.log(`   ${c.status.padEnd(4)} ${c.what}: ${c.detail}`);
    console.log(`\n== ${s.shape}: vlatext against the references (ratio = vlatext / reference: above 1 is faster for tokens/s, below 1 is smaller for RSS)\n`);
    console.log(table(["measure", "reference", "ref value", "vlatext", "ratio", "goal", ""], rows.map((r) => [r.measure, r.reference, r.refValue, r.ours, r.ratio, r.goal, r.verdict])));
    const failed = checks.some((c) => c.status === "FAIL") || Object.values(raw).some((r) => typeof r === "object" && r !== null && "failed" in r);
    const outFile = path.join(s.out, `vs-hf-${s.shape}.json`);
    const record = {
      bench: "vs-hf",
      shape: s.shape,
      dims: SHAPES[s.shape],
      arch: s.arch,
      settings: { threads: s.threads, B, T, warmup: s.warmup, steps: s.steps, reps: s.reps, newTokens: s.newTokens, promptTokens: 32, lora: { ...lora, targets: "all seven projections", dropout: 0 }, adamw: { lr: 1e-4, weightDecay: 0.01, betas: [0.9, 0.999], eps: 1e-8, clip: 1 }, quick: s.quick },
      machine: { cpu: os.cpus()[0]?.model, cores: os.availableParallelism(), memGiB: os.totalmem() / 2 ** 30, loadAvgStart: load0, loadAvgEnd: os.loadavg() },
      started: started.toISOString(),
      seconds: (Date.now() - started.getTime()) / 1000,
      jobs: raw,
      checks,
      table: rows,
    };
    fs.mkdirSync(s.out, { recursive: true });
    fs.writeFileSync(`${outFile}.tmp`, JSON.stringify(record, null, 1) + "\n");
    fs.renameSync(`${outFile}.tmp`, outFile);
    console.log(`raw results: ${outFile}`);
    if (s.keep) console.log(`model and GGUF files kept in ${work}`);
    else fs.rmSync(work, { recursive: true, force: true });
    console.log("");
    return Math.max(status, failed ? 1 : 0);
  }
}

process.exitCode = main();
