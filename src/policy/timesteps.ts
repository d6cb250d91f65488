/**
 * Streaming a batch's answers by timestep: the generated tokens of each sequence are
 * decoded as they come and walked through the action grammar; as soon as a timestep's
 * last number is complete, its callback gets the timestep (raw and normalized, D values).
 */
import type { ActionCodec } from "../actions/codec.js";
import type { GrammarState } from "../actions/grammar.js";
import type { TextTokenizer } from "../prompts/tokenizer.js";
import type { TimestepCallback } from "./types.js";

export class TimestepStreams {
  private readonly streams: Array<{ cb: TimestepCallback | undefined; streamed: number; text: string; state: GrammarState | null }>;
  /** For the generation's onTokens; undefined when no sequence streams. */
  readonly onTokens: ((seq: number, tokens: Int32Array) => void) | undefined;

  constructor(
    private readonly codec: ActionCodec,
    private readonly tokenizer: TextTokenizer,
    callbacks: ReadonlyArray<TimestepCallback | undefined>,
  ) {
    this.streams = callbacks.map((cb) => ({ cb, streamed: 0, text: "", state: codec.grammar.start() }));
    this.onTokens = callbacks.some((cb) => cb) ? (seq, tokens) => this.push(seq, tokens) : undefined;
  }

  private push(seq: number, tokens: Int32Array): void {
    const s = this.streams[seq];
    if (!s?.cb) return;
    for (const t of tokens) {
      const piece = this.tokenizer.decodeOne(t);
      s.text += piece;
      s.state = s.state && this.codec.grammar.advance(s.state, piece);
    }
    // numbers before the current one are complete (GrammarState.num counts started numbers)
    if (s.state) this.emit(seq, Math.floor(s.state.num / this.codec.grammar.dims));
  }

  /** The sequence ended: its last timestep is complete. */
  finish(seq: number): void {
    if (this.streams[seq]?.cb) this.emit(seq, this.codec.grammar.count / this.codec.grammar.dims);
  }

  private emit(seq: number, upTo: number): void {
    const s = this.streams[seq]!;
    const D = this.codec.grammar.dims;
    const numbers = s.text.split(/[^0-9]+/).filter((x) => x.length > 0).map(Number);
    for (; s.streamed < upTo; s.streamed++) {
      const bins = numbers.slice(s.streamed * D, (s.streamed + 1) * D);
      const normalized = Array.from(this.codec.binsToNormalized(bins));
      s.cb?.(s.streamed, this.codec.normalizer ? Array.from(this.codec.binsToRaw(bins)) : normalized, normalized);
    }
  }
}
