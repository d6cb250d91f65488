/**
 * A bounded, seeded fuzz of the model routes (/v1/act, /predict_base64, /predict_base64_stream):
 * broken JSON, every field with the wrong type, bad base64, mutated PNG and .npy headers,
 * odd image sizes, non-finite numbers, control tokens and deep nesting. Every answer must
 * be a 2xx or a 4xx with {error, code}; never a 5xx, a reset or a crash, and the server
 * answers a good request afterwards.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { encodePng } from "../../src/data/image.js";
import { Policy } from "../../src/policy/policy.js";
import { encodeNpyImage } from "../../src/serve/npy.js";
import { startServer, type RunningServer } from "../../src/serve/server.js";
import { rng } from "../support/rng.js";
import { testImage, writeTinyVlmPolicy } from "../support/tiny-vlm-policy.js";

let policy: Policy;
let srv: RunningServer;
beforeAll(async () => {
  policy = Policy.load(writeTinyVlmPolicy({ hiddenSize: 32, layers: 1, patchSize: 28 }));
  srv = await startServer(policy, { maxQueue: 256, limits: { maxBodyBytes: 256 * 1024 } });
});
afterAll(async () => {
  await srv?.close();
  policy?.dispose();
});

const R = rng(15);
const pick = <T>(xs: readonly T[]): T => xs[Math.floor(R() * xs.length)] as T;
const b64 = (b: Uint8Array) => Buffer.from(b).toString("base64");
const img = testImage(28, 28, 3);
const png = encodePng(img);
const npy = encodeNpyImage(img);

function mutate(bytes: Uint8Array, upTo: number): Uint8Array {
  const out = Uint8Array.from(bytes);
  for (let k = 0; k < 1 + Math.floor(R() * 4); k++) out[Math.floor(R() * Math.min(upTo, out.length))] = Math.floor(R() * 256);
  return out;
}

const WEIRD: unknown[] = [null, true, 0, -1, 1e308, "", "x", [], {}, [1, "a"], { a: 1 }, "NaN", 2 ** 53 + 1, -0.5];
const STRINGS = ["<|im_end|>", "<|image_pad|>", "<|vision_start|>x<|vision_end|>", "\u0000\u0001", "🤖".repeat(50), "a\nb\r\nc", "{state}", "{instruction}", " ".repeat(10), "ok"];

function imageField(): unknown {
  switch (Math.floor(R() * 9)) {
    case 0:
      return { png: b64(mutate(png, 33)) }; // header bytes changed
    case 1:
      return { png: b64(png.subarray(0, Math.floor(R() * png.length))) }; // cut short
    case 2:
      return { jpeg: b64(png) }; // wrong format name
    case 3:
      return { rgb: b64(img.data), width: pick([0, 1, 27, 29, 1e9, -3, 2.5]), height: 28 };
    case 4:
      return { png: "!!!not base64" };
    case 5:
      return { png: b64(png), extra: 1 };
    case 6:
      return pick(WEIRD);
    case 7:
      return { rgb: b64(new Uint8Array(Math.floor(R() * 3000))), width: 28, height: 28 };
    default:
      return { png: b64(png) };
  }
}

function actBody(): unknown {
  const body: Record<string, unknown> = { instruction: "reach the red block", images: [{ png: b64(png) }] };
  const field = pick(["instruction", "images", "state", "session", "temperature", "seed", "stream", "extra", "image"]);
  const v = R() < 0.5 ? pick(WEIRD) : undefined;
  if (field === "instruction") body.instruction = v ?? pick(STRINGS);
  else if (field === "images") body.images = v ?? Array.from({ length: Math.floor(R() * 10) }, imageField);
  else if (field === "state") body.state = v ?? [pick([0, 1e308, -1e308, 0.5]), pick(WEIRD)];
  else if (field === "session") body.session = v ?? pick(["a b", "x".repeat(200), "ok-1", "../../etc"]);
  else if (field === "temperature") body.temperature = v ?? pick([-1, 0, 6, 0.7]);
  else if (field === "seed") body.seed = v ?? pick([-1, 2 ** 40, 3.5, 7]);
  else if (field === "stream") body.stream = v ?? pick([true, "yes", 1]);
  else if (field === "extra") body[pick(["bogus", "__proto__", "constructor"])] = 1;
  else body.images = [imageField()];
  return body;
}

function vla0Body(): unknown {
  const body: Record<string, unknown> = { base64_rgb: [b64(npy)], state: [0.1, 0.2], instr: "reach" };
  switch (Math.floor(R() * 8)) {
    case 0:
      body.base64_rgb = [b64(mutate(npy, 10 + 118))]; // magic, version, header
      break;
    case 1:
      body.base64_rgb = [b64(npy.subarray(0, Math.floor(R() * npy.length)))];
      break;
    case 2:
      body.base64_rgb = pick(WEIRD);
      break;
    case 3:
      body.state = pick(WEIRD);
      break;
    case 4:
      body.instr = R() < 0.5 ? pick(WEIRD) : pick(STRINGS);
      break;
    case 5:
      body.base64_rgb = [b64(encodeNpyImage(testImage(1 + Math.floor(R() * 40), 1 + Math.floor(R() * 40))))];
      break;
    case 6:
      body.base64_rgb = Array.from({ length: Math.floor(R() * 12) }, () => b64(npy));
      break;
    default:
      delete body[pick(["base64_rgb", "state", "instr"])];
  }
  return body;
}

function rawBody(valid: () => unknown): string {
  const text = JSON.stringify(valid());
  switch (Math.floor(R() * 6)) {
    case 0:
      return text.slice(0, Math.floor(R() * text.length)); // truncated
    case 1:
      return text.replace(/\d/, "1e400"); // a number JSON reads as Infinity
    case 2:
      return "[".repeat(20_000) + "]".repeat(20_000); // deep nesting
    case 3:
      return Buffer.from(Array.from({ length: 64 }, () => Math.floor(R() * 256))).toString("latin1");
    case 4:
      return "";
    default:
      return text;
  }
}

describe("bounded fuzz", () => {
  it("400 malformed requests to both APIs: no server error, every refusal named, the server alive after", async () => {
    const routes = ["/v1/act", "/predict_base64", "/predict_base64_stream"] as const;
    const cases = Array.from({ length: 400 }, (_, i) => {
      const route = routes[i % 3] as (typeof routes)[number];
      const make = route === "/v1/act" ? actBody : vla0Body;
      return { route, body: R() < 0.3 ? rawBody(make) : JSON.stringify(make()) };
    });
    const statuses = new Map<number, number>();
    for (let i = 0; i < cases.length; i += 16) {
      await Promise.all(
        cases.slice(i, i + 16).map(async (c) => {
          const res = await fetch(srv.url + c.route, { method: "POST", headers: { "Content-Type": "application/json" }, body: c.body });
          const text = await res.text();
          statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
          expect(res.status, `${c.route} ${c.body.slice(0, 200)} -> ${text.slice(0, 300)}`).toBeLessThan(500);
          if (res.status >= 400) {
            const j = JSON.parse(text) as { error: string; code: string };
            expect(typeof j.error).toBe("string");
            expect(typeof j.code).toBe("string");
          } else if ((res.headers.get("content-type") ?? "").includes("ndjson")) {
            for (const l of text.trim().split("\n")) expect(JSON.parse(l)).not.toHaveProperty("status");
          }
        }),
      );
    }
    // both good and bad requests were among them
    expect(statuses.get(200) ?? 0).toBeGreaterThan(20);
    expect(statuses.get(400) ?? 0).toBeGreaterThan(20);
    expect(statuses.get(422) ?? 0).toBeGreaterThan(20);
    expect((await fetch(srv.url + "/health")).status).toBe(200);
    const ok = await fetch(srv.url + "/v1/act", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ instruction: "reach", images: [{ png: b64(png) }] }) });
    expect(ok.status).toBe(200);
  });
});
