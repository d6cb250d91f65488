import { describe, expect, it } from "vitest";
import { VlaError } from "../../src/errors.js";
import { listTemplates, loadTemplate, parseTemplate, renderTemplate } from "../../src/prompts/template.js";

const values = { horizon: 8, dims: 7, bins: 1000, instruction: "  pick up the cup ", images: 1 };

function err(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    if (e instanceof VlaError) return `${e.code}: ${e.message}`;
    throw e;
  }
  return "no error";
}

describe("prompt templates", () => {
  it("renders VLA-0's system prompt word for word", () => {
    const r = renderTemplate(loadTemplate("vla0"), values);
    expect(r.system).toBe(
      "Analyze the input image and predict robot actions for the next 8 timesteps. Each action has 7 dimensions. Output a single sequence of 56 integers (0-1000 each), representing the 8 timesteps sequentially. Provide only space separated numbers. Nothing else.",
    );
    expect(r.user).toEqual([
      { type: "image", index: 0 },
      { type: "text", text: "pick up the cup", role: "instruction" },
    ]);
  });

  it("ships at least three templates that all render", () => {
    const names = listTemplates();
    expect(names).toEqual(expect.arrayContaining(["vla0", "vla0-state", "terse", "terse-state", "steps"]));
    for (const n of names) {
      const t = loadTemplate(n);
      const r = renderTemplate(t, { ...values, images: 2, state: "1 2 3" });
      expect(r.user.filter((p) => p.type === "image")).toHaveLength(2);
      expect(r.system).not.toMatch(/[{}]/);
    }
    const s = renderTemplate(loadTemplate("vla0-state"), { ...values, state: "500 20 7" });
    expect(s.user).toContainEqual({ type: "text", text: "500 20 7", role: "state" });
  });

  it("names the missing or unknown placeholder", () => {
    expect(err(() => parseTemplate("[system]\nhi\n[user]\n{images}", "t"))).toBe(
      "TEMPLATE_PLACEHOLDER: t: the [user] section has no {instruction} placeholder\n  hint: add {instruction} where the task text goes",
    );
    expect(err(() => parseTemplate("[system]\nnext {Hz} steps\n[user]\n{instruction}", "t"))).toMatch(/^TEMPLATE_PLACEHOLDER: t \[system\]: unknown placeholder \{Hz\}/);
    expect(err(() => parseTemplate("[system]\n{images}\n[user]\n{instruction}", "t"))).toMatch(/\{images\} may only appear in \[user\]/);
    expect(err(() => renderTemplate(loadTemplate("vla0-state"), values))).toMatch(/uses \{state\} but no state was given/);
    expect(err(() => renderTemplate(parseTemplate("[system]\nx\n[user]\n{instruction}", "t"), values))).toMatch(/has no \{images\} placeholder but 1 image/);
    expect(err(() => renderTemplate(loadTemplate("vla0"), { ...values, instruction: "  " }))).toMatch(/instruction is empty/);
  });

  it("rejects malformed files with the line", () => {
    expect(err(() => parseTemplate("hello\n[system]\nx\n[user]\n{instruction}", "t", "f.txt"))).toMatch(/f\.txt:1: text before the first \[section\]/);
    expect(err(() => parseTemplate("[system]\nx\n[assistant]\ny", "t", "f.txt"))).toMatch(/f\.txt:3: unknown section \[assistant\]/);
    expect(err(() => parseTemplate("[system]\nx {B\n[user]\n{instruction}", "t"))).toMatch(/unclosed '\{'/);
    expect(err(() => parseTemplate("[meta]\nformt: vla0\n[system]\nx\n[user]\n{instruction}", "t"))).toMatch(/unknown key 'formt'/);
    expect(err(() => loadTemplate("nope"))).toMatch(/TEMPLATE_NOT_FOUND: prompt template 'nope' not found/);
    const lit = renderTemplate(parseTemplate("[system]\n{{json}} {B}\n[user]\n{instruction}", "t"), { ...values, images: 0 });
    expect(lit.system).toBe("{json} 1000");
  });
});
