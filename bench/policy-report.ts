/** The policy benchmark's cells and its plot: one bar per setting with its 95% Wilson interval (SVG, no dependency). */
import { wilson } from "../src/policy/interval.js";

export interface BenchCell {
  setting: string;
  change: string;
  perSeed: Array<{ seed: number; successes: number; trials: number; families: Array<{ family: string; successes: number; episodes: number }> }>;
  /** Pooled over seeds. */
  successes: number;
  trials: number;
  reported?: string;
  note?: string;
}

const esc = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");

/** Horizontal bars (success rate), whiskers (Wilson 95%), a dot per seed; unmeasured settings say so. */
export function policyPlotSvg(cells: readonly BenchCell[]): string {
  const rowH = 26;
  const left = 130;
  const width = 640;
  const plotW = width - left - 70;
  const height = 40 + rowH * cells.length + 30;
  const X = (p: number) => left + p * plotW;
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="${width}" height="${height}" fill="white"/>`,
    `<text x="${left}" y="18">closed-loop success, 95% Wilson intervals (dots: seeds)</text>`,
  ];
  for (let g = 0; g <= 10; g += 2) parts.push(`<line x1="${X(g / 10)}" y1="28" x2="${X(g / 10)}" y2="${height - 24}" stroke="#ddd"/><text x="${X(g / 10)}" y="${height - 8}" text-anchor="middle">${g * 10}%</text>`);
  cells.forEach((c, i) => {
    const y = 34 + i * rowH;
    parts.push(`<text x="${left - 6}" y="${y + 15}" text-anchor="end">${esc(c.setting)}</text>`);
    if (c.trials === 0) {
      parts.push(`<text x="${X(0) + 4}" y="${y + 15}" fill="#888">not measured</text>`);
      return;
    }
    const w = wilson(c.successes, c.trials);
    parts.push(`<rect x="${X(0)}" y="${y + 4}" width="${(X(w.rate) - X(0)).toFixed(1)}" height="${rowH - 10}" fill="${c.setting === "recipe" ? "#2a6fdb" : "#8fb3ee"}"/>`);
    parts.push(`<line x1="${X(w.lo).toFixed(1)}" y1="${y + rowH / 2}" x2="${X(w.hi).toFixed(1)}" y2="${y + rowH / 2}" stroke="black"/>`);
    for (const e of [w.lo, w.hi]) parts.push(`<line x1="${X(e).toFixed(1)}" y1="${y + 6}" x2="${X(e).toFixed(1)}" y2="${y + rowH - 8}" stroke="black"/>`);
    for (const p of c.perSeed) if (p.trials > 0) parts.push(`<circle cx="${X(p.successes / p.trials).toFixed(1)}" cy="${y + rowH / 2}" r="2.5" fill="#d33"/>`);
    parts.push(`<text x="${X(1) + 6}" y="${y + 15}">${(100 * w.rate).toFixed(0)}%</text>`);
  });
  parts.push("</svg>");
  return parts.join("\n") + "\n";
}
