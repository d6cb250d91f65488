import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseActionSpec } from "../../src/actions/spec.js";
import { LeRobotDataset } from "../../src/data/lerobot/dataset.js";
import { writeLeRobotV21 } from "../../src/data/lerobot/writer.js";
import { bindRecipe, loadRecipe, parseRecipe, recipesDir, selectDims, splitEpisodes, type Recipe } from "../../src/data/recipe.js";
import { synthEpisode, synthLayout } from "./synth.js";

const root = fs.mkdtempSync(path.join(os.tmpdir(), "vlatext-recipe-"));
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));
const dir = path.join(root, "ds");

beforeAll(async () => {
  const layout = synthLayout("png");
  await writeLeRobotV21(dir, layout, [synthEpisode(layout, 4, 1, "a"), synthEpisode(layout, 3, 2, "b")]);
});

function recipe(over: Record<string, unknown> = {}): Recipe {
  return parseRecipe({
    name: "synth",
    action: { feature: "action" },
    state: { feature: "observation.state" },
    cameras: { "observation.images.top": "top", "observation.images.front": "front" },
    actionSpec: { names: ["x", "y", "z", "gripper"] },
    ...over,
  });
}

describe("recipes", () => {
  it("every shipped recipe parses and its action spec passes the spec validator", () => {
    const files = fs.readdirSync(recipesDir()).filter((f) => f.endsWith(".json"));
    expect(files.sort()).toEqual(expect.arrayContaining(["lerobot-v21-g1.json", "toy-sim.json"]));
    for (const f of files) {
      const r = loadRecipe(path.join(recipesDir(), f));
      expect(r.name).toBe(f.replace(/\.json$/, ""));
      parseActionSpec(r.actionSpec, `${f} actionSpec`);
    }
    const toy = loadRecipe("toy-sim");
    expect(toy.action.feature).toBe("action");
    expect(toy.state?.feature).toBe("observation.state");
    expect(Object.keys(toy.cameras)).toEqual(["observation.images.top", "observation.images.front"]);
    expect(parseActionSpec(toy.actionSpec).dims).toBe(7);
  });

  it("names the bad field", () => {
    expect(() => recipe({ action: { feature: "action", slice: [3, 1] } })).toThrow(/action\.slice.*start < end/s);
    expect(() => recipe({ cameras: {} })).toThrow(/cameras: at least one camera/);
    expect(() => recipe({ cameras: { a: "top", b: "top" } })).toThrow(/camera names must be unique/);
    expect(() => recipe({ splits: { train: [0, 1], val: [1] } })).toThrow(/splits\.train\.1: episode 1 is in both/);
    expect(() => recipe({ extra: 1 })).toThrow(/extra/);
    expect(() => loadRecipe("no-such-recipe")).toThrow(/recipe not found.*toy-sim/s);
  });

  it("binds to a dataset, slicing action dimensions", async () => {
    const ds = await LeRobotDataset.open(dir);
    const b = bindRecipe(recipe({ action: { feature: "action", slice: [1, 3] }, actionSpec: { names: ["y", "z"] } }), ds);
    expect(b.action).toMatchObject({ key: "action", start: 1, end: 3, size: 4, names: ["y", "z"] });
    expect(b.cameras.map((c) => [c.name, c.kind, c.width, c.height])).toEqual([["top", "image", 32, 24], ["front", "image", 16, 16]]);
    const t = await ds.readEpisodeTable(0, { columns: ["action"] });
    const sliced = selectDims(t.column("action").data, t.length, b.action);
    expect(sliced.length).toBe(8);
    expect(sliced[2]).toBe(t.column("action").data[4 + 1]);
  });

  it("binding errors name the recipe field and what the dataset has", async () => {
    const ds = await LeRobotDataset.open(dir);
    expect(() => bindRecipe(recipe({ action: { feature: "action", slice: [0, 9] }, actionSpec: {} }), ds)).toThrow(/slice \[0, 9\) exceeds 'action' which has 4/);
    expect(() => bindRecipe(recipe({ actionSpec: { names: ["a"] } }), ds)).toThrow(/actionSpec\.names has 1 entries but action 'action' gives 4/);
    expect(() => bindRecipe(recipe({ cameras: { "observation.images.side": "side" } }), ds)).toThrow(/'observation\.images\.side' does not exist/);
    expect(() => bindRecipe(recipe({ cameras: { action: "a" } }), ds)).toThrow(/not a camera/);
  });

  it("splits: explicit lists are checked, fractions are seeded and disjoint", () => {
    expect(splitEpisodes(recipe({ splits: { train: [2, 1], val: [3] } }), [1, 2, 3])).toEqual({ train: [1, 2], val: [3] });
    expect(() => splitEpisodes(recipe({ splits: { train: [0], val: [] } }), [1, 2])).toThrow(/splits\.train lists episode\(s\) 0/);
    const eps = Array.from({ length: 50 }, (_, i) => i + 10);
    const a = splitEpisodes(recipe({ splits: { valFraction: 0.2, seed: 7 } }), eps);
    expect(a.val).toHaveLength(10);
    expect([...a.train, ...a.val].sort((x, y) => x - y)).toEqual(eps);
    expect(splitEpisodes(recipe({ splits: { valFraction: 0.2, seed: 7 } }), [...eps].reverse())).toEqual(a);
    expect(splitEpisodes(recipe({ splits: { valFraction: 0.2, seed: 8 } }), eps).val).not.toEqual(a.val);
    expect(splitEpisodes(recipe({ splits: { valFraction: 0.01, seed: 0 } }), [1, 2]).val).toHaveLength(1);
    expect(splitEpisodes(recipe(), [1, 2])).toEqual({ train: [1, 2], val: [] });
  });
});
