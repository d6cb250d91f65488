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
      expect(lines.length).toBeGreaterThan(60);
    });
  }
});
