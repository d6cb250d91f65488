/**
 * GPU tier: runs where the CUDA build exists (`npm run build:cuda`) and a GPU is
 * present; elsewhere it skips and says why.
 */
import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";
import { describe, expect, it } from "vitest";
import type { NativeAddon } from "../../src/engine/addon.js";
import { rng } from "../support/rng.js";

const file = path.resolve("build-cmake/Release/vlatext.node");
let addon: NativeAddon | undefined;
let why = "";
if (!fs.existsSync(file)) why = `no CUDA build at ${file} (run npm run build:cuda)`;
else {
  addon = createRequire(import.meta.url)(file) as NativeAddon;
  if (!addon.buildInfo().cuda || !addon.reduceSumCuda) why = "build-cmake addon was built without CUDA";
  else {
    try {
      addon.reduceSumCuda(new Float32Array(1));
    } catch (e) {
      why = `CUDA build present but unusable here: ${(e as Error).message}`;
    }
  }
}
if (why) console.log(`skipping GPU tests: ${why}`);

describe.skipIf(why !== "")("CUDA reduction (gpu tier)", () => {
  it("matches the scalar reference", () => {
    const r = rng(5);
    for (const n of [0, 1, 255, 256, 257, 100_003, 1 << 22]) {
      const x = Float32Array.from({ length: n }, () => r() * 2 - 1);
      const ref = addon!.reduceSumRef(x);
      let abs = 0;
      for (const v of x) abs += Math.abs(v);
      // double accumulation on both sides, different order: 1e-12 relative to sum|x|
      expect(Math.abs(addon!.reduceSumCuda!(x) - ref)).toBeLessThanOrEqual(1e-12 * abs);
    }
  });
});
