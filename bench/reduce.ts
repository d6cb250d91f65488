/**
 * Reduction throughput: the scalar reference, the optimized kernel on 1 and
 * N threads, and a plain JavaScript loop, on 64 MiB of floats, measured in the
 * same run. Run: npx tsx bench/reduce.ts
 */
import { loadAddon } from "../src/engine/addon.js";
import { Runtime, reduceSumRef } from "../src/engine/reduce.js";

const n = 16 * 1024 * 1024; // 64 MiB of f32
const x = new Float32Array(n);
for (let i = 0; i < n; i++) x[i] = ((i * 2654435761) % 1000) / 1000 - 0.5;

function time(f: () => number, reps = 7): { ms: number; value: number } {
  let best = Infinity;
  let value = 0;
  f(); // warm up
  for (let r = 0; r < reps; r++) {
    const t0 = process.hrtime.bigint();
    value = f();
    best = Math.min(best, Number(process.hrtime.bigint() - t0) / 1e6);
  }
  return { ms: best, value };
}

const info = loadAddon().buildInfo();
const threads = info.threadsDefault;
const one = new Runtime({ threads: 1 });
const many = new Runtime({ threads });
const rows: Array<[string, { ms: number; value: number }]> = [
  ["scalar reference (C++)", time(() => reduceSumRef(x))],
  ["JavaScript loop", time(() => { let s = 0; for (let i = 0; i < n; i++) s += x[i] as number; return s; })],
  [`optimized (${info.simd}), 1 thread`, time(() => one.reduceSum(x))],
  [`optimized (${info.simd}), ${threads} threads`, time(() => many.reduceSum(x))],
];
const ref = rows[0]![1].ms;
console.log(`reduce_sum over ${n} f32 (${(n * 4) / 2 ** 20} MiB), best of 7\n`);
console.log(["kernel".padEnd(32), "ms".padStart(8), "GB/s".padStart(8), "vs ref".padStart(8), "  sum"].join(""));
for (const [name, r] of rows) {
  console.log([name.padEnd(32), r.ms.toFixed(2).padStart(8), ((n * 4) / r.ms / 1e6).toFixed(2).padStart(8), `${(ref / r.ms).toFixed(2)}x`.padStart(8), `  ${r.value.toFixed(3)}`].join(""));
}
one.dispose();
many.dispose();
