/**
 * The inference server over real HTTP on 127.0.0.1 (a text-only policy): valid and
 * malformed requests, sessions, the VLA-0-compatible endpoint (requests built as VLA-0's
 * sample client builds them), bearer auth, and 32 concurrent clients with and without
 * back-pressure. Images, limits, cancellation, shutdown and fuzzing have files of their own.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ActionGrammar } from "../../src/actions/grammar.js";
import { getFormat } from "../../src/actions/format.js";
import { parseStrict } from "../../src/actions/parser.js";
import { parseActionSpec, VLA0_SPEC } from "../../src/actions/spec.js";
import { encodePng } from "../../src/data/image.js";
import { encodeNpyImage, parseNpyImage } from "../../src/serve/npy.js";
import { Policy } from "../../src/policy/policy.js";
import { startServer, type RunningServer } from "../../src/serve/server.js";
import { TINY_STATS, writeTinyPolicy } from "../support/tiny-policy.js";

let policy: Policy;
let srv: RunningServer;
beforeAll(async () => {
  policy = Policy.load(writeTinyPolicy());
  srv = await startServer(policy, { maxQueue: 64, limits: { maxBodyBytes: 2 * 1024 * 1024 } });
});
afterAll(async () => {
  await srv?.close();
  policy?.dispose();
});

async function post(path: string, body: unknown, headers: Record<string, string> = {}, base = srv.url): Promise<{ status: number; json: any; headers: Headers }> {
  const res = await fetch(base + path, { method: "POST", headers: { "Content-Type": "application/json", ...headers }, body: typeof body === "string" ? body : JSON.stringify(body) });
  const text = await res.text();
  let json: unknown = text;
  try {
    json = JSON.parse(text);
  } catch {
    /* not json */
  }
  return { status: res.status, json, headers: res.headers };
}

const img = { width: 8, height: 6, data: Uint8Array.from({ length: 8 * 6 * 3 }, (_, i) => (i * 37) % 256) };
const g = new ActionGrammar(parseActionSpec(VLA0_SPEC), getFormat("vla0"));

describe("inference server", () => {
  it("encodes each distinct prompt once and gives the cached ids back unchanged", () => {
    const req = { instruction: "pick up the red block", images: [] };
    const first = policy.promptIds(req);
    first[0] = -1; // the caller's copy: the cache must not see this
    expect(policy.promptIds(req)).toEqual(policy.promptIds({ instruction: "pick up the red block", images: [] }));
    expect(policy.promptIds(req)[0]).not.toBe(-1);
    expect(policy.promptIds({ instruction: "pick up the blue block", images: [] })).not.toEqual(policy.promptIds(req));
  });

  it("answers /v1/act with a parseable, denormalized chunk", async () => {
    const r = await post("/v1/act", { instruction: "pick up the red block", images: [{ png: Buffer.from(encodePng(img)).toString("base64") }], temperature: 0 });
    expect(r.status).toBe(200);
    expect(parseStrict(r.json.text, g).ok).toBe(true);
    expect(r.json.chunk).toHaveLength(8);
    expect(r.json.names).toEqual(TINY_STATS.names);
    for (const row of r.json.chunk as number[][]) {
      expect(row).toHaveLength(7);
      row.forEach((v, d) => expect(v >= TINY_STATS.min[d]! - 1e-6 && v <= TINY_STATS.max[d]! + 1e-6).toBe(true));
      expect([TINY_STATS.min[6], TINY_STATS.max[6]]).toContain(row[6]); // gripper snapped
    }
    expect(r.json.timings.generatedTokens).toBeGreaterThan(56);
    expect(r.json.timings.forcedTokens).toBeGreaterThan(0);
    expect(r.json.imagesUsed).toBe(false);
    // deterministic under greedy decoding
    const again = await post("/v1/act", { instruction: "pick up the red block", temperature: 0 });
    expect(again.json.text).toBe(r.json.text);
  });

  it("ensembles per session", async () => {
    const a = await post("/v1/act", { instruction: "push", session: "robot-1" });
    expect(a.status).toBe(200);
    expect(a.json.session.actions).toHaveLength(4);
    expect(a.json.session.time).toBe(4);
    // the first call has nothing to ensemble with: the actions are the chunk's first rows
    a.json.session.actions.forEach((row: number[], t: number) => row.slice(0, 6).forEach((v, d) => expect(v).toBeCloseTo(a.json.chunk[t][d], 5)));
    const b = await post("/v1/act", { instruction: "push", session: "robot-1", temperature: 1, seed: 3 });
    expect(b.json.session.time).toBe(8);
    const other = await post("/v1/act", { instruction: "push", session: "robot-2" });
    expect(other.json.session.time).toBe(4);
  });

  it("serves VLA-0's /predict_base64 to a client that builds requests like VLA-0's sample client", async () => {
    // sample_client.py: payload = {"base64_rgb": [base64(np.save(img)) ...], "state": state, "instr": instruction}
    const npy = encodeNpyImage(img);
    expect(parseNpyImage(npy, "x")).toEqual(img);
    const r = await post("/predict_base64", { base64_rgb: [Buffer.from(npy).toString("base64"), Buffer.from(npy).toString("base64")], state: [0.1, 0.2, 0.3, 0.4, 0.5, 0.6], instr: "put the red block on the green block" });
    expect(r.status).toBe(200);
    expect(r.json).toHaveLength(8);
    expect(r.json[0]).toHaveLength(7);
    const bad = await post("/predict_base64", { base64_rgb: [Buffer.from("not an npy").toString("base64")], state: [], instr: "x" });
    expect(bad.status).toBe(400);
    expect(bad.json.error).toMatch(/base64_rgb\[0\] is not a \.npy array/);
    const noInstr = await post("/predict_base64", { base64_rgb: [Buffer.from(npy).toString("base64")], state: [] });
    expect(noInstr.status).toBe(422);
    expect(noInstr.json.error).toMatch(/instr: required/);
  });

  it("names the problem in malformed requests and never falls over", async () => {
    const cases: Array<[unknown, number, RegExp]> = [
      ["{not json", 400, /not valid JSON/],
      [{}, 422, /instruction: /],
      [{ instruction: "  " }, 422, /instruction: must not be empty/],
      [{ instruction: "x", bogus: 1 }, 422, /bogus/],
      [{ instruction: "x", images: [{ png: "!!!!" }] }, 422, /images\.0/],
      [{ instruction: "x", images: [{ png: Buffer.from("hello").toString("base64") }] }, 400, /images\[0\]/],
      [{ instruction: "x", images: [{ rgb: Buffer.alloc(10).toString("base64"), width: 4, height: 4 }] }, 400, /images\[0\]: rgb has 10 bytes, expected width\*height\*3 = 48/],
      [{ instruction: "x", images: [{ rgb: "AAAA", width: 100000, height: 4 }] }, 422, /images\.0/],
      [{ instruction: "x", state: [1, null] }, 422, /state\.1/],
      [{ instruction: "x", temperature: -1 }, 422, /temperature/],
      [{ instruction: "x".repeat(3 * 1024 * 1024) }, 413, /limit/],
    ];
    for (const [body, status, re] of cases) {
      const r = await post("/v1/act", body);
      expect(r.status, JSON.stringify(r.json).slice(0, 200)).toBe(status);
      expect(r.json.error).toMatch(re);
    }
    expect((await fetch(srv.url + "/nope")).status).toBe(404);
    expect((await fetch(srv.url + "/v1/act")).status).toBe(405);
    const health = (await (await fetch(srv.url + "/health")).json()) as { status: string };
    expect(health.status).toBe("ok");
  });

  it("exposes metrics and an OpenAPI document", async () => {
    const m = await (await fetch(srv.url + "/metrics")).text();
    expect(m).toMatch(/vlatext_requests_total\{route="\/v1\/act",code="200"\} \d+/);
    expect(m).toMatch(/vlatext_request_duration_seconds_bucket\{le="\+Inf"\} \d+/);
    expect(m).toMatch(/vlatext_generated_tokens_total [1-9]\d*/);
    expect(m).toMatch(/vlatext_queue_depth \d+/);
    const doc = (await (await fetch(srv.url + "/openapi.json")).json()) as { openapi: string; paths: Record<string, unknown> };
    expect(doc.openapi).toBe("3.1.0");
    expect(Object.keys(doc.paths)).toEqual(expect.arrayContaining(["/v1/act", "/predict_base64", "/health", "/metrics"]));
  });

  it("serves 32 concurrent clients in batches, and answers 503 + Retry-After when the queue is full", async () => {
    const before = ((await (await fetch(srv.url + "/health")).json()) as { batches: number }).batches;
    const all = await Promise.all(Array.from({ length: 32 }, (_, i) => post("/v1/act", { instruction: `task ${i % 4}`, temperature: 0 })));
    expect(all.map((r) => r.status)).toEqual(new Array(32).fill(200));
    all.forEach((r) => expect(parseStrict(r.json.text, g).ok).toBe(true));
    const after = ((await (await fetch(srv.url + "/health")).json()) as { batches: number }).batches;
    expect(after - before).toBeLessThan(32); // simultaneous requests were decoded together
    expect(Math.max(...all.map((r) => r.json.timings.batchSize as number))).toBeGreaterThan(1);
    // a batched answer equals the same request decoded alone (greedy)
    for (let k = 0; k < 4; k++) {
      const alone = await post("/v1/act", { instruction: `task ${k}`, temperature: 0 });
      expect(all[k]!.json.text).toBe(alone.json.text);
    }
    const small = await startServer(policy, { maxQueue: 3 });
    try {
      const rs = await Promise.all(Array.from({ length: 32 }, (_, i) => post("/v1/act", { instruction: `task ${i}` }, {}, small.url)));
      const ok = rs.filter((r) => r.status === 200).length;
      const busy = rs.filter((r) => r.status === 503);
      expect(ok).toBeGreaterThanOrEqual(3);
      expect(busy.length).toBeGreaterThan(0);
      expect(ok + busy.length).toBe(32);
      expect(busy[0]!.headers.get("retry-after")).toBe("1");
      expect(busy[0]!.json.error).toMatch(/server busy/);
    } finally {
      await small.close();
    }
  });

  it("keeps at most maxSessions sessions, dropping the least recently used", async () => {
    const small = await startServer(policy, { maxSessions: 2 });
    try {
      const t = async (id: string) => (await post("/v1/act", { instruction: "x", session: id }, {}, small.url)).json.session.time as number;
      expect(await t("a")).toBe(4);
      expect(await t("b")).toBe(4);
      expect(await t("a")).toBe(8); // a is kept and now most recent
      expect(await t("c")).toBe(4); // evicts b
      expect(await t("b")).toBe(4); // b starts over
      expect(await t("a")).toBe(4); // a was evicted by b
    } finally {
      await small.close();
    }
  });

  it("requires the bearer token when one is set", async () => {
    const locked = await startServer(policy, { token: "s3cret" });
    try {
      expect((await post("/v1/act", { instruction: "x" }, {}, locked.url)).status).toBe(401);
      expect((await post("/v1/act", { instruction: "x" }, { Authorization: "Bearer wrong" }, locked.url)).status).toBe(401);
      expect((await post("/v1/act", { instruction: "x" }, { Authorization: "Bearer s3cret" }, locked.url)).status).toBe(200);
      expect((await fetch(locked.url + "/health")).status).toBe(200);
    } finally {
      await locked.close();
    }
  });
});

describe("vlatext serve", () => {
  it("starts from the CLI, answers, and stops on SIGINT", async () => {
    const { spawn } = await import("node:child_process");
    const dir = writeTinyPolicy(2);
    const child = spawn(process.execPath, ["--import", "tsx", "test/support/cli-entry.ts", "serve", "--model", dir, "--port", "0"], { stdio: ["ignore", "pipe", "pipe"] });
    const url = await new Promise<string>((resolve, reject) => {
      let out = "";
      child.stdout.on("data", (d: Buffer) => {
        out += d.toString();
        const m = /on (http:\/\/[^ ]+) /.exec(out);
        if (m) resolve(m[1]!);
      });
      child.on("exit", (code) => reject(new Error(`serve exited early (${code})`)));
      setTimeout(() => reject(new Error(`no server URL in time: ${out}`)), 60_000);
    });
    const r = await post("/v1/act", { instruction: "reach the blue block" }, {}, url);
    expect(r.status).toBe(200);
    const exited = new Promise<number | null>((resolve) => child.on("exit", resolve));
    child.kill("SIGINT");
    expect(await exited).toBe(0);
  });
});

describe("streaming", () => {
  // when the lines arrive is checked in concurrency.test.ts (on a model slow enough to watch)
  it("streams one NDJSON line per timestep, matching the final chunk", async () => {
    const res = await fetch(srv.url + "/v1/act", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ instruction: "stack the blocks", stream: true, temperature: 0 }) });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("application/x-ndjson");
    let buf = "";
    const lines: Array<{ type: string; t?: number; action?: number[]; chunk?: number[][]; text?: string }> = [];
    const reader = res.body!.getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      buf += new TextDecoder().decode(value);
      let nl: number;
      while ((nl = buf.indexOf("\n")) >= 0) {
        lines.push(JSON.parse(buf.slice(0, nl)));
        buf = buf.slice(nl + 1);
      }
    }
    const steps = lines.filter((l) => l.type === "timestep");
    expect(steps.map((l) => l.t)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    const done = lines[lines.length - 1]!;
    expect(done.type).toBe("done");
    steps.forEach((l, t) => expect(l.action).toEqual(done.chunk![t]));
    // the same as the non-streaming answer
    const plain = await post("/v1/act", { instruction: "stack the blocks", temperature: 0 });
    expect(done.text).toBe(plain.json.text);
  });
});
