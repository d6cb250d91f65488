import { describe, expect, it } from "vitest";
import { VlaError } from "../src/errors.js";
describe("errors", () => {
  it("carries code and hint", () => {
    const e = new VlaError("SPEC_INVALID", "bins must be > 0", "set bins to 1000");
    expect(e.code).toBe("SPEC_INVALID");
    expect(e.message).toContain("hint: set bins to 1000");
  });
});
