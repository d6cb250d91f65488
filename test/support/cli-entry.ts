/** Runs the CLI from source (tests spawn it to exercise signals and real processes). */
import { main } from "../../src/cli/main.js";

process.exitCode = await main(process.argv.slice(2), {
  out: (t) => process.stdout.write(t),
  err: (t) => process.stderr.write(t),
  isTTY: false,
  cwd: process.cwd(),
});
