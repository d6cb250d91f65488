/**
 * The local inference server: plain node:http over a policy. Every model request goes
 * through one scheduler (bounded queue, 503 + Retry-After when full, batches with one
 * vision-tower call and one batched generation, a deadline per request, cancellation when
 * the client goes away); every field has a size bound (limits.ts); sessions ensemble per
 * robot with a TTL; Prometheus metrics over a fixed set of labels; an OpenAPI document;
 * an optional bearer token compared in constant time; VLA-0's /predict_base64 and
 * /predict_base64_stream. close() shuts down gracefully (see RunningServer.close).
 */
import http from "node:http";
import type { AddressInfo } from "node:net";
import type { Policy } from "../policy/policy.js";
import { SessionStore } from "../policy/session.js";
import { bearerMatches, errorResponse, HttpError } from "./http.js";
import { DEFAULT_LIMITS, type ServerLimits } from "./limits.js";
import { Metrics, routeLabel, ROUTES } from "./metrics.js";
import { openApiDocument } from "./openapi.js";
import { handleAct, handleVla0, routeSchemas, sendJson, type RouteContext } from "./routes.js";
import { Scheduler } from "./scheduler.js";

export interface ServerOptions {
  host?: string;
  port?: number;
  /** Bearer token; when set, every route but /health requires it. */
  token?: string;
  /** Requests waiting or running before 503 (default 64). */
  maxQueue?: number;
  /** Requests decoded together in one batch (default 16). */
  maxBatch?: number;
  /** A request's time limit, queue time included (default 60 s); past it, 504. */
  deadlineMs?: number;
  /** Size bounds of a request (defaults in limits.ts). */
  limits?: Partial<ServerLimits>;
  sessionTtlMs?: number;
  /** Sessions kept at once; the least recently used go first (default 1024). */
  maxSessions?: number;
  /** Instruction used by the VLA-0 routes when the client sends none. */
  defaultInstruction?: string;
}

export interface RunningServer {
  url: string;
  server: http.Server;
  scheduler: Scheduler;
  /**
   * Graceful shutdown: stop accepting connections and requests (new ones get 503), let
   * queued and running requests finish within graceMs (default 10 s), cancel what is left
   * (their clients get 503 SERVER_CLOSING, or an error line on a started stream), and
   * resolve once no model call runs and every connection is closed. The policy's native
   * handles can be freed after it resolves.
   */
  close(options?: { graceMs?: number }): Promise<void>;
}

const ROUTE_METHODS: Record<(typeof ROUTES)[number], string> = {
  "/health": "GET",
  "/metrics": "GET",
  "/openapi.json": "GET",
  "/v1/act": "POST",
  "/predict_base64": "POST",
  "/predict_base64_stream": "POST",
};

export async function startServer(policy: Policy, options: ServerOptions = {}): Promise<RunningServer> {
  const limits: ServerLimits = { ...DEFAULT_LIMITS, ...options.limits };
  const schemas = routeSchemas(limits);
  const metrics = new Metrics();
  const scheduler = new Scheduler(policy, { ...(options.maxQueue ? { maxQueue: options.maxQueue } : {}), ...(options.maxBatch ? { maxBatch: options.maxBatch } : {}), ...(options.deadlineMs ? { deadlineMs: options.deadlineMs } : {}) });
  const sessions = new SessionStore(policy, { ...(options.sessionTtlMs !== undefined ? { ttlMs: options.sessionTtlMs } : {}), ...(options.maxSessions !== undefined ? { maxSessions: options.maxSessions } : {}) });
  const started = Date.now();
  let closing = false;
  const inFlight = new Set<Promise<unknown>>();

  const handle = async (req: http.IncomingMessage, res: http.ServerResponse, signal: AbortSignal): Promise<number> => {
    const url = new URL(req.url ?? "/", "http://localhost");
    const route = `${req.method} ${url.pathname}`;
    try {
      if (closing) throw new HttpError(503, "the server is shutting down", "SERVER_CLOSING", { Connection: "close", "Retry-After": "1" });
      if (route === "GET /health")
        return sendJson(res, 200, { status: "ok", uptimeS: Math.round((Date.now() - started) / 1000), queueDepth: scheduler.depth, batches: scheduler.stats.batches, sessions: sessions.size, horizon: policy.spec.horizon, dims: policy.spec.names });
      if (options.token !== undefined && !bearerMatches(req.headers.authorization, options.token)) throw new HttpError(401, "missing or wrong bearer token", "UNAUTHORIZED", { "WWW-Authenticate": "Bearer" });
      if (route === "GET /metrics") {
        if (res.headersSent) return 200;
        res.writeHead(200, { "Content-Type": "text/plain; version=0.0.4" }).end(metrics.render(scheduler.depth, scheduler.stats));
        return 200;
      }
      if (route === "GET /openapi.json") return sendJson(res, 200, openApiDocument(limits));
      const ctx: RouteContext = { policy, schemas, scheduler, sessions, metrics, limits, signal, ...(options.defaultInstruction ? { defaultInstruction: options.defaultInstruction } : {}) };
      if (route === "POST /v1/act") return await handleAct(ctx, req, res);
      if (route === "POST /predict_base64") return await handleVla0(ctx, req, res, false);
      if (route === "POST /predict_base64_stream") return await handleVla0(ctx, req, res, true);
      const known = ROUTE_METHODS[url.pathname as keyof typeof ROUTE_METHODS];
      if (known) throw new HttpError(405, `${req.method} is not allowed on ${url.pathname} (use ${known})`, "METHOD_NOT_ALLOWED", { Allow: known });
      throw new HttpError(404, `no route ${url.pathname}; see GET /openapi.json`, "NOT_FOUND");
    } catch (e) {
      const r = errorResponse(e);
      if (signal.aborted) return r.status === 499 ? 499 : r.status;
      return sendJson(res, r.status, r.body, r.headers);
    }
  };

  const server = http.createServer((req, res) => {
    const t0 = performance.now();
    const ac = new AbortController();
    // the client went away before its answer: cancel the request (queued or running)
    res.on("close", () => {
      if (!res.writableFinished) ac.abort();
    });
    res.on("error", () => undefined);
    const p = handle(req, res, ac.signal)
      .then((status) => metrics.request(routeLabel(new URL(req.url ?? "/", "http://localhost").pathname), ac.signal.aborted && !res.writableFinished ? 499 : status, performance.now() - t0))
      .catch(() => {
        if (!res.headersSent) res.writeHead(500).end();
      })
      .finally(() => inFlight.delete(p));
    inFlight.add(p);
  });
  server.headersTimeout = 30_000;
  server.requestTimeout = 120_000;
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port ?? 0, options.host ?? "127.0.0.1", () => resolve());
  });
  const addr = server.address() as AddressInfo;
  let closed: Promise<void> | undefined;
  return {
    url: `http://${addr.address.includes(":") ? `[${addr.address}]` : addr.address}:${addr.port}`,
    server,
    scheduler,
    close(o = {}) {
      closed ??= (async () => {
        closing = true;
        const serverClosed = new Promise<void>((resolve) => server.close(() => resolve()));
        server.closeIdleConnections();
        await scheduler.close(o.graceMs ?? 10_000);
        // the handlers write their last bytes; then every connection goes
        await Promise.race([Promise.allSettled([...inFlight]), new Promise((r) => setTimeout(r, 1000).unref())]);
        server.closeAllConnections();
        await serverClosed;
      })();
      return closed;
    },
  };
}
