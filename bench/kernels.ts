/**
 * The GEMM table of bench/engine.ts: runs build/Release/vlatext_bench_kernels (the shipped
 * linear layer at model shapes, every path, 1 and all threads, OpenBLAS when found) and
 * bench/torch-gemm.py (PyTorch's matmul at the same shapes and thread counts, f32 and bf16)
 * in the same run, and prints GFLOP/s (GB/s of weight for the decode GEMVs) with the ratios
 * against PyTorch and against this machine's peaks measured first. Then causal attention,
 * forward and backward (the training kernels), against PyTorch's scaled_dot_product_attention
 * at the same shapes and thread counts (bench/torch-attention.py).
 * The machine may be shared: both are run `--rounds` times (default 2), alternating, and each
 * cell keeps its best run.
 * Standalone: npx tsx bench/kernels.ts [--quick] [--filter=SUBSTRING] [--rounds=N]
 */
import { spawnSync } from "node:child_process";
import path from "node:path";
import { z } from "zod";

const Row = z.discriminatedUnion("kind", [
  z.object({ kind: z.literal("machine"), threads: z.number(), best_isa: z.string() }),
  z.object({ kind: z.literal("peak"), what: z.string(), threads: z.number(), gflops: z.number() }),
  z.object({ kind: z.literal("bandwidth"), what: z.string(), threads: z.number(), gbps: z.number() }),
  z.object({ kind: z.enum(["gemm", "gemv"]), shape: z.string(), form: z.string(), wdtype: z.string(), M: z.number(), N: z.number(), K: z.number(), path: z.string(), threads: z.number(), ms: z.number(), gflops: z.number(), gbps: z.number() }),
  z.object({ kind: z.literal("torch"), shape: z.string(), form: z.string(), wdtype: z.string(), threads: z.number(), dtype: z.enum(["f32", "bf16"]), ms: z.number(), gflops: z.number() }),
  z.object({ kind: z.literal("attention"), shape: z.string(), pass: z.enum(["forward", "backward"]), B: z.number(), T: z.number(), NH: z.number(), KV: z.number(), hd: z.number(), threads: z.number(), ms: z.number(), gflops: z.number() }),
  z.object({ kind: z.literal("torch-attention"), shape: z.string(), pass: z.enum(["forward", "backward"]), threads: z.number(), ms: z.number() }),
]);
type AttnRow = Extract<Row, { kind: "attention" }>;
type TorchAttnRow = Extract<Row, { kind: "torch-attention" }>;
type Row = z.infer<typeof Row>;
type Timing = Extract<Row, { kind: "gemm" | "gemv" }>;

function parseLines(text: string, source: string): Row[] {
  return text
    .split("\n")
    .filter((l) => l.trim().startsWith("{"))
    .map((l) => {
      const r = Row.safeParse(JSON.parse(l));
      if (!r.success) throw new Error(`${source} printed a line this bench does not understand: ${l}`);
      return r.data;
    });
}

const fmt = (x: number | undefined, digits = 0): string => (x === undefined ? "-" : x.toFixed(digits));
const pair = (a: number | undefined, b: number | undefined): string => `${fmt(a)}/${fmt(b)}`;

export function runKernelBench(root: string, args: string[]): void {
  const exe = path.join(root, "build/Release/vlatext_bench_kernels");
  const torchScript = path.join(root, "bench/torch-gemm.py");
  const torchAttnScript = path.join(root, "bench/torch-attention.py");
  // OpenBLAS: the system's libopenblas.so.0 (bench_kernels tries it), else the copy SciPy ships
  const blas = spawnSync("python3", [torchScript, "--blas-path"], { encoding: "utf8" });
  const env = { ...process.env, ...(blas.status === 0 && blas.stdout.trim() ? { VLATEXT_BLAS: blas.stdout.trim() } : {}) };
  const rounds = Math.max(1, Number(args.find((a) => a.startsWith("--rounds="))?.slice(9) ?? 2));
  const nativeArgs = args.filter((a) => a === "--quick" || a.startsWith("--filter="));
  console.log(`== linear layer GEMM (bench_kernels), best of several runs and ${rounds} round(s); cells are 1-thread/all-threads\n`);
  const rows: Row[] = [];
  let torch: Extract<Row, { kind: "torch" }>[] = [];
  let torchError = "";
  const torchAttn: TorchAttnRow[] = [];
  for (let round = 0; round < rounds; round++) {
    const r = spawnSync(exe, nativeArgs, { encoding: "utf8", env, maxBuffer: 64 << 20 });
    if (r.status !== 0) throw new Error(`${exe} failed (run npm install): ${r.stderr}`);
    rows.push(...parseLines(r.stdout, exe));
    // PyTorch at the same shapes and thread counts
    const T0 = rows.find((x): x is Extract<Row, { kind: "machine" }> => x.kind === "machine")?.threads ?? 1;
    const seen = new Map<string, Timing>();
    for (const t of rows) if (t.kind === "gemm" || t.kind === "gemv") seen.set(`${t.shape}|${t.form}|${t.wdtype}`, t);
    const shapes = [...seen.values()].map((t) => ({ shape: t.shape, form: t.form, wdtype: t.wdtype, M: t.M, N: t.N, K: t.K }));
    const tr = spawnSync("python3", [torchScript, ...(args.includes("--quick") ? ["--quick"] : [])], { encoding: "utf8", input: JSON.stringify({ threads: [...new Set([1, T0])], shapes }), maxBuffer: 64 << 20 });
    if (tr.status === 0) torch.push(...parseLines(tr.stdout, torchScript).filter((x): x is Extract<Row, { kind: "torch" }> => x.kind === "torch"));
    else torchError = (tr.stderr || String(tr.error)).trim();
    const attnShapes = [...new Map(rows.filter((x): x is AttnRow => x.kind === "attention").map((x) => [x.shape, { shape: x.shape, B: x.B, T: x.T, NH: x.NH, KV: x.KV, hd: x.hd }])).values()];
    if (attnShapes.length > 0) {
      const ta = spawnSync("python3", [torchAttnScript, ...(args.includes("--quick") ? ["--quick"] : [])], { encoding: "utf8", input: JSON.stringify({ threads: [...new Set([1, T0])], shapes: attnShapes }), maxBuffer: 64 << 20 });
      if (ta.status === 0) torchAttn.push(...parseLines(ta.stdout, torchAttnScript).filter((x): x is TorchAttnRow => x.kind === "torch-attention"));
      else torchError ||= (ta.stderr || String(ta.error)).trim();
    }
  }
  // each cell's best run over the rounds
  torch = bestOf(torch, (x) => `${x.shape}|${x.form}|${x.wdtype}|${x.dtype}|${x.threads}`, (x) => x.gflops);
  const machine = rows.find((x): x is Extract<Row, { kind: "machine" }> => x.kind === "machine");
  const T = machine?.threads ?? 1;
  const peaks = bestOf(rows.filter((x): x is Extract<Row, { kind: "peak" }> => x.kind === "peak"), (x) => `${x.what}|${x.threads}`, (x) => x.gflops);
  const bw = bestOf(rows.filter((x): x is Extract<Row, { kind: "bandwidth" }> => x.kind === "bandwidth"), (x) => `${x.what}|${x.threads}`, (x) => x.gbps);
  for (const p of peaks) console.log(`peak ${p.what.padEnd(16)} ${String(p.threads).padStart(2)} thread(s): ${p.gflops.toFixed(0)} GFLOP/s`);
  for (const b of bw) console.log(`${b.what.padEnd(21)} ${String(b.threads).padStart(2)} thread(s): ${b.gbps.toFixed(1)} GB/s`);
  const peakOf = (what: string, threads: number): number | undefined => peaks.find((p) => p.what === what && p.threads === threads)?.gflops;
  const dram = bw.find((b) => b.threads === T)?.gbps;

  const timings = bestOf(rows.filter((x): x is Timing => x.kind === "gemm" || x.kind === "gemv"), (t) => `${t.shape}|${t.form}|${t.wdtype}|${t.path}|${t.threads}`, (t) => t.gflops);
  const key = (t: { shape: string; form: string; wdtype: string }): string => `${t.shape}|${t.form}|${t.wdtype}`;
  const groups = new Map<string, Timing[]>();
  for (const t of timings) groups.set(key(t), [...(groups.get(key(t)) ?? []), t]);

  if (torch.length === 0) console.log(`\n(no PyTorch column: ${torchError}; install it with: pip install torch)`);
  const torchAt = (k: string, dtype: "f32" | "bf16", threads: number): number | undefined => torch.find((x) => key(x) === k && x.dtype === dtype && x.threads === threads)?.gflops;

  const paths = ["ref", "portable", "avx2", "avx512", "avx512bf16", "amx", "gemv-portable", "gemv-avx2", "gemv-avx512"];
  const head = ["shape".padEnd(26), "form".padEnd(8), "w".padEnd(5), "M x N x K".padEnd(19), ...["ref", "portable", "avx2", "avx512", "bf16/gemv", "amx", "openblas", "torch f32", "torch bf16"].map((h) => h.padStart(11)), "  best/torch", "  %peak"];
  if (groups.size > 0) {
    console.log(`\nGFLOP/s (decode rows: GB/s of weight streamed); 'bf16/gemv' is avx512bf16 or the GEMV path; best/torch compares our fastest at ${T} threads with torch at the weight's dtype`);
    console.log(head.join(""));
  }
  for (const [k, g] of groups) {
    const t0 = g[0]!;
    const gemv = t0.kind === "gemv";
    const val = (t: Timing | undefined): number | undefined => (t === undefined ? undefined : gemv ? t.gbps : t.gflops);
    const at = (p: (path: string) => boolean, threads: number): Timing | undefined => g.find((t) => p(t.path) && t.threads === threads);
    const cell = (p: (path: string) => boolean): string => pair(val(at(p, 1)), val(at(p, T)));
    const exact = (name: string) => (p: string) => p === name;
    const ours = g.filter((t) => t.threads === T && paths.includes(t.path) && t.path !== "ref");
    const best = ours.reduce<Timing | undefined>((b, t) => (b === undefined || t.gflops > b.gflops ? t : b), undefined);
    const tq = torchAt(k, t0.wdtype === "bf16" ? "bf16" : "f32", T);
    const ratio = best && tq ? `${(best.gflops / tq).toFixed(2)}x` : "-";
    const pk = best === undefined ? undefined : gemv ? dram : best.path === "amx" ? peakOf("amx tdpbf16ps", T) : best.path === "avx512bf16" ? peakOf("vdpbf16ps zmm", T) : peakOf("f32 fma zmm", T);
    const pct = best && pk ? `${Math.round((100 * (gemv ? best.gbps : best.gflops)) / pk)}%` : "-";
    const torchCell = (d: "f32" | "bf16"): string => (gemv ? pair(torchGbps(torchAt(k, d, 1), t0, d), torchGbps(torchAt(k, d, T), t0, d)) : pair(torchAt(k, d, 1), torchAt(k, d, T)));
    console.log(
      [
        t0.shape.padEnd(26),
        t0.form.padEnd(8),
        t0.wdtype.padEnd(5),
        `${t0.M}x${t0.N}x${t0.K}`.padEnd(19),
        fmt(val(at(exact("ref"), 1)), 1).padStart(11),
        cell((p) => p === "portable" || p === "gemv-portable").padStart(11),
        cell((p) => p === "avx2" || p === "gemv-avx2").padStart(11),
        cell(exact("avx512")).padStart(11),
        cell((p) => p === "avx512bf16" || p === "gemv-avx512").padStart(11),
        cell(exact("amx")).padStart(11),
        cell((p) => p.startsWith("openblas:")).padStart(11),
        torchCell("f32").padStart(11),
        torchCell("bf16").padStart(11),
        ratio.padStart(12),
        pct.padStart(7),
      ].join(""),
    );
  }
  const blasName = timings.find((t) => t.path.startsWith("openblas:"))?.path.slice("openblas:".length);
  if (groups.size > 0)
    console.log(`\n(openblas: ${blasName ?? "none found (apt install libopenblas0-pthread, or pip install scipy)"}; %peak: against the f32 FMA, vdpbf16ps or AMX issue rate above, GEMV rows against the DRAM read bandwidth)\n`);

  // causal attention: vlatext's training kernels against torch's SDPA, f32, same shapes and threads
  const attn = bestOf(rows.filter((x): x is AttnRow => x.kind === "attention"), (x) => `${x.shape}|${x.pass}|${x.threads}`, (x) => -x.ms);
  if (attn.length > 0) {
    const tAttn = bestOf(torchAttn, (x) => `${x.shape}|${x.pass}|${x.threads}`, (x) => -x.ms);
    const ms = (xs: { shape: string; pass: string; threads: number; ms: number }[], shape: string, pass: string, threads: number): number | undefined => xs.find((x) => x.shape === shape && x.pass === pass && x.threads === threads)?.ms;
    console.log(`== causal attention, training (f32; ms, 1-thread/${T}-thread; torch: scaled_dot_product_attention, is_causal, grouped heads)`);
    console.log(["shape".padEnd(26), "pass".padEnd(9), "B x T, heads/kv x hd".padEnd(22), "vlatext ms".padStart(14), "GFLOP/s".padStart(12), "torch ms".padStart(14), "  torch/vlatext".padStart(16)].join(""));
    for (const a of attn.filter((x) => x.threads === 1 || T === 1)) {
      const ours1 = ms(attn, a.shape, a.pass, 1), oursT = ms(attn, a.shape, a.pass, T);
      const t1 = ms(tAttn, a.shape, a.pass, 1), tT = ms(tAttn, a.shape, a.pass, T);
      const gT = attn.find((x) => x.shape === a.shape && x.pass === a.pass && x.threads === T)?.gflops;
      console.log(
        [a.shape.padEnd(26), a.pass.padEnd(9), `${a.B}x${a.T}, ${a.NH}/${a.KV}x${a.hd}`.padEnd(22), `${fmt(ours1, 2)}/${fmt(oursT, 2)}`.padStart(14), fmt(gT, 1).padStart(12), `${fmt(t1, 2)}/${fmt(tT, 2)}`.padStart(14), (oursT && tT ? `${(tT / oursT).toFixed(2)}x` : "-").padStart(16)].join(""),
      );
    }
    if (tAttn.length === 0) console.log(`(no torch column: ${torchError || "bench/torch-attention.py printed nothing"}; install it with: pip install torch)`);
    console.log("(torch/vlatext above 1: vlatext is faster, at all threads)\n");
  }
}

// One row per key, the one with the highest score (first seen on ties), in first-seen order.
function bestOf<T>(xs: T[], key: (x: T) => string, score: (x: T) => number): T[] {
  const best = new Map<string, T>();
  for (const x of xs) {
    const k = key(x);
    const b = best.get(k);
    if (b === undefined || score(x) > score(b)) best.set(k, x);
  }
  return [...best.values()];
}

// torch's GEMV rate as GB/s of weight streamed (the weight in torch's dtype)
function torchGbps(gflops: number | undefined, t: Timing, dtype: "f32" | "bf16"): number | undefined {
  if (gflops === undefined) return undefined;
  const seconds = (2 * t.M * t.N * t.K) / (gflops * 1e9);
  return (t.N * t.K * (dtype === "f32" ? 4 : 2)) / seconds / 1e9;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), "..");
  runKernelBench(root, process.argv.slice(2));
}
