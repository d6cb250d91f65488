/**
 * ffmpeg resolution (env, PATH, npm fallback) and decoding with whichever
 * binaries this machine has. The npm-shipped static ffmpeg is an optional
 * dependency; its tests skip, saying why, where it is absent.
 */
import fs from "node:fs";
import { createRequire } from "node:module";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { LeRobotDataset } from "../../src/data/lerobot/dataset.js";
import { findFfmpeg } from "../../src/data/lerobot/ffmpeg.js";
import { writeLeRobotV21 } from "../../src/data/lerobot/writer.js";
import { meanAbsDiff, synthEpisode, synthLayout } from "./synth.js";

function npmBinary(): string | undefined {
  try {
    const pkg = createRequire(import.meta.url).resolve(`@ffmpeg-installer/${process.platform}-${process.arch}/package.json`);
    const bin = path.join(path.dirname(pkg), "ffmpeg");
    return fs.existsSync(bin) ? bin : undefined;
  } catch {
    return undefined;
  }
}
const npm = npmBinary();
if (!npm) console.warn("skipping npm-ffmpeg tests: optional dependency @ffmpeg-installer is not installed");
const FIXTURE = fileURLToPath(new URL("../../../shared/fixtures/lerobot-v21-g1", import.meta.url));
const hasFixture = fs.existsSync(path.join(FIXTURE, "meta", "info.json"));

const root = fs.mkdtempSync(path.join(os.tmpdir(), "vlatext-ff-"));
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

describe("findFfmpeg", () => {
  it("VLATEXT_FFMPEG wins, then PATH", () => {
    const sys = findFfmpeg({ PATH: process.env.PATH ?? "" });
    expect(["system", "npm"]).toContain(sys.source);
    expect(sys.version).not.toBe("unknown");
    const env = findFfmpeg({ VLATEXT_FFMPEG: sys.path, PATH: "" });
    expect(env).toMatchObject({ source: "env", path: sys.path });
  });

  it("a VLATEXT_FFMPEG that does not run is a VIDEO_DECODE error with the install hint", () => {
    expect(() => findFfmpeg({ VLATEXT_FFMPEG: path.join(root, "no-ffmpeg") })).toThrow(/does not run[\s\S]*apt-get install -y ffmpeg/);
  });

  it.skipIf(!npm)("falls back to the npm-shipped ffmpeg when none is on PATH", () => {
    const ff = findFfmpeg({ PATH: "" });
    expect(ff.source).toBe("npm");
    expect(ff.path).toBe(npm);
  });
});

describe.skipIf(!npm)("decoding with the npm-shipped (old) ffmpeg", () => {
  it("reads an h264 dataset written by the system ffmpeg frame for frame", async () => {
    const layout = synthLayout("mp4", { top: { width: 32, height: 24 } });
    const ep = synthEpisode(layout, 8, 4, "t");
    const dir = path.join(root, "ds");
    await writeLeRobotV21(dir, layout, [ep]);
    const ds = await LeRobotDataset.open(dir);
    const old = findFfmpeg({ PATH: "" });
    const frames = ep.images.top ?? [];
    let n = 0;
    for await (const f of ds.readFrames(0, "observation.images.top", { width: 32, height: 24, ffmpeg: old })) {
      const own = meanAbsDiff(f.image.data, (frames[n] as { data: Uint8Array }).data);
      expect(own).toBeLessThan(8);
      if (frames[n + 1]) expect(meanAbsDiff(f.image.data, (frames[n + 1] as { data: Uint8Array }).data)).toBeGreaterThan(own);
      n++;
    }
    expect(n).toBe(8);
  });

  it.skipIf(!hasFixture)("decodes the AV1 fixture (libaom) like the system ffmpeg does", async () => {
    const ds = await LeRobotDataset.open(FIXTURE);
    const ts = [0, 5, 10].map((s) => s);
    const grab = async (ff: ReturnType<typeof findFfmpeg>) => {
      const out: Uint8Array[] = [];
      for await (const f of ds.readFrames(1, "observation.images.cam_high", { width: 64, height: 48, timestamps: ts, ffmpeg: ff })) out.push(f.image.data);
      return out;
    };
    const a = await grab(findFfmpeg({ PATH: "" }));
    const b = await grab(findFfmpeg());
    expect(a).toHaveLength(3);
    a.forEach((img, i) => expect(meanAbsDiff(img, b[i] as Uint8Array)).toBeLessThan(2));
  });
});
