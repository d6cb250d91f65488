#!/usr/bin/env node
// The vlatext command. Runs the compiled CLI from dist/ (built by `npm install`).
import { main } from "../dist/cli/main.js";

const code = await main(process.argv.slice(2), {
  out: (t) => process.stdout.write(t),
  err: (t) => process.stderr.write(t),
  isTTY: Boolean(process.stderr.isTTY),
  cwd: process.cwd(),
});
process.exitCode = code;
