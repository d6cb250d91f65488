/**
 * The CUDA build (`npm run build:cuda`, into build-cmake/; .ci/run makes it where nvcc is
 * installed). Skips with the reason when it is absent.
 *  - build-cmake/vlatext_cuda_tests (native/tests/test_cuda.cpp): the CUDA backend
 *    against the CPU backend, every call of the device seam and whole models, tolerances stated
 *    there. Without a GPU its host-side checks run (cuBLASLt's search list and loader errors, the
 *    backend refusing with NoDevice and a reason) and the GPU checks print SKIP lines saying why;
 *    with one, every check must pass and the families below must all be present.
 * CUDA reduction:
 *  - no GPU here: reduceSumCuda must fail cleanly (NATIVE_DEVICE), not crash or abort;
 *  - GPU present (gpu tier): the block-reduction kernel against the scalar reference,
 *    bit-exact on exact data and within 2n 2^-53 sum|x| on general floats (see
 *    reduce.test.ts for both arguments; the kernel also accumulates in double).
 */
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { createRequire } from "node:module";
import { describe, expect, it } from "vitest";
import { callNative, type NativeAddon } from "../../src/engine/addon.js";
import { VlaError } from "../../src/errors.js";
import { parseDecoderConfig } from "../../src/engine/config.js";
import { rng } from "../support/rng.js";
import { hfConfigJson, tinyConfig } from "../support/tiny-models.js";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
const file = process.env.VLATEXT_ADDON ? path.resolve(process.env.VLATEXT_ADDON) : path.join(root, "build-cmake", "Release", "vlatext.node");
let cuda: ((x: Float32Array) => number) | undefined;
let addon: NativeAddon | undefined;
let why = "";
let probeError: unknown;
if (!fs.existsSync(file)) why = `no addon at ${file} (run npm run build:cuda)`;
else {
  addon = createRequire(import.meta.url)(file) as NativeAddon;
  cuda = addon.reduceSumCuda;
  if (!addon.buildInfo().cuda || !cuda) why = `${file} was built without CUDA (run npm run build:cuda)`;
  else {
    try {
      cuda(new Float32Array(1));
    } catch (e) {
      probeError = e;
      why = `CUDA build present but no usable GPU: ${(e as Error).message}`;
    }
  }
}
if (why) console.log(`skipping GPU tests: ${why}`);

const seed0 = Number(process.env.VLATEXT_TEST_SEED ?? Math.floor(Math.random() * 2 ** 31));

describe.skipIf(probeError === undefined)("CUDA build without a usable GPU", () => {
  it("reduceSumCuda throws a status error that becomes NATIVE_DEVICE", () => {
    expect((probeError as Error & { status?: string }).status).toMatch(/^(NoDevice|DeviceError)$/);
    let e: unknown;
    try {
      callNative("reduceSumCuda", () => cuda!(new Float32Array(8)));
    } catch (err) {
      e = err;
    }
    expect(e).toBeInstanceOf(VlaError);
    expect((e as VlaError).code).toBe("NATIVE_DEVICE");
    expect((e as VlaError).message).toMatch(/reduceSumCuda: /);
    // argument errors are still checked before the device
    expect(() => cuda!(new Float64Array(2) as unknown as Float32Array)).toThrow(/argument 'x' must be a Float32Array/);
  });

  it("a model on device cuda is refused with NoDevice, saying why (the CUDA backend is there, the GPU is not)", () => {
    const cfg = { ...parseDecoderConfig(hfConfigJson(tinyConfig("llama", false))).native, device: "cuda" as const };
    let e: (Error & { status?: string }) | undefined;
    try {
      new addon!.Decoder(cfg);
    } catch (err) {
      e = err as Error & { status?: string };
    }
    expect(e?.status).toBe("NoDevice");
    expect(e?.message).toMatch(/no usable CUDA device: \S/);
    expect(e?.message).not.toMatch(/no CUDA backend/);
  });
});

describe.skipIf(why !== "")(`CUDA reduction (gpu tier, seed ${seed0})`, () => {
  const r = rng(seed0);
  const sizes = [0, 1, 31, 32, 33, 255, 256, 257, 100_003, (1 << 24) + 3];

  it("equals the scalar reference exactly on exact data", () => {
    for (const n of sizes) {
      // nonzero multiples of 2^-24 in (-1, 1): any order of double additions is exact for n < 2^28
      const x = Float32Array.from({ length: n }, () => ((r() < 0.5 ? -1 : 1) * (Math.floor(r() * (2 ** 24 - 1)) + 1)) / 2 ** 24);
      expect(cuda!(x), `n=${n}`).toBe(addon!.reduceSumRef(x));
    }
  });

  it("matches the scalar reference within 2n 2^-53 sum|x| on general floats, subarrays included", () => {
    for (const n of sizes) {
      for (const scale of [1, 1e30]) {
        const base = Float32Array.from({ length: n + 3 }, () => (r() * 2 - 1) * scale);
        const x = base.subarray(3);
        const ref = addon!.reduceSumRef(x);
        let abs = 0;
        for (const v of x) abs += Math.abs(v);
        expect(Math.abs(cuda!(x) - ref), `n=${n} scale=${scale}`).toBeLessThanOrEqual(2 * n * 2 ** -53 * abs);
      }
    }
  });
});

const testsExe = path.join(root, "build-cmake", "vlatext_cuda_tests");
const testsWhy = fs.existsSync(testsExe) ? "" : `no ${testsExe} (run npm run build:cuda, which needs nvcc)`;
if (testsWhy) console.log(`skipping CUDA backend tests: ${testsWhy}`);

describe.skipIf(testsWhy !== "")(`CUDA backend against the CPU backend (seed ${seed0})`, () => {
  it("every check passes; without a GPU the GPU checks skip saying why", () => {
    const r = spawnSync(testsExe, [String(seed0)], { encoding: "utf8", timeout: 300_000 });
    const lines = r.stdout.split("\n");
    const checks = lines.filter((l) => /^(PASS|FAIL) /.test(l));
    expect(checks.filter((l) => l.startsWith("FAIL")), r.stdout + r.stderr).toEqual([]);
    expect(r.status, r.stdout + r.stderr).toBe(0);
    // host-side checks run everywhere
    for (const name of ["cublaslt search order", "cublaslt search: a folder is searched, not listed", "cublaslt load: missing file named, install hint", "cublaslt load: a library that is not cuBLASLt", "cublaslt status text", "cuda decode key splits"]) {
      expect(checks.some((l) => l.startsWith(`PASS ${name}`)), `missing check '${name}'`).toBe(true);
    }
    const skipped = lines.find((l) => l.startsWith("SKIP gpu kernels: "));
    if (skipped) {
      expect(checks.some((l) => l.startsWith("PASS cuda backend refused without a GPU, saying why"))).toBe(true);
      expect(skipped).toMatch(/no usable CUDA device: \S/);
      console.log(skipped);
      return;
    }
    // gpu tier: the families that must be covered
    expectFamilies(checks);
  });

  it("the checks themselves hold with a portable CPU backend in the GPU's place (--cpu-twin)", () => {
    const r = spawnSync(testsExe, [String(seed0), "--cpu-twin"], { encoding: "utf8", timeout: 300_000 });
    const checks = r.stdout.split("\n").filter((l) => /^(PASS|FAIL) /.test(l));
    expect(checks.filter((l) => l.startsWith("FAIL")), r.stdout + r.stderr).toEqual([]);
    expect(r.status, r.stdout + r.stderr).toBe(0);
    expectFamilies(checks);
  });
});

/** The check families that must all be present where the GPU checks ran. */
function expectFamilies(checks: string[]): void {
  for (const name of ["matmul builtin bf16", "matmul lt bf16", "matmul lt f32", "cuda head lt bf16 fused dhidden", "cuda head lt f32 dhead recomputed", "cuda rmsnorm dweight", "cuda rope hd=128 sections=3 forward",
    "cuda attention B=2 T=17 NH=4 KV=2 hd=16 dk", "cuda attention_segments hd=80 dq", "cuda attention cached split start=5000 n=1 hd=128", "cuda adamw params (bit-identical)", "cuda sq_norm", "cuda decoder f32 full fine-tuning: every gradient",
    "cuda decoder bf16 lora step 1 adapter gradients", "cuda decoder f32 cached decoding logits", "cuda decoder f32 constrained greedy generation", "cuda vision backward: every gradient"]) {
    expect(checks.some((l) => l.startsWith(`PASS ${name}`)), `missing check '${name}'`).toBe(true);
  }
}
