/**
 * The ceiling of an action recipe: a policy that sees perfectly. At every step the scripted
 * expert is rolled out H steps on a copy of the world (no noise, no pauses) and that chunk
 * goes through everything a trained policy's answer goes through after the text: the recipe's
 * binning and normalization (with statistics of recorded demonstrations), the temporal
 * ensembler (the policy's default, vla0-v1, gripper snapped), denormalization, the simulator.
 * Whatever such a policy loses is lost by the recipe itself, not by the model; if this falls,
 * the codec, the ensembler or the chunk alignment broke. Bars: VLA-0's recipe (1000 bins, minmax,
 * H = 8) and the demo's (4 bins, quantile, H = 1) succeed in every one of 20 reach and 20 pick
 * episodes (measured: 20/20 each; 30/30 at 30).
 */
import { describe, expect, it } from "vitest";
import { TemporalEnsembler } from "../../src/actions/ensembler.js";
import { binToNorm, Normalizer } from "../../src/actions/normalize.js";
import { parseActionSpec, VLA0_SPEC, type ActionSpec } from "../../src/actions/spec.js";
import { StatsAccumulator, type ActionStats } from "../../src/actions/stats.js";
import { parseAction } from "../../src/sim/action.js";
import { TabletopEnv } from "../../src/sim/env.js";
import { ScriptedExpert } from "../../src/sim/expert.js";
import { recordEpisode } from "../../src/sim/generate.js";
import type { TaskFamilyName } from "../../src/sim/tasks.js";
import { World } from "../../src/sim/world.js";

const FAMILIES: TaskFamilyName[] = ["reach", "pick"];

/** Action statistics of recorded expert demonstrations (what fine-tuning would compute). */
function demoStats(env: TabletopEnv, episodes: number): ActionStats {
  const acc = new StatsAccumulator(7, [...(VLA0_SPEC.names as string[])]);
  for (let e = 0; e < episodes; e++) {
    const ep = recordEpisode(env, 100 + e, FAMILIES[e % FAMILIES.length] as TaskFamilyName);
    acc.pushRows(Float32Array.from(ep.actions), ep.length);
  }
  return acc.finalize();
}

/** Successes of the perfect-perception policy over `episodes` episodes of `family` (seeds 5000+). */
function ceiling(env: TabletopEnv, spec: ActionSpec, stats: ActionStats, family: TaskFamilyName, episodes: number): number {
  const norm = new Normalizer(spec, stats);
  const H = spec.horizon;
  const D = spec.dims;
  const gripperDims = spec.isGripper.flatMap((g, i) => (g ? [i] : []));
  let ok = 0;
  for (let e = 0; e < episodes; e++) {
    env.reset(5000 + e, family);
    const ens = new TemporalEnsembler({ mode: "vla0-v1", gripperDims }, H, D);
    let t = 0;
    for (;;) {
      if (ens.needsPrediction()) {
        const w = new World(env.world.snapshot());
        const expert = new ScriptedExpert(env.task, w, 77 + t, { noise: 0, pauseProb: 0 });
        const chunk = new Float32Array(H * D);
        for (let h = 0; h < H; h++) {
          const a = expert.act(w);
          for (let d = 0; d < D; d++) chunk[h * D + d] = binToNorm(norm.rawToBin(a[d] as number, d), spec.bins);
          w.step(parseAction(a));
        }
        ens.push(chunk);
      }
      const r = env.step(Array.from(ens.next(), (v, d) => norm.denormalize(v, d)));
      t++;
      if (r.done) {
        if (r.success) ok++;
        break;
      }
    }
  }
  return ok;
}

describe("the recipes' action path with perfect perception", () => {
  const env = new TabletopEnv({ size: 56 });
  const stats = demoStats(env, 40);

  it("VLA-0's recipe (1000 bins, minmax, 8-step chunks, vla0-v1 ensembling) loses no episode", () => {
    const spec = parseActionSpec(VLA0_SPEC);
    expect(spec.horizon).toBe(8);
    for (const family of FAMILIES) expect(ceiling(env, spec, stats, family, 20), family).toBe(20);
  });

  it("the demo's recipe (4 bins, quantile, horizon 1) loses no episode", () => {
    const spec = parseActionSpec({ ...VLA0_SPEC, bins: 4, horizon: 1, normalization: "quantile" });
    for (const family of FAMILIES) expect(ceiling(env, spec, stats, family, 20), family).toBe(20);
  });
});
