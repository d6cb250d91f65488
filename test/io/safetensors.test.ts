import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { readSafetensors, safetensorsData, writeSafetensors } from "../../src/io/safetensors.js";

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "vlatext-st-"));

describe("safetensors", () => {
  it("round-trips f32 exactly and f16/bf16 within their precision", () => {
    const data = Float32Array.from({ length: 12 }, (_, i) => (i - 5.5) / 3);
    const file = path.join(dir, "m.safetensors");
    writeSafetensors(file, [
      { name: "b.w", shape: [3, 4], data },
      { name: "a.h", shape: [12], data, dtype: "F16" },
      { name: "c.bf", shape: [2, 6], data, dtype: "BF16" },
    ], { format: "pt" });
    const f = readSafetensors(file);
    expect([...f.tensors.keys()]).toEqual(["a.h", "b.w", "c.bf"]);
    expect(f.metadata).toEqual({ format: "pt" });
    expect(f.dataStart % 8).toBe(0);
    expect(Array.from(safetensorsData(f, "b.w"))).toEqual(Array.from(data));
    safetensorsData(f, "a.h").forEach((v, i) => expect(Math.abs(v - data[i]!)).toBeLessThan(2e-3));
    safetensorsData(f, "c.bf").forEach((v, i) => expect(Math.abs(v - data[i]!)).toBeLessThan(2e-2));
    // the header layout HF writes: 8-byte length then JSON
    const raw = fs.readFileSync(file);
    const hdr = JSON.parse(raw.toString("utf8", 8, 8 + Number(raw.readBigUInt64LE(0))));
    expect(hdr["b.w"]).toEqual({ dtype: "F32", shape: [3, 4], data_offsets: [24, 72] });
  });

  it("names the problem in broken files", () => {
    const file = path.join(dir, "ok.safetensors");
    writeSafetensors(file, [{ name: "w", shape: [4], data: new Float32Array(4) }]);
    const raw = fs.readFileSync(file);
    fs.writeFileSync(path.join(dir, "trunc.safetensors"), raw.subarray(0, raw.length - 4));
    expect(() => readSafetensors(path.join(dir, "trunc.safetensors"))).toThrow(/tensor w runs past the end of the file/);
    expect(() => safetensorsData(readSafetensors(file), "nope")).toThrow(/has no tensor 'nope'/);
    expect(() => readSafetensors(path.join(dir, "missing.safetensors"))).toThrow(/not found/);
    expect(() => writeSafetensors(file, [{ name: "w", shape: [5], data: new Float32Array(4) }])).toThrow(/shape \[5\] needs 5 values, got 4/);
  });
});
