/**
 * Image-text tasks generated from the toy world, for teaching the tiny default model to
 * see before it ever meets an action (VLA-0's premise in miniature: the VLM already
 * reads the scene; fine-tuning only teaches it to answer in numbers). None of them is
 * the action task. Each question comes with its answer as text:
 *
 *   where is the red block?                  -> "41 63"     plan position, integers 0..99
 *   where is the green zone?                 -> "70 22"
 *   where is the gripper?                    -> "48 30 71"  x, y and height, integers 0..99
 *   where is the red block from the gripper? -> "7 12 3"    the block's top centre minus the fingertips
 *                                                            along x, y, z in 2 cm units, 10 = level,
 *                                                            0..20 (clipped at 20 cm)
 *   which block is closer to the gripper?    -> "blue"
 *   is the red block closer to the gripper than the blue block? -> "yes" | "no"
 *   how many blocks are there?               -> "3"
 *   what colour is the block in the gripper? -> "red" | "none"
 *   is the gripper open?                     -> "yes" | "no"
 *   describe the scene                       -> "blocks: red blue; zones: green" (left to right)
 *
 * Coordinates: plan x, y in [-WORKSPACE_HALF, WORKSPACE_HALF] and height in [0, Z_MAX],
 * each mapped linearly onto 0..99 and rounded (6 mm and 2.5 mm per unit).
 */
import type { RgbImage } from "../data/episode.js";
import { tileHorizontal } from "../data/image.js";
import { keyedRandom } from "../rng.js";
import { DEFAULT_CAMERAS, cameraOrder, type CameraName } from "../sim/camera.js";
import { COLOR_NAMES } from "../sim/colors.js";
import { TabletopEnv } from "../sim/env.js";
import { Renderer } from "../sim/render.js";
import { ExpertOptionsSchema, ScriptedExpert } from "../sim/expert.js";
import { BLOCK_SIZE, WORKSPACE_HALF, Z_MAX } from "../sim/geometry.js";
import { mixSeed } from "../sim/rng.js";
import type { SceneOptions } from "../sim/scene.js";
import { TASK_FAMILIES, type TaskFamilyName } from "../sim/tasks.js";
import type { WorldState } from "../sim/world.js";

export const QUESTION_KINDS = ["block", "offset", "zone", "gripper", "closest", "closer", "count", "held", "open", "describe"] as const;
export type QuestionKind = (typeof QUESTION_KINDS)[number];

export interface SceneQuestion {
  kind: QuestionKind;
  question: string;
  answer: string;
}

/** One camera frame (the cameras tiled left to right, as a policy sees them) and the world it shows. */
export interface SceneFrame {
  image: RgbImage;
  world: WorldState;
}

/** Metres per unit of the offset answers. */
export const OFFSET_UNIT = 0.02;
const unit = (v: number, lo: number, hi: number): number => Math.max(0, Math.min(99, Math.round(((v - lo) / (hi - lo)) * 99)));
export const planUnit = (v: number): number => unit(v, -WORKSPACE_HALF, WORKSPACE_HALF);
export const heightUnit = (v: number): number => unit(v, 0, Z_MAX);

/** Every question this frame can answer (the ones that need two blocks or a zone only where there are). */
export function sceneQuestions(w: WorldState): SceneQuestion[] {
  const g = w.gripper;
  const out: SceneQuestion[] = [];
  const dist = (i: number) => Math.hypot((w.blocks[i]?.x ?? 0) - g.x, (w.blocks[i]?.y ?? 0) - g.y);
  for (const b of w.blocks) out.push({ kind: "block", question: `where is the ${b.color} block?`, answer: `${planUnit(b.x)} ${planUnit(b.y)}` });
  const rel = (d: number) => String(Math.max(0, Math.min(20, 10 + Math.round(d / OFFSET_UNIT))));
  for (const b of w.blocks) out.push({ kind: "offset", question: `where is the ${b.color} block from the gripper?`, answer: `${rel(b.x - g.x)} ${rel(b.y - g.y)} ${rel(b.z + BLOCK_SIZE - g.z)}` });
  for (const z of w.zones) out.push({ kind: "zone", question: `where is the ${z.color} zone?`, answer: `${planUnit(z.x)} ${planUnit(z.y)}` });
  out.push({ kind: "gripper", question: "where is the gripper?", answer: `${planUnit(g.x)} ${planUnit(g.y)} ${heightUnit(g.z)}` });
  if (w.blocks.length > 1) {
    const order = w.blocks.map((_, i) => i).sort((a, b) => dist(a) - dist(b));
    out.push({ kind: "closest", question: "which block is closer to the gripper?", answer: w.blocks[order[0] as number]?.color ?? "" });
    const [a, b] = [order[order.length - 1] as number, order[0] as number];
    // both orders of the pair, so the answer is not the position in the sentence
    out.push({ kind: "closer", question: `is the ${w.blocks[a]?.color} block closer to the gripper than the ${w.blocks[b]?.color} block?`, answer: "no" });
    out.push({ kind: "closer", question: `is the ${w.blocks[b]?.color} block closer to the gripper than the ${w.blocks[a]?.color} block?`, answer: "yes" });
  }
  out.push({ kind: "count", question: "how many blocks are there?", answer: String(w.blocks.length) });
  out.push({ kind: "held", question: "what colour is the block in the gripper?", answer: g.held >= 0 ? (w.blocks[g.held]?.color ?? "none") : "none" });
  out.push({ kind: "open", question: "is the gripper open?", answer: g.closed ? "no" : "yes" });
  const leftToRight = <T extends { x: number; color: string }>(xs: readonly T[]) => [...xs].sort((a, b) => a.x - b.x).map((x) => x.color).join(" ");
  out.push({ kind: "describe", question: "describe the scene", answer: `blocks: ${leftToRight(w.blocks)}; zones: ${w.zones.length > 0 ? leftToRight(w.zones) : "none"}` });
  return out;
}

export interface SceneFrameOptions {
  /** Expert episodes to record (families in turn, scenes as given). */
  episodes: number;
  seed: number;
  /** Camera size in pixels. */
  size: number;
  /** Keep every n-th frame of each episode. */
  every: number;
  families?: readonly TaskFamilyName[];
  scene?: SceneOptions;
  /** The cameras tiled (in CAMERA_NAMES order; default DEFAULT_CAMERAS). */
  cameras?: readonly CameraName[];
}

/**
 * Frames from expert episodes: the gripper where a policy will take it (travelling, low
 * over a block, holding one), scenes of every family. Seeds of their own (mixed from
 * `seed`), so they are not the demonstrations a policy is later fine-tuned on.
 */
export function sceneFrames(o: SceneFrameOptions): SceneFrame[] {
  const families = o.families ?? TASK_FAMILIES;
  // the environment renders nothing: only the kept frames are drawn (rendering is a function of the world alone)
  const env = new TabletopEnv({ size: o.size, cameras: [], tasks: [...families], ...(o.scene ? { scene: o.scene } : {}) });
  const renderer = new Renderer(o.size, o.size);
  const cameras = cameraOrder(o.cameras ?? DEFAULT_CAMERAS);
  const expertOptions = ExpertOptionsSchema.parse({ executionNoise: 0.01 });
  const out: SceneFrame[] = [];
  for (let e = 0; e < o.episodes; e++) {
    const family = families[e % families.length] as TaskFamilyName;
    const seed = 7_000_000 + o.seed * 100_000 + e;
    env.reset(seed, family);
    const expert = new ScriptedExpert(env.task, env.world, mixSeed(seed, 0x5eed), expertOptions);
    const offset = Math.floor(keyedRandom(o.seed, e)() * o.every);
    for (let t = 0, done = false; !done; t++) {
      if (t % o.every === offset) {
        const images = renderer.renderAll(env.world, cameras);
        out.push({ image: tileHorizontal(cameras.map((c) => images[c])), world: env.world.snapshot() });
      }
      done = env.step(expert.execute(expert.act(env.world))).done;
    }
  }
  return out;
}

/** Metres per unit of the vision stage's position targets (10 cm: positions within about +-3 units). */
export const TARGET_UNIT = 0.1;

/**
 * What the vision stage regresses (src/train/pretrain-vision.ts), one row per number: the
 * group it is reported in and centimetres per unit (1 for flags). Per colour: whether a block of
 * that colour is in the scene, where it is (x, y, bottom height), its top centre minus the
 * fingertips, and where a zone of that colour is; then the gripper.
 */
export const SCENE_TARGETS: ReadonlyArray<{ name: string; group: "gripper" | "block" | "offset" | "zone" | "flags"; unit: number }> = [
  ...COLOR_NAMES.flatMap((c) => [
    { name: `${c} block present`, group: "flags" as const, unit: 1 },
    ...["x", "y", "z"].map((a) => ({ name: `${c} block ${a}`, group: "block" as const, unit: 100 * TARGET_UNIT })),
    ...["x", "y", "z"].map((a) => ({ name: `${c} block offset ${a}`, group: "offset" as const, unit: 100 * TARGET_UNIT })),
    ...["x", "y"].map((a) => ({ name: `${c} zone ${a}`, group: "zone" as const, unit: 100 * TARGET_UNIT })),
  ]),
  ...["x", "y", "z"].map((a) => ({ name: `gripper ${a}`, group: "gripper" as const, unit: 100 * TARGET_UNIT })),
  { name: "gripper open", group: "flags", unit: 1 },
  { name: "gripper holding", group: "flags", unit: 1 },
];

/** The vision stage's targets of a scene (SCENE_TARGETS order) and which of them it has (mask 1). */
export function sceneTargets(w: WorldState): { value: Float64Array; mask: Float64Array } {
  const value = new Float64Array(SCENE_TARGETS.length);
  const mask = new Float64Array(SCENE_TARGETS.length);
  const g = w.gripper;
  let k = 0;
  const put = (v: number, has: boolean) => {
    value[k] = has ? v : 0;
    mask[k] = has ? 1 : 0;
    k++;
  };
  for (const c of COLOR_NAMES) {
    const b = w.blocks.find((x) => x.color === c);
    put(b ? 1 : 0, true);
    put((b?.x ?? 0) / TARGET_UNIT, b !== undefined);
    put((b?.y ?? 0) / TARGET_UNIT, b !== undefined);
    put((b?.z ?? 0) / TARGET_UNIT, b !== undefined);
    put(((b?.x ?? 0) - g.x) / TARGET_UNIT, b !== undefined);
    put(((b?.y ?? 0) - g.y) / TARGET_UNIT, b !== undefined);
    put(((b?.z ?? 0) + BLOCK_SIZE - g.z) / TARGET_UNIT, b !== undefined);
    const z = w.zones.find((x) => x.color === c);
    put((z?.x ?? 0) / TARGET_UNIT, z !== undefined);
    put((z?.y ?? 0) / TARGET_UNIT, z !== undefined);
  }
  put(g.x / TARGET_UNIT, true);
  put(g.y / TARGET_UNIT, true);
  put(g.z / TARGET_UNIT, true);
  put(g.closed ? 0 : 1, true);
  put(g.held >= 0 ? 1 : 0, true);
  return { value, mask };
}
