/** `vlatext demo` end to end at toy scale: data, tiny default model, fine-tuning, closed-loop table. */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { main } from "../../src/cli/main.js";
import { bufferIO } from "../support/io.js";

describe("vlatext demo", () => {
  it("runs the whole pipeline and reports untrained vs trained success", async () => {
    const out = fs.mkdtempSync(path.join(os.tmpdir(), "vlatext-demo-"));
    const io = bufferIO();
    expect(await main(["demo", "--output", out, "--episodes", "8", "--steps", "3", "--eval-episodes", "1", "--tasks", "reach,pick"], io)).toBe(0);
    expect(io.stdout()).toMatch(/family\s+untrained\s+trained/);
    for (const f of ["reach", "pick"]) expect(io.stdout()).toMatch(new RegExp(`${f}\\s+[01]/1\\s+[01]/1`));
    expect(io.stdout()).not.toMatch(/place|push/);
    expect(io.stdout()).toMatch(/success: untrained [\d.]+%, trained [\d.]+%/);
    expect(fs.existsSync(path.join(out, "run", "policy", "policy.json"))).toBe(true);
    expect(fs.existsSync(path.join(out, "run", "loss.png"))).toBe(true);
    // the tiny model: one token per 56x56 camera, its sensor calibrated
    const pp = JSON.parse(fs.readFileSync(path.join(out, "model", "preprocessor_config.json"), "utf8")) as { patch_size: number };
    expect(pp.patch_size).toBe(28);
    expect(io.stderr()).toMatch(/sensor calibrated/);
  });

  it("names an unknown task family before any work", async () => {
    const out = fs.mkdtempSync(path.join(os.tmpdir(), "vlatext-demo-"));
    const io = bufferIO();
    expect(await main(["demo", "--output", out, "--tasks", "reach,fly"], io)).not.toBe(0);
    expect(io.stderr()).toMatch(/--tasks names 'fly', which is not a task family/);
    expect(fs.readdirSync(out)).toEqual([]);
  });
});
