/** The bearer token comes from a file or the environment; on the command line it still works but warns (it shows in `ps`). */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { readToken } from "../../src/cli/token.js";
import { bufferIO } from "../support/io.js";

const args = (values: Record<string, string>) => ({ values, positionals: [] });

describe("bearer token options", () => {
  it("reads --token-file (trimmed), else $VLATEXT_TOKEN, else --token with a warning", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "vlatext-tok-"));
    const file = path.join(dir, "t");
    fs.writeFileSync(file, "  s3cret\n");
    const io = bufferIO();
    expect(readToken(args({ "token-file": file }), io, { VLATEXT_TOKEN: "env" })).toBe("s3cret");
    expect(readToken(args({}), io, { VLATEXT_TOKEN: "from-env" })).toBe("from-env");
    expect(readToken(args({}), io, {})).toBeUndefined();
    expect(io.stderr()).toBe("");
    expect(readToken(args({ token: "argv" }), io, {})).toBe("argv");
    expect(io.stderr()).toMatch(/--token is visible to other users in `ps`/);
  });

  it("names what is wrong", () => {
    const io = bufferIO();
    expect(() => readToken(args({ token: "a", "token-file": "b" }), io, {})).toThrow(/give --token or --token-file, not both/);
    expect(() => readToken(args({ "token-file": "/no/such/file" }), io, {})).toThrow(expect.objectContaining({ code: "FILE_NOT_FOUND" }));
    const empty = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "vlatext-tok-")), "e");
    fs.writeFileSync(empty, "\n");
    expect(() => readToken(args({ "token-file": empty }), io, {})).toThrow(/is empty/);
  });
});
