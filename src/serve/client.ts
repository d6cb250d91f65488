/**
 * A client of a running server as an evaluation Actor (src/policy/evaluate.ts): every
 * step POSTs the cameras (raw RGB), the instruction and the state to /v1/act in the
 * episode's session, and executes the ensembled actions the server hands back.
 */
import { VlaError } from "../errors.js";
import type { Actor } from "../policy/evaluate.js";

interface ActResponse {
  session?: { actions: number[][] };
  timings?: { generatedTokens: number };
  error?: string;
  code?: string;
}

export function httpActor(url: string, options: { token?: string; temperature?: number } = {}): Actor {
  const base = url.replace(/\/+$/, "");
  return {
    async act(session, obs) {
      const body = {
        instruction: obs.instruction,
        images: obs.images.map((img) => ({ rgb: Buffer.from(img.data).toString("base64"), width: img.width, height: img.height })),
        state: obs.state,
        session,
        ...(options.temperature !== undefined ? { temperature: options.temperature } : {}),
      };
      let res: Response;
      try {
        res = await fetch(`${base}/v1/act`, { method: "POST", headers: { "Content-Type": "application/json", ...(options.token ? { Authorization: `Bearer ${options.token}` } : {}) }, body: JSON.stringify(body) });
      } catch (e) {
        throw new VlaError("DATA_INVALID", `cannot reach the server at ${base}: ${(e as Error).message}`, "start it with `vlatext serve --model <policy>` and pass its URL");
      }
      const json = (await res.json().catch(() => ({}))) as ActResponse;
      if (!res.ok || !json.session) {
        throw new VlaError("DATA_INVALID", `the server answered ${res.status}${json.code ? ` ${json.code}` : ""}: ${json.error ?? "no session actions"}`, res.status === 401 ? "pass its bearer token (--token-file or VLATEXT_TOKEN)" : "check that the policy's action spec matches the simulator (7-DoF deltas)");
      }
      return { actions: json.session.actions, generatedTokens: json.timings?.generatedTokens ?? 0 };
    },
  };
}
