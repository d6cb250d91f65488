/** Small HTTP helpers for server tests (real HTTP over 127.0.0.1). */
import { encodePng } from "../../src/data/image.js";
import type { RgbImage } from "../../src/data/episode.js";

export interface Reply {
  status: number;
  json: any;
  text: string;
  headers: Headers;
}

export async function post(base: string, path: string, body: unknown, headers: Record<string, string> = {}): Promise<Reply> {
  const res = await fetch(base + path, { method: "POST", headers: { "Content-Type": "application/json", ...headers }, body: typeof body === "string" ? body : JSON.stringify(body) });
  const text = await res.text();
  let json: unknown = text;
  try {
    json = JSON.parse(text);
  } catch {
    /* not json */
  }
  return { status: res.status, json, text, headers: res.headers };
}

/** An NDJSON response read line by line, with each line's arrival time (performance.now()). */
export async function postStream(base: string, path: string, body: unknown, options: { signal?: AbortSignal; onLine?: (line: any) => void } = {}): Promise<{ status: number; lines: any[]; arrivals: number[]; headers: Headers }> {
  const res = await fetch(base + path, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body), ...(options.signal ? { signal: options.signal } : {}) });
  const lines: any[] = [];
  const arrivals: number[] = [];
  if (!res.body) return { status: res.status, lines, arrivals, headers: res.headers };
  const reader = res.body.getReader();
  const dec = new TextDecoder();
  let buf = "";
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    buf += dec.decode(value, { stream: true });
    let nl: number;
    while ((nl = buf.indexOf("\n")) >= 0) {
      const line = JSON.parse(buf.slice(0, nl));
      buf = buf.slice(nl + 1);
      lines.push(line);
      arrivals.push(performance.now());
      options.onLine?.(line);
    }
  }
  if (buf.trim()) lines.push(JSON.parse(buf));
  return { status: res.status, lines, arrivals, headers: res.headers };
}

export function pngBody(img: RgbImage): { png: string } {
  return { png: Buffer.from(encodePng(img)).toString("base64") };
}

export function rgbBody(img: RgbImage): { rgb: string; width: number; height: number } {
  return { rgb: Buffer.from(img.data).toString("base64"), width: img.width, height: img.height };
}

/** Resolves when `f` holds, polling (for server state that settles asynchronously). */
export async function until(f: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const t0 = performance.now();
  while (!(await f())) {
    if (performance.now() - t0 > timeoutMs) throw new Error("condition not reached in time");
    await new Promise((r) => setTimeout(r, 10));
  }
}
