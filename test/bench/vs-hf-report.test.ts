/**
 * bench/vs-hf's verdicts on made-up results (the benchmark itself needs Python and runs
 * outside the suite): agreement checks fail when the runs differ, goals are judged in the
 * right direction, and an unsupported contestant is never given a number.
 */
import { describe, expect, it } from "vitest";
import type { DecodeResult, TrainResult } from "../../bench/vs-hf-lib.js";
import { makeInputs } from "../../bench/vs-hf-lib.js";
import { agreementChecks, goalRows, TOL, type Results } from "../../bench/vs-hf-report.js";

function train(tokensPerSec: number, losses: number[], peakMiB: number, gradNorm = 1): { ok: TrainResult } {
  return { ok: { tokensPerSec, seconds: 1, stepSeconds: losses.map(() => 0.1), losses, gradNorms: losses.map(() => gradNorm), peakRssKiB: peakMiB * 1024, baselineRssKiB: 0, trainable: 1, setup: "" } };
}
function decode(tokensPerSec: number, tokens: number[]): { ok: DecodeResult } {
  return { ok: { tokensPerSec, rates: [tokensPerSec], tokens, peakRssKiB: 1, baselineRssKiB: 0, setup: "" } };
}
const toks = Array.from({ length: 64 }, (_, i) => (i * 37) % 1000);

describe("bench/vs-hf verdicts", () => {
  it("passes matching loss curves and fails a step-0 gap above the tolerance", () => {
    const same: Results = { train: { lora: { hf: train(100, [9.5, 9.4, 9.3], 800), vlatext: train(200, [9.5 + 1e-6, 9.4, 9.3], 400) } }, decode: {} };
    expect(agreementChecks(same).map((c) => c.status)).toEqual(["PASS", "PASS", "PASS"]);
    const off: Results = { train: { lora: { hf: train(100, [9.5, 9.4, 9.3], 800), vlatext: train(200, [9.5 + 10 * TOL.loss0, 9.4, 9.3], 400) } }, decode: {} };
    expect(agreementChecks(off).map((c) => c.status)).toEqual(["FAIL", "PASS", "PASS"]);
    const drift: Results = { train: { full: { hf: train(100, [9.5, 9.4, 9.3], 800), vlatext: train(200, [9.5, 9.4, 9.31], 400, 1.1) } }, decode: {} };
    expect(agreementChecks(drift).map((c) => c.status)).toEqual(["PASS", "FAIL", "FAIL"]);
  });

  it("judges speed goals as ratios above, memory goals as ratios below, and gives unsupported rows no number", () => {
    const r: Results = {
      train: {
        lora: { hf: train(100, [1], 800), vlatext: train(160, [1], 400) },
        full: { hf: train(100, [1], 800), vlatext: train(140, [1], 400) },
        "lora-bf16": { hf: train(120, [1], 700), vlatext: { unsupported: "not supported by this engine build" } },
        "lora-autocast": { hf: train(130, [1], 750) },
      },
      decode: { hf: decode(10, toks), "vlatext-f32": decode(30, toks), "vlatext-bf16": { unsupported: "no" }, "llamacpp-f32": decode(20, toks), "llamacpp-f16": decode(40, toks), "llamacpp-bf16": { failed: "crashed" } },
    };
    const rows = new Map(goalRows(r, "200m").map((x) => [x.measure, x]));
    expect(rows.get("LoRA r16 fp32, tokens/s")).toMatchObject({ ratio: "1.60x", verdict: "met" });
    expect(rows.get("full fine-tune fp32, tokens/s")).toMatchObject({ ratio: "1.40x", verdict: "MISSED" });
    // the faster HF bf16 setup is the speed reference, the smaller the memory one
    expect(rows.get("LoRA r16 bf16 base, tokens/s")).toMatchObject({ reference: "HF+PEFT bf16 autocast", refValue: "130", ours: "unsupported", ratio: "-", verdict: "n/a" });
    expect(rows.get("LoRA r16 bf16 base, peak RSS MiB")).toMatchObject({ reference: "HF+PEFT bf16 weights", refValue: "700", goal: "<= 0.6x", verdict: "n/a" });
    expect(rows.get("LoRA r16 fp32, peak RSS MiB")).toMatchObject({ ratio: "0.50x", verdict: "info" });
    expect(rows.get("greedy decode f32 weights, tokens/s")).toMatchObject({ ratio: "1.50x", goal: ">= 1.2x", verdict: "met" });
    expect(rows.get("greedy decode bf16 weights, tokens/s")).toMatchObject({ refValue: "failed", verdict: "n/a" });
    // outside the 200m shape the decode rows carry no goal
    expect(new Map(goalRows(r, "20m").map((x) => [x.measure, x])).get("greedy decode f32 weights, tokens/s")).toMatchObject({ goal: "-", verdict: "info" });
    const checks = agreementChecks(r);
    expect(checks.find((c) => c.what === "vlatext-f32 greedy tokens")?.status).toBe("PASS");
    expect(checks.find((c) => c.what === "vlatext-bf16 greedy tokens")?.status).toBe("SKIP");
  });

  it("fails f32 greedy tokens that leave HF's path, and only reports 16-bit and f16-KV-cache ones", () => {
    const other = [...toks.slice(0, 20), ...toks.slice(20).map((t) => t + 1)];
    // llama.cpp's f32 file: judged on its f32-KV-cache tokens, its default (f16 cache) run only reported
    const llama = (timed: number[], exact: number[]) => ({ ok: { ...decode(20, timed).ok, exactTokens: exact } });
    const r: Results = { train: {}, decode: { hf: decode(10, toks), "vlatext-f32": decode(30, other), "llamacpp-f32": llama(other, toks), "llamacpp-f16": llama(other, other) } };
    const status = (what: string): string | undefined => agreementChecks(r).find((c) => c.what.startsWith(what))?.status;
    expect(agreementChecks(r).find((c) => c.what === "vlatext-f32 greedy tokens")).toMatchObject({ status: "FAIL", detail: expect.stringContaining("first 20 of 64") });
    expect(status("llamacpp-f32 greedy tokens (")).toBe("INFO");
    expect(status("llamacpp-f32 greedy tokens, f32 KV cache")).toBe("PASS");
    expect(status("llamacpp-f16 greedy tokens (")).toBe("INFO");
    expect(status("llamacpp-f16 greedy tokens, f32 KV cache")).toBe("INFO");
    r.decode["llamacpp-f32"] = llama(toks, other);
    expect(status("llamacpp-f32 greedy tokens, f32 KV cache")).toBe("FAIL");
  });

  it("makes the same inputs from the same seed, every position a target, ids below V - 1", () => {
    const a = makeInputs(300, 2, 8, 5, 7);
    expect(makeInputs(300, 2, 8, 5, 7)).toEqual(a);
    expect(a.tokens.slice(1, 8)).toEqual(a.targets.slice(0, 7)); // targets are the next tokens
    expect(a.tokens).toHaveLength(16);
    expect(Math.max(...a.tokens, ...a.targets, ...a.prompt)).toBeLessThan(299);
  });
});
