/**
 * Render a prompt with a model's real Jinja chat template and split the result
 * into typed segments: template text, special tokens, images, user text and
 * the answer. User text is rendered through sentinels, so we know exactly
 * which characters came from the user (they are tokenized without special
 * tokens) and which from the template. The split is checked: substituting the
 * real text back must reproduce the template's own rendering of the real
 * conversation byte for byte.
 */
import { Template } from "@huggingface/jinja";
import { VlaError } from "../errors.js";
import type { RenderedPrompt, UserPart } from "./template.js";
import type { TextTokenizer } from "./tokenizer.js";

export type TextRole = "template" | "system" | "instruction" | "state";

export type Segment =
  | { kind: "text"; text: string; role: TextRole }
  | { kind: "special"; text: string }
  | { kind: "image"; index: number; marker: string }
  | { kind: "answer"; text: string };

/** Tokens that stand for an image in the chat templates we know. */
export const IMAGE_MARKERS = ["<|image_pad|>", "<start_of_image>", "<image>"] as const;

export interface ChatRenderOptions {
  /** The answer (action text) for training; omit for inference. */
  answer?: string;
  /** Qwen2-VL's "Picture 1: " labels (VLA-0 trains with add_vision_id=True). */
  addVisionId?: boolean;
}

const OPEN = "\uE000";
const CLOSE = "\uE001";
const SENTINEL = /\uE000([^\uE001]*)\uE001/g;

type Content = string | Array<{ type: "text"; text: string } | { type: "image" }>;

/** Whether a chat template takes a list of typed content parts (VLM templates do). */
export function templateTakesContentLists(template: string): boolean {
  return /['"]image['"]/.test(template);
}

interface Texts {
  byKey: Map<string, { text: string; role: TextRole | "answer" }>;
}

function messages(prompt: RenderedPrompt, answer: string | undefined, listMode: boolean, texts: Texts | undefined): Array<{ role: string; content: Content }> {
  let n = 0;
  const wrap = (text: string, role: TextRole | "answer"): string => {
    if (!texts) return text;
    const key = role === "answer" ? "A" : `T${n++}`;
    texts.byKey.set(key, { text, role });
    return `${OPEN}${key}${CLOSE}`;
  };
  const userRole = (p: Extract<UserPart, { type: "text" }>): TextRole => p.role;
  const sys = wrap(prompt.system, "system");
  const out: Array<{ role: string; content: Content }> = [];
  if (listMode) {
    out.push({ role: "system", content: [{ type: "text", text: sys }] });
    out.push({ role: "user", content: prompt.user.map((p) => (p.type === "image" ? { type: "image" as const } : { type: "text" as const, text: wrap(p.text, userRole(p)) })) });
    if (answer !== undefined) out.push({ role: "assistant", content: [{ type: "text", text: wrap(answer, "answer") }] });
  } else {
    // text-only template: images become a marker inside the string
    const user = prompt.user.map((p) => (p.type === "image" ? (texts ? `${OPEN}I${p.index}${CLOSE}` : "<image>") : wrap(p.text, userRole(p)))).join("");
    out.push({ role: "system", content: sys });
    out.push({ role: "user", content: user });
    if (answer !== undefined) out.push({ role: "assistant", content: wrap(answer, "answer") });
  }
  return out;
}

function splitSpecials(text: string, tok: TextTokenizer, out: Segment[], imageCounter: { n: number }): void {
  const firstChars = new Set(tok.specialTokens.map((s) => s[0]));
  let buf = "";
  let i = 0;
  outer: while (i < text.length) {
    if (firstChars.has(text[i])) {
      for (const s of tok.specialTokens) {
        if (text.startsWith(s, i)) {
          if (buf) out.push({ kind: "text", text: buf, role: "template" });
          buf = "";
          if ((IMAGE_MARKERS as readonly string[]).includes(s)) out.push({ kind: "image", index: imageCounter.n++, marker: s });
          else out.push({ kind: "special", text: s });
          i += s.length;
          continue outer;
        }
      }
    }
    buf += text[i];
    i++;
  }
  if (buf) out.push({ kind: "text", text: buf, role: "template" });
}

/** Render a prompt (and optionally its answer) with the tokenizer's chat template, as segments. */
export function renderChat(tok: TextTokenizer, prompt: RenderedPrompt, options: ChatRenderOptions = {}): Segment[] {
  const listMode = templateTakesContentLists(tok.chatTemplate);
  let template: Template;
  try {
    template = new Template(tok.chatTemplate);
  } catch (e) {
    throw new VlaError("CHAT_TEMPLATE", `chat template of '${tok.name}' does not parse: ${(e as Error).message}`);
  }
  const ctx = (msgs: Array<{ role: string; content: Content }>) => ({
    messages: msgs,
    add_generation_prompt: options.answer === undefined,
    add_vision_id: options.addVisionId ?? false,
    bos_token: tok.bosToken ?? "",
    eos_token: tok.eosToken ?? "",
  });
  const run = (msgs: Array<{ role: string; content: Content }>): string => {
    try {
      return template.render(ctx(msgs));
    } catch (e) {
      throw new VlaError("CHAT_TEMPLATE", `chat template of '${tok.name}' failed to render: ${(e as Error).message}`, "check that the template supports system/user/assistant turns");
    }
  };
  const texts: Texts = { byKey: new Map() };
  const withSentinels = run(messages(prompt, options.answer, listMode, texts));
  const real = run(messages(prompt, options.answer, listMode, undefined));

  const segments: Segment[] = [];
  const images = { n: 0 };
  let last = 0;
  let rebuilt = "";
  for (const m of withSentinels.matchAll(SENTINEL)) {
    const literal = withSentinels.slice(last, m.index);
    splitSpecials(literal, tok, segments, images);
    rebuilt += literal;
    const key = m[1] as string;
    if (key.startsWith("I")) {
      segments.push({ kind: "image", index: images.n++, marker: "" });
      rebuilt += "<image>";
    } else {
      const t = texts.byKey.get(key);
      if (!t) throw new VlaError("CHAT_TEMPLATE", `internal: unknown sentinel ${key}`);
      if (t.role === "answer") segments.push({ kind: "answer", text: t.text });
      else if (t.text !== "") segments.push({ kind: "text", text: t.text, role: t.role });
      rebuilt += t.text;
    }
    last = (m.index ?? 0) + m[0].length;
  }
  const tail = withSentinels.slice(last);
  splitSpecials(tail, tok, segments, images);
  rebuilt += tail;
  if (rebuilt !== real) {
    throw new VlaError(
      "CHAT_TEMPLATE",
      `chat template of '${tok.name}' changes message text while rendering, so user text cannot be kept apart from control tokens`,
      "use a template that inserts message content verbatim",
    );
  }
  const expected = prompt.user.filter((p) => p.type === "image").length;
  if (images.n !== expected) {
    throw new VlaError("CHAT_TEMPLATE", `chat template of '${tok.name}' produced ${images.n} image markers for ${expected} images`);
  }
  return segments;
}

/** The rendered text with images shown as <image> markers (what `vlatext prompt` prints). */
export function segmentsToText(segments: readonly Segment[]): string {
  return segments.map((s) => (s.kind === "image" ? (s.marker ? `${s.marker}` : "<image>") : s.text)).join("");
}
