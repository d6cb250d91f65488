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

describe("wrist camera", () => {
  const S = 64;
  const table = shade(TABLE_RGB, [0, 0, 1]);
  const redTop = shade(COLORS.red, [0, 0, 1]);
  /** Columns (at the middle row) and rows (at the middle column) where the block's top face shows. */
  const extent = (img: { width: number; height: number; data: Uint8Array }) => {
    const cols: number[] = [];
    const rows: number[] = [];
    for (let x = 0; x < img.width; x++) if (pixel(img, x, img.height >> 1).join() === redTop.join()) cols.push(x);
    for (let y = 0; y < img.height; y++) if (pixel(img, img.width >> 1, y).join() === redTop.join()) rows.push(y);
    // first to last: the gripper's drop shadow lies on the block's top, in the middle
    return { cx: cols.length ? (cols[0]! + cols[cols.length - 1]!) / 2 : NaN, cy: rows.length ? (rows[0]! + rows[rows.length - 1]!) / 2 : NaN, width: cols.length ? cols[cols.length - 1]! - cols[0]! + 1 : 0 };
  };

  it("looks straight down through the palm: the block under the fingertips is at the image centre, the palm is not drawn", () => {
    const r = new Renderer(S, S);
    const over = r.render(makeWorld([["red", 0, 0]], { x: 0, y: 0, z: 0.1 }), "wrist");
    const e = extent(over);
    expect(e.cx).toBeCloseTo((S - 1) / 2, 5);
    expect(e.cy).toBeCloseTo((S - 1) / 2, 5);
    // table beside the drop shadow where the palm (3 cm along x, 2-3 cm below the eye) would fill the view
    const empty = r.render(makeWorld([["red", 0.25, 0.25]], { x: -0.1, y: -0.1, z: 0.1 }), "wrist");
    expect(pixel(empty, (S >> 1) + 10, S >> 1)).toEqual(table);
  });

  it("moves and turns with the gripper: the block shifts against the gripper's x along the image, grows as it comes down", () => {
    const r = new Renderer(S, S);
    const at = (x: number, y: number, z: number, yaw = 0) => extent(r.render(makeWorld([["red", 0, 0]], { x, y, z, yaw }), "wrist"));
    const centre = at(0, 0, 0.12);
    const right = at(0.01, 0, 0.12); // gripper 1 cm along +x: the block is 1 cm to its -x, left in the image
    expect(right.cx).toBeLessThan(centre.cx - 2); // a centimetre is several pixels at this height
    expect(right.cy).toBeCloseTo(centre.cy, 5);
    const forward = at(0, 0.01, 0.12); // gripper 1 cm along +y: the block is behind, lower in the image
    expect(forward.cy).toBeGreaterThan(centre.cy + 2);
    // yaw 90 degrees: the finger axis (image right) is world +y, so a world-y offset shifts the block sideways
    const turned = at(0, 0.01, 0.12, Math.PI / 2);
    expect(turned.cx).toBeLessThan(centre.cx - 2);
    expect(turned.cy).toBeCloseTo(centre.cy, 5);
    // the top face 15 cm below the eye is about 17 px wide, 12 cm below it about 21 px
    expect(at(0, 0, 0.09).width).toBeGreaterThan(centre.width + 2);
  });

  it("renders with the fixed cameras in one call; rendering the top and front cameras is unchanged by it", () => {
    const r = new Renderer(S, S);
    const w = makeWorld([["red", 0.05, 0.02]], { x: 0.03, y: 0, z: 0.12 });
    const all = r.renderAll(w, ["top", "front", "wrist"]);
    const two = new Renderer(S, S).renderAll(w, ["top", "front"]);
    expect(Buffer.compare(Buffer.from(all.top.data), Buffer.from(two.top.data))).toBe(0);
    expect(Buffer.compare(Buffer.from(all.front.data), Buffer.from(two.front.data))).toBe(0);
    expect(all.wrist.width).toBe(S);
  });
});
