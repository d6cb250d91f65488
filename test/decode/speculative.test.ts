/**
 * Speculative constrained decoding with the previous chunk as the draft
 * (native/decode/speculative.h): the C++ checks in native/tests/test_speculative.cpp, built by
 * `npm install` as build/Release/vlatext_decode_tests. Whatever the draft (exact, another
 * prompt's chunk, digits changed, a number lengthened, junk, none), the output must be plain
 * greedy decoding's token for token; an exact draft must at least halve the model calls.
 */
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";

const exe = path.resolve("build/Release/vlatext_decode_tests");

describe("speculative decoding (C++ tests)", () => {
  it("the test binary was built by npm install", () => {
    expect(fs.existsSync(exe), `${exe} is missing: run npm install`).toBe(true);
  });

  it("greedy output is identical with any draft, and a good draft saves model calls", () => {
    const r = spawnSync(exe, [], { encoding: "utf8", timeout: 120_000 });
    const lines = r.stdout.split("\n").filter((l) => /^(PASS|FAIL) /.test(l));
    expect(lines.filter((l) => l.startsWith("FAIL")), r.stdout + r.stderr).toEqual([]);
    expect(r.status).toBe(0);
    for (const draft of ["exact", "other prompt's chunk", "digits changed", "a number lengthened", "junk", "none"]) {
      expect(lines.filter((l) => l.startsWith("PASS speculative = greedy:") && l.includes(`draft ${draft},`)).length, draft).toBe(16);
    }
    expect(lines.some((l) => l.startsWith("PASS an exact draft is all accepted and at least halves the model calls"))).toBe(true);
    expect(lines.some((l) => l.startsWith("PASS an empty prompt is refused"))).toBe(true);
  });
});
