/**
 * What a text format costs under a real tokenizer: tokens per chunk,
 * characters, and how many of those tokens the grammar forces (a step where
 * exactly one vocabulary token keeps the text inside the grammar — those can
 * be appended without running the model: jump-forward).
 *
 * The grammar is walked over the token strings of the vocabulary that only use
 * the grammar's characters; a step's allowed set is every such token whose
 * text advances the automaton, plus end-of-sequence once the text may end.
 */
import { ActionGrammar, type GrammarState } from "../actions/grammar.js";
import type { TextTokenizer } from "./tokenizer.js";

export interface GrammarVocab {
  /** Token ids whose decoded text uses only grammar characters. */
  ids: Int32Array;
  /** Their decoded texts. */
  texts: string[];
}

/** Collect the vocabulary tokens that can appear in an action text of this grammar. */
export function grammarVocab(tok: TextTokenizer, g: ActionGrammar): GrammarVocab {
  const ids: number[] = [];
  const texts: string[] = [];
  // cheap pre-filter on the raw token string: byte-level BPE writes space as 'Ġ' and
  // newline as 'Ċ', SentencePiece writes space as '▁'
  const rawAllowed = new Set<string>([...g.alphabet, "Ġ", "▁", "Ċ"]);
  for (const [raw, id] of tok.vocabEntries()) {
    if (raw.length === 0 || raw.length > 16) continue;
    let ok = true;
    for (const c of raw) if (!rawAllowed.has(c)) ok = false;
    if (!ok) continue;
    const text = tok.decodeOne(id);
    if (text.length === 0) continue;
    let textOk = true;
    for (const c of text) if (!g.alphabet.has(c)) textOk = false;
    if (textOk) {
      ids.push(id);
      texts.push(text);
    }
  }
  return { ids: Int32Array.from(ids), texts };
}

/** Number of vocabulary tokens allowed from state s (counting end-of-sequence as one). */
export function allowedCount(g: ActionGrammar, vocab: GrammarVocab, s: GrammarState, stopAtTwo = true): number {
  let n = g.isAccepting(s) ? 1 : 0;
  for (const t of vocab.texts) {
    if (g.advance(s, t) !== null) {
      n++;
      if (stopAtTwo && n >= 2) return n;
    }
  }
  return n;
}

export interface ChunkTokenCost {
  tokens: number;
  characters: number;
  /** Answer tokens the grammar forces, plus 1 if end-of-sequence is forced. */
  forced: number;
  /** Whether the final end-of-sequence is forced. */
  endForced: boolean;
}

/** Tokenize an action text and count forced steps along its canonical tokenization. */
export function chunkTokenCost(tok: TextTokenizer, g: ActionGrammar, vocab: GrammarVocab, text: string, memo = new Map<number, number>()): ChunkTokenCost {
  const ids = tok.encodePlain(text);
  let s: GrammarState | null = g.start();
  let forced = 0;
  const count = (st: GrammarState): number => {
    const k = g.key(st);
    let n = memo.get(k);
    if (n === undefined) {
      n = allowedCount(g, vocab, st);
      memo.set(k, n);
    }
    return n;
  };
  for (const id of ids) {
    if (s === null) break;
    if (count(s) === 1) forced++;
    s = g.advance(s, tok.decodeOne(id));
  }
  const endForced = s !== null && g.isAccepting(s) && count(s) === 1;
  return { tokens: ids.length, characters: text.length, forced: forced + (endForced ? 1 : 0), endForced };
}
