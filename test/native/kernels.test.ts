/**
 * Runs the C++ kernel tests (native/tests/test_kernels.cpp, built by `npm install`
 * as build/Release/vlatext_kernel_tests): every optimized kernel against its scalar
 * reference and every backward against finite differences, tolerances stated there.
 * Each printed check becomes one assertion here.
 */
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";

const exe = path.resolve("build/Release/vlatext_kernel_tests");

describe("native kernels (C++ tests)", () => {
  it("the test binary was built by npm install", () => {
    expect(fs.existsSync(exe), `${exe} is missing: run npm install`).toBe(true);
  });

  for (const threads of [1, 3]) {
    it(`every kernel check passes (${threads} thread${threads > 1 ? "s" : ""})`, () => {
      const r = spawnSync(exe, [String(threads)], { encoding: "utf8", timeout: 120_000 });
      const lines = r.stdout.split("\n").filter((l) => /^(PASS|FAIL) /.test(l));
      const failed = lines.filter((l) => l.startsWith("FAIL"));
      expect(failed, r.stdout + r.stderr).toEqual([]);
      expect(r.status).toBe(0);
      // the families that must be covered, by reference comparison and by finite differences
      for (const name of ["matmul_forward", "matmul fd dweight", "rmsnorm fd dinp", "rope fd (3 sections)", "attention_backward dk", "attention fd dq", "attention is causal", "swiglu fd dgate", "embedding fd", "head fd dhidden", "head fd dhead", "head_forward fused dhidden", "optimizer_step over two stores", "adamw first step by hand"]) {
        expect(lines.some((l) => l.startsWith(`PASS ${name}`)), `missing check '${name}'`).toBe(true);
      }
      // the GEMM core: the portable path everywhere, each vectorized path where the CPU has its
      // instructions (the binary prints "SKIP gemm <isa>: this CPU has no <isa>" where it has not)
      for (const name of ["gemm portable f32 forward", "gemm portable f32 dinp", "gemm portable f32 dweight", "gemm portable f32 tt", "gemm portable bf16 forward", "gemm portable bf16 dinp", "matmul_forward portable bf16", "matmul_backward dinp portable bf16"]) {
        expect(lines.some((l) => l.startsWith(`PASS ${name}`)), `missing check '${name}'`).toBe(true);
      }
      const isaChecks: Record<string, string[]> = {
        avx2: ["f32 forward", "f32 dinp", "f32 dweight", "bf16 forward"],
        avx512: ["f32 forward", "f32 dinp", "f32 dweight", "f32 tt", "bf16 forward", "bf16 dinp"],
        avx512bf16: ["bf16 forward", "bf16 dinp", "bf16 dweight", "bf16 unrounded forward", "bf16 unrounded dinp"],
        amx: ["bf16 forward", "bf16 dinp", "bf16 dweight", "bf16 unrounded forward", "bf16 unrounded dinp"],
      };
      for (const [isa, checks] of Object.entries(isaChecks)) {
        if (r.stdout.includes(`SKIP gemm ${isa}: this CPU has no ${isa}`)) continue;
        for (const c of checks) expect(lines.some((l) => l.startsWith(`PASS gemm ${isa} ${c} `)), `missing check 'gemm ${isa} ${c}'`).toBe(true);
        expect(lines.some((l) => l.startsWith(`PASS matmul_forward ${isa} bf16`)), `missing check 'matmul_forward ${isa} bf16'`).toBe(true);
      }
      expect(lines.length).toBeGreaterThan(60);
    });
  }
});
