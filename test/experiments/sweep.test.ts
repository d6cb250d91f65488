/**
 * `vlatext finetune --sweep`: axes over config keys (every combination trained),
 * ensembling modes evaluated closed loop without retraining, one comparison table,
 * typos rejected before any work, and a second run keeps the finished variants.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { main } from "../../src/cli/main.js";
import { parseSweepSpec, sweepSummary, sweepTable, sweepVariants, type SweepRow } from "../../src/experiments/sweep.js";
import { createTinyDefaultModel } from "../../src/models/tiny-default.js";
import { generateDataset } from "../../src/sim/generate.js";
import { bufferIO } from "../support/io.js";

const base = { model: "m", output: "out", data: [{ dataset: "d", recipe: "toy-sim" }] };

describe("sweep spec", () => {
  it("parses inline and file specs; every combination becomes a validated config", () => {
    const s = parseSweepSpec("format=vla0,terse; action.bins=1000,10; ensemble=none,vla0-v2; episodes=2; families=reach");
    expect(s.axes).toEqual({ format: ["vla0", "terse"], "action.bins": ["1000", "10"] });
    expect(s.ensemble).toEqual(["none", "vla0-v2"]);
    expect(s.eval).toEqual({ episodes: 2, seed: 5000, families: ["reach"] });
    const v = sweepVariants(base, s);
    expect(v.map((x) => x.name)).toEqual(["format=vla0,action.bins=1000", "format=vla0,action.bins=10", "format=terse,action.bins=1000", "format=terse,action.bins=10"]);
    expect(v[1]!.config.action.bins).toBe(10);
    expect(v[2]!.config.format).toBe("terse");
    expect(v[3]!.config.output).toBe(path.join("out", "format=terse,action.bins=10"));
    // one validation pass at the end of each run unless asked otherwise
    expect(v[0]!.config.evalEvery).toBe(v[0]!.config.steps);

    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "vlatext-sweepspec-"));
    const file = path.join(dir, "sweep.yaml");
    fs.writeFileSync(file, "axes:\n  maskActions.enabled: [true, false]\nensemble: [act]\neval: {episodes: 0}\n");
    const f = parseSweepSpec(file);
    expect(sweepVariants(base, f).map((x) => x.config.maskActions.enabled)).toEqual([true, false]);
    expect(sweepVariants(base, parseSweepSpec("ensemble=none")).map((x) => x.name)).toEqual(["base"]);
  });

  it("trains every variant once per seed (the innermost axis) and pools the seeds with intervals", () => {
    const s = parseSweepSpec("format=vla0,terse; seeds=0,1; episodes=50; families=reach");
    expect(s.seeds).toEqual([0, 1]);
    const v = sweepVariants(base, s);
    expect(v.map((x) => x.name)).toEqual(["format=vla0,seed=0", "format=vla0,seed=1", "format=terse,seed=0", "format=terse,seed=1"]);
    expect(v.map((x) => x.config.seed)).toEqual([0, 1, 0, 1]);
    const both = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "vlatext-sweepseeds-")), "sweep.yaml");
    fs.writeFileSync(both, "axes:\n  seed: [1, 2]\nseeds: [0, 1]\n");
    expect(() => parseSweepSpec(both)).toThrow(/'seeds' and a 'seed' axis both set the training seed/);
    expect(() => parseSweepSpec("seeds=-1")).toThrow(/seeds/);
    // rows as a finished sweep writes them: vla0 30/50 + 34/50, terse 45/50 + 47/50
    const row = (format: string, seed: number, successes: number): SweepRow => ({ variant: `format=${format},seed=${seed}`, settings: { format, seed: String(seed) }, ensemble: "vla0-v1", steps: 10, trainSeconds: 1, finalLoss: 0.1, families: [{ family: "reach", successes, episodes: 50 }], successRate: successes / 50 });
    const rows = [row("vla0", 0, 30), row("vla0", 1, 34), row("terse", 0, 45), row("terse", 1, 47)];
    expect(sweepTable(rows).cells[0]).toContain("60% [46, 72]");
    const sum = sweepSummary(rows)!;
    expect(sum.headers).toEqual(["format", "ensemble", "seeds", "per seed", "success [95% CI]", "vs first [95% CI]"]);
    expect(sum.cells[0]).toEqual(["vla0", "vla0-v1", "0,1", "60% 68%", "64/100  64% [54, 73]", "-"]);
    // 92/100 vs 64/100: +28 points, Newcombe's interval well clear of zero
    expect(sum.cells[1]!.slice(0, 4)).toEqual(["terse", "vla0-v1", "0,1", "90% 94%"]);
    expect(sum.cells[1]![4]).toBe("92/100  92% [85, 96]");
    expect(sum.cells[1]![5]).toMatch(/^\+28 \[\+\d+, \+\d+\] pts$/);
    // one seed each: no pooled table
    expect(sweepSummary(rows.map((r) => ({ ...r, settings: { format: r.settings.format! } })))).toBeUndefined();
  });

  it("names what is wrong before any work starts", () => {
    expect(() => parseSweepSpec("fromat=vla0,terse")).toThrow(/axis 'fromat' is not a config key[\s\S]*format/);
    expect(() => parseSweepSpec("ensemble=vla0-v9")).toThrow(/ensemble/);
    expect(() => parseSweepSpec("output=a,b")).toThrow(/'output' cannot be swept/);
    expect(() => parseSweepSpec("format")).toThrow(/'format' is not key=value/);
    expect(() => sweepVariants(base, parseSweepSpec("action.bins=100,abc"))).toThrow(/--action.bins must be a number, got 'abc'/);
    expect(() => sweepVariants(base, parseSweepSpec("action.bins=0"))).toThrow(/sweep variant action.bins=0[\s\S]*action.bins/);
  });
});

describe("vlatext finetune --sweep", () => {
  it("trains each variant, evaluates every ensembling mode closed loop, and writes one table", async () => {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), "vlatext-sweep-"));
    const data = path.join(root, "data");
    await generateDataset(data, { episodes: 3, seed: 1, size: 28, storage: "png" });
    const model = createTinyDefaultModel(path.join(root, "model"), { seed: 1, hiddenSize: 32, layers: 1, visionDepth: 1, visionHidden: 16 });
    const out = path.join(root, "sweep");
    const args = ["finetune", "--model", model, "--output", out, "--data", JSON.stringify([{ dataset: data, recipe: "toy-sim" }]), "--steps", "2", "--batchSize", "2", "--imageSize", "28", "--evalSamples", "2", "--lora.enabled", "false"];
    const spec = "action.bins=1000,10; ensemble=none,vla0-v1; episodes=1; families=reach";
    const io = bufferIO();
    expect(await main([...args, "--sweep", spec], io)).toBe(0);
    const rows = JSON.parse(fs.readFileSync(path.join(out, "sweep.json"), "utf8")) as SweepRow[];
    expect(rows.map((r) => [r.settings["action.bins"], r.ensemble])).toEqual([
      ["1000", "none"],
      ["1000", "vla0-v1"],
      ["10", "none"],
      ["10", "vla0-v1"],
    ]);
    for (const r of rows) {
      expect(r.families).toEqual([{ family: "reach", successes: expect.any(Number), episodes: 1 }]);
      expect(Number.isFinite(r.finalLoss)).toBe(true);
      expect(r.parseRate).toBe(1); // constrained decoding: every answer parses
      expect(r.tokensPerChunk).toBeGreaterThan(0);
      // the executed step's error beside the whole chunk's (both are means of |error| in [0, 2])
      expect(r.valL1First).toBeGreaterThanOrEqual(0);
      expect(r.valL1First).toBeLessThanOrEqual(2);
    }
    // 0..10 needs at most 2 digits, 0..1000 up to 4: fewer answer tokens per chunk, measured through the server
    expect(rows[2]!.tokensPerChunk!).toBeLessThan(rows[0]!.tokensPerChunk!);
    const policy = JSON.parse(fs.readFileSync(path.join(out, "action.bins=10", "policy-none", "policy.json"), "utf8")) as { ensemble: { mode: string }; spec: { bins: number } };
    expect(policy.ensemble.mode).toBe("none");
    expect(policy.spec.bins).toBe(10);
    expect(io.stdout()).toMatch(/action\.bins\s+ensemble\s+tokens\/chunk\s+loss\s+val loss\s+val L1\s+val L1 first\s+parsed\s+reach\s+success \[95% CI\]\s+train s/);
    expect(fs.readFileSync(path.join(out, "sweep.md"), "utf8")).toMatch(/\| 10 \| vla0-v1 \|/);

    // run again: the finished variants are kept, nothing is retrained
    const again = bufferIO();
    expect(await main([...args, "--sweep", spec], again)).toBe(0);
    expect(again.stderr().match(/done earlier/g)).toHaveLength(2);
    expect(JSON.parse(fs.readFileSync(path.join(out, "sweep.json"), "utf8"))).toEqual(rows);
  });
});
