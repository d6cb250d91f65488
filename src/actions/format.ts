/**
 * How a chunk of integers is written as text. Formats are data: a registry of
 * named, validated objects; a new format is a new entry, not new code.
 */
import { z } from "zod";
import { VlaError, formatZodIssues } from "../errors.js";

const printable = z
  .string()
  .min(1, "must not be empty")
  .refine((s) => !/[0-9]/.test(s), "must not contain digits (they would be read as part of a number)");

export const TextFormatSchema = z
  .object({
    name: z.string().min(1),
    description: z.string().default(""),
    /** Between two numbers of the same timestep (VLA-0: a single space). */
    separator: printable.default(" "),
    /** Between the last number of one timestep and the first of the next; defaults to `separator`. */
    timestepSeparator: printable.optional(),
    /** Zero-pad every number to this many digits (must fit B); omit for plain integers. */
    width: z.number().int().min(1).max(9).optional(),
    /** Override the spec's bin count B for this format (for bin-count experiments). */
    bins: z.number().int().min(1).max(1_000_000).optional(),
  })
  .strict();

export type TextFormatInput = z.input<typeof TextFormatSchema>;
export type TextFormat = z.output<typeof TextFormatSchema>;

export function parseTextFormat(input: unknown, source = "text format"): TextFormat {
  const r = TextFormatSchema.safeParse(input);
  if (!r.success) throw new VlaError("FORMAT_INVALID", `invalid ${source}:\n${formatZodIssues(r.error.issues)}`, "see FORMATS in src/actions/format.ts for examples");
  return r.data;
}

/** Built-in formats, by name. */
export const FORMATS = {
  vla0: { name: "vla0", description: "VLA-0: integers separated by single spaces", separator: " " },
  padded: { name: "padded", description: "zero-padded to 4 digits, single spaces", separator: " ", width: 4 },
  steps: { name: "steps", description: "spaces within a timestep, ' | ' between timesteps", separator: " ", timestepSeparator: " | " },
  comma: { name: "comma", description: "comma-separated, newline between timesteps", separator: ",", timestepSeparator: "\n" },
  bins256: { name: "bins256", description: "VLA-0 spacing with 256 bins (0..255)", separator: " ", bins: 255 },
} as const satisfies Record<string, TextFormatInput>;

export type FormatName = keyof typeof FORMATS;

export function isFormatName(s: string): s is FormatName {
  return Object.prototype.hasOwnProperty.call(FORMATS, s);
}

export function getFormat(name: string): TextFormat {
  if (!isFormatName(name)) {
    throw new VlaError("FORMAT_INVALID", `unknown text format '${name}'`, `use one of: ${Object.keys(FORMATS).join(", ")}`);
  }
  return parseTextFormat(FORMATS[name], `format '${name}'`);
}
