/**
 * NVlabs/vla0's deploy API (rv_train/deploy/service.py + sample_client.py): requests built as
 * its sample client builds them; /predict_base64 answers the (H, D) chunk, and
 * /predict_base64_stream the same actions as NDJSON {"index", "value": [[D]]} lines, then
 * {"time_taken"}; both documented in the OpenAPI document.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Policy } from "../../src/policy/policy.js";
import { encodeNpyImage } from "../../src/serve/npy.js";
import { startServer, type RunningServer } from "../../src/serve/server.js";
import { post, postStream, rgbBody } from "../support/http.js";
import { testImage, writeTinyVlmPolicy } from "../support/tiny-vlm-policy.js";

let policy: Policy;
let srv: RunningServer;
beforeAll(async () => {
  policy = Policy.load(writeTinyVlmPolicy({ hiddenSize: 64, layers: 2, visionHidden: 32, visionDepth: 2, patchSize: 28, initStd: 0.125 }));
  srv = await startServer(policy, { defaultInstruction: "reach the red block" });
});
afterAll(async () => {
  await srv?.close();
  policy?.dispose();
});

// sample_client.py: base64.b64encode(np.save(np.array(rgb, dtype=np.uint8)))
const rgbAsBase64 = (seed: number) => Buffer.from(encodeNpyImage(testImage(56, 56, seed))).toString("base64");
const payload = (instr: string | null) => ({ base64_rgb: [rgbAsBase64(1), rgbAsBase64(2)], state: [-8.177, -98.898, 99.637, 50.923, -1.651, 6.6], instr });

describe("VLA-0's deploy API", () => {
  it("/predict_base64: the (H, D) chunk in robot units, the same as /v1/act for the same cameras", async () => {
    const r = await post(srv.url, "/predict_base64", payload("Push the apple to the block"));
    expect(r.status).toBe(200);
    expect(r.headers.get("content-type")).toBe("application/json");
    expect(r.json).toHaveLength(8);
    for (const row of r.json) expect(row).toHaveLength(7);
    const act = await post(srv.url, "/v1/act", { instruction: "Push the apple to the block", images: [testImage(56, 56, 1), testImage(56, 56, 2)].map(rgbBody) });
    expect(r.json).toEqual(act.json.chunk);
  });

  it("/predict_base64_stream: {index, value: [[D]]} per timestep, the same actions, then {time_taken}", async () => {
    const whole = (await post(srv.url, "/predict_base64", payload("Push the apple to the block"))).json as number[][];
    const s = await postStream(srv.url, "/predict_base64_stream", payload("Push the apple to the block"));
    expect(s.status).toBe(200);
    expect(s.headers.get("content-type")).toBe("application/x-ndjson");
    expect(s.lines).toHaveLength(9);
    s.lines.slice(0, 8).forEach((l, i) => {
      expect(Object.keys(l).sort()).toEqual(["index", "value"]);
      expect(l.index).toBe(i);
      expect(l.value).toEqual([whole[i]]); // VLA-0's one-step action: shape (1, D)
    });
    expect(Object.keys(s.lines[8])).toEqual(["time_taken"]);
    expect(s.lines[8].time_taken).toBeGreaterThan(0);
    expect(s.lines[8].time_taken).toBeLessThan(60);
  });

  it("validates like its pydantic model: unknown fields ignored, wrong types named (422), instr optional", async () => {
    expect((await post(srv.url, "/predict_base64", { ...payload("reach"), extra: 1 })).status).toBe(200);
    // no instr: the server's --instruction
    const none = await post(srv.url, "/predict_base64", payload(null));
    expect(none.status).toBe(200);
    expect(none.json).toEqual((await post(srv.url, "/predict_base64", payload("reach the red block"))).json);
    for (const [body, re] of [
      [{ state: [] }, /base64_rgb/],
      [{ base64_rgb: "x", state: [] }, /base64_rgb/],
      [{ base64_rgb: [rgbAsBase64(1)] }, /state/],
      [{ base64_rgb: [rgbAsBase64(1)], state: ["a"] }, /state\.0/],
      [{ base64_rgb: [rgbAsBase64(1)], state: [], instr: 5 }, /instr/],
    ] as Array<[unknown, RegExp]>) {
      for (const route of ["/predict_base64", "/predict_base64_stream"]) {
        const r = await post(srv.url, route, body);
        expect(r.status, `${route} ${JSON.stringify(body)}`).toBe(422);
        expect(r.json.error).toMatch(re);
        expect(r.json.code).toBe("FIELD_INVALID");
      }
    }
    const plain = await startServer(policy);
    try {
      const r = await post(plain.url, "/predict_base64_stream", payload(null));
      expect(r.status).toBe(422);
      expect(r.json.error).toMatch(/instr: required/);
    } finally {
      await plain.close();
    }
  });

  it("is documented in the OpenAPI document", async () => {
    const doc = (await (await fetch(srv.url + "/openapi.json")).json()) as { paths: Record<string, { post?: { requestBody: any; responses: Record<string, { description: string }> } }> };
    for (const p of ["/predict_base64", "/predict_base64_stream"]) {
      const op = doc.paths[p]!.post!;
      expect(Object.keys(op.requestBody.content["application/json"].schema.properties)).toEqual(["base64_rgb", "state", "instr"]);
      expect(Object.keys(op.responses)).toEqual(expect.arrayContaining(["200", "413", "422", "503", "504"]));
    }
    expect(doc.paths["/predict_base64_stream"]!.post!.responses["200"]!.description).toMatch(/"index": t, "value": \[\[D numbers\]\]}.*"time_taken"/);
  });
});
