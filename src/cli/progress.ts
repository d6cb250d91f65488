/**
 * Progress of long work, written to stderr so that it reads well in both places: on a
 * terminal one line redrawn in place (at most ten times a second); in a log file (not a
 * TTY) a line every `intervalMs` or every `step` of the work, never one per item, and
 * always the last one.
 */
import type { CliIO } from "./command.js";

export interface Progress {
  /** The current state; fraction in [0, 1] when the total is known. */
  update(line: string, fraction?: number): void;
  /** A line of its own (ends a line being redrawn first). */
  log(line: string): void;
  /** The work is over: the last state is shown, and the line ended. */
  done(): void;
}

export interface ProgressOptions {
  /** Non-TTY: at most one line per this many ms (default 5000)... */
  intervalMs?: number;
  /** ...unless the work moved on by this fraction (default 0.1). */
  step?: number;
  /** The clock (tests pass their own). */
  now?: () => number;
}

export function progressReporter(io: Pick<CliIO, "err" | "isTTY">, options: ProgressOptions = {}): Progress {
  const now = options.now ?? (() => performance.now());
  const interval = options.intervalMs ?? 5000;
  const step = options.step ?? 0.1;
  let pending: string | undefined;
  let shown: string | undefined;
  let lastAt = -Infinity;
  let lastFraction = -Infinity;
  let onScreen = false; // TTY: a redrawn line without its newline
  const show = (line: string, fraction: number | undefined): void => {
    if (io.isTTY) {
      io.err(`\r${line}\x1b[K`);
      onScreen = true;
    } else io.err(`${line}\n`);
    shown = line;
    pending = undefined;
    lastAt = now();
    if (fraction !== undefined) lastFraction = fraction;
  };
  const endLine = (): void => {
    if (onScreen) io.err("\n");
    onScreen = false;
  };
  return {
    update(line, fraction) {
      pending = line;
      const t = now();
      if (io.isTTY) {
        if (t - lastAt >= 100 || fraction === 1) show(line, fraction);
        return;
      }
      if (t - lastAt >= interval || (fraction !== undefined && (fraction - lastFraction >= step || (fraction === 1 && lastFraction < 1)))) show(line, fraction);
    },
    log(line) {
      if (pending !== undefined && pending !== shown) show(pending, undefined);
      endLine();
      io.err(`${line}\n`);
    },
    done() {
      if (pending !== undefined && pending !== shown) show(pending, undefined);
      endLine();
      pending = undefined;
    },
  };
}
