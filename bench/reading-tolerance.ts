/**
 * How precisely must a policy read where the block is? The scripted expert (no action noise,
 * no pauses) acting on a misread world: the target block's x and y shifted by a Gaussian error
 * of std sigma per axis, either once per episode ("bias": a reading that is off the same way
 * all along, as a model's reading of one scene tends to be) or afresh every step ("iid": noise
 * that averages out). The world itself is not changed; success is the task's own. No model,
 * no rendering: seconds on one core.
 *
 * Pick is the precise one: open fingers clear a block by 0.9 cm on each side along the finger
 * axis (src/sim/geometry.ts: FINGER_OPEN - FINGER_HALF_ALONG - BLOCK_HALF), so a finger that
 * comes down more than that off lands on the block's top; reach accepts 2.5 cm in any direction.
 *
 *   npx tsx bench/reading-tolerance.ts [episodes=200]
 */
import { TabletopEnv } from "../src/sim/env.js";
import { ScriptedExpert } from "../src/sim/expert.js";
import { SimRng } from "../src/sim/rng.js";
import type { TaskFamilyName } from "../src/sim/tasks.js";
import { World } from "../src/sim/world.js";

const episodes = Number(process.argv.slice(2).find((a) => /^\d+$/.test(a)) ?? 200);
const SIGMAS_CM = [0, 0.25, 0.5, 0.75, 1, 1.5, 2, 2.5];
// the demo's one-block scenes, its evaluation seeds
const env = new TabletopEnv({ size: 56, cameras: [], scene: { blocks: [1, 1], zones: [0, 0] } });

function successRate(family: TaskFamilyName, model: "bias" | "iid", sigma: number): number {
  let ok = 0;
  for (let e = 0; e < episodes; e++) {
    env.reset(5000 + e, family);
    const rng = new SimRng(777 + e);
    const expert = new ScriptedExpert(env.task, env.world, 1, { noise: 0, pauseProb: 0 });
    const block = (env.task as { block: number }).block;
    let ex = rng.gaussian(sigma);
    let ey = rng.gaussian(sigma);
    for (;;) {
      if (model === "iid") {
        ex = rng.gaussian(sigma);
        ey = rng.gaussian(sigma);
      }
      const seen = env.world.snapshot();
      const b = seen.blocks[block];
      // a held block moves with the fingers: nothing to misread
      if (b && seen.gripper.held !== block) {
        b.x += ex;
        b.y += ey;
      }
      const r = env.step(expert.act(new World(seen)));
      if (r.done) {
        if (r.success) ok++;
        break;
      }
    }
  }
  return ok;
}

console.log(`expert success (of ${episodes} episodes, one-block scenes) when it misreads the block by sigma per axis`);
console.log(`${"family".padEnd(7)}${"error".padEnd(6)}${SIGMAS_CM.map((s) => `${s} cm`.padStart(10)).join("")}`);
for (const family of ["reach", "pick"] as TaskFamilyName[]) {
  for (const model of ["bias", "iid"] as const) {
    const cells = SIGMAS_CM.map((s) => {
      const ok = successRate(family, model, s / 100);
      return `${((100 * ok) / episodes).toFixed(0)}%`.padStart(10);
    });
    console.log(`${family.padEnd(7)}${model.padEnd(6)}${cells.join("")}`);
  }
}
console.log(`(a rate near 50% is within about ${(100 * 1.96 * Math.sqrt(0.25 / episodes)).toFixed(0)} points at 95%)`);
