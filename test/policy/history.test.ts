/**
 * History frames (finetune `history`, policy.json `history`): the camera frames of earlier steps
 * stacked above the current ones in the one image the model sees. Training builds frame t's image
 * from frames t-history..t of its episode (the first frames repeated at the start); a policy builds
 * the same image from its session's earlier requests (SessionStore.previous), in process and over
 * HTTP alike.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import type { RgbImage } from "../../src/data/episode.js";
import { stackHistory, tileVertical } from "../../src/data/image.js";
import { loadLanguageModel } from "../../src/engine/vlm.js";
import { createTinyDefaultModel } from "../../src/models/tiny-default.js";
import { evaluateClosedLoop, policyActor } from "../../src/policy/evaluate.js";
import { Policy } from "../../src/policy/policy.js";
import { SessionStore } from "../../src/policy/session.js";
import { loadTemplate } from "../../src/prompts/template.js";
import { loadTokenizerDir } from "../../src/prompts/tokenizer.js";
import { httpActor } from "../../src/serve/client.js";
import { startServer } from "../../src/serve/server.js";
import { generateDataset } from "../../src/sim/generate.js";
import { parseFinetuneConfig } from "../../src/train/config.js";
import { buildTrainData, type TrainExample } from "../../src/train/data.js";
import { testImage, writeTinyVlmPolicy } from "../support/tiny-vlm-policy.js";

const rows = (img: RgbImage, from: number, to: number) => Array.from(img.data.subarray(from * img.width * 3, to * img.width * 3));

describe("stacked frames", () => {
  it("tileVertical puts images top to bottom; stackHistory pads an episode's start with its oldest frame", () => {
    const [a, b, c] = [testImage(4, 2, 1), testImage(4, 3, 2), testImage(4, 2, 3)];
    const t = tileVertical([a, b]);
    expect([t.width, t.height]).toEqual([4, 5]);
    expect(rows(t, 0, 2)).toEqual(Array.from(a.data));
    expect(rows(t, 2, 5)).toEqual(Array.from(b.data));
    expect(() => tileVertical([a, testImage(5, 2)])).toThrow(/one width/);
    expect(stackHistory(c, [a], 0)).toBe(c);
    // history 2: [oldest, ..., current]; missing earlier frames repeat the oldest given, or the current one
    const d = testImage(4, 2, 4);
    const same = (x: RgbImage, y: RgbImage) => expect([x.width, x.height, ...Array.from(x.data)]).toEqual([y.width, y.height, ...Array.from(y.data)]);
    same(stackHistory(c, [a, d], 2), tileVertical([a, d, c]));
    same(stackHistory(c, [a], 2), tileVertical([a, a, c]));
    same(stackHistory(c, [], 2), tileVertical([c, c, c]));
    same(stackHistory(c, [d, a], 1), tileVertical([a, c]));
  });

  it("a session keeps its last `history` requests' images; none for a policy without history", () => {
    const policy = { ensemble: { mode: "none" as const, window: 1, executeK: 1, weight: 0.5, actK: 0, gripperDims: [], gripperThreshold: 0 }, spec: { horizon: 1, dims: 1 }, denormalize: (x: ArrayLike<number>) => Array.from(x) };
    const chunk = [[0.5]];
    const s = new SessionStore({ ...policy, history: 2 } as unknown as ConstructorParameters<typeof SessionStore>[0]);
    const img = (k: number) => [testImage(2, 2, k)];
    expect(s.previous("a")).toEqual([]);
    s.step("a", chunk, img(1));
    s.step("a", chunk, img(2));
    s.step("a", chunk, img(3));
    s.step("b", chunk, img(9));
    expect(s.previous("a")).toEqual([img(2), img(3)]);
    expect(s.previous("b")).toEqual([img(9)]);
    s.end("a");
    expect(s.previous("a")).toEqual([]);
    // a byte budget over all sessions' frames: the least recently used sessions go first
    const small = new SessionStore({ ...policy, history: 2 } as unknown as ConstructorParameters<typeof SessionStore>[0], { maxFrameBytes: 3 * 12 });
    for (const id of ["a", "b", "c"]) small.step(id, chunk, img(1));
    expect([small.previous("a").length, small.previous("b").length, small.previous("c").length]).toEqual([1, 1, 1]);
    small.step("c", chunk, img(2));
    expect([small.previous("a").length, small.previous("b").length, small.previous("c").length]).toEqual([0, 1, 2]);
    expect(small.size).toBe(2);
    const none = new SessionStore({ ...policy, history: 0 } as unknown as ConstructorParameters<typeof SessionStore>[0]);
    none.step("a", chunk, img(1));
    expect(none.previous("a")).toEqual([]);
  });
});

describe("a policy with history frames", () => {
  it("sees twice the image tokens, refuses a history of other cameras, and runs the same episodes in process and over HTTP", async () => {
    const with1 = Policy.load(writeTinyVlmPolicy({ patchSize: 28, initStd: 0.125 }, { history: 1 }));
    const plain = Policy.load(writeTinyVlmPolicy({ patchSize: 28, initStd: 0.125 }));
    try {
      expect(with1.history).toBe(1);
      const cams = [testImage(56, 56, 1), testImage(56, 56, 2)];
      const pads = (p: Policy, history?: RgbImage[][]) => p.buildPrompt({ images: cams, instruction: "reach the red block", ...(history ? { history } : {}) }).injectRows?.length ?? 0;
      expect(pads(plain)).toBeGreaterThan(0);
      expect(pads(with1)).toBe(2 * pads(plain));
      expect(pads(with1, [[testImage(56, 56, 3), testImage(56, 56, 4)]])).toBe(2 * pads(plain));
      expect(() => with1.buildPrompt({ images: cams, instruction: "x", history: [[testImage(56, 56, 3)]] })).toThrow(/history\[0\] has 1 camera images but the request has 2/);
      const srv = await startServer(with1);
      try {
        const o = { families: ["reach"] as const, episodes: 2, size: 56, seed: 4 };
        const a: Array<[boolean, number]> = [];
        const b: Array<[boolean, number]> = [];
        const local = await evaluateClosedLoop(policyActor(with1), { ...o, onEpisode: (e) => a.push([e.success, e.steps]) });
        const remote = await evaluateClosedLoop(httpActor(srv.url), { ...o, onEpisode: (e) => b.push([e.success, e.steps]) });
        expect(b).toEqual(a);
        expect({ ...remote, seconds: 0 }).toEqual({ ...local, seconds: 0 });
        // the server's session gives the second request the first one's images
        const post = async (images: RgbImage[]) => {
          const body = { instruction: "reach the red block", session: "h", images: images.map((img) => ({ rgb: Buffer.from(img.data).toString("base64"), width: img.width, height: img.height })) };
          const res = await fetch(`${srv.url}/v1/act`, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
          expect(res.status).toBe(200);
          return ((await res.json()) as { normalized: number[][] }).normalized;
        };
        const [first, second] = [[testImage(56, 56, 5), testImage(56, 56, 6)], [testImage(56, 56, 7), testImage(56, 56, 8)]];
        await post(first);
        const served = await post(second);
        const instruction = "reach the red block";
        expect(served).toEqual((await with1.act({ images: second, instruction, history: [first] })).normalized);
        expect(served).not.toEqual((await with1.act({ images: second, instruction })).normalized);
      } finally {
        await srv.close();
      }
    } finally {
      with1.dispose();
      plain.dispose();
    }
  });
});

describe("training with history frames", () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "vlatext-history-"));
  let model = "";
  let data = "";
  beforeAll(async () => {
    data = path.join(root, "data");
    await generateDataset(data, { episodes: 2, seed: 1, size: 28, storage: "png", tasks: ["reach"] });
    model = createTinyDefaultModel(path.join(root, "model"), { seed: 1, hiddenSize: 32, layers: 1, visionDepth: 1, visionHidden: 16 });
  });
  const examples = async (history: number, train: boolean): Promise<TrainExample[]> => {
    const cfg = parseFinetuneConfig({ model, output: path.join(root, "run"), data: [{ dataset: data, recipe: "toy-sim" }], history, imageSize: 56, vision: { train }, lora: { enabled: false } }, "test");
    const loaded = loadLanguageModel(model, { dtype: "f32", trainVision: train, threads: 1 });
    try {
      const d = await buildTrainData(cfg, loadTokenizerDir(model), loadTemplate(cfg.template), () => {}, loaded.vlm);
      return [...d.train.flat(), ...d.val].filter((e) => e.episode === d.train.flat()[0]?.episode).sort((x, y) => x.frame - y.frame);
    } finally {
      loaded.dispose();
    }
  };

  it("frame t's image holds frames t-1 and t (frame 0 twice), and a frozen tower's features cover both", async () => {
    const stacked = await examples(1, true);
    expect(stacked.length).toBeGreaterThan(3);
    const img = (t: number) => stacked[t]!.image!.rgb!;
    const h = img(0).height / 2;
    expect(img(0).width).toBe(112); // two 56-pixel cameras side by side
    expect(h).toBe(56);
    expect(rows(img(0), 0, h)).toEqual(rows(img(0), h, 2 * h));
    for (const t of [1, 2, stacked.length - 1]) {
      expect(rows(img(t), 0, h)).toEqual(rows(img(t - 1), h, 2 * h));
      expect(rows(img(t), 0, h)).not.toEqual(rows(img(t), h, 2 * h));
    }
    // (56-pixel cameras: no image is below the processor's minimum size, so tokens follow the area)
    const [frozen1, frozen0] = [await examples(1, false), await examples(0, false)];
    expect(frozen1.length).toBe(frozen0.length);
    expect(frozen1[0]!.image!.inject!.length).toBe(2 * frozen0[0]!.image!.inject!.length);
    expect(frozen1[0]!.image!.injectRows.length).toBe(2 * frozen0[0]!.image!.injectRows.length);
    // a text-only model has no camera frames to stack: named before any work
    const cfg = parseFinetuneConfig({ model, output: path.join(root, "run"), data: [{ dataset: data, recipe: "toy-sim" }], history: 1 }, "test");
    await expect(buildTrainData(cfg, loadTokenizerDir(model), loadTemplate(cfg.template), () => {})).rejects.toThrow(/history 1: history frames are camera frames, but .* is a text-only model/);
  }, 120_000);
});
