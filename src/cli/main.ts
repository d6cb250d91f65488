import { runCommand, type CliCommand, type CliIO } from "./command.js";
import { COMMANDS } from "./registry.js";

export const ROOT: CliCommand = {
  name: "vlatext",
  summary: "Turn a vision-language model into a robot policy: actions as integer text (VLA-0).",
  subcommands: COMMANDS,
};

/** Run the CLI; returns the exit code. */
export function main(argv: string[], io: CliIO): Promise<number> {
  return runCommand(ROOT, argv, io, "vlatext");
}
