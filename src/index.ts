/** vlatext's public API. */
export { VlaError, type ErrorCode } from "./errors.js";
export * from "./actions/spec.js";
export * from "./actions/stats.js";
export * from "./actions/normalize.js";
export * from "./actions/format.js";
export * from "./actions/grammar.js";
export * from "./actions/parser.js";
export * from "./actions/codec.js";
export * from "./prompts/template.js";
export * from "./prompts/tokenizer.js";
export * from "./prompts/chat.js";
export * from "./prompts/encode.js";
export * from "./prompts/tokencost.js";
export * from "./prompts/sample.js";
export * from "./actions/ensembler.js";
