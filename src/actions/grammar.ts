/**
 * The action grammar as a character automaton: exactly N = H*D integers in
 * 0..B, written with the format's separators and optional fixed width, then
 * the end. The strict parser walks it to say where text goes wrong; the token
 * analysis (and later constrained decoding) walks it token by token.
 *
 * A state is a small immutable record; `key()` gives a number that identifies
 * it, for memoizing per-state token sets.
 */
import type { ActionSpec } from "./spec.js";
import type { TextFormat } from "./format.js";
import { VlaError } from "../errors.js";

export interface GrammarState {
  /** Index of the number being written, 0..N-1. */
  readonly num: number;
  /** Digits of the current number consumed so far. */
  readonly digits: number;
  /** Value of those digits. */
  readonly value: number;
  /** -1 while in a number; else how many characters of the separator after `num - 1` were matched. */
  readonly sep: number;
}

export class ActionGrammar {
  /** N: numbers in a chunk. */
  readonly count: number;
  readonly bins: number;
  readonly dims: number;
  readonly width: number | undefined;
  readonly separator: string;
  readonly timestepSeparator: string;
  /** Digits of B: the longest a plain number can be. */
  readonly maxDigits: number;
  /** Every character the grammar can emit. */
  readonly alphabet: ReadonlySet<string>;

  constructor(spec: ActionSpec, format: TextFormat) {
    this.dims = spec.dims;
    this.count = spec.horizon * spec.dims;
    this.bins = format.bins ?? spec.bins;
    this.width = format.width;
    this.separator = format.separator;
    this.timestepSeparator = format.timestepSeparator ?? format.separator;
    this.maxDigits = String(this.bins).length;
    if (this.width !== undefined && this.width < this.maxDigits) {
      throw new VlaError("FORMAT_INVALID", `format '${format.name}' has width ${this.width} but B=${this.bins} needs ${this.maxDigits} digits`, `set width to at least ${this.maxDigits} or omit it`);
    }
    const chars = new Set<string>("0123456789");
    for (const c of this.separator + this.timestepSeparator) chars.add(c);
    this.alphabet = chars;
  }

  start(): GrammarState {
    return { num: 0, digits: 0, value: 0, sep: -1 };
  }

  /** The separator written after number i (i < N-1). */
  separatorAfter(i: number): string {
    return (i + 1) % this.dims === 0 ? this.timestepSeparator : this.separator;
  }

  /** True when the current number is complete (a separator or the end may follow). */
  numberComplete(s: GrammarState): boolean {
    if (s.sep >= 0) return false;
    return this.width !== undefined ? s.digits === this.width : s.digits >= 1;
  }

  /** The text may end here. */
  isAccepting(s: GrammarState): boolean {
    return s.num === this.count - 1 && this.numberComplete(s);
  }

  /** Advance by one character; null when it leaves the grammar. */
  step(s: GrammarState, ch: string): GrammarState | null {
    if (s.sep >= 0) {
      const sepText = this.separatorAfter(s.num - 1);
      if (ch !== sepText[s.sep]) return null;
      const next = s.sep + 1;
      return next === sepText.length ? { num: s.num, digits: 0, value: 0, sep: -1 } : { ...s, sep: next };
    }
    const code = ch.charCodeAt(0);
    if (ch.length === 1 && code >= 48 && code <= 57) {
      const d = code - 48;
      const value = s.value * 10 + d;
      if (this.width !== undefined) {
        if (s.digits >= this.width) return null;
        const remaining = this.width - s.digits - 1;
        // the smallest completion of this prefix must still be <= B
        if (value * 10 ** remaining > this.bins) return null;
      } else {
        if (s.digits >= 1 && s.value === 0) return null; // no leading zeros
        if (value > this.bins) return null;
      }
      return { num: s.num, digits: s.digits + 1, value, sep: -1 };
    }
    if (!this.numberComplete(s) || s.num >= this.count - 1) return null;
    const sepText = this.separatorAfter(s.num);
    if (ch !== sepText[0]) return null;
    return sepText.length === 1 ? { num: s.num + 1, digits: 0, value: 0, sep: -1 } : { num: s.num + 1, digits: 0, value: 0, sep: 1 };
  }

  /** Advance by a whole string; null when any character leaves the grammar. */
  advance(s: GrammarState, text: string): GrammarState | null {
    let cur: GrammarState | null = s;
    for (const ch of text) {
      cur = this.step(cur, ch);
      if (cur === null) return null;
    }
    return cur;
  }

  /** The characters allowed next (empty when only the end is allowed). */
  allowedChars(s: GrammarState): string[] {
    const out: string[] = [];
    for (const c of this.alphabet) if (this.step(s, c) !== null) out.push(c);
    return out;
  }

  /** A number identifying the state (for memoization). */
  key(s: GrammarState): number {
    const maxSep = Math.max(this.separator.length, this.timestepSeparator.length) + 1;
    const maxDig = (this.width ?? this.maxDigits) + 1;
    return ((s.num * maxSep + (s.sep + 1)) * maxDig + s.digits) * (this.bins + 1) + s.value;
  }
}
