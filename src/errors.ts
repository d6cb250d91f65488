/**
 * One error class for the whole toolkit. Every error has a stable `code`
 * (tests and callers match on it), a message that names the bad input, and a
 * `hint` that says what to do next.
 */
export type ErrorCode =
  | "SPEC_INVALID"
  | "STATS_INVALID"
  | "STATS_MISMATCH"
  | "STATS_EMPTY"
  | "FORMAT_INVALID"
  | "CODEC_SHAPE"
  | "PARSE_STRICT"
  | "ENSEMBLE_INVALID"
  | "ENSEMBLE_SHAPE"
  | "ENSEMBLE_STATE"
  | "TEMPLATE_INVALID"
  | "TEMPLATE_PLACEHOLDER"
  | "TEMPLATE_NOT_FOUND"
  | "CHAT_TEMPLATE"
  | "TOKENIZER_LOAD"
  | "TOKENIZER_MISSING_TOKEN"
  | "MASKING_INVALID"
  | "CONFIG_INVALID"
  | "FILE_NOT_FOUND"
  | "FILE_INVALID"
  | "NATIVE_LOAD"
  | "NATIVE_ARGUMENT"
  | "NATIVE_DEVICE"
  | "NATIVE_RESOURCE"
  | "NATIVE_STATE"
  | "NATIVE_CANCELLED"
  | "CLI_USAGE"
  | "DATA_INVALID"
  | "DATA_MISSING"
  | "VIDEO_DECODE"
  | "VIDEO_ENCODE"
  | "SIM_INVALID"
  | "TRAIN_DIVERGED"
  | "CHECKPOINT_INVALID";

export class VlaError extends Error {
  readonly code: ErrorCode;
  readonly hint: string | undefined;

  constructor(code: ErrorCode, message: string, hint?: string, options?: { cause?: unknown }) {
    super(hint ? `${message}\n  hint: ${hint}` : message, options);
    this.name = "VlaError";
    this.code = code;
    this.hint = hint;
  }
}

/** Format zod issues as "path: message" lines, naming each bad field. */
export function formatZodIssues(issues: ReadonlyArray<{ path: ReadonlyArray<PropertyKey>; message: string }>): string {
  return issues
    .map((i) => `  ${i.path.length > 0 ? i.path.map(String).join(".") : "(root)"}: ${i.message}`)
    .join("\n");
}
