/**
 * The one reader for JSON files a run depends on (configs, policy.json, checkpoint state,
 * dataset metadata, metrics logs): every failure is a VlaError with the caller's code that
 * names the file and says what to do: missing, unreadable, not JSON (truncated?), or
 * valid JSON of the wrong shape (each bad field named).
 */
import fs from "node:fs";
import type { z } from "zod";
import { VlaError, formatZodIssues, type ErrorCode } from "../errors.js";

export interface JsonFileKind {
  /** What the file is, for messages: "policy file", "checkpoint state", ... */
  what: string;
  /** Code of a file that does not parse or has the wrong shape. */
  code: ErrorCode;
  /** What to do about a bad file. */
  hint: string;
  /** Code of a missing file (default FILE_NOT_FOUND). */
  missingCode?: ErrorCode;
  /** What to do about a missing file (default: the hint). */
  missingHint?: string;
}

function readText(file: string, kind: JsonFileKind): string {
  try {
    return fs.readFileSync(file, "utf8");
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    if (err.code === "ENOENT") throw new VlaError(kind.missingCode ?? "FILE_NOT_FOUND", `${kind.what} not found: ${file}`, kind.missingHint ?? kind.hint);
    throw new VlaError(kind.code, `${kind.what} ${file} cannot be read: ${err.message}`, kind.hint, { cause: e });
  }
}

/** Check a parsed value against a schema; `where` names the file (and line) in the error. */
export function checkJson<S extends z.ZodType>(value: unknown, schema: S, where: string, kind: JsonFileKind): z.output<S> {
  const r = schema.safeParse(value);
  if (!r.success) throw new VlaError(kind.code, `${kind.what} ${where} has wrong or missing fields:\n${formatZodIssues(r.error.issues)}`, kind.hint);
  return r.data as z.output<S>;
}

/** JSON text (a file's contents, or one line of it) parsed and checked; `where` names its source. */
export function parseJsonText<S extends z.ZodType>(text: string, schema: S, where: string, kind: JsonFileKind): z.output<S> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    const empty = text.trim().length === 0;
    throw new VlaError(kind.code, `${kind.what} ${where} is ${empty ? "empty" : `not valid JSON (truncated or corrupt?): ${(e as Error).message}`}`, kind.hint, { cause: e });
  }
  return checkJson(value, schema, where, kind);
}

/** Read, parse and check one JSON file. */
export function readJsonFile<S extends z.ZodType>(file: string, schema: S, kind: JsonFileKind): z.output<S> {
  return parseJsonText(readText(file, kind), schema, file, kind);
}

/**
 * A JSON Lines file: one value per non-empty line, each checked. allowTruncatedLast: a
 * last line that does not parse is dropped instead of failing (what an append-only log
 * holds after the process writing it was killed mid-line); `truncated` says so.
 */
export function readJsonLines<S extends z.ZodType>(file: string, schema: S, kind: JsonFileKind, options: { allowTruncatedLast?: boolean } = {}): { rows: Array<{ line: number; value: z.output<S> }>; truncated: boolean } {
  const lines = readText(file, kind).split("\n");
  let last = lines.length - 1;
  while (last >= 0 && !(lines[last] as string).trim()) last--;
  const rows: Array<{ line: number; value: z.output<S> }> = [];
  for (let i = 0; i <= last; i++) {
    const text = lines[i] as string;
    if (!text.trim()) continue;
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (e) {
      if (i === last && options.allowTruncatedLast) return { rows, truncated: true };
      throw new VlaError(kind.code, `${kind.what} ${file}:${i + 1} is not valid JSON (truncated or corrupt?): ${(e as Error).message}`, kind.hint, { cause: e });
    }
    rows.push({ line: i + 1, value: checkJson(value, schema, `${file}:${i + 1}`, kind) });
  }
  return { rows, truncated: false };
}
