/**
 * The local inference server: plain node:http, every request validated with zod,
 * one model run at a time behind a bounded queue (503 + Retry-After when full),
 * per-session temporal ensembling with a TTL, Prometheus metrics, an OpenAPI
 * document, optional bearer token, and VLA-0's /predict_base64 for its clients.
 */
import http from "node:http";
import type { AddressInfo } from "node:net";
import { z } from "zod";
import { TemporalEnsembler } from "../actions/ensembler.js";
import { checkImage, decodeImageBytes } from "../data/image.js";
import type { RgbImage } from "../data/episode.js";
import { VlaError } from "../errors.js";
import { Metrics } from "./metrics.js";
import { parseNpyImage } from "./npy.js";
import { openApiDocument } from "./openapi.js";
import type { ActOptions, ActRequest, ActResult, Policy, TimestepCallback } from "./policy.js";

const MAX_SIDE = 4096;
const b64 = z.string().min(1).max(64 * 1024 * 1024).regex(/^[A-Za-z0-9+/=\s]*$/, "is not base64");

export const ImageSchema = z.union([
  z.object({ png: b64 }).strict(),
  z.object({ jpeg: b64 }).strict(),
  z.object({ rgb: b64, width: z.number().int().min(1).max(MAX_SIDE), height: z.number().int().min(1).max(MAX_SIDE) }).strict(),
]);

export const ActBodySchema = z
  .object({
    instruction: z.string().trim().min(1, "must not be empty").max(4000),
    images: z.array(ImageSchema).max(8).default([]),
    state: z.array(z.number().finite()).max(1024).optional(),
    session: z.string().min(1).max(128).regex(/^[\w.:-]+$/, "use letters, digits, '_', '.', ':' or '-'").optional(),
    temperature: z.number().min(0).max(5).optional(),
    seed: z.number().int().min(0).max(2 ** 31 - 1).optional(),
    /** Stream NDJSON: one line per timestep as soon as it is decoded, then a final line. */
    stream: z.boolean().default(false),
  })
  .strict();

/** VLA-0's request (rv_train/deploy/data_models.py): base64 .npy images, state, instr. */
export const Vla0BodySchema = z.object({ base64_rgb: z.array(b64).min(1).max(8), state: z.array(z.number().finite()).max(1024), instr: z.string().nullable().optional() }).strict();

export interface ServerOptions {
  host?: string;
  port?: number;
  /** Bearer token; when set, every route but /health requires it. */
  token?: string;
  /** Requests waiting or running before 503 (default 16). */
  maxQueue?: number;
  /** Requests decoded together in one batch (default 8). */
  maxBatch?: number;
  maxBodyBytes?: number;
  sessionTtlMs?: number;
  /** Sessions kept at once; the least recently used go first (default 1024). */
  maxSessions?: number;
  /** Instruction used by /predict_base64 when the client sends none. */
  defaultInstruction?: string;
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

function decodeBase64(s: string, what: string): Uint8Array {
  const buf = Buffer.from(s.replace(/\s+/g, ""), "base64");
  if (buf.length === 0) throw new HttpError(400, `${what}: empty or invalid base64`);
  return new Uint8Array(buf.buffer, buf.byteOffset, buf.length);
}

function decodeImage(img: z.infer<typeof ImageSchema>, i: number): RgbImage {
  const what = `images[${i}]`;
  try {
    if ("rgb" in img) {
      const data = decodeBase64(img.rgb, what);
      if (data.length !== img.width * img.height * 3) throw new HttpError(400, `${what}: rgb has ${data.length} bytes, expected width*height*3 = ${img.width * img.height * 3}`);
      return { width: img.width, height: img.height, data };
    }
    const out = decodeImageBytes(decodeBase64("png" in img ? img.png : img.jpeg, what), what);
    checkImage(out, what);
    if (out.width > MAX_SIDE || out.height > MAX_SIDE) throw new HttpError(400, `${what}: ${out.width}x${out.height} is larger than ${MAX_SIDE}x${MAX_SIDE}`);
    return out;
  } catch (e) {
    if (e instanceof HttpError) throw e;
    throw new HttpError(400, `${what}: ${(e as Error).message.split("\n")[0]}`);
  }
}

type ActItem = { req: ActRequest; options?: ActOptions; onTimestep?: TimestepCallback };

/**
 * One model at a time, with batching: requests that arrive while a batch runs wait, and
 * the next batch takes up to `maxBatch` of them into one batched decode. At most `max`
 * requests wait or run; beyond that, 503 with Retry-After.
 */
class BatchQueue {
  private pending: Array<{ item: ActItem; resolve: (r: ActResult) => void; reject: (e: unknown) => void }> = [];
  private running = 0;
  batches = 0;
  constructor(
    private readonly max: number,
    private readonly maxBatch: number,
    private readonly run: (items: ActItem[]) => Promise<ActResult[]>,
  ) {}
  get depth(): number {
    return this.pending.length + this.running;
  }
  submit(item: ActItem): Promise<ActResult> {
    if (this.depth >= this.max) return Promise.reject(new HttpError(503, `server busy: ${this.depth} requests queued (limit ${this.max})`, { "Retry-After": "1" }));
    return new Promise((resolve, reject) => {
      this.pending.push({ item, resolve, reject });
      this.pump();
    });
  }
  private pump(): void {
    if (this.running > 0 || this.pending.length === 0) return;
    const batch = this.pending.splice(0, this.maxBatch);
    this.running = batch.length;
    this.batches++;
    this.run(batch.map((b) => b.item))
      .then(
        (rs) => batch.forEach((b, i) => b.resolve(rs[i] as ActResult)),
        (e: unknown) => batch.forEach((b) => b.reject(e)),
      )
      .finally(() => {
        this.running = 0;
        this.pump();
      });
  }
}

interface Session {
  ensembler: TemporalEnsembler;
  lastUsed: number;
}

export interface RunningServer {
  url: string;
  server: http.Server;
  close(): Promise<void>;
}

export async function startServer(policy: Policy, options: ServerOptions = {}): Promise<RunningServer> {
  const metrics = new Metrics();
  const queue = new BatchQueue(options.maxQueue ?? 16, options.maxBatch ?? 8, (items) => policy.actBatch(items));
  const sessions = new Map<string, Session>();
  const maxBody = options.maxBodyBytes ?? 32 * 1024 * 1024;
  const ttl = options.sessionTtlMs ?? 10 * 60 * 1000;
  const maxSessions = options.maxSessions ?? 1024;
  const started = Date.now();

  const readJson = (req: http.IncomingMessage): Promise<unknown> =>
    new Promise((resolve, reject) => {
      const declared = Number(req.headers["content-length"] ?? 0);
      if (declared > maxBody) return reject(new HttpError(413, `body of ${declared} bytes is over the ${maxBody}-byte limit`));
      const chunks: Buffer[] = [];
      let size = 0;
      req.on("data", (c: Buffer) => {
        size += c.length;
        if (size > maxBody) {
          reject(new HttpError(413, `body is over the ${maxBody}-byte limit`));
          req.destroy();
        } else chunks.push(c);
      });
      req.on("end", () => {
        try {
          resolve(JSON.parse(Buffer.concat(chunks).toString("utf8")));
        } catch (e) {
          reject(new HttpError(400, `body is not valid JSON: ${(e as Error).message}`));
        }
      });
      req.on("error", reject);
    });

  const validate = <T>(schema: z.ZodType<T>, body: unknown): T => {
    const r = schema.safeParse(body);
    if (!r.success) throw new HttpError(422, r.error.issues.map((i) => `${i.path.length ? i.path.join(".") : "(body)"}: ${i.message}`).join("; "));
    return r.data;
  };

  /** Every model request goes through here: the queue, then the generation metrics. */
  const submit = async (item: ActItem): Promise<ActResult> => {
    const r = await queue.submit(item);
    metrics.tokens += r.timings.generatedTokens;
    metrics.modelCalls += r.timings.modelCalls;
    metrics.forcedTokens += r.timings.forcedTokens;
    return r;
  };

  const act = async (body: z.infer<typeof ActBodySchema>, onTimestep?: (t: number, raw: number[], normalized: number[]) => void): Promise<ActResult> => {
    const images = body.images.map(decodeImage);
    if (body.state && body.state.length === 0) throw new HttpError(422, "state: must not be empty when given");
    return await submit({
      req: { images, instruction: body.instruction, ...(body.state ? { state: body.state } : {}) },
      options: { ...(body.temperature !== undefined ? { temperature: body.temperature } : {}), ...(body.seed !== undefined ? { seed: body.seed } : {}) },
      ...(onTimestep ? { onTimestep } : {}),
    });
  };

  const sessionActions = (id: string, r: ActResult): { actions: number[][]; time: number } => {
    const now = Date.now();
    for (const [k, s] of sessions) if (now - s.lastUsed > ttl) sessions.delete(k);
    let s = sessions.get(id);
    if (!s) s = { ensembler: new TemporalEnsembler(policy.ensemble, policy.spec.horizon, policy.spec.dims), lastUsed: now };
    s.lastUsed = now;
    sessions.delete(id); // keep the map in least-recently-used order
    sessions.set(id, s);
    while (sessions.size > maxSessions) sessions.delete(sessions.keys().next().value as string);
    const e = s.ensembler;
    while (!e.needsPrediction()) e.next(); // the client skipped actions: catch up
    e.push(Float32Array.from(r.normalized.flat()));
    const actions: number[][] = [];
    for (let k = 0; k < e.executeK; k++) actions.push(policy.denormalize(e.next()));
    return { actions, time: e.time };
  };

  const handle = async (req: http.IncomingMessage, res: http.ServerResponse): Promise<{ route: string; status: number }> => {
    const url = new URL(req.url ?? "/", "http://localhost");
    const route = `${req.method} ${url.pathname}`;
    const send = (status: number, body: unknown, headers: Record<string, string> = {}): { route: string; status: number } => {
      const text = typeof body === "string" ? body : JSON.stringify(body);
      res.writeHead(status, { "Content-Type": typeof body === "string" ? "text/plain; version=0.0.4" : "application/json", ...headers });
      res.end(text);
      return { route, status };
    };
    try {
      if (route === "GET /health") return send(200, { status: "ok", uptimeS: Math.round((Date.now() - started) / 1000), queueDepth: queue.depth, batches: queue.batches, sessions: sessions.size, horizon: policy.spec.horizon, dims: policy.spec.names });
      if (options.token && req.headers.authorization !== `Bearer ${options.token}`) throw new HttpError(401, "missing or wrong bearer token", { "WWW-Authenticate": "Bearer" });
      if (route === "GET /metrics") return send(200, metrics.render());
      if (route === "GET /openapi.json") return send(200, openApiDocument());
      if (route === "POST /v1/act") {
        const body = validate(ActBodySchema, await readJson(req));
        if (body.stream) {
          // NDJSON: headers go out with the first timestep; errors before that are plain JSON errors
          const line = (o: unknown): void => {
            if (!res.headersSent) res.writeHead(200, { "Content-Type": "application/x-ndjson", "Cache-Control": "no-store" });
            res.write(JSON.stringify(o) + "\n");
          };
          try {
            const r = await act(body, (t, raw, normalized) => line({ type: "timestep", t, action: raw, normalized }));
            line({ type: "done", names: policy.spec.names, chunk: r.chunk, text: r.text, timings: r.timings, ...(body.session ? { session: { id: body.session, ...sessionActions(body.session, r) } } : {}) });
            res.end();
            return { route, status: 200 };
          } catch (e) {
            if (!res.headersSent) throw e;
            line({ type: "error", error: (e as Error).message });
            res.end();
            return { route, status: 500 };
          }
        }
        const r = await act(body);
        return send(200, { names: policy.spec.names, chunk: r.chunk, normalized: r.normalized, text: r.text, imagesUsed: r.imagesUsed, timings: r.timings, ...(body.session ? { session: { id: body.session, ...sessionActions(body.session, r) } } : {}) });
      }
      if (route === "POST /predict_base64") {
        const body = validate(Vla0BodySchema, await readJson(req));
        const images = body.base64_rgb.map((s, i) => {
          try {
            return parseNpyImage(decodeBase64(s, `base64_rgb[${i}]`), `base64_rgb[${i}]`);
          } catch (e) {
            throw e instanceof HttpError ? e : new HttpError(400, (e as Error).message.split("\n")[0] ?? "bad image");
          }
        });
        const instruction = body.instr ?? options.defaultInstruction;
        if (!instruction) throw new HttpError(422, "instr: required (the server has no default instruction; start it with --instruction)");
        const r = await submit({ req: { images, instruction, state: body.state } });
        return send(200, r.chunk);
      }
      if (["/health", "/metrics", "/openapi.json", "/v1/act", "/predict_base64"].includes(url.pathname)) throw new HttpError(405, `${req.method} is not allowed on ${url.pathname}`);
      throw new HttpError(404, `no route ${url.pathname}; see GET /openapi.json`);
    } catch (e) {
      if (e instanceof HttpError) return send(e.status, { error: e.message }, e.headers);
      if (e instanceof VlaError) return send(400, { error: e.message, code: e.code });
      return send(500, { error: `internal error: ${(e as Error).message}` });
    }
  };

  const server = http.createServer((req, res) => {
    const t0 = performance.now();
    metrics.queueDepth = queue.depth;
    handle(req, res)
      .then(({ route, status }) => metrics.request(route.split(" ")[1] ?? "/", status, performance.now() - t0))
      .catch(() => {
        if (!res.headersSent) res.writeHead(500).end();
      });
  });
  server.headersTimeout = 30_000;
  server.requestTimeout = 120_000;
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port ?? 0, options.host ?? "127.0.0.1", () => resolve());
  });
  const addr = server.address() as AddressInfo;
  return {
    url: `http://${addr.address.includes(":") ? `[${addr.address}]` : addr.address}:${addr.port}`,
    server,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
