/**
 * Bounded work per request: each resource-exhaustion case of issue 15's table is refused
 * before the model (or the image decoder) runs — asserted by the scheduler's and the
 * tower's counters staying where they were — and the server stays healthy.
 */
import zlib from "node:zlib";
import jpeg from "jpeg-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { encodePng, imageHeader } from "../../src/data/image.js";
import { Policy } from "../../src/policy/policy.js";
import { bearerMatches } from "../../src/serve/http.js";
import { encodeNpyImage, parseNpyImage } from "../../src/serve/npy.js";
import { startServer, type RunningServer } from "../../src/serve/server.js";
import { post, pngBody } from "../support/http.js";
import { testImage, writeTinyVlmPolicy } from "../support/tiny-vlm-policy.js";

let policy: Policy;
let srv: RunningServer;
let towerCalls = 0;
beforeAll(async () => {
  // a model with a short context (512 positions), so that a long prompt is refused against it
  policy = Policy.load(writeTinyVlmPolicy({ hiddenSize: 32, layers: 1 }));
  (policy as unknown as { contextLength: number }).contextLength = 512;
  const vision = policy.vlm!.vision;
  const forward = vision.forward.bind(vision);
  vision.forward = (...a) => {
    towerCalls++;
    return forward(...a);
  };
  srv = await startServer(policy, { limits: { maxBodyBytes: 1024 * 1024 } });
});
afterAll(async () => {
  await srv?.close();
  policy?.dispose();
});

const npyB64 = (bytes: Uint8Array) => Buffer.from(bytes).toString("base64");

/** A PNG that is only its header: IHDR says width x height, then a tiny IDAT and IEND. */
function pngHeaderOnly(width: number, height: number): Uint8Array {
  const chunk = (type: string, data: Buffer) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const body = Buffer.concat([Buffer.from(type, "latin1"), data]);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(zlib.crc32(body));
    return Buffer.concat([len, body, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8;
  ihdr[9] = 2;
  return new Uint8Array(Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk("IHDR", ihdr), chunk("IDAT", zlib.deflateSync(Buffer.alloc(64))), chunk("IEND", Buffer.alloc(0))]));
}

/** A JPEG whose frame header says width x height (nothing decodable after it). */
function jpegHeaderOnly(width: number, height: number): Uint8Array {
  return Uint8Array.from([0xff, 0xd8, 0xff, 0xe0, 0, 16, 0x4a, 0x46, 0x49, 0x46, 0, 1, 1, 0, 0, 1, 0, 1, 0, 0, 0xff, 0xc0, 0, 17, 8, height >> 8, height & 255, width >> 8, width & 255, 3, 1, 0x22, 0, 2, 0x11, 1, 3, 0x11, 1, 0xff, 0xd9]);
}

/** Run `f` and say whether the model (scheduler batches, tower calls) was touched. */
async function untouched<T>(f: () => Promise<T>): Promise<T> {
  const batches = srv.scheduler.stats.batches;
  const tower = towerCalls;
  const r = await f();
  expect(srv.scheduler.stats.batches, "the model ran").toBe(batches);
  expect(towerCalls, "the vision tower ran").toBe(tower);
  return r;
}

describe("size bounds, refused before the work", () => {
  it("an instruction over the limit, on both APIs (200k and 400k characters)", async () => {
    const npy = npyB64(encodeNpyImage(testImage(8, 8)));
    for (const n of [200_000, 400_000]) {
      const v = await untouched(() => post(srv.url, "/predict_base64", { base64_rgb: [npy], state: [], instr: "x".repeat(n) }));
      expect(v.status).toBe(422);
      expect(v.json.error).toMatch(/instr: must be at most 4000 characters/);
      const a = await untouched(() => post(srv.url, "/v1/act", { instruction: "x ".repeat(n / 2) }));
      expect(a.status).toBe(422);
      expect(a.json.error).toMatch(/instruction: must be at most 4000 characters/);
    }
  });

  it("a prompt longer than the model's context", async () => {
    const r = await post(srv.url, "/v1/act", { instruction: Array.from({ length: 700 }, (_, i) => `w${i}`).join(" ").slice(0, 3990) });
    expect(r.status).toBe(400);
    expect(r.json.code).toBe("DATA_INVALID");
    expect(r.json.error).toMatch(/over the model's context length of 512 tokens/);
  });

  it("images too large are refused from their header, before decoding (PNG, JPEG, raw RGB, .npy)", async () => {
    // a real 16 KB PNG of 4096x4096 zeros
    const zeros = encodePng({ width: 4096, height: 4096, data: new Uint8Array(4096 * 4096 * 3) });
    expect(zeros.length).toBeLessThan(256 * 1024);
    expect(imageHeader(zeros)).toEqual({ format: "png", width: 4096, height: 4096 });
    const cases: Array<[unknown, RegExp]> = [
      [{ png: Buffer.from(zeros).toString("base64") }, /images\[0\] is 4096x4096: over the limit of 1024 pixels per side/],
      [{ png: Buffer.from(pngHeaderOnly(8000, 8000)).toString("base64") }, /8000x8000: over the limit/],
      [{ jpeg: Buffer.from(jpegHeaderOnly(5000, 3000)).toString("base64") }, /5000x3000: over the limit/],
      [{ rgb: "AAAA", width: 2048, height: 2 }, /images\.0\.width: must be at most 1024/],
    ];
    for (const [image, re] of cases) {
      const r = await untouched(() => post(srv.url, "/v1/act", { instruction: "x", images: [image] }));
      expect(r.status, JSON.stringify(r.json)).toBe(422);
      expect(r.json.error).toMatch(re);
    }
    const big = encodeNpyImage({ width: 1100, height: 10, data: new Uint8Array(1100 * 10 * 3) });
    const v = await untouched(() => post(srv.url, "/predict_base64", { base64_rgb: [npyB64(big)], state: [], instr: "x" }));
    expect(v.status).toBe(422);
    expect(v.json.code).toBe("IMAGE_TOO_LARGE");
    // too many pixels together
    const many = Array.from({ length: 5 }, () => pngBody({ width: 1024, height: 1024, data: new Uint8Array(1024 * 1024 * 3) }));
    const m = await untouched(() => post(srv.url, "/v1/act", { instruction: "x", images: many }, {}));
    expect([413, 422]).toContain(m.status);
    expect((await fetch(srv.url + "/health")).status).toBe(200);
  });

  it("image sizes come from real PNG and JPEG headers", () => {
    const img = testImage(37, 21, 2);
    expect(imageHeader(encodePng(img))).toEqual({ format: "png", width: 37, height: 21 });
    const jpg = jpeg.encode({ width: 37, height: 21, data: Buffer.from(Array.from({ length: 37 * 21 * 4 }, (_, i) => (i % 4 === 3 ? 255 : img.data[Math.floor(i / 4) * 3 + (i % 4)]!))) }, 80).data;
    expect(imageHeader(new Uint8Array(jpg))).toEqual({ format: "jpeg", width: 37, height: 21 });
    expect(imageHeader(new Uint8Array([0xff, 0xd8, 0xff, 0xda, 0, 2]))).toBeUndefined(); // scan data before any frame header
    expect(imageHeader(new Uint8Array([1, 2, 3]))).toBeUndefined();
  });

  it(".npy headers: versions 1.0-3.0 are read, others refused; bad headers named", () => {
    const img = testImage(4, 3);
    const v1 = Buffer.from(encodeNpyImage(img));
    expect(parseNpyImage(v1, "a")).toEqual(img);
    const header = v1.subarray(10, 10 + v1.readUInt16LE(8));
    const v2 = Buffer.concat([Buffer.from([0x93, ..."NUMPY"].map((c) => (typeof c === "string" ? c.charCodeAt(0) : c))), Buffer.from([2, 0]), Buffer.alloc(4), header, Buffer.from(img.data)]);
    v2.writeUInt32LE(header.length, 8);
    expect(parseNpyImage(v2, "a")).toEqual(img);
    v2[6] = 3;
    expect(parseNpyImage(v2, "a")).toEqual(img);
    for (const [major, minor] of [
      [0, 0],
      [255, 0],
      [1, 1],
    ] as const) {
      const b = Buffer.from(v1);
      b[6] = major;
      b[7] = minor;
      expect(() => parseNpyImage(b, "base64_rgb[0]")).toThrow(new RegExp(`format version ${major}\\.${minor} is not one numpy writes`));
    }
    const long = Buffer.from(v1);
    long.writeUInt16LE(60_000, 8);
    expect(() => parseNpyImage(long, "x")).toThrow(/over numpy's 10000-byte limit/);
    const noNl = Buffer.from(v1);
    noNl[10 + v1.readUInt16LE(8) - 1] = 0x20;
    expect(() => parseNpyImage(noNl, "x")).toThrow(/does not end with a newline/);
    const shape = Buffer.from(v1.toString("latin1").replace("(3, 4, 3)", "(3, 4, 4)"), "latin1");
    expect(() => parseNpyImage(shape, "x")).toThrow(/shape \(3, 4, 4\) is not \(H, W, 3\)/);
    expect(() => parseNpyImage(v1.subarray(0, v1.length - 1), "x")).toThrow(/35 data bytes for shape \(3, 4, 3\), expected 36/);
  });

  it("an oversized body gets 413, declared or chunked (not a connection reset)", async () => {
    const declared = await untouched(() => post(srv.url, "/v1/act", { instruction: "x".repeat(2 * 1024 * 1024) }));
    expect(declared.status).toBe(413);
    expect(declared.json.code).toBe("BODY_TOO_LARGE");
    // chunked: no Content-Length, the body streams past the limit
    let sent = 0;
    const body = new ReadableStream<Uint8Array>({
      pull(c) {
        if (sent >= 3 * 1024 * 1024) return c.close();
        sent += 64 * 1024;
        c.enqueue(new Uint8Array(64 * 1024).fill(0x20));
      },
    });
    const res = await untouched(() => fetch(srv.url + "/v1/act", { method: "POST", headers: { "Content-Type": "application/json" }, body, duplex: "half" } as RequestInit));
    expect(res.status).toBe(413);
    expect(((await res.json()) as { error: string }).error).toMatch(/body is over the 1048576-byte limit/);
    expect((await fetch(srv.url + "/health")).status).toBe(200);
  });

  it("metrics labels are a fixed set: 2000 unknown paths are one 'other' series", async () => {
    const locked = await startServer(policy, { token: "t0ken" });
    try {
      const before = (await (await fetch(locked.url + "/metrics", { headers: { Authorization: "Bearer t0ken" } })).text()).length;
      for (let i = 0; i < 1000; i += 50) await Promise.all(Array.from({ length: 50 }, (_, k) => fetch(`${locked.url}/nope/${i + k}`, { headers: { Authorization: "Bearer t0ken" } }).then((r) => r.text())));
      for (let i = 0; i < 1000; i += 50) await Promise.all(Array.from({ length: 50 }, (_, k) => fetch(`${locked.url}/x${i + k}?q=${k}`).then((r) => r.text()))); // unauthenticated: 401
      const m = await (await fetch(locked.url + "/metrics", { headers: { Authorization: "Bearer t0ken" } })).text();
      expect(m).toMatch(/vlatext_requests_total\{route="other",code="404"\} 1000/);
      expect(m).toMatch(/vlatext_requests_total\{route="other",code="401"\} 1000/);
      expect(m).not.toMatch(/nope|x\d/);
      expect(m.length - before).toBeLessThan(400);
    } finally {
      await locked.close();
    }
  });

  it("the bearer token is compared in constant time (digests), on every route but /health", async () => {
    expect(bearerMatches("Bearer s3cret", "s3cret")).toBe(true);
    for (const h of [undefined, "", "Bearer s3cre", "Bearer s3cret ", "bearer s3cret", "Bearer " + "s".repeat(10_000)]) expect(bearerMatches(h, "s3cret")).toBe(false);
    const locked = await startServer(policy, { token: "s3cret" });
    try {
      for (const p of ["/metrics", "/openapi.json", "/nope"]) expect((await fetch(locked.url + p)).status).toBe(401);
      expect((await post(locked.url, "/predict_base64", {})).status).toBe(401);
      expect((await fetch(locked.url + "/health")).status).toBe(200);
    } finally {
      await locked.close();
    }
  });
});
