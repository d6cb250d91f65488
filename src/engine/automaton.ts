/**
 * The action grammar as a native token automaton over a model's vocabulary, and
 * constrained generation with it (jump-forward and a sparse LM head).
 */
import type { ActionGrammar } from "../actions/grammar.js";
import { VlaError } from "../errors.js";
import { callNative, callNativeAsync, loadAddon, type NativeAutomaton, type NativeGenOptions, type NativeGenResult } from "./addon.js";
import type { DecoderModel } from "./decoder.js";

export interface GrammarVocabulary {
  /** Ids of the vocabulary tokens whose decoded text uses only grammar characters. */
  ids: Int32Array;
  /** Their decoded texts. */
  texts: string[];
  /** The end-of-sequence token id. */
  eos: number;
}

export class ActionAutomaton {
  readonly native: NativeAutomaton;
  readonly grammar: ActionGrammar;

  constructor(grammar: ActionGrammar, vocab: GrammarVocabulary) {
    if (vocab.ids.length !== vocab.texts.length) throw new VlaError("NATIVE_ARGUMENT", `vocabulary has ${vocab.ids.length} ids but ${vocab.texts.length} texts`);
    const digits = new Set(vocab.texts.filter((t) => /^[0-9]$/.test(t)));
    if (digits.size < 10) throw new VlaError("TOKENIZER_MISSING_TOKEN", `the vocabulary lacks single-digit tokens (${10 - digits.size} of 0-9 missing): some numbers could not be written`);
    this.grammar = grammar;
    const addon = loadAddon();
    this.native = callNative("ActionAutomaton", () =>
      new addon.ActionAutomaton({
        count: grammar.count,
        dims: grammar.dims,
        bins: grammar.bins,
        width: grammar.width ?? 0,
        separator: grammar.separator,
        timestepSeparator: grammar.timestepSeparator,
        eos: vocab.eos,
        tokenIds: vocab.ids,
        tokenTexts: vocab.texts,
      }),
    );
  }

  /** Token ids allowed after the given generated tokens. */
  allowedAfter(tokens: readonly number[]): Int32Array {
    return callNative("allowedAfter", () => this.native.allowedAfter(Int32Array.from(tokens)));
  }
}

export type ConstrainedOptions = NativeGenOptions;

/** A cancellation flag for one sequence of a generation: set it with cancelGeneration(). */
export function newCancelFlag(): Int32Array {
  return new Int32Array(new SharedArrayBuffer(4));
}

/** Stop the sequence that was given this flag (at its next step; a no-op once it ended). */
export function cancelGeneration(flag: Int32Array): void {
  Atomics.store(flag, 0, 1);
}

function checkCancelFlags(options: readonly ConstrainedOptions[]): void {
  for (const o of options)
    if (o.cancel && !(o.cancel.buffer instanceof SharedArrayBuffer)) throw new VlaError("NATIVE_ARGUMENT", "a generation's cancel flag must be an Int32Array on a SharedArrayBuffer (another thread reads it)", "make it with newCancelFlag()");
}

/**
 * Generate several action texts together: at every step the sequences that need the
 * model share one batched forward pass. `onTokens(seq, tokens)` streams tokens.
 */
export async function generateConstrainedBatch(model: DecoderModel, prompts: ReadonlyArray<ArrayLike<number>>, automaton: ActionAutomaton, options: ConstrainedOptions[], onTokens?: (seq: number, tokens: Int32Array) => void): Promise<NativeGenResult[]> {
  checkCancelFlags(options);
  return await callNativeAsync("generateConstrained", () => model.nativeHandle().generateConstrainedAsync(prompts.map((p) => (p instanceof Int32Array ? p : Int32Array.from(p))), automaton.native, options, onTokens));
}

/**
 * Generate one action text under the grammar, off the JS thread. `onTokens`, if given,
 * receives the chosen tokens as they are produced (for streaming).
 */
export async function generateConstrained(model: DecoderModel, prompt: readonly number[], automaton: ActionAutomaton, options: ConstrainedOptions = {}, onTokens?: (tokens: Int32Array) => void): Promise<NativeGenResult> {
  checkCancelFlags([options]);
  return await callNativeAsync("generateConstrained", () => model.nativeHandle().generateConstrainedAsync(Int32Array.from(prompt), automaton.native, options, onTokens));
}
