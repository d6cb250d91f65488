/**
 * The model routes: POST /v1/act (vlatext's own: chunk, normalized chunk, text, timings,
 * optional session ensembling, optional NDJSON streaming) and NVlabs/vla0's deploy API,
 * POST /predict_base64 and /predict_base64_stream. Every request is validated and its
 * images decoded within the limits before it is queued; nothing is written until the
 * model answers, so every refusal is a plain HTTP status with {error, code}.
 */
import type http from "node:http";
import type { Policy, ActRequest, ActResult, TimestepCallback } from "../policy/policy.js";
import type { SessionStore } from "../policy/session.js";
import { errorResponse, HttpError, readJson, validate } from "./http.js";
import { checkRequestPixels, decodeNpyBase64, decodeRequestImage } from "./images.js";
import { actBodySchema, vla0BodySchema, type ServerLimits } from "./limits.js";
import type { Metrics } from "./metrics.js";
import type { Scheduler } from "./scheduler.js";

/** The request schemas for a server's limits (built once per server). */
export interface RouteSchemas {
  act: ReturnType<typeof actBodySchema>;
  vla0: ReturnType<typeof vla0BodySchema>;
}

export function routeSchemas(limits: ServerLimits): RouteSchemas {
  return { act: actBodySchema(limits), vla0: vla0BodySchema(limits) };
}

export interface RouteContext {
  policy: Policy;
  schemas: RouteSchemas;
  scheduler: Scheduler;
  sessions: SessionStore;
  metrics: Metrics;
  limits: ServerLimits;
  /** Instruction used by the VLA-0 routes when the client sends none. */
  defaultInstruction?: string;
  /** Aborted when the client goes away. */
  signal: AbortSignal;
}

export function sendJson(res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): number {
  if (res.headersSent || res.destroyed) return status;
  res.writeHead(status, { "Content-Type": "application/json", ...headers });
  res.end(JSON.stringify(body));
  return status;
}

/**
 * An NDJSON response: the 200 and its headers go out with the first line (so that any
 * error before it is an ordinary HTTP error); writes after the client left are dropped.
 */
function ndjson(res: http.ServerResponse): { line: (o: unknown) => void; end: () => void } {
  return {
    line(o) {
      if (res.destroyed || res.writableEnded) return;
      if (!res.headersSent) res.writeHead(200, { "Content-Type": "application/x-ndjson", "Cache-Control": "no-store", "X-Accel-Buffering": "no" });
      res.write(JSON.stringify(o) + "\n");
    },
    end() {
      if (!res.destroyed && !res.writableEnded) res.end();
    },
  };
}

async function run(ctx: RouteContext, req: ActRequest, options: { temperature?: number; seed?: number }, onTimestep?: TimestepCallback): Promise<ActResult> {
  const r = await ctx.scheduler.submit({ req, options, ...(onTimestep ? { onTimestep } : {}) }, { signal: ctx.signal });
  ctx.metrics.tokens += r.timings.generatedTokens;
  ctx.metrics.modelCalls += r.timings.modelCalls;
  ctx.metrics.forcedTokens += r.timings.forcedTokens;
  return r;
}

export async function handleAct(ctx: RouteContext, req: http.IncomingMessage, res: http.ServerResponse): Promise<number> {
  const body = validate(ctx.schemas.act, await readJson(req, ctx.limits.maxBodyBytes));
  const images = body.images.map((img, i) => decodeRequestImage(img, `images[${i}]`, ctx.limits));
  checkRequestPixels(images, ctx.limits);
  // a policy with history frames gets the session's earlier requests' images (the store keeps none for one without)
  const history = body.session ? ctx.sessions.previous(body.session) : [];
  const request: ActRequest = { images, instruction: body.instruction, ...(body.state ? { state: body.state } : {}), ...(history.length > 0 ? { history } : {}) };
  const options = { ...(body.temperature !== undefined ? { temperature: body.temperature } : {}), ...(body.seed !== undefined ? { seed: body.seed } : {}) };
  const names = ctx.policy.spec.names;
  const session = (r: ActResult) => (body.session ? { session: { id: body.session, ...ctx.sessions.step(body.session, r.normalized, images) } } : {});
  if (!body.stream) {
    const r = await run(ctx, request, options);
    return sendJson(res, 200, { names, chunk: r.chunk, normalized: r.normalized, text: r.text, imagesUsed: r.imagesUsed, timings: r.timings, ...session(r) });
  }
  const out = ndjson(res);
  const t0 = performance.now();
  try {
    const r = await run(ctx, request, options, (t, raw, normalized) => out.line({ type: "timestep", t, action: raw, normalized, ms: performance.now() - t0 }));
    out.line({ type: "done", names, chunk: r.chunk, normalized: r.normalized, text: r.text, imagesUsed: r.imagesUsed, timings: r.timings, ...session(r) });
    out.end();
    return 200;
  } catch (e) {
    if (!res.headersSent) throw e;
    // the stream has started: the error is its last line
    const { status, body: err } = errorResponse(e);
    out.line({ type: "error", status, ...err });
    out.end();
    return status;
  }
}

/**
 * VLA-0's deploy API (rv_train/deploy/service.py). /predict_base64 answers the (H, D)
 * chunk in robot units as a JSON array; /predict_base64_stream answers NDJSON, one
 * {"index": t, "value": [[D numbers]]} line per timestep (VLA-0's one-step action, shape
 * (1, D)), then {"time_taken": seconds}. Here the stream comes from one decode of the
 * chunk, a line as soon as each timestep's numbers are complete, so both routes give the
 * same actions for the same request (greedy).
 */
export async function handleVla0(ctx: RouteContext, req: http.IncomingMessage, res: http.ServerResponse, stream: boolean): Promise<number> {
  const body = validate(ctx.schemas.vla0, await readJson(req, ctx.limits.maxBodyBytes));
  const images = body.base64_rgb.map((s, i) => decodeNpyBase64(s, `base64_rgb[${i}]`, ctx.limits));
  checkRequestPixels(images, ctx.limits);
  const instruction = body.instr ?? ctx.defaultInstruction;
  if (!instruction || !instruction.trim()) throw new HttpError(422, "instr: required (the server has no default instruction; start it with --instruction)", "FIELD_INVALID");
  const request: ActRequest = { images, instruction, ...(body.state.length > 0 ? { state: body.state } : {}) };
  if (!stream) return sendJson(res, 200, (await run(ctx, request, {})).chunk);
  const out = ndjson(res);
  const t0 = performance.now();
  try {
    await run(ctx, request, {}, (t, raw) => out.line({ index: t, value: [raw] }));
    out.line({ time_taken: (performance.now() - t0) / 1000 });
    out.end();
    return 200;
  } catch (e) {
    if (!res.headersSent) throw e;
    // no time_taken line: the stream did not complete; the last line says why
    const { status, body: err } = errorResponse(e);
    out.line({ status, ...err });
    out.end();
    return status;
  }
}
