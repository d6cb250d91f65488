/** The dataset recipe for a camera list (src/experiments/recipes.ts): a shipped one tiles exactly those cameras, else one is written. */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { loadRecipe } from "../../src/data/recipe.js";
import { toySimRecipeRef, writeToySimRecipe } from "../../src/experiments/recipes.js";
import type { CameraName } from "../../src/sim/camera.js";

describe("toySimRecipeRef", () => {
  it("names a shipped recipe whose cameras are the list, in order; writes toy-sim with the cameras replaced otherwise", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "vlatext-recipes-"));
    const lists: CameraName[][] = [["top", "front"], ["top", "wrist"], ["top"], ["front", "wrist"], ["top", "front", "wrist"]];
    for (const cameras of lists) {
      const ref = toySimRecipeRef(cameras, dir);
      const shipped = ref !== path.join(dir, "recipe.json");
      if (!shipped) expect(fs.existsSync(ref)).toBe(false); // pure: nothing written yet
      expect(writeToySimRecipe(cameras, dir)).toBe(ref);
      const r = loadRecipe(ref);
      expect(Object.entries(r.cameras)).toEqual(cameras.map((c) => [`observation.images.${c}`, c]));
      // everything but the cameras is toy-sim's
      const { name: _n, description: _d, cameras: _c, ...rest } = r;
      const { name: _tn, description: _td, cameras: _tc, ...toy } = loadRecipe("toy-sim");
      expect(rest).toEqual(toy);
      if (!shipped) fs.rmSync(ref);
    }
    expect(toySimRecipeRef(["top", "wrist"], dir)).toBe("toy-sim-top-wrist");
  });
});
