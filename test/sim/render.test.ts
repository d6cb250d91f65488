import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { decodeImageBytes } from "../../src/data/image.js";
import { makeView } from "../../src/sim/camera.js";
import { AMBIENT, COLORS, DIFFUSE, GRIPPER_BODY_RGB, LIGHT_DIR, TABLE_RGB } from "../../src/sim/colors.js";
import { TriangleList } from "../../src/sim/mesh.js";
import { Renderer, rasterize } from "../../src/sim/render.js";
import { GOLDEN_CAMERAS, GOLDEN_SIZE, goldenScenes } from "./golden/scenes.js";
import { makeWorld } from "./helpers.js";

const GOLDEN_DIR = path.join(__dirname, "golden");
/**
 * Pixels allowed to differ from a golden: 0 on the machine that wrote them.
 * The tolerance covers only edge pixels flipping where another platform's
 * Math.sin/cos/tan differ in the last bit (a vertex a hair across a pixel
 * centre); anything that moves a face, a colour or the camera changes far more.
 */
const MAX_DIFF_PIXELS = 4;

const shade = (rgb: readonly number[], normal: [number, number, number]) => {
  const s = AMBIENT + DIFFUSE * Math.max(0, normal[0] * LIGHT_DIR[0] + normal[1] * LIGHT_DIR[1] + normal[2] * LIGHT_DIR[2]);
  return rgb.map((c) => Math.min(255, Math.round(c * s)));
};
const pixel = (img: { width: number; data: Uint8Array }, x: number, y: number) => Array.from(img.data.subarray((y * img.width + x) * 3, (y * img.width + x) * 3 + 3));

describe("golden renders", () => {
  const renderer = new Renderer(GOLDEN_SIZE, GOLDEN_SIZE);
  for (const { name, world } of goldenScenes()) {
    for (const cam of GOLDEN_CAMERAS) {
      it(`${name} from ${cam} matches golden/${name}-${cam}.png`, () => {
        const golden = decodeImageBytes(fs.readFileSync(path.join(GOLDEN_DIR, `${name}-${cam}.png`)), `${name}-${cam}.png`);
        const img = renderer.render(world, cam);
        expect([img.width, img.height]).toEqual([golden.width, golden.height]);
        let diff = 0;
        for (let i = 0; i < img.width * img.height; i++) {
          if (img.data[i * 3] !== golden.data[i * 3] || img.data[i * 3 + 1] !== golden.data[i * 3 + 1] || img.data[i * 3 + 2] !== golden.data[i * 3 + 2]) diff++;
        }
        expect(diff, `pixels differing from the golden (regenerate with: npx tsx test/sim/golden/regen.ts)`).toBeLessThanOrEqual(MAX_DIFF_PIXELS);
      });
    }
  }
});

describe("renderer", () => {
  it("the top camera sees a block's shaded top face where the block is, and table elsewhere", () => {
    const w = makeWorld([["red", 0, 0]], { x: 0.25, y: -0.25, z: 0.2 });
    const img = new Renderer(64, 64).render(w, "top");
    expect(pixel(img, 32, 32)).toEqual(shade(COLORS.red, [0, 0, 1]));
    expect(pixel(img, 10, 10)).toEqual(shade(TABLE_RGB, [0, 0, 1]));
  });

  it("the z-buffer keeps the nearest surface: the gripper above a block hides it from the top camera", () => {
    const w = makeWorld([["red", 0, 0]], { x: 0, y: 0, z: 0.1 });
    const img = new Renderer(64, 64).render(w, "top");
    // the stem's top face is straight above the block's centre
    expect(pixel(img, 32, 32)).toEqual(shade(GRIPPER_BODY_RGB, [0, 0, 1]));
  });

  it("drawing order does not matter: overlapping triangles give the same image in either order", () => {
    const view = makeView({ eye: [0, 0, 1], target: [0, 0, 0], up: [0, 1, 0], fovYDeg: 40 }, 32, 32);
    const draw = (order: number[]) => {
      const tris = new TriangleList();
      const quads = [
        { z: 0.0, rgb: [200, 0, 0] as const, half: 0.2 },
        { z: 0.1, rgb: [0, 200, 0] as const, half: 0.1 },
      ];
      for (const k of order) {
        const q = quads[k] as (typeof quads)[number];
        tris.flatSquare(0, 0, q.z, q.half, q.rgb);
      }
      const rgb = new Uint8Array(32 * 32 * 3);
      rasterize(view, tris, rgb, new Float64Array(32 * 32), new Float64Array(9));
      return rgb;
    };
    const a = draw([0, 1]);
    expect(Array.from(draw([1, 0]))).toEqual(Array.from(a));
    expect(pixel({ width: 32, data: a }, 16, 16)).toEqual(shade([0, 200, 0], [0, 0, 1]));
  });

  it("renders at any size, and both cameras change when the gripper moves", () => {
    const r = new Renderer(96, 48);
    const w = makeWorld([["red", 0, 0]], { x: 0, y: 0, z: 0.2 });
    const a = r.renderAll(w, ["top", "front"]);
    expect([a.top.width, a.top.height, a.top.data.length]).toEqual([96, 48, 96 * 48 * 3]);
    w.step({ dx: 0.05, dy: 0, dz: -0.05, dyaw: 0, close: false });
    const b = r.renderAll(w, ["top", "front"]);
    expect(Buffer.compare(Buffer.from(a.top.data), Buffer.from(b.top.data))).not.toBe(0);
    expect(Buffer.compare(Buffer.from(a.front.data), Buffer.from(b.front.data))).not.toBe(0);
  });
});
