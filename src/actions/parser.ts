/**
 * Text -> bins. Two modes, both returning values, never throwing on bad text:
 *
 * - strict: exactly the format (N = H*D integers in 0..B with the format's
 *   separators and width); otherwise an error saying where and why.
 * - lenient (VLA-0's `get_action_from_text_action`, made total): strip, split
 *   on whitespace and the format's separators, truncate to a multiple of D and
 *   to H timesteps, pad short chunks by repeating the last timestep, clamp to
 *   0..B, and fall back to mid-range (B/2) on garbage.
 */
import type { ActionGrammar } from "./grammar.js";

export interface StrictParseError {
  /** Character offset where the text left the grammar (text.length when it ended early). */
  position: number;
  message: string;
}

export type StrictParseResult = { ok: true; bins: Int32Array } | { ok: false; error: StrictParseError };

export interface LenientDiagnostics {
  /** Integers found in the text (before truncation/padding). */
  numbersFound: number;
  /** Integers dropped to reach a multiple of D and at most H timesteps. */
  dropped: number;
  /** Timesteps added by repeating the last one. */
  paddedSteps: number;
  /** Values clamped into 0..B. */
  clamped: number;
  /** Empty pieces between separators that were skipped (VLA-0 would have failed on these). */
  emptyPieces: number;
  /** The whole chunk fell back to mid-range. */
  fallback: boolean;
  /** Why it fell back, or undefined. */
  reason?: string;
  /** True when the text also parses strictly. */
  strict: boolean;
}

export interface LenientParseResult {
  bins: Int32Array;
  diagnostics: LenientDiagnostics;
}

function describe(ch: string): string {
  return JSON.stringify(ch);
}

export function parseStrict(text: string, g: ActionGrammar): StrictParseResult {
  let s = g.start();
  const bins = new Int32Array(g.count);
  let pos = 0;
  for (const ch of text) {
    const next = g.step(s, ch);
    if (next === null) {
      let why: string;
      if (g.isAccepting(s)) why = `text continues after the last of ${g.count} numbers`;
      else if (s.sep >= 0) why = `expected separator ${describe(g.separatorAfter(s.num - 1))}`;
      else if (/[0-9]/.test(ch)) why = s.digits > 0 && s.value === 0 && g.width === undefined ? "leading zero" : `number ${s.num} would exceed ${g.bins}${g.width ? ` or its width ${g.width}` : ""}`;
      else if (g.numberComplete(s)) why = `expected separator ${describe(g.separatorAfter(s.num))} or a digit`;
      else why = g.width !== undefined && s.digits > 0 ? `number ${s.num} has ${s.digits} digits, expected ${g.width}` : "expected a digit";
      return { ok: false, error: { position: pos, message: `at offset ${pos} (${describe(ch)}): ${why}` } };
    }
    if (next.sep === -1 && next.num === s.num && next.digits > 0) bins[next.num] = next.value;
    s = next;
    pos += ch.length;
  }
  if (!g.isAccepting(s)) {
    const have = s.num + (g.numberComplete(s) ? 1 : 0);
    return { ok: false, error: { position: pos, message: `text ended after ${have} complete numbers, expected ${g.count}` } };
  }
  return { ok: true, bins };
}

function escapeRegex(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

export function parseLenient(text: string, g: ActionGrammar): LenientParseResult {
  const D = g.dims;
  const H = g.count / D;
  const B = g.bins;
  const strict = parseStrict(text, g).ok;
  const diag: LenientDiagnostics = { numbersFound: 0, dropped: 0, paddedSteps: 0, clamped: 0, emptyPieces: 0, fallback: false, strict };
  const fallback = (reason: string): LenientParseResult => {
    diag.fallback = true;
    diag.reason = reason;
    return { bins: new Int32Array(g.count).fill(Math.floor(B / 2)), diagnostics: diag };
  };
  const seps = [...new Set([g.separator, g.timestepSeparator].map((s) => s.trim()).filter((s) => s.length > 0))];
  const splitter = new RegExp(`(?:\\s|${seps.map(escapeRegex).join("|") || "\\s"})+`, "u");
  const trimmed = text.trim();
  const pieces = trimmed.length === 0 ? [] : trimmed.split(splitter);
  const values: number[] = [];
  for (const p of pieces) {
    if (p.length === 0) {
      diag.emptyPieces++;
      continue;
    }
    if (!/^[+-]?[0-9]+$/.test(p)) return fallback(`'${p.length > 20 ? p.slice(0, 20) + "…" : p}' is not an integer`);
    values.push(Number(p));
  }
  diag.numbersFound = values.length;
  let usable = values.length - (values.length % D);
  usable = Math.min(usable, g.count);
  diag.dropped = values.length - usable;
  if (usable === 0) return fallback(values.length === 0 ? "no numbers in the text" : `fewer than ${D} numbers (one timestep)`);
  const bins = new Int32Array(g.count);
  for (let i = 0; i < usable; i++) {
    let v = values[i] as number;
    if (!Number.isSafeInteger(v) || v < 0 || v > B) {
      v = !Number.isFinite(v) || v > B ? B : v < 0 ? 0 : v;
      diag.clamped++;
    }
    bins[i] = v;
  }
  const steps = usable / D;
  for (let t = steps; t < H; t++) bins.copyWithin(t * D, (steps - 1) * D, steps * D);
  diag.paddedSteps = H - steps;
  return { bins, diagnostics: diag };
}
