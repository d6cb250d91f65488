/**
 * Closed-loop evaluation in the toy simulator through the server protocol: each
 * episode is a session; every request sends the cameras, the instruction and the
 * state to POST /v1/act, and the returned (ensembled) actions are executed until the
 * next prediction is due. Reports success per task family.
 */
import { TASK_FAMILIES, type TaskFamilyName } from "../sim/tasks.js";
import { TabletopEnv } from "../sim/env.js";
import { CAMERA_NAMES } from "../sim/camera.js";
import type { SceneOptions } from "../sim/scene.js";
import { VlaError } from "../errors.js";

export interface SimEvalOptions {
  /** Server base URL, e.g. http://127.0.0.1:8000 */
  url: string;
  token?: string;
  families?: TaskFamilyName[];
  episodes: number;
  /** Seeds start here (episode e of family f uses seed + e). */
  seed?: number;
  size?: number;
  /** Scene options (block and zone counts), as the training data was generated with. */
  scene?: SceneOptions;
  temperature?: number;
  /** Called after every episode. */
  onEpisode?: (family: TaskFamilyName, episode: number, success: boolean, steps: number) => void;
}

export interface FamilyResult {
  family: TaskFamilyName;
  episodes: number;
  successes: number;
  meanSteps: number;
}

export interface SimEvalReport {
  families: FamilyResult[];
  episodes: number;
  successRate: number;
  requests: number;
  seconds: number;
}

interface ActResponse {
  session?: { actions: number[][] };
  error?: string;
}

export async function evaluateInSim(o: SimEvalOptions): Promise<SimEvalReport> {
  const env = new TabletopEnv({ size: o.size ?? 64, ...(o.scene ? { scene: o.scene } : {}) });
  const families = o.families ?? [...TASK_FAMILIES];
  const t0 = performance.now();
  let requests = 0;
  const results: FamilyResult[] = [];
  const run = Date.now().toString(36);
  for (const family of families) {
    let successes = 0;
    let steps = 0;
    for (let e = 0; e < o.episodes; e++) {
      let obs = env.reset((o.seed ?? 1000) + e, family);
      const session = `eval-${run}-${family}-${e}`;
      let done = false;
      let success = false;
      let n = 0;
      while (!done) {
        const images = CAMERA_NAMES.flatMap((c) => {
          const img = obs.images[c];
          return img ? [{ rgb: Buffer.from(img.data).toString("base64"), width: img.width, height: img.height }] : [];
        });
        const res = await fetch(`${o.url}/v1/act`, {
          method: "POST",
          headers: { "Content-Type": "application/json", ...(o.token ? { Authorization: `Bearer ${o.token}` } : {}) },
          body: JSON.stringify({ instruction: obs.instruction, images, state: Array.from(obs.state), session, ...(o.temperature !== undefined ? { temperature: o.temperature } : {}) }),
        });
        requests++;
        const body = (await res.json()) as ActResponse;
        if (!res.ok || !body.session) throw new VlaError("DATA_INVALID", `the server answered ${res.status}: ${body.error ?? "no session actions"}`, "check that the policy's action spec matches the simulator (7-DoF deltas)");
        for (const a of body.session.actions) {
          const r = env.step(a);
          obs = r.obs;
          n = r.steps;
          if (r.done) {
            done = true;
            success = r.success;
            break;
          }
        }
      }
      if (success) successes++;
      steps += n;
      o.onEpisode?.(family, e, success, n);
    }
    results.push({ family, episodes: o.episodes, successes, meanSteps: steps / o.episodes });
  }
  const total = results.reduce((a, r) => a + r.episodes, 0);
  return { families: results, episodes: total, successRate: results.reduce((a, r) => a + r.successes, 0) / total, requests, seconds: (performance.now() - t0) / 1000 };
}
