import { describe, expect, it } from "vitest";
import { ActionGrammar } from "../../src/actions/grammar.js";
import { getFormat, parseTextFormat } from "../../src/actions/format.js";
import { parseLenient, parseStrict } from "../../src/actions/parser.js";
import { parseActionSpec, VLA0_SPEC } from "../../src/actions/spec.js";
import { rng } from "../support/rng.js";

const spec = parseActionSpec(VLA0_SPEC);
const g = new ActionGrammar(spec, getFormat("vla0"));
const seq = <T,>(n: number, f: (i: number) => T): T[] => Array.from({ length: n }, (_, i) => f(i));

describe("strict parser", () => {
  it("accepts exactly 56 integers in 0..1000", () => {
    const nums = seq(56, (i) => (i * 97) % 1001);
    const r = parseStrict(nums.join(" "), g);
    expect(r.ok && Array.from(r.bins)).toEqual(nums);
    expect(parseStrict(seq(56, () => 0).join(" "), g).ok).toBe(true);
    expect(parseStrict(seq(56, () => 1000).join(" "), g).ok).toBe(true);
  });

  it("says where and why it fails", () => {
    const ok = seq(56, () => 5);
    const cases: Array<[string, RegExp]> = [
      [[...ok.slice(0, 3), 1001, ...ok.slice(4)].join(" "), /offset 9 .*number 3 would exceed 1000/],
      [seq(55, () => 5).join(" "), /ended after 55 complete numbers, expected 56/],
      [seq(57, () => 5).join(" "), /offset 111 .*continues after the last of 56 numbers/],
      ["5  5", /offset 2 \(" "\): expected a digit/],
      ["05 5", /offset 1 .*leading zero/],
      ["5 a", /offset 2 \("a"\): expected a digit/],
      ["5,5", /offset 1 \(","\): expected separator " " or a digit/],
      ["", /ended after 0 complete numbers/],
    ];
    for (const [text, re] of cases) {
      const r = parseStrict(text, g);
      expect(r.ok).toBe(false);
      if (!r.ok) expect(r.error.message).toMatch(re);
    }
  });

  it("enforces fixed width and timestep separators", () => {
    const gp = new ActionGrammar(spec, getFormat("padded"));
    expect(parseStrict(seq(56, () => "0042").join(" "), gp).ok).toBe(true);
    const bad = parseStrict(["042", ...seq(55, () => "0042")].join(" "), gp);
    expect(!bad.ok && bad.error.message).toMatch(/offset 3 .*number 0 has 3 digits, expected 4/);
    const big = parseStrict(["42", ...seq(55, () => "0042")].join(" "), gp);
    expect(!big.ok && big.error.message).toMatch(/offset 0 .*number 0 would exceed 1000 or its width 4/);
    expect(parseStrict(["1001", ...seq(55, () => "0042")].join(" "), gp).ok).toBe(false);
    const gs = new ActionGrammar(spec, getFormat("steps"));
    const text = seq(8, () => seq(7, () => 3).join(" ")).join(" | ");
    expect(parseStrict(text, gs).ok).toBe(true);
    const wrong = parseStrict(seq(56, () => 3).join(" "), gs);
    expect(!wrong.ok && wrong.error.message).toMatch(/offset 14 .*expected separator " \| "/);
  });
});

describe("lenient parser (VLA-0 semantics)", () => {
  it("truncates to a multiple of D, pads with the last timestep, clamps", () => {
    // 16 numbers: 2 full timesteps + 2 extra -> keep 14, pad 6 timesteps
    const nums = seq(16, (i) => i);
    const r = parseLenient(`  ${nums.join(" ")}  `, g);
    expect(r.diagnostics).toMatchObject({ numbersFound: 16, dropped: 2, paddedSteps: 6, fallback: false, strict: false });
    expect(Array.from(r.bins.slice(0, 14))).toEqual(seq(14, (i) => i));
    for (let t = 2; t < 8; t++) expect(Array.from(r.bins.slice(t * 7, t * 7 + 7))).toEqual(seq(7, (i) => 7 + i));
    const c = parseLenient([-3, 1200, ...seq(54, () => 1)].join(" "), g);
    expect(c.diagnostics.clamped).toBe(2);
    expect([c.bins[0], c.bins[1]]).toEqual([0, 1000]);
    const long = parseLenient(seq(70, () => 2).join(" "), g);
    expect(long.diagnostics.dropped).toBe(14);
  });

  it("falls back to mid-range on garbage", () => {
    for (const t of ["", "hello", "1 2 3", "1 2 3 4 5 6 x 8", "1.5 2 3 4 5 6 7"]) {
      const r = parseLenient(t, g);
      expect(r.diagnostics.fallback).toBe(true);
      expect(Array.from(r.bins)).toEqual(seq(56, () => 500));
    }
  });

  it("marks strict-valid text", () => {
    expect(parseLenient(seq(56, () => 7).join(" "), g).diagnostics).toMatchObject({ strict: true, fallback: false, dropped: 0, paddedSteps: 0 });
  });

  it("fuzz: thousands of random and mutated strings never throw and always give H*D bins in range", () => {
    const r = rng(123);
    const grammars = [g, new ActionGrammar(spec, getFormat("steps")), new ActionGrammar(spec, getFormat("comma")), new ActionGrammar(spec, parseTextFormat({ name: "b9", bins: 9 }))];
    const alphabet = "0123456789 -+,|\n\t.ax";
    const valid = seq(56, (i) => (i * 31) % 1001).join(" ");
    let strictOk = 0;
    for (let i = 0; i < 4000; i++) {
      const gr = grammars[i % grammars.length]!;
      let s: string;
      if (i % 2 === 0) {
        s = seq(Math.floor(r() * 400), () => alphabet[Math.floor(r() * alphabet.length)]).join("");
      } else {
        const chars = valid.split("");
        const edits = 1 + Math.floor(r() * 5);
        for (let e = 0; e < edits; e++) {
          const p = Math.floor(r() * chars.length);
          const op = r();
          if (op < 0.33) chars.splice(p, 1);
          else if (op < 0.66) chars.splice(p, 0, alphabet[Math.floor(r() * alphabet.length)]!);
          else chars[p] = alphabet[Math.floor(r() * alphabet.length)]!;
        }
        s = chars.join("");
      }
      const out = parseLenient(s, gr);
      expect(out.bins.length).toBe(56);
      for (const b of out.bins) expect(b >= 0 && b <= gr.bins).toBe(true);
      const st = parseStrict(s, gr);
      if (st.ok) strictOk++;
      expect(st.ok).toBe(out.diagnostics.strict);
    }
    expect(strictOk).toBeLessThan(4000);
  });
});

describe("grammar automaton", () => {
  it("allows exactly the right next characters", () => {
    let s = g.start();
    expect(g.allowedChars(s).sort()).toEqual("0123456789".split(""));
    s = g.advance(s, "1")!;
    expect(g.allowedChars(s).sort()).toEqual(" 0123456789".split("").sort());
    s = g.advance(s, "00")!;
    expect(g.allowedChars(s).sort()).toEqual([" ", "0"]); // 1000 is the only 4-digit value
    s = g.advance(s, "0")!;
    expect(g.allowedChars(s)).toEqual([" "]);
    expect(g.allowedChars(g.advance(g.start(), "0")!)).toEqual([" "]); // no leading zeros
    const end = g.advance(g.start(), seq(56, () => 0).join(" "))!;
    expect(g.isAccepting(end)).toBe(true);
    expect(g.allowedChars(end)).toEqual([]);
    const open = g.advance(g.start(), seq(56, () => 9).join(" "))!;
    expect(g.isAccepting(open)).toBe(true); // "9" may still grow to "99": accepting, digits allowed
    expect(g.allowedChars(open).sort()).toEqual("0123456789".split(""));
  });
});
