"""Tests of the device check's host parts (no GPU, no vlatext build): argument parsing, the
budget, the report writer, the safetensors manifest and HF's label shift.
    python3 scripts/gpu-check/test_check.py"""
import io
import json
import os
import struct
import sys
import tempfile
import time
import unittest
from contextlib import redirect_stderr

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import driver  # noqa: E402
import hf_side  # noqa: E402
from report import Report, Stage, markdown, read_text, rel_err  # noqa: E402


class Args(unittest.TestCase):
    def test_defaults_and_model(self):
        a = driver.parse_args(["--out", "x"])
        self.assertEqual(a.model, "3b")
        self.assertEqual(a.stages, list(driver.STAGES))
        self.assertEqual(driver.parse_args(["--out", "x", "--cpu-only"]).model, "small")

    def test_bad_stage_and_budget(self):
        for argv in (["--out", "x", "--stages", "kernels,nope"], ["--out", "x", "--budget", "0"], []):
            with redirect_stderr(io.StringIO()) as err, self.assertRaises(SystemExit):
                driver.parse_args(argv)
            self.assertIn("error", err.getvalue())

    def test_every_stage_has_a_box_and_a_runner(self):
        self.assertEqual(set(driver.STAGES), set(driver.BOXES))
        self.assertEqual(set(driver.STAGES), set(driver.RUNNERS))


class BudgetAndStages(unittest.TestCase):
    def test_box(self):
        b = driver.Budget(100)
        self.assertLessEqual(b.box(30), 30)
        self.assertGreater(b.box(30), 29)
        self.assertLessEqual(b.box(1000), 95.1)
        self.assertEqual(driver.Budget(3).box(10), 0.0)

    def test_timeout_and_error_become_statuses(self):
        with tempfile.TemporaryDirectory() as d:
            a = driver.parse_args(["--out", d, "--cpu-only", "--budget", "60"])
            c = driver.Ctx(a, Report(d, {}))
            driver.RUNNERS["slow"] = lambda c, st, t: driver.run([sys.executable, "-c", "import time; time.sleep(5)"], 0.5)
            driver.RUNNERS["broken"] = lambda c, st, t: 1 / 0
            driver.BOXES.update(slow=10, broken=10)
            try:
                self.assertEqual(driver.run_stage(c, "slow").status, "timeout")
                st = driver.run_stage(c, "broken")
                self.assertEqual(st.status, "error")
                self.assertIn("ZeroDivisionError", st.reason)
                c.budget.deadline = time.time()
                self.assertEqual(driver.run_stage(c, "broken").status, "skip")
            finally:
                for k in ("slow", "broken"):
                    driver.RUNNERS.pop(k), driver.BOXES.pop(k)
            self.assertEqual(json.loads(read_text(os.path.join(d, "report.json")))["overall"], "fail")


class Reports(unittest.TestCase):
    def test_written_after_each_stage_with_failures_first(self):
        with tempfile.TemporaryDirectory() as d:
            r = Report(d, {"mode": "test"})
            s = Stage("kernels")
            for i in range(70):
                s.check(f"ok {i}", True)
            s.check("bad one | with a pipe", False, "max_abs_err=1")
            s.numbers["tokens/s"] = 1234.5678
            s.settle()
            r.add(s)
            self.assertEqual(s.status, "fail")
            md = read_text(os.path.join(d, "report.md"))
            self.assertIn("| kernels | fail |", md)
            self.assertLess(md.index("bad one \\| with a pipe"), md.index("ok 0"))  # failures shown first
            self.assertIn("more passing checks in report.json", md)
            self.assertIn("| tokens/s | 1235 |", md)
            j = json.loads(read_text(os.path.join(d, "report.json")))
            self.assertEqual(j["overall"], "fail")
            self.assertEqual(len(j["stages"][0]["checks"]), 71)
            self.assertFalse(any(f.endswith(".tmp") for f in os.listdir(d)))

    def test_overall(self):
        with tempfile.TemporaryDirectory() as d:
            r = Report(d, {})
            self.assertEqual(r.overall(), "nothing ran")
            r.add(Stage("a", status="pass"))
            r.add(Stage("b", status="skip", reason="no GPU"))
            self.assertEqual(r.overall(), "pass")
            self.assertIn("no GPU", markdown(r.as_dict()))

    def test_rel_err(self):
        self.assertAlmostEqual(rel_err([1.0, 2.0], [1.0, 4.0]), 0.5)
        with self.assertRaises(ValueError):
            rel_err([1.0], [1.0, 2.0])


class Manifest(unittest.TestCase):
    def test_entries_and_manifest(self):
        import numpy as np
        from safetensors.numpy import save_file

        with tempfile.TemporaryDirectory() as d:
            p = os.path.join(d, "m.safetensors")
            a = np.arange(6, dtype=np.float32).reshape(2, 3)
            b = np.array([7, 8], dtype=np.float32)
            save_file({"model.language_model.embed_tokens.weight": a, "x.bias": b}, p)
            ents = {n: (dt, off, cnt) for n, dt, off, cnt in hf_side.safetensors_entries(p)}
            with open(p, "rb") as f:
                raw = f.read()
            dt, off, cnt = ents["model.language_model.embed_tokens.weight"]
            self.assertEqual((dt, cnt), ("F32", 6))
            self.assertEqual(struct.unpack("<6f", raw[off:off + 24]), tuple(float(x) for x in range(6)))
            man = os.path.join(d, "m.manifest")
            cfg = dict(vocab_size=2, hidden_size=3, num_hidden_layers=1, num_attention_heads=1, num_key_value_heads=1, intermediate_size=4, rms_norm_eps=1e-6,
                       tie_word_embeddings=True, rope_parameters={"rope_theta": 1e6, "mrope_section": [1, 0, 0]})
            hf_side.write_manifest(man, cfg, [p], rename=lambda n: "model.embed_tokens.weight" if "embed" in n else None, grammar=hf_side.qwen_grammar())
            lines = read_text(man).splitlines()
            self.assertEqual(lines[0], "config qwen2 2 3 1 1 1 3 4 1e-06 1000000.0 1")
            self.assertEqual(lines[1], "rope_sections 1 0 0")
            self.assertIn(f"tensor model.embed_tokens.weight 0 F32 {off} 6", lines)
            self.assertFalse(any("x.bias" in l for l in lines))
            self.assertIn("grammar 151645", lines)
            self.assertIn("token 220 20", lines)  # " " as hex
            self.assertIn("token 15 30", lines)  # "0"

    def test_hf_labels_shift(self):
        self.assertEqual(hf_side.hf_labels([5, 6, -100, 7, 8, -100], 3), [[-100, 5, 6], [-100, 7, 8]])


if __name__ == "__main__":
    unittest.main()
