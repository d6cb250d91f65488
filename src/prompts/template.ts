/**
 * Prompt templates: small text files under prompts/ with a [meta], [system]
 * and [user] section and {placeholders}. A template is parsed and checked
 * once; rendering fills the placeholders and returns the system text and the
 * user content as typed parts (text | image), never one flat string.
 */
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { VlaError } from "../errors.js";

export const PLACEHOLDERS = ["H", "D", "B", "N", "instruction", "state", "images"] as const;
export type Placeholder = (typeof PLACEHOLDERS)[number];

/** A piece of a section: literal text or a placeholder. */
type Piece = { kind: "text"; text: string } | { kind: "var"; name: Placeholder };

export interface PromptTemplate {
  name: string;
  source: string;
  description: string;
  /** Name of the text format this prompt describes (see src/actions/format.ts). */
  format: string;
  system: Piece[];
  user: Piece[];
  uses: ReadonlySet<Placeholder>;
}

export type UserPart = { type: "text"; text: string; role: "template" | "instruction" | "state" } | { type: "image"; index: number };

export interface RenderedPrompt {
  system: string;
  user: UserPart[];
}

export interface PromptValues {
  horizon: number;
  dims: number;
  bins: number;
  instruction: string;
  state?: string;
  images: number;
}

/** Directory of the shipped prompt files. */
export function promptsDir(): string {
  return path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..", "prompts");
}

function isPlaceholder(s: string): s is Placeholder {
  return (PLACEHOLDERS as readonly string[]).includes(s);
}

function parsePieces(text: string, where: string, section: "system" | "user"): Piece[] {
  const pieces: Piece[] = [];
  let buf = "";
  let i = 0;
  while (i < text.length) {
    const c = text[i] as string;
    if ((c === "{" && text[i + 1] === "{") || (c === "}" && text[i + 1] === "}")) {
      buf += c;
      i += 2;
      continue;
    }
    if (c === "}") throw new VlaError("TEMPLATE_INVALID", `${where} [${section}]: unmatched '}' at offset ${i}`, "write '}}' for a literal brace");
    if (c === "{") {
      const end = text.indexOf("}", i);
      if (end < 0) throw new VlaError("TEMPLATE_INVALID", `${where} [${section}]: unclosed '{' at offset ${i}`, "close the placeholder, or write '{{' for a literal brace");
      const name = text.slice(i + 1, end).trim();
      if (!isPlaceholder(name)) {
        throw new VlaError("TEMPLATE_PLACEHOLDER", `${where} [${section}]: unknown placeholder {${name}}`, `use one of ${PLACEHOLDERS.map((p) => `{${p}}`).join(", ")}`);
      }
      if (name === "images" && section !== "user") throw new VlaError("TEMPLATE_PLACEHOLDER", `${where}: {images} may only appear in [user]`, "move {images} into the [user] section");
      if (buf) pieces.push({ kind: "text", text: buf });
      buf = "";
      pieces.push({ kind: "var", name });
      i = end + 1;
      continue;
    }
    buf += c;
    i++;
  }
  if (buf) pieces.push({ kind: "text", text: buf });
  return pieces;
}

/** Parse template text (the contents of a prompts/*.txt file). */
export function parseTemplate(text: string, name: string, source = name): PromptTemplate {
  const sections = new Map<string, string[]>();
  let current: string | undefined;
  for (const [lineNo, line] of text.split(/\r?\n/).entries()) {
    const header = /^\[(\w+)\]\s*$/.exec(line);
    if (header) {
      current = header[1] as string;
      if (!["meta", "system", "user"].includes(current)) {
        throw new VlaError("TEMPLATE_INVALID", `${source}:${lineNo + 1}: unknown section [${current}]`, "sections are [meta], [system] and [user]");
      }
      if (sections.has(current)) throw new VlaError("TEMPLATE_INVALID", `${source}:${lineNo + 1}: section [${current}] appears twice`);
      sections.set(current, []);
      continue;
    }
    if (current === undefined) {
      if (line.startsWith("#") || line.trim() === "") continue;
      throw new VlaError("TEMPLATE_INVALID", `${source}:${lineNo + 1}: text before the first [section]`, "start with [meta], [system] or [user]; comments start with #");
    }
    sections.get(current)?.push(line);
  }
  const meta: Record<string, string> = {};
  for (const line of sections.get("meta") ?? []) {
    if (line.trim() === "" || line.startsWith("#")) continue;
    const m = /^(\w+)\s*:\s*(.*)$/.exec(line);
    if (!m) throw new VlaError("TEMPLATE_INVALID", `${source} [meta]: expected 'key: value', got '${line}'`);
    meta[m[1] as string] = (m[2] as string).trim();
  }
  for (const key of Object.keys(meta)) {
    if (key !== "description" && key !== "format") throw new VlaError("TEMPLATE_INVALID", `${source} [meta]: unknown key '${key}'`, "known keys: description, format");
  }
  const body = (s: string): string => (sections.get(s) ?? []).join("\n").replace(/^\n+|\n+$/g, "");
  if (!sections.has("system") || body("system") === "") throw new VlaError("TEMPLATE_INVALID", `${source}: missing or empty [system] section`, "add a [system] section with the system prompt");
  if (!sections.has("user")) throw new VlaError("TEMPLATE_INVALID", `${source}: missing [user] section`, "add a [user] section containing {instruction}");
  const system = parsePieces(body("system"), source, "system");
  const user = parsePieces(body("user"), source, "user");
  const uses = new Set<Placeholder>();
  for (const p of [...system, ...user]) if (p.kind === "var") uses.add(p.name);
  if (!user.some((p) => p.kind === "var" && p.name === "instruction")) {
    throw new VlaError("TEMPLATE_PLACEHOLDER", `${source}: the [user] section has no {instruction} placeholder`, "add {instruction} where the task text goes");
  }
  return { name, source, description: meta.description ?? "", format: meta.format ?? "vla0", system, user, uses };
}

/** Load a template by built-in name (prompts/<name>.txt) or by file path. */
export function loadTemplate(nameOrPath: string): PromptTemplate {
  const isPath = nameOrPath.includes("/") || nameOrPath.endsWith(".txt");
  const file = isPath ? path.resolve(nameOrPath) : path.join(promptsDir(), `${nameOrPath}.txt`);
  if (!fs.existsSync(file)) {
    throw new VlaError("TEMPLATE_NOT_FOUND", `prompt template '${nameOrPath}' not found (looked at ${file})`, `built-in templates: ${listTemplates().join(", ")}; or pass a path to a .txt file`);
  }
  return parseTemplate(fs.readFileSync(file, "utf8"), path.basename(file, ".txt"), file);
}

export function listTemplates(): string[] {
  return fs
    .readdirSync(promptsDir())
    .filter((f) => f.endsWith(".txt"))
    .map((f) => f.slice(0, -4))
    .sort();
}

function scalar(tpl: PromptTemplate, name: Placeholder, v: PromptValues): string {
  switch (name) {
    case "H":
      return String(v.horizon);
    case "D":
      return String(v.dims);
    case "B":
      return String(v.bins);
    case "N":
      return String(v.horizon * v.dims);
    case "instruction":
      return v.instruction;
    case "state":
      if (v.state === undefined) {
        throw new VlaError("TEMPLATE_PLACEHOLDER", `template '${tpl.name}' uses {state} but no state was given`, "pass the robot state, or use a template without {state}");
      }
      return v.state;
    case "images":
      throw new VlaError("TEMPLATE_PLACEHOLDER", `{images} is not a text value`);
  }
}

/** Fill a template. Instruction text is trimmed (chat templates such as Llama 3's trim content). */
export function renderTemplate(tpl: PromptTemplate, values: PromptValues): RenderedPrompt {
  const v = { ...values, instruction: values.instruction.trim() };
  if (v.instruction === "") throw new VlaError("TEMPLATE_PLACEHOLDER", "the instruction is empty", "pass the task text, e.g. 'pick up the red block'");
  if (v.images > 0 && !tpl.uses.has("images")) {
    throw new VlaError("TEMPLATE_PLACEHOLDER", `template '${tpl.name}' has no {images} placeholder but ${v.images} image(s) were given`, "add {images} to its [user] section");
  }
  const system = tpl.system.map((p) => (p.kind === "text" ? p.text : scalar(tpl, p.name, v))).join("");
  const user: UserPart[] = [];
  const pushText = (text: string, role: "template" | "instruction" | "state"): void => {
    if (text === "") return;
    const last = user[user.length - 1];
    if (last && last.type === "text" && last.role === role && role === "template") last.text += text;
    else user.push({ type: "text", text, role });
  };
  for (const p of tpl.user) {
    if (p.kind === "text") pushText(p.text, "template");
    else if (p.name === "images") for (let i = 0; i < v.images; i++) user.push({ type: "image", index: i });
    else if (p.name === "instruction") pushText(v.instruction, "instruction");
    else if (p.name === "state") pushText(scalar(tpl, "state", v), "state");
    else pushText(scalar(tpl, p.name, v), "template");
  }
  return { system, user };
}
