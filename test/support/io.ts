import type { CliIO } from "../../src/cli/command.js";

/** A CliIO that records output, for calling command handlers in tests. */
export function bufferIO(): CliIO & { stdout: () => string; stderr: () => string } {
  let out = "";
  let err = "";
  return {
    out: (t) => {
      out += t;
    },
    err: (t) => {
      err += t;
    },
    isTTY: false,
    cwd: process.cwd(),
    stdout: () => out,
    stderr: () => err,
  };
}
