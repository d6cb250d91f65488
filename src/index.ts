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
export * from "./data/episode.js";
export * from "./data/recipe.js";
export * from "./data/samples.js";
export * from "./data/augment.js";
export { LeRobotDataset } from "./data/lerobot/dataset.js";
export { writeLeRobotV21, writeLeRobotV30 } from "./data/lerobot/writer.js";

// models, policies, fine-tuning and serving (src/api.ts)
export { loadModel, loadPolicy, finetune, serve, type LoadedModel, type FinetuneOptions, type ServeHandle } from "./api.js";
export { MODEL_FAMILIES, supportedFamilies, type ModelFamily, type ModelFamilyName } from "./engine/families.js";
export { DecoderModel, type ModelOptions, type ModelDType, type LoraConfigInput, type TrainBatch } from "./engine/decoder.js";
export { VlmModel, type ImageFeatures } from "./engine/vlm.js";
export { Policy, type ActItem, type ActOptions, type ActOutcome, type ActRequest, type ActResult, type ActTimings, type TimestepCallback } from "./policy/policy.js";
export { parseFinetuneConfig, FinetuneConfigSchema, type FinetuneConfig, type FinetuneConfigInput } from "./train/config.js";
export type { FinetuneResult, TrainerIO } from "./train/trainer.js";
export type { ServerOptions, RunningServer } from "./serve/server.js";
export { createTinyDefaultModel } from "./models/tiny-default.js";
export { createTinySmolVlmModel } from "./models/tiny-smolvlm.js";
export { createTinyQwen3VlModel } from "./models/tiny-qwen3vl.js";
