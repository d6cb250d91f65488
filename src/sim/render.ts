/**
 * A small software rasterizer for the tabletop world: filled triangles with a
 * z-buffer (1/depth, interpolated linearly in screen space, which is exact
 * under perspective), back-face culling, flat colours from mesh.ts, one
 * sample per pixel centre. No dependencies; one Renderer per image size
 * reuses its buffers, so rendering allocates only the output image.
 */
import { VlaError } from "../errors.js";
import type { RgbImage } from "../data/episode.js";
import { CAMERAS, CAMERA_NAMES, makeView, placeCamera, project, type CameraName, type View } from "./camera.js";
import { BACKGROUND_RGB, TriangleList, buildMesh } from "./mesh.js";
import type { World } from "./world.js";

/** Vertices nearer than this to a camera are not drawn (no near-plane clipping needed: the scene stays far). */
const NEAR = 0.02;

/**
 * Rasterize triangles [0, count) into `rgb` (H, W, 3) with depth buffer `depth` (H, W) of
 * 1/depth values (0 = empty). `screen` is scratch for 3 projected vertices.
 */
export function rasterize(view: View, tris: TriangleList, rgb: Uint8Array, depth: Float64Array, screen: Float64Array, count = tris.count): void {
  const W = view.width;
  const H = view.height;
  const P = tris.positions;
  const C = tris.colors;
  for (let t = 0; t < count; t++) {
    const o = t * 9;
    project(view, P[o] as number, P[o + 1] as number, P[o + 2] as number, screen, 0);
    project(view, P[o + 3] as number, P[o + 4] as number, P[o + 5] as number, screen, 3);
    project(view, P[o + 6] as number, P[o + 7] as number, P[o + 8] as number, screen, 6);
    const x0 = screen[0] as number, y0 = screen[1] as number, iz0 = screen[2] as number;
    const x1 = screen[3] as number, y1 = screen[4] as number, iz1 = screen[5] as number;
    const x2 = screen[6] as number, y2 = screen[7] as number, iz2 = screen[8] as number;
    if (iz0 <= 0 || iz1 <= 0 || iz2 <= 0 || 1 / iz0 < NEAR || 1 / iz1 < NEAR || 1 / iz2 < NEAR) continue;
    // Screen y points down, so a triangle that is counter-clockwise seen from its front has negative area here.
    const area = (x1 - x0) * (y2 - y0) - (x2 - x0) * (y1 - y0);
    if (area >= 0) continue; // back face or degenerate
    const minX = Math.max(0, Math.floor(Math.min(x0, x1, x2)));
    const maxX = Math.min(W - 1, Math.ceil(Math.max(x0, x1, x2)));
    const minY = Math.max(0, Math.floor(Math.min(y0, y1, y2)));
    const maxY = Math.min(H - 1, Math.ceil(Math.max(y0, y1, y2)));
    if (minX > maxX || minY > maxY) continue;
    // Edge functions e_k(p) >= 0 inside (signs flipped for the negative area), stepped incrementally.
    const a0 = y2 - y1, b0 = x1 - x2;
    const a1 = y0 - y2, b1 = x2 - x0;
    const a2 = y1 - y0, b2 = x0 - x1;
    const px = minX + 0.5;
    const py = minY + 0.5;
    let r0 = a0 * (px - x1) + b0 * (py - y1);
    let r1 = a1 * (px - x2) + b1 * (py - y2);
    let r2 = a2 * (px - x0) + b2 * (py - y0);
    const inv = 1 / -area;
    const cr = C[t * 3] as number;
    const cg = C[t * 3 + 1] as number;
    const cb = C[t * 3 + 2] as number;
    for (let y = minY; y <= maxY; y++) {
      let e0 = r0, e1 = r1, e2 = r2;
      let i = y * W + minX;
      for (let x = minX; x <= maxX; x++, i++) {
        if (e0 >= 0 && e1 >= 0 && e2 >= 0) {
          const iz = (e0 * iz0 + e1 * iz1 + e2 * iz2) * inv;
          if (iz > (depth[i] as number)) {
            depth[i] = iz;
            const p = i * 3;
            rgb[p] = cr;
            rgb[p + 1] = cg;
            rgb[p + 2] = cb;
          }
        }
        e0 += a0;
        e1 += a1;
        e2 += a2;
      }
      r0 += b0;
      r1 += b1;
      r2 += b2;
    }
  }
}

/** Renders the world from the named cameras at one image size. */
export class Renderer {
  readonly width: number;
  readonly height: number;
  /** The fixed cameras' views (gripper-mounted ones are placed per frame). */
  private readonly views: Partial<Record<CameraName, View>>;
  private readonly tris = new TriangleList();
  private readonly depth: Float64Array;
  private readonly screen = new Float64Array(9);

  constructor(width = 64, height = 64) {
    if (!Number.isInteger(width) || !Number.isInteger(height) || width < 8 || height < 8 || width > 2048 || height > 2048) {
      throw new VlaError("SIM_INVALID", `render size ${width}x${height} is out of range`, "use integer sizes from 8 to 2048 (default 64x64)");
    }
    this.width = width;
    this.height = height;
    this.views = Object.fromEntries(CAMERA_NAMES.flatMap((n) => ("mount" in CAMERAS[n] ? [] : [[n, makeView(CAMERAS[n], width, height)]])));
    this.depth = new Float64Array(width * height);
  }

  /** Render the world from several cameras; the mesh is built once. */
  renderAll<K extends CameraName>(world: World, cameras: ReadonlyArray<K>): Record<K, RgbImage> {
    buildMesh(world, this.tris);
    const out = {} as Record<K, RgbImage>;
    for (const cam of cameras) out[cam] = this.draw(world, cam);
    return out;
  }

  render(world: World, camera: CameraName): RgbImage {
    buildMesh(world, this.tris);
    return this.draw(world, camera);
  }

  private draw(world: World, camera: CameraName): RgbImage {
    const spec = CAMERAS[camera];
    if (!spec) throw new VlaError("SIM_INVALID", `unknown camera '${String(camera)}'`, `use one of: ${CAMERA_NAMES.join(", ")}`);
    const view = this.views[camera] ?? makeView(placeCamera(spec, world.gripper), this.width, this.height);
    const n = this.width * this.height;
    const data = new Uint8Array(n * 3);
    for (let i = 0; i < n; i++) {
      data[i * 3] = BACKGROUND_RGB[0];
      data[i * 3 + 1] = BACKGROUND_RGB[1];
      data[i * 3 + 2] = BACKGROUND_RGB[2];
    }
    this.depth.fill(0);
    // a gripper-mounted camera sits in the gripper's body: its rail, palm and stem are not drawn in its view
    rasterize(view, this.tris, data, this.depth, this.screen, "mount" in spec ? this.tris.bodyStart : this.tris.count);
    return { width: this.width, height: this.height, data };
  }
}
