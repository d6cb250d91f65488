/**
 * Closed-loop evaluation in the toy simulator, the one implementation `vlatext demo`,
 * `vlatext eval --sim` and `finetune --sweep` share. An Actor turns an observation into
 * the next actions: a policy in this process (policyActor) or a server over HTTP
 * (src/serve/client.ts). Each episode is a session (temporal ensembling); the returned
 * actions run until the next prediction is due. The report is typed counts: successes
 * per family, requests, generated tokens per chunk.
 */
import type { RgbImage } from "../data/episode.js";
import { VlaError } from "../errors.js";
import { CAMERA_NAMES, CameraNameSchema, type CameraName } from "../sim/camera.js";
import { TabletopEnv } from "../sim/env.js";
import type { SceneOptions } from "../sim/scene.js";
import { TASK_FAMILIES, type TaskFamilyName } from "../sim/tasks.js";
import type { ActOptions, Policy } from "./policy.js";
import { wilson, type Interval } from "./interval.js";
import { SessionStore } from "./session.js";

/** What a robot sends with each request. */
export interface RobotObservation {
  /** Camera images in a fixed order (the simulator's CAMERA_NAMES). */
  images: RgbImage[];
  instruction: string;
  state: number[];
}

export interface ActorStep {
  /** Actions to execute now, in robot units (at least one). */
  actions: number[][];
  /** Answer tokens the model generated for this step's chunk. */
  generatedTokens: number;
}

export interface Actor {
  act(session: string, obs: RobotObservation): Promise<ActorStep>;
  /** The episode behind `session` is over. */
  end?(session: string): void;
}

/** A policy in this process, with its own sessions. */
export function policyActor(policy: Policy, options: ActOptions = {}): Actor {
  const sessions = new SessionStore(policy);
  return {
    async act(session, obs) {
      const r = await policy.act({ images: obs.images, instruction: obs.instruction, state: obs.state, history: sessions.previous(session) }, options);
      return { actions: sessions.step(session, r.normalized, obs.images).actions, generatedTokens: r.timings.generatedTokens };
    },
    end: (session) => sessions.end(session),
  };
}

export interface ClosedLoopOptions {
  families?: readonly TaskFamilyName[];
  /** Episodes per family. */
  episodes: number;
  /** Seeds start here (episode e of every family uses seed + e). */
  seed?: number;
  /** Square camera size (what the policy was trained on). */
  size?: number;
  /** Scene options (block and zone counts), as the training data was generated with. */
  scene?: SceneOptions;
  /** The environment to run in (default: one made from size and scene). */
  env?: TabletopEnv;
  /** Called after every episode. */
  onEpisode?: (e: { family: TaskFamilyName; episode: number; success: boolean; steps: number; done: number; total: number }) => void;
}

export interface FamilyResult {
  family: TaskFamilyName;
  episodes: number;
  successes: number;
  /** Mean environment steps per episode. */
  meanSteps: number;
  /** The success rate with its 95% Wilson interval. */
  interval: Interval;
}

export interface ClosedLoopReport {
  families: FamilyResult[];
  episodes: number;
  successes: number;
  successRate: number;
  /** The overall success rate with its 95% Wilson interval (episodes pooled over families). */
  interval: Interval;
  /** Chunks requested from the actor. */
  requests: number;
  generatedTokens: number;
  /** Generated answer tokens per chunk (jump-forward tokens included). */
  tokensPerChunk: number;
  seconds: number;
}

export async function evaluateClosedLoop(actor: Actor, o: ClosedLoopOptions): Promise<ClosedLoopReport> {
  const env = o.env ?? new TabletopEnv({ size: o.size ?? 64, ...(o.scene ? { scene: o.scene } : {}) });
  const families = o.families ?? [...TASK_FAMILIES];
  const t0 = performance.now();
  let requests = 0;
  let tokens = 0;
  let done = 0;
  const results: FamilyResult[] = [];
  const run = Date.now().toString(36);
  for (const family of families) {
    let successes = 0;
    let steps = 0;
    for (let e = 0; e < o.episodes; e++) {
      let obs = env.reset((o.seed ?? 1000) + e, family);
      const session = `eval-${run}-${family}-${e}`;
      let over = false;
      let success = false;
      let n = 0;
      while (!over) {
        const images = CAMERA_NAMES.flatMap((c) => (obs.images[c] ? [obs.images[c]] : []));
        const step = await actor.act(session, { images, instruction: obs.instruction, state: Array.from(obs.state) });
        requests++;
        tokens += step.generatedTokens;
        if (step.actions.length === 0) throw new VlaError("DATA_INVALID", `the actor returned no actions for ${session}`, "an actor must return at least one action per step (the policy's ensemble executeK)");
        for (const a of step.actions) {
          const r = env.step(a);
          obs = r.obs;
          n = r.steps;
          if (r.done) {
            over = true;
            success = r.success;
            break;
          }
        }
      }
      actor.end?.(session);
      if (success) successes++;
      steps += n;
      o.onEpisode?.({ family, episode: e, success, steps: n, done: ++done, total: families.length * o.episodes });
    }
    results.push({ family, episodes: o.episodes, successes, meanSteps: steps / o.episodes, interval: wilson(successes, o.episodes) });
  }
  const episodes = results.reduce((a, r) => a + r.episodes, 0);
  const successes = results.reduce((a, r) => a + r.successes, 0);
  return { families: results, episodes, successes, successRate: successes / episodes, interval: wilson(successes, episodes), requests, generatedTokens: tokens, tokensPerChunk: requests > 0 ? tokens / requests : 0, seconds: (performance.now() - t0) / 1000 };
}

/**
 * The simulator cameras to send a policy: those it records in policy.json (when they are simulator
 * cameras); `named` (an --cameras option) naming others is refused: a policy shown cameras it was not
 * trained on fails silently (README: a pick run fine-tuned on top|front and evaluated on top|wrist).
 * Older policies record none: `named`, or undefined for the default pair, as before.
 */
export function policyCameras(policy: Policy, named: CameraName[] | undefined): CameraName[] | undefined {
  const trained = policy.cameras;
  if (!trained || !trained.every((c): c is CameraName => CameraNameSchema.safeParse(c).success)) return named;
  if (named && named.join(",") !== trained.join(",")) {
    throw new VlaError("CLI_USAGE", `--cameras ${named.join(",")}: the policy in ${policy.dir} was trained on ${trained.join(",")}`, `leave --cameras out (the policy's cameras are used) or pass --cameras ${trained.join(",")}`);
  }
  return [...trained];
}
