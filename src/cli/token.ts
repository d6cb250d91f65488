/**
 * The bearer token of `serve` and `eval --url`, from --token-file (a file holding it),
 * $VLATEXT_TOKEN, or --token: a token on the command line is visible to every user of
 * the machine (`ps`), so that form warns.
 */
import fs from "node:fs";
import path from "node:path";
import { VlaError } from "../errors.js";
import { str, type CliIO, type ParsedArgs } from "./command.js";

export const TOKEN_OPTIONS = { token: { type: "string" }, "token-file": { type: "string" } } as const;

export const TOKEN_HELP = {
  token: { value: "secret", description: "Bearer token on the command line (visible in `ps`: prefer --token-file or $VLATEXT_TOKEN)" },
  "token-file": { value: "file", description: "Read the bearer token from this file (surrounding whitespace ignored)" },
};

export function readToken(args: ParsedArgs, io: Pick<CliIO, "err" | "cwd">, env: NodeJS.ProcessEnv = process.env): string | undefined {
  const inline = str(args, "token");
  const file = str(args, "token-file");
  if (inline !== undefined && file !== undefined) throw new VlaError("CLI_USAGE", "give --token or --token-file, not both", "prefer --token-file (or $VLATEXT_TOKEN): a token in argv is visible in `ps`");
  let token: string | undefined;
  if (file !== undefined) {
    const f = path.resolve(io.cwd, file);
    try {
      token = fs.readFileSync(f, "utf8").trim();
    } catch (e) {
      throw new VlaError("FILE_NOT_FOUND", `--token-file ${f} cannot be read: ${(e as Error).message}`, "write the token into a file only you can read (chmod 600) and pass its path");
    }
    if (!token) throw new VlaError("CLI_USAGE", `--token-file ${f} is empty`, "write the token into it");
  } else if (inline !== undefined) {
    io.err("warning: --token is visible to other users in `ps`; use --token-file or $VLATEXT_TOKEN instead\n");
    token = inline;
  } else token = env.VLATEXT_TOKEN || undefined;
  if (token !== undefined && token.length === 0) throw new VlaError("CLI_USAGE", "the bearer token is empty");
  return token;
}
