/**
 * HTTP plumbing for the server: bounded body reading (a body over the limit is answered
 * 413, whether its length was declared or it came chunked), errors as {error, code}
 * with the right status, and a constant-time bearer-token check.
 */
import { createHash, timingSafeEqual } from "node:crypto";
import type http from "node:http";
import { z } from "zod";
import { VlaError } from "../errors.js";
import { ScheduleError } from "./scheduler.js";

export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly code: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

/** How long a refused body may keep arriving (discarded) before the connection is cut. */
const DRAIN_MS = 10_000;

/**
 * The request body, at most maxBytes. Over the limit: HttpError 413. What is still
 * arriving is read and discarded (for at most DRAIN_MS, then the connection is cut):
 * closing the socket under an upload would reset it, and the client would never read
 * the 413.
 */
export function readBody(req: http.IncomingMessage, maxBytes: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const tooLarge = (what: string): void => {
      req.removeAllListeners("data");
      req.on("data", () => undefined); // discard
      const t = setTimeout(() => req.destroy(), DRAIN_MS);
      t.unref();
      req.once("end", () => clearTimeout(t));
      reject(new HttpError(413, `${what} is over the ${maxBytes}-byte limit`, "BODY_TOO_LARGE"));
    };
    const declared = req.headers["content-length"];
    if (declared !== undefined && Number(declared) > maxBytes) return tooLarge(`body of ${declared} bytes`);
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (c: Buffer) => {
      size += c.length;
      if (size > maxBytes) tooLarge("body");
      else chunks.push(c);
    });
    req.on("end", () => resolve(Buffer.concat(chunks)));
    req.on("error", (e) => reject(new HttpError(400, `reading the body failed: ${e.message}`, "BODY_INVALID")));
  });
}

export async function readJson(req: http.IncomingMessage, maxBytes: number): Promise<unknown> {
  const body = await readBody(req, maxBytes);
  try {
    return JSON.parse(body.toString("utf8"));
  } catch (e) {
    throw new HttpError(400, `body is not valid JSON: ${(e as Error).message}`, "BODY_INVALID");
  }
}

/** Parse with a schema; every bad field named (422). */
export function validate<S extends z.ZodType>(schema: S, body: unknown): z.output<S> {
  const r = schema.safeParse(body);
  if (!r.success) throw new HttpError(422, r.error.issues.map((i) => `${i.path.length ? i.path.join(".") : "(body)"}: ${i.message}`).join("; "), "FIELD_INVALID");
  return r.data as z.output<S>;
}

/** Codes of VlaErrors that mean the request itself is bad. */
const INPUT_CODES = new Set(["DATA_INVALID", "TEMPLATE_PLACEHOLDER", "CODEC_SHAPE", "ENSEMBLE_SHAPE"]);

const SCHEDULE: Record<ScheduleError["kind"], { status: number; code: string }> = {
  busy: { status: 503, code: "SERVER_BUSY" },
  closing: { status: 503, code: "SERVER_CLOSING" },
  deadline: { status: 504, code: "DEADLINE_EXCEEDED" },
  // the client went away: nobody reads this (nginx's 499 "client closed request")
  cancelled: { status: 499, code: "CANCELLED" },
};

/** Status, body and headers for any error a handler throws. */
export function errorResponse(e: unknown): { status: number; body: { error: string; code: string }; headers: Record<string, string> } {
  if (e instanceof HttpError) return { status: e.status, body: { error: e.message, code: e.code }, headers: e.headers };
  if (e instanceof ScheduleError) {
    const s = SCHEDULE[e.kind];
    return { status: s.status, body: { error: e.message, code: s.code }, headers: e.retryAfterS !== undefined ? { "Retry-After": String(e.retryAfterS) } : {} };
  }
  if (e instanceof VlaError) {
    if (INPUT_CODES.has(e.code)) return { status: 400, body: { error: e.message, code: e.code }, headers: {} };
    if (e.code === "NATIVE_RESOURCE") return { status: 503, body: { error: e.message, code: e.code }, headers: { "Retry-After": "1" } };
    return { status: 500, body: { error: `internal error: ${e.message}`, code: e.code }, headers: {} };
  }
  return { status: 500, body: { error: `internal error: ${(e as Error).message}`, code: "INTERNAL" }, headers: {} };
}

/** Compare an Authorization header with the expected bearer token in constant time. */
export function bearerMatches(header: string | undefined, token: string): boolean {
  const digest = (s: string): Buffer => createHash("sha256").update(s).digest();
  return timingSafeEqual(digest(header ?? ""), digest(`Bearer ${token}`));
}
