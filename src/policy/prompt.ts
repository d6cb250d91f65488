/**
 * The one way a policy's prompt is built, shared by training and serving: template ->
 * chat template -> token ids, with the state written as numbers and (for training) the
 * answer appended. Images appear only when their token counts are given (a VLM).
 */
import type { ImagePiece } from "../vision/processor.js";
import type { ActionGrammar } from "../actions/grammar.js";
import type { ActionSpec } from "../actions/spec.js";
import { ActionAutomaton } from "../engine/automaton.js";
import { VlaError } from "../errors.js";
import { renderChat } from "../prompts/chat.js";
import { encodeSegments, type EncodedPrompt } from "../prompts/encode.js";
import { renderTemplate, type PromptTemplate } from "../prompts/template.js";
import { grammarVocab } from "../prompts/tokencost.js";
import type { TextTokenizer } from "../prompts/tokenizer.js";

export interface PolicyPromptInput {
  tokenizer: TextTokenizer;
  template: PromptTemplate;
  spec: ActionSpec;
  bins: number;
  instruction: string;
  state?: ArrayLike<number>;
  /** The action text, for training. */
  answer?: string;
  addVisionId?: boolean;
  /** Tokens per image (after the vision tower's merge); omitted: a text-only prompt. */
  imageTokens?: readonly number[];
  /** Per image, its prompt pieces where the family expands an image into more than its image tokens (ImageLayout.expansion). */
  imageExpansions?: ReadonlyArray<readonly ImagePiece[] | undefined>;
}

/** State numbers as the prompt writes them (4 decimals, spaces). */
export function stateText(state: ArrayLike<number>): string {
  return Array.from(state, (v) => String(Number(v.toFixed(4)))).join(" ");
}

export function encodePolicyPrompt(p: PolicyPromptInput): EncodedPrompt {
  if (p.template.uses.has("state") && p.state === undefined) throw new VlaError("TEMPLATE_PLACEHOLDER", `template '${p.template.name}' needs the robot state`, "send `state` with the request (or use a template without {state})");
  const prompt = renderTemplate(p.template, {
    horizon: p.spec.horizon,
    dims: p.spec.dims,
    bins: p.bins,
    instruction: p.instruction,
    images: p.imageTokens?.length ?? 0,
    ...(p.state !== undefined && p.template.uses.has("state") ? { state: stateText(p.state) } : {}),
  });
  const options = { ...(p.imageTokens ? { imageTokens: p.imageTokens } : {}), ...(p.imageExpansions ? { imageExpansions: p.imageExpansions } : {}) };
  if (p.answer === undefined) {
    // the prompt a policy answers is the training prompt up to its answer, token for token: a
    // chat template's generation prompt can differ from it (SmolVLM2's "Assistant:" is
    // followed by a space before a trained answer), and the model must see what it trained on
    const enc = encodeSegments(p.tokenizer, renderChat(p.tokenizer, prompt, { addVisionId: p.addVisionId ?? true, answer: "0" }), options);
    const ids = enc.ids.slice(0, enc.answerStart);
    return { ids, answerStart: ids.length, answerEnd: ids.length, endIndex: -1, imageStarts: enc.imageStarts, featureRows: enc.featureRows };
  }
  const segs = renderChat(p.tokenizer, prompt, { addVisionId: p.addVisionId ?? true, answer: p.answer });
  return encodeSegments(p.tokenizer, segs, options);
}

/** The control token that closes the assistant's answer in this tokenizer's chat template (where generation stops). */
export function answerEndToken(tokenizer: TextTokenizer, template: PromptTemplate): string {
  const segs = renderChat(tokenizer, renderTemplate(template, { horizon: 1, dims: 1, bins: 1, instruction: "x", images: 0, state: "0" }), { answer: "0" });
  const next = segs[segs.findIndex((s) => s.kind === "answer") + 1];
  if (!next || next.kind !== "special") throw new VlaError("CHAT_TEMPLATE", `chat template of '${tokenizer.name}' puts no control token after the answer`, "the policy needs one to stop generation");
  return next.text;
}

/** The action grammar over this tokenizer's vocabulary, ending at the chat template's end-of-answer token. */
export function policyAutomaton(tokenizer: TextTokenizer, template: PromptTemplate, grammar: ActionGrammar): ActionAutomaton {
  const vocab = grammarVocab(tokenizer, grammar);
  return new ActionAutomaton(grammar, { ids: vocab.ids, texts: vocab.texts, eos: tokenizer.requireId(answerEndToken(tokenizer, template)) });
}
