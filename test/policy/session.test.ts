/** Sessions: temporal ensembling per robot, a TTL per session and a bound on how many are kept. */
import { describe, expect, it } from "vitest";
import { parseEnsembleConfig } from "../../src/actions/ensembler.js";
import { parseActionSpec } from "../../src/actions/spec.js";
import { SessionStore } from "../../src/policy/session.js";

const spec = parseActionSpec({ names: ["x", "g"], horizon: 4, bins: 10, normalization: "minmax", gripper: { dims: ["g"], threshold: 0 } });
const policy = { spec, ensemble: parseEnsembleConfig({ mode: "none", executeK: 2 }), denormalize: (a: Float32Array) => Array.from(a, (v) => 10 * v) };
const chunk = (v: number) => Array.from({ length: 4 }, (_, t) => [v + t / 10, 1]);

describe("session store", () => {
  it("hands out executeK actions per chunk and counts time per session", () => {
    const s = new SessionStore(policy);
    const a = s.step("a", chunk(0));
    expect(a.time).toBe(2);
    expect(a.actions.map((r) => Math.round(r[0]! * 1e5) / 1e5)).toEqual([0, 1]); // the first two timesteps (float32)
    expect(s.step("a", chunk(0.5)).time).toBe(4);
    expect(s.step("b", chunk(0)).time).toBe(2);
    expect(s.size).toBe(2);
    s.end("a");
    expect(s.size).toBe(1);
  });

  it("drops a session unused for longer than its TTL (and only then)", () => {
    let now = 1000;
    const s = new SessionStore(policy, { ttlMs: 500, now: () => now });
    expect(s.step("a", chunk(0)).time).toBe(2);
    now += 500; // exactly the TTL: kept
    expect(s.step("a", chunk(0)).time).toBe(4);
    expect(s.step("b", chunk(0)).time).toBe(2);
    now += 501; // past it for both
    expect(s.size).toBe(0);
    expect(s.step("a", chunk(0)).time).toBe(2); // starts over
    now += 300;
    expect(s.step("b", chunk(0)).time).toBe(2);
    now += 300; // a: 600 ms unused, b: 300 ms
    expect(s.size).toBe(1);
    expect(s.step("b", chunk(0)).time).toBe(4);
  });

  it("keeps at most maxSessions, the least recently used first out", () => {
    const s = new SessionStore(policy, { maxSessions: 2 });
    const t = (id: string) => s.step(id, chunk(0)).time;
    expect(t("a")).toBe(2);
    expect(t("b")).toBe(2);
    expect(t("a")).toBe(4); // a is now the most recent
    expect(t("c")).toBe(2); // evicts b
    expect(t("b")).toBe(2); // b starts over, evicting a
    expect(t("a")).toBe(2);
    expect(s.size).toBe(2);
  });
});
