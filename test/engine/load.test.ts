/** Loading weights through the memory-mapped native reader: sharded, f16 and bf16, broken files. */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { DecoderModel } from "../../src/engine/decoder.js";
import { parseDecoderConfig } from "../../src/engine/config.js";
import { f16ToF32, f32ToF16, bf16ToF32, f32ToBf16 } from "../../src/io/half.js";
import { writeSafetensors } from "../../src/io/safetensors.js";
import { randomDecoderWeights } from "../support/ref-decoder.js";
import { hfConfigJson, tinyConfig } from "../support/tiny-models.js";

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "vlatext-load-"));
const c = tinyConfig("qwen3", false, { numLayers: 2 });
const w = randomDecoderWeights(c, 12);
const shapes = (() => {
  const m = new DecoderModel(parseDecoderConfig(hfConfigJson(c)));
  const s = new Map(m.paramInfo().map((p) => [p.name, p.shape]));
  m.dispose();
  return s;
})();

describe("weights loading", () => {
  it("reads a sharded checkpoint with mixed f32 / f16 / bf16 tensors", () => {
    const d = path.join(dir, "sharded");
    fs.mkdirSync(d, { recursive: true });
    fs.writeFileSync(path.join(d, "config.json"), JSON.stringify(hfConfigJson(c)));
    const names = [...w.keys()];
    const dtypeOf = (i: number) => (["F32", "F16", "BF16"] as const)[i % 3]!;
    const shards = [names.slice(0, 10), names.slice(10)];
    const weightMap: Record<string, string> = {};
    shards.forEach((list, s) => {
      const file = `model-0000${s + 1}-of-00002.safetensors`;
      writeSafetensors(path.join(d, file), list.map((n) => ({ name: n, shape: shapes.get(n)!, data: w.get(n)!, dtype: dtypeOf(names.indexOf(n)) })));
      for (const n of list) weightMap[n] = file;
    });
    fs.writeFileSync(path.join(d, "model.safetensors.index.json"), JSON.stringify({ metadata: { total_size: 0 }, weight_map: weightMap }));
    const m = DecoderModel.load(d);
    names.forEach((n, i) => {
      const want = w.get(n)!;
      const conv = dtypeOf(i) === "F32" ? want : Float32Array.from(want, (v) => (dtypeOf(i) === "F16" ? f16ToF32(f32ToF16(v)) : bf16ToF32(f32ToBf16(v))));
      expect(Array.from(m.getParam(n)), n).toEqual(Array.from(conv));
    });
    m.dispose();
  });

  it("names a missing shard entry, a truncated file and a bad index", () => {
    const d = path.join(dir, "broken");
    fs.mkdirSync(d, { recursive: true });
    fs.writeFileSync(path.join(d, "config.json"), JSON.stringify(hfConfigJson(c)));
    writeSafetensors(path.join(d, "model.safetensors"), [...w].map(([n, data]) => ({ name: n, shape: shapes.get(n)!, data })));
    const full = fs.readFileSync(path.join(d, "model.safetensors"));
    fs.writeFileSync(path.join(d, "model.safetensors"), full.subarray(0, full.length - 100));
    expect(() => DecoderModel.load(d)).toThrow(/model\.safetensors: tensor .* runs past the end of the file \(truncated\?\)/);
    fs.writeFileSync(path.join(d, "model.safetensors.index.json"), JSON.stringify({ weight_map: { "model.norm.weight": "model.safetensors" } }));
    expect(() => DecoderModel.load(d)).toThrow(/tensor 'model\.embed_tokens\.weight' \(shape \[272,64\]\) is missing/);
    fs.writeFileSync(path.join(d, "model.safetensors.index.json"), "{ not json");
    expect(() => DecoderModel.load(d)).toThrow(/index\.json is not valid JSON/);
    expect(() => DecoderModel.load(path.join(dir, "nowhere"))).toThrow(/no config\.json in/);
  });
});
