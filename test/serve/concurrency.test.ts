/**
 * Concurrency end to end on a vision-language policy (the tiny default Qwen2.5-VL, untrained):
 * simultaneous requests with camera images are batched (one vision-tower call per batch,
 * each request getting its own image's features), every answer is 200 or 503 + Retry-After,
 * a bad request in a batch fails alone, and requests whose client went away are dropped
 * (queued) or cancelled (running).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Policy, type ActOutcome } from "../../src/policy/policy.js";
import { startServer, type RunningServer } from "../../src/serve/server.js";
import { Scheduler, ScheduleError } from "../../src/serve/scheduler.js";
import { post, postStream, rgbBody, pngBody, until } from "../support/http.js";
import { testImage, writeTinyVlmPolicy } from "../support/tiny-vlm-policy.js";

let policy: Policy;
let srv: RunningServer;
/** The tower's calls, counted on the real tower (each batch should make one). */
let towerCalls = 0;
beforeAll(async () => {
  // the demo's model (initialised at 1/sqrt(width), as the demo does: the images then change the answer)
  policy = Policy.load(writeTinyVlmPolicy({ hiddenSize: 64, layers: 2, visionHidden: 32, visionDepth: 2, patchSize: 28, initStd: 0.125 }));
  const vision = policy.vlm!.vision;
  const forward = vision.forward.bind(vision);
  vision.forward = (...a) => {
    towerCalls++;
    return forward(...a);
  };
  srv = await startServer(policy, { maxQueue: 64, maxBatch: 16 });
});
afterAll(async () => {
  await srv?.close();
  policy?.dispose();
});

const cams = (seed: number) => [testImage(56, 56, seed), testImage(56, 56, seed + 100)];

describe("batched vision requests", () => {
  it("one tower call per batch; each request gets its own image's features (= the request alone)", async () => {
    const reqs = [0, 1, 2].map((s) => ({ req: { images: cams(s), instruction: "reach the red block" } }));
    const alone: string[] = [];
    for (const r of reqs) alone.push((await policy.act(r.req)).text);
    expect(new Set(alone).size).toBeGreaterThan(1); // the images matter to this model
    const before = towerCalls;
    const batch = await policy.actBatch(reqs);
    expect(towerCalls - before).toBe(1);
    expect(batch.map((o) => (o.status === "ok" ? o.result.text : o.status))).toEqual(alone);
    expect(batch.every((o) => o.status === "ok" && o.result.imagesUsed && o.result.timings.batchSize === 3)).toBe(true);
  });

  it("16 clients with images at once: all 200 and batched; a small queue answers 503 + Retry-After, never an error", async () => {
    const body = (i: number) => ({ instruction: `reach the block ${i % 3}`, images: cams(i % 4).map((img, k) => (k === 0 ? pngBody(img) : rgbBody(img))), temperature: 0 });
    const batchesBefore = srv.scheduler.stats.batches;
    const all = await Promise.all(Array.from({ length: 16 }, (_, i) => post(srv.url, "/v1/act", body(i))));
    expect(all.map((r) => r.status)).toEqual(new Array(16).fill(200));
    expect(all.every((r) => r.json.imagesUsed === true && r.json.chunk.length === 8)).toBe(true);
    expect(srv.scheduler.stats.batches - batchesBefore).toBeLessThan(16);
    expect(Math.max(...all.map((r) => r.json.timings.batchSize as number))).toBeGreaterThan(1);
    // batched answers equal the same requests alone (greedy)
    for (const i of [0, 5]) expect((await post(srv.url, "/v1/act", body(i))).json.text).toBe(all[i]!.json.text);

    const small = await startServer(policy, { maxQueue: 4, maxBatch: 2 });
    try {
      const rs = await Promise.all(Array.from({ length: 16 }, (_, i) => post(small.url, "/v1/act", body(i))));
      const ok = rs.filter((r) => r.status === 200);
      const busy = rs.filter((r) => r.status === 503);
      expect(ok.length + busy.length).toBe(16);
      expect(ok.length).toBeGreaterThanOrEqual(4);
      expect(busy.length).toBeGreaterThan(0);
      for (const b of busy) {
        expect(Number(b.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
        expect(b.json.code).toBe("SERVER_BUSY");
      }
    } finally {
      await small.close();
    }
  });

  it("300 simultaneous requests: 200 or 503 + Retry-After only", async () => {
    const rs = await Promise.all(Array.from({ length: 300 }, (_, i) => post(srv.url, "/v1/act", { instruction: "reach", images: [rgbBody(testImage(56, 56, i % 7))] })));
    const codes = new Set(rs.map((r) => r.status));
    expect([...codes].every((c) => c === 200 || c === 503)).toBe(true);
    expect(rs.filter((r) => r.status === 200).length).toBeGreaterThanOrEqual(64);
    expect(rs.filter((r) => r.status === 503).every((r) => r.headers.get("retry-after") !== null)).toBe(true);
    expect((await fetch(srv.url + "/health")).status).toBe(200);
  });

  it("a valid request batched with an invalid one still succeeds", async () => {
    const dir = writeTinyVlmPolicy({ hiddenSize: 32, layers: 1 }, { template: "vla0-state" });
    const p = Policy.load(dir);
    try {
      const out: ActOutcome[] = await p.actBatch([
        { req: { images: cams(1), instruction: "reach", state: [0.1, 0.2, 0.3, 0, 1] } },
        { req: { images: cams(2), instruction: "reach" } }, // the template needs the state
        { req: { images: [testImage(56, 56), testImage(40, 20)], instruction: "reach", state: [0] } }, // heights differ
      ]);
      expect(out.map((o) => o.status)).toEqual(["ok", "failed", "failed"]);
      expect(out[1]!.status === "failed" && out[1]!.error.message).toMatch(/needs the robot state/);
      expect(out[2]!.status === "failed" && out[2]!.error.message).toMatch(/different heights/);
      // over HTTP, simultaneously: 200 for the good ones, 400 for the bad one
      const s = await startServer(p);
      try {
        const good = { instruction: "reach", images: cams(1).map(rgbBody), state: [0.1, 0.2, 0.3, 0, 1] };
        const rs = await Promise.all([post(s.url, "/v1/act", good), post(s.url, "/v1/act", { ...good, state: undefined }), post(s.url, "/v1/act", good)]);
        expect(rs.map((r) => r.status)).toEqual([200, 400, 200]);
        expect(rs[1]!.json.code).toBe("TEMPLATE_PLACEHOLDER");
      } finally {
        await s.close();
      }
    } finally {
      p.dispose();
    }
  });
});

describe("cancellation and deadlines", () => {
  /** A policy slow enough (~0.1-0.2 s a chunk) to watch a request stream, leave or time out. */
  let slow: Policy;
  beforeAll(() => {
    slow = Policy.load(writeTinyVlmPolicy({ hiddenSize: 256, layers: 4 }));
  });
  afterAll(async () => {
    await slow?.close();
  });

  it("a queued request whose client left is dropped without running; a running one is cancelled, its batch goes on", async () => {
    const sch = new Scheduler(slow, { maxBatch: 1 });
    const ac = new AbortController();
    const a = sch.submit({ req: { images: [], instruction: "reach the red block" } });
    const b = sch.submit({ req: { images: [], instruction: "reach the blue block" } }, { signal: ac.signal });
    ac.abort(); // b is still queued behind a
    await expect(b).rejects.toMatchObject({ kind: "cancelled" });
    expect((await a).chunk).toHaveLength(8);
    expect(sch.stats).toMatchObject({ batches: 1, completed: 1, cancelled: 1, wastedTokens: 0 });

    const both = new Scheduler(slow, { maxBatch: 4 });
    const full = await slow.act({ images: [], instruction: "reach the green block" });
    const stop = new AbortController();
    const keep = both.submit({ req: { images: [], instruction: "reach the green block" } });
    let seen = 0;
    const gone = both.submit({ req: { images: [], instruction: "reach the green block" }, onTimestep: () => ++seen === 1 && stop.abort() }, { signal: stop.signal });
    await expect(gone).rejects.toBeInstanceOf(ScheduleError);
    expect((await keep).text).toBe(full.text);
    expect(both.stats.cancelled).toBe(1);
    expect(both.stats.wastedTokens).toBeLessThan(full.timings.generatedTokens);
  });

  it("streams each timestep as soon as it is decoded", async () => {
    const s = await startServer(slow);
    try {
      const t0 = performance.now();
      const r = await postStream(s.url, "/v1/act", { instruction: "stack the blocks", stream: true });
      expect(r.status).toBe(200);
      const steps = r.lines.filter((l) => l.type === "timestep");
      expect(steps.map((l) => l.t)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
      const done = r.lines[r.lines.length - 1];
      expect(done.type).toBe("done");
      steps.forEach((l, t) => expect(l.action).toEqual(done.chunk[t]));
      // the server wrote the lines during the generation, not at its end...
      for (let t = 1; t < steps.length; t++) expect(steps[t].ms).toBeGreaterThan(steps[t - 1].ms);
      expect(steps[0].ms).toBeLessThan(0.6 * (done.timings.queueMs + done.timings.totalMs));
      // ...and they reached the client spread over it: the first timestep well before the last line
      const total = r.arrivals[r.arrivals.length - 1]! - t0;
      expect(r.arrivals[r.arrivals.length - 1]! - r.arrivals[0]!).toBeGreaterThan(0.3 * total);
    } finally {
      await s.close();
    }
  });

  it("clients that drop their streams stop the work: 10 streams, cancelled after their first timestep", async () => {
    const s = await startServer(slow);
    try {
      const full = (await post(s.url, "/v1/act", { instruction: "push the red block" })).json.timings.generatedTokens as number;
      const tokensBefore = s.scheduler.stats.wastedTokens;
      await Promise.all(
        Array.from({ length: 10 }, async () => {
          const ac = new AbortController();
          await postStream(s.url, "/v1/act", { instruction: "push the red block", stream: true }, { signal: ac.signal, onLine: () => ac.abort() }).catch((e: Error) => expect(e.name).toBe("AbortError"));
        }),
      );
      await until(() => s.scheduler.depth === 0 && s.scheduler.stats.cancelled === 10);
      expect(s.scheduler.stats.wastedTokens - tokensBefore).toBeLessThan(10 * full);
      const m = await (await fetch(s.url + "/metrics")).text();
      expect(m).toMatch(/vlatext_requests_total\{route="\/v1\/act",code="499"\} 10/);
      expect(m).toMatch(/vlatext_cancelled_total 10/);
    } finally {
      await s.close();
    }
  });

  it("a request past its deadline is stopped with 504; an error after a stream started is its last line", async () => {
    const s = await startServer(slow, { deadlineMs: 20 });
    try {
      const r = await post(s.url, "/v1/act", { instruction: "reach the red block" });
      expect(r.status).toBe(504);
      expect(r.json.code).toBe("DEADLINE_EXCEEDED");
    } finally {
      await s.close();
    }
    const s2 = await startServer(slow);
    let closing: Promise<void> | undefined;
    const r = await postStream(s2.url, "/v1/act", { instruction: "reach the red block", stream: true }, { onLine: () => (closing ??= s2.close({ graceMs: 0 })) });
    await closing;
    expect(r.status).toBe(200);
    expect(r.lines[0].type).toBe("timestep");
    expect(r.lines[r.lines.length - 1]).toMatchObject({ type: "error", status: 503, code: "SERVER_CLOSING" });
    const vla = await startServer(slow);
    let closingVla: Promise<void> | undefined;
    const v = await postStream(vla.url, "/predict_base64_stream", { base64_rgb: [], state: [], instr: "x" });
    expect(v.status).toBe(422); // refused before any line: a plain HTTP error
    const npy = (await import("../../src/serve/npy.js")).encodeNpyImage(testImage(56, 56));
    const w = await postStream(vla.url, "/predict_base64_stream", { base64_rgb: [Buffer.from(npy).toString("base64")], state: [], instr: "reach" }, { onLine: () => (closingVla ??= vla.close({ graceMs: 0 })) });
    await closingVla;
    expect(w.lines[0]).toHaveProperty("index", 0);
    expect(w.lines[w.lines.length - 1]).toMatchObject({ status: 503, code: "SERVER_CLOSING" });
    expect(w.lines.some((l) => "time_taken" in l)).toBe(false);
  });
});
