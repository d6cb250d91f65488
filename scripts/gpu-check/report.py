"""The device check's record: stages with their checks and numbers, written as JSON and Markdown.

A stage is one time-boxed step of scripts/gpu-check.sh (build, kernels, goldens, model, bench...);
its status is pass, fail (a check failed), error (it broke), timeout (it ran past its box) or
skip (with the reason). The report is written after every stage, so a run killed at the
budget still leaves what it did.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from typing import Any

STATUSES = ("pass", "fail", "error", "timeout", "skip")


def read_text(path: str) -> str:
    with open(path) as f:
        return f.read()


@dataclass
class Check:
    name: str
    ok: bool
    detail: str = ""


@dataclass
class Stage:
    name: str
    status: str = "skip"
    seconds: float = 0.0
    reason: str = ""
    checks: list[Check] = field(default_factory=list)
    numbers: dict[str, Any] = field(default_factory=dict)

    def check(self, name: str, ok: bool, detail: str = "") -> bool:
        self.checks.append(Check(name, bool(ok), detail))
        return bool(ok)

    def settle(self) -> None:
        """pass or fail from the checks, unless the stage already ended otherwise."""
        if self.status in ("error", "timeout", "skip") and self.reason:
            return
        self.status = "fail" if any(not c.ok for c in self.checks) else "pass"


def rel_err(got, want) -> float:
    """max |got - want| / max |want| (the goldens' measure), over flat sequences of numbers."""
    import numpy as np

    g, w = np.asarray(got, dtype=np.float64).ravel(), np.asarray(want, dtype=np.float64).ravel()
    if g.shape != w.shape:
        raise ValueError(f"shapes differ: {g.shape} vs {w.shape}")
    scale = float(np.max(np.abs(w))) if w.size else 0.0
    return float(np.max(np.abs(g - w)) / scale) if scale > 0 else float(np.max(np.abs(g - w), initial=0.0))


class Report:
    def __init__(self, out_dir: str, meta: dict[str, Any]):
        self.out_dir = out_dir
        self.meta = dict(meta)
        self.stages: list[Stage] = []
        self.started = time.time()
        os.makedirs(out_dir, exist_ok=True)

    def add(self, stage: Stage) -> Stage:
        self.stages.append(stage)
        self.write()
        return stage

    def overall(self) -> str:
        ran = [s for s in self.stages if s.status != "skip"]
        if not ran:
            return "nothing ran"
        return "pass" if all(s.status == "pass" for s in ran) else "fail"

    def as_dict(self) -> dict[str, Any]:
        return {
            "meta": self.meta,
            "overall": self.overall(),
            "seconds": round(time.time() - self.started, 1),
            "stages": [asdict(s) for s in self.stages],
        }

    def write(self) -> None:
        d = self.as_dict()
        tmp = os.path.join(self.out_dir, "report.json.tmp")
        with open(tmp, "w") as f:
            json.dump(d, f, indent=1, default=str)
        os.replace(tmp, os.path.join(self.out_dir, "report.json"))
        tmp = os.path.join(self.out_dir, "report.md.tmp")
        with open(tmp, "w") as f:
            f.write(markdown(d))
        os.replace(tmp, os.path.join(self.out_dir, "report.md"))


def _cell(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v).replace("|", "\\|").replace("\n", " ")


def markdown(d: dict[str, Any]) -> str:
    lines = ["# vlatext device check", ""]
    for k, v in d["meta"].items():
        lines.append(f"- {k}: {_cell(v)}")
    lines += [f"- overall: **{d['overall']}** in {d['seconds']} s", "", "| stage | status | s | checks | reason |", "| --- | --- | --- | --- | --- |"]
    for s in d["stages"]:
        n_ok = sum(1 for c in s["checks"] if c["ok"])
        lines.append(f"| {s['name']} | {s['status']} | {s['seconds']:.1f} | {n_ok}/{len(s['checks'])} | {_cell(s['reason'])} |")
    for s in d["stages"]:
        if not s["checks"] and not s["numbers"]:
            continue
        lines += ["", f"## {s['name']} ({s['status']})", ""]
        failed = [c for c in s["checks"] if not c["ok"]]
        shown = failed + [c for c in s["checks"] if c["ok"]][: max(0, 60 - len(failed))]
        if shown:
            lines += ["| check | ok | detail |", "| --- | --- | --- |"]
            lines += [f"| {_cell(c['name'])} | {'yes' if c['ok'] else '**NO**'} | {_cell(c['detail'])} |" for c in shown]
            if len(shown) < len(s["checks"]):
                lines.append(f"| ... {len(s['checks']) - len(shown)} more passing checks in report.json | | |")
        if s["numbers"]:
            lines += ["", "| number | value |", "| --- | --- |"]
            lines += [f"| {_cell(k)} | {_cell(v)} |" for k, v in s["numbers"].items()]
    return "\n".join(lines) + "\n"
