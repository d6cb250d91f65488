/**
 * Reduction throughput on 64 MiB of floats, all measured in the same run: the scalar
 * reference, a plain JavaScript loop, the portable and AVX2 kernels on 1 thread, and
 * the best kernel on N threads (a Runtime's reused pool, and a pool made per call).
 * Ratios are against the scalar reference. Run: npx tsx bench/reduce.ts [threads]
 */
import { loadAddon } from "../src/engine/addon.js";
import { Runtime, reduceSum, reduceSumRef } from "../src/engine/reduce.js";

const n = 16 * 1024 * 1024; // 64 MiB of f32
const x = new Float32Array(n);
for (let i = 0; i < n; i++) x[i] = ((i * 2654435761) % 1000) / 1000 - 0.5;

function time(f: () => number, reps = 9): { ms: number; value: number } {
  let best = Infinity;
  let value = 0;
  f(); // warm up (page faults, pool start)
  for (let r = 0; r < reps; r++) {
    const t0 = process.hrtime.bigint();
    value = f();
    best = Math.min(best, Number(process.hrtime.bigint() - t0) / 1e6);
  }
  return { ms: best, value };
}

const info = loadAddon().buildInfo();
const threads = Number(process.argv[2] ?? info.threadsDefault);
const many = new Runtime({ threads });
const rows: Array<[string, { ms: number; value: number }]> = [
  ["scalar reference (C++)", time(() => reduceSumRef(x))],
  [
    "JavaScript loop",
    time(() => {
      let s = 0;
      for (let i = 0; i < n; i++) s += x[i] as number;
      return s;
    }),
  ],
  ["portable kernel, 1 thread", time(() => reduceSum(x, { threads: 1, simd: "scalar" }))],
];
if (info.simd === "avx2") rows.push(["avx2 kernel, 1 thread", time(() => reduceSum(x, { threads: 1, simd: "avx2" }))]);
rows.push([`${info.simd}, ${threads} threads (Runtime pool)`, time(() => many.reduceSum(x))]);
rows.push([`${info.simd}, ${threads} threads (pool per call)`, time(() => reduceSum(x, { threads }))]);
many.dispose();

const ref = rows[0]![1].ms;
console.log(`reduce_sum over ${n} f32 (${(n * 4) / 2 ** 20} MiB), best of 9; CPU simd=${info.simd}, hardware threads=${info.threadsDefault}\n`);
console.log(["kernel".padEnd(36), "ms".padStart(8), "GB/s".padStart(8), "vs ref".padStart(8), "  sum"].join(""));
for (const [name, r] of rows) {
  console.log([name.padEnd(36), r.ms.toFixed(2).padStart(8), ((n * 4) / r.ms / 1e6).toFixed(2).padStart(8), `${(ref / r.ms).toFixed(2)}x`.padStart(8), `  ${r.value.toFixed(3)}`].join(""));
}
