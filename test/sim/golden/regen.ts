/**
 * Regenerate the golden renders next to this file (64x64, both cameras):
 *   npx tsx test/sim/golden/regen.ts
 * Look at them before committing (e.g. `vlatext sim render` upscales); the
 * test render.test.ts re-renders these scenes and compares pixel by pixel.
 */
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { encodePng } from "../../../src/data/image.js";
import { Renderer } from "../../../src/sim/render.js";
import { GOLDEN_CAMERAS, GOLDEN_SIZE, goldenScenes } from "./scenes.js";

const here = path.dirname(fileURLToPath(import.meta.url));
const renderer = new Renderer(GOLDEN_SIZE, GOLDEN_SIZE);
for (const { name, world } of goldenScenes()) {
  for (const cam of GOLDEN_CAMERAS) {
    const file = path.join(here, `${name}-${cam}.png`);
    fs.writeFileSync(file, encodePng(renderer.render(world, cam)));
    console.log(`wrote ${path.relative(process.cwd(), file)}`);
  }
}
