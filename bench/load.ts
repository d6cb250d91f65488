/**
 * Load on the real server: `vlatext serve` in its own process over an untrained policy of
 * the demo's architecture (the tiny default Qwen2.5-VL: width 64, 2 layers, 28-pixel
 * patches; VLA-0's 8x7 chunk, B = 1000), and N concurrent clients, each sending two 56x56
 * camera PNGs to POST /v1/act in a loop for a fixed time. Per N: requests/s, p50/p99
 * latency, errors by status (a 503 waits Retry-After, capped), batch sizes (from /metrics)
 * and the server's RSS (start, peak, end), with the rate beside one client's, measured in
 * the same run.
 *
 * --hidden/--layers size the decoder: the default (64, 2) is the demo's, whose cost per
 * request is its own attention and prompt work, so batching can only overlap it; a wider
 * model (e.g. --hidden 512 --layers 8) is bound by reading its weights, as real VLMs are,
 * and shows what batching buys there.
 *
 *   npx tsx bench/load.ts [--clients 1,8,32,64] [--seconds 30] [--max-batch 16] [--max-queue 64] [--hidden 64] [--layers 2]
 */
import { spawn } from "node:child_process";
import fs from "node:fs";
import { parseArgs } from "node:util";
import { encodePng } from "../src/data/image.js";
import { testImage, writeTinyVlmPolicy } from "../test/support/tiny-vlm-policy.js";

const { values } = parseArgs({ options: { clients: { type: "string", default: "1,8,32,64" }, seconds: { type: "string", default: "30" }, "max-batch": { type: "string", default: "16" }, "max-queue": { type: "string", default: "64" }, hidden: { type: "string", default: "64" }, layers: { type: "string", default: "2" } } });
const levels = values.clients.split(",").map(Number);
const seconds = Number(values.seconds);

const dir = writeTinyVlmPolicy({ hiddenSize: Number(values.hidden), layers: Number(values.layers), visionHidden: 32, visionDepth: 2, patchSize: 28, initStd: 0.125 });
const child = spawn(process.execPath, ["--import", "tsx", "test/support/cli-entry.ts", "serve", "--model", dir, "--port", "0", "--max-batch", values["max-batch"], "--max-queue", values["max-queue"]], { stdio: ["ignore", "pipe", "inherit"] });
const url = await new Promise<string>((resolve, reject) => {
  let out = "";
  child.stdout.on("data", (d: Buffer) => {
    out += d.toString();
    const m = /on (http:\/\/[^ ]+) /.exec(out);
    if (m) resolve(m[1]!);
  });
  child.on("exit", (c) => reject(new Error(`the server exited (${c})`)));
});

const rssMb = (): number => {
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${child.pid}/status`, "utf8"));
  return m ? Number(m[1]) / 1024 : NaN;
};
/** Batches by size so far, from the server's histogram (cumulative buckets). */
async function batchBuckets(): Promise<Map<string, number>> {
  const text = await (await fetch(`${url}/metrics`)).text();
  return new Map([...text.matchAll(/^vlatext_batch_size_bucket\{le="([^"]+)"\} (\d+)$/gm)].map((m) => [m[1]!, Number(m[2])]));
}

// a few distinct camera pairs, encoded once (the clients' own cost stays small)
const bodies = Array.from({ length: 8 }, (_, i) => JSON.stringify({ instruction: `reach the ${["red", "green", "blue", "yellow"][i % 4]} block`, images: [testImage(56, 56, i), testImage(56, 56, i + 50)].map((img) => ({ png: Buffer.from(encodePng(img)).toString("base64") })) }));

interface Level {
  clients: number;
  ok: number;
  rate: number;
  p50: number;
  p99: number;
  errors: Map<number, number>;
  meanBatch: number;
  batches: string;
  rss: { start: number; peak: number; end: number };
}

async function run(clients: number): Promise<Level> {
  const before = await batchBuckets();
  const latencies: number[] = [];
  const errors = new Map<number, number>();
  const rss = { start: rssMb(), peak: 0, end: 0 };
  rss.peak = rss.start;
  const sampler = setInterval(() => (rss.peak = Math.max(rss.peak, rssMb())), 250);
  const t0 = performance.now();
  const end = t0 + seconds * 1000;
  await Promise.all(
    Array.from({ length: clients }, async (_, c) => {
      for (let i = c; performance.now() < end; i += clients) {
        const t = performance.now();
        let status = 0;
        let retry = 0;
        try {
          const res = await fetch(`${url}/v1/act`, { method: "POST", headers: { "Content-Type": "application/json" }, body: bodies[i % bodies.length] });
          await res.arrayBuffer();
          status = res.status;
          retry = Number(res.headers.get("retry-after") ?? 0);
        } catch {
          status = -1; // connection error
        }
        if (status === 200) latencies.push(performance.now() - t);
        else {
          errors.set(status, (errors.get(status) ?? 0) + 1);
          if (status === 503) await new Promise((r) => setTimeout(r, Math.min(retry * 1000, 250)));
        }
      }
    }),
  );
  const wall = (performance.now() - t0) / 1000;
  clearInterval(sampler);
  rss.end = rssMb();
  rss.peak = Math.max(rss.peak, rss.end);
  const after = await batchBuckets();
  const delta = new Map([...after].map(([k, v]) => [k, v - (before.get(k) ?? 0)]));
  latencies.sort((a, b) => a - b);
  const q = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))] ?? NaN;
  // batches of size in (prev, le]
  let prev = 0;
  const parts: string[] = [];
  for (const [le, n] of delta) {
    if (le === "+Inf") continue;
    if (n - prev > 0) parts.push(`<=${le}:${n - prev}`);
    prev = n;
  }
  const total = delta.get("+Inf") ?? 0;
  return { clients, ok: latencies.length, rate: latencies.length / wall, p50: q(0.5), p99: q(0.99), errors, meanBatch: total > 0 ? latencies.length / total : 0, batches: parts.join(" "), rss };
}

console.log(`server: ${url} (pid ${child.pid}), decoder hidden ${values.hidden} x ${values.layers} layers, max-batch ${values["max-batch"]}, max-queue ${values["max-queue"]}; ${seconds} s per level; ${(await import("node:os")).cpus().length} cores\n`);
await run(2); // warm up
const rows: Level[] = [];
for (const n of levels) {
  const r = await run(n);
  rows.push(r);
  const one = rows.find((x) => x.clients === 1);
  const errs = [...r.errors].map(([s, k]) => `${s}:${k}`).join(" ") || "none";
  console.log(
    [
      `${String(n).padStart(3)} clients`,
      `${r.rate.toFixed(1).padStart(7)} req/s${one && n !== 1 ? ` (${(r.rate / one.rate).toFixed(2)}x one client)` : ""}`,
      `p50 ${r.p50.toFixed(0)} ms`,
      `p99 ${r.p99.toFixed(0)} ms`,
      `ok ${r.ok}`,
      `errors ${errs}`,
      `batch ~${r.meanBatch.toFixed(1)} [${r.batches}]`,
      `RSS ${r.rss.start.toFixed(0)} -> peak ${r.rss.peak.toFixed(0)} -> ${r.rss.end.toFixed(0)} MB`,
    ].join("  "),
  );
}
child.kill("SIGTERM");
await new Promise((r) => child.on("exit", r));
