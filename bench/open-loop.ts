/**
 * How well does a policy predict the expert, step by step of its chunk, where the expert goes?
 * Open loop: the scripted expert (the demo's: execution noise, as its demonstrations were made)
 * drives one-block episodes of a task family; at every frame the policy is asked for its chunk
 * from the same images and instruction (greedy, constrained, no ensembling), and each of the
 * chunk's H steps is compared with the expert's label at that frame and the H-1 after it.
 * Printed: the first step's mean |error| per axis (mm), the share of frames whose first step points
 * within 45 degrees of the expert's, the share whose gripper command agrees, and the mean |error|
 * of x, y, z at each chunk step. A closed-loop run takes minutes; this takes seconds, and says
 * *which* step of a chunk is wrong (README: the recipe's 8-step chunk on pick, first step off by ~1 mm).
 *
 *   npx tsx bench/open-loop.ts <policy dir> [--family pick] [--episodes 6] [--cameras top,wrist] [--size 56]
 */
import { parseArgs } from "node:util";
import { DEMO_EXPERT } from "../src/experiments/recipes.js";
import { Policy } from "../src/policy/policy.js";
import { CameraListSchema } from "../src/sim/camera.js";
import { TabletopEnv } from "../src/sim/env.js";
import { ScriptedExpert } from "../src/sim/expert.js";
import { TASK_FAMILIES, type TaskFamilyName } from "../src/sim/tasks.js";

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { family: { type: "string", default: "pick" }, episodes: { type: "string", default: "6" }, cameras: { type: "string", default: "top,front" }, size: { type: "string", default: "56" }, seed: { type: "string", default: "9000" } },
});
const dir = positionals[0];
if (!dir) {
  console.error("usage: npx tsx bench/open-loop.ts <policy dir> [--family pick] [--episodes 6] [--cameras top,wrist] [--size 56] [--seed 9000]");
  process.exit(2);
}
const family = values.family as TaskFamilyName;
if (!TASK_FAMILIES.includes(family)) {
  console.error(`--family must be one of ${TASK_FAMILIES.join(", ")}, got '${values.family}'`);
  process.exit(2);
}
const parsedCameras = CameraListSchema.safeParse(values.cameras.split(","));
if (!parsedCameras.success) {
  console.error(`--cameras '${values.cameras}': ${parsedCameras.error.issues.map((i) => i.message).join("; ")} (the policy's cameras, from top, front, wrist)`);
  process.exit(2);
}
const cameras = parsedCameras.data;
const episodes = Number(values.episodes);
const seed = Number(values.seed);

const policy = Policy.load(dir);
const env = new TabletopEnv({ size: Number(values.size), cameras, scene: { blocks: [1, 1], zones: [0, 0] } });
const H = policy.spec.horizon;
const axis = [0, 0, 0];
const stepErr = new Array<number>(H).fill(0);
const stepN = new Array<number>(H).fill(0);
let frames = 0;
let aligned = 0;
let gripper = 0;
for (let e = 0; e < episodes; e++) {
  let obs = env.reset(seed + e, family);
  const expert = new ScriptedExpert(env.task, env.world, 77 + e, DEMO_EXPERT);
  const labels: ArrayLike<number>[] = [];
  const chunks: ArrayLike<number>[][] = [];
  for (let done = false; !done; ) {
    const r = await policy.act({ images: cameras.map((c) => obs.images[c]!), instruction: obs.instruction, state: Array.from(obs.state) });
    chunks.push(r.normalized.map((row) => policy.denormalize(Float32Array.from(row))));
    const label = expert.act(env.world);
    labels.push(label);
    const s = env.step(expert.execute(label));
    obs = s.obs;
    done = s.done;
  }
  for (let t = 0; t < labels.length; t++) {
    const p = chunks[t]![0]!;
    const l = labels[t]!;
    for (let d = 0; d < 3; d++) axis[d]! += Math.abs(p[d]! - l[d]!);
    const dot = p[0]! * l[0]! + p[1]! * l[1]! + p[2]! * l[2]!;
    const norms = Math.hypot(p[0]!, p[1]!, p[2]!) * Math.hypot(l[0]!, l[1]!, l[2]!);
    if (norms > 0 && dot / norms > Math.SQRT1_2) aligned++;
    if (p[6]! > 0 === l[6]! > 0) gripper++;
    frames++;
    for (let k = 0; k < H && t + k < labels.length; k++) {
      const pk = chunks[t]![k]!;
      const lk = labels[t + k]!;
      stepErr[k]! += (Math.abs(pk[0]! - lk[0]!) + Math.abs(pk[1]! - lk[1]!) + Math.abs(pk[2]! - lk[2]!)) / 3;
      stepN[k]!++;
    }
  }
}
policy.dispose();
const mm = (x: number) => (1000 * x).toFixed(2);
console.log(`${dir}: ${family}, ${episodes} episodes, ${frames} frames, cameras ${cameras.join(",")}, horizon ${H}`);
console.log(`first step |error| mm: x ${mm(axis[0]! / frames)}  y ${mm(axis[1]! / frames)}  z ${mm(axis[2]! / frames)}; within 45 degrees of the expert ${((100 * aligned) / frames).toFixed(0)}%; gripper agrees ${((100 * gripper) / frames).toFixed(0)}%`);
console.log(`mean |error| of x, y, z by chunk step (mm): ${stepErr.map((x, k) => mm(x / stepN[k]!)).join("  ")}`);
