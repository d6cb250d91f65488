#!/usr/bin/env python3
"""The device check's stages (scripts/gpu-check.sh runs this): build, the cuBLASLt ABI against
the real header, every CUDA kernel and whole small models against the CPU backend
(vlatext_cuda_tests), the decoder against the transformers goldens (test/goldens/qwen25vl) on
each backend, then a random-weight model with Qwen2.5-VL-3B-Instruct's exact config built in
transformers: its logits in vlatext (CUDA and CPU) against transformers, and the benchmarks
(LoRA training tokens/s and peak memory against HF+PEFT bf16 sdpa; 56-integer chunk latency
against HF generate with VLA-0's digits-only processor). Every stage is time-boxed inside one
overall budget; the report (report.json, report.md) is rewritten after each stage.

  python3 scripts/gpu-check/driver.py --out DIR [--budget S] [--cpu-only] [--model 3b|small]
                                      [--stages a,b,...] [--bin DIR] [--build-dir DIR]
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from report import Report, Stage, read_text, rel_err  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
STAGES = ("env", "build", "abi", "kernels", "goldens", "model", "train", "decode")
# Each stage's box in seconds (the budget left caps it further).
BOXES = {"env": 20, "build": 240, "abi": 30, "kernels": 120, "goldens": 60, "model": 150, "train": 150, "decode": 120}


class StageTimeout(Exception):
    pass


def parse_args(argv):
    p = argparse.ArgumentParser(description="vlatext's device check (see scripts/gpu-check.sh)")
    p.add_argument("--out", required=True, help="folder for report.json, report.md and logs")
    p.add_argument("--budget", type=float, default=460.0, help="seconds for everything (default 460)")
    p.add_argument("--cpu-only", action="store_true", help="no GPU: run every stage that can on the CPU backend (for testing the check itself)")
    p.add_argument("--model", choices=("3b", "small"), default=None, help="the random model: Qwen2.5-VL-3B-Instruct's config (default on a GPU) or a small one (default with --cpu-only)")
    p.add_argument("--stages", default=",".join(STAGES), help=f"comma-separated subset of {','.join(STAGES)}")
    p.add_argument("--bin", default=None, help="use the binaries in this folder instead of building")
    p.add_argument("--build-dir", default=os.path.join(ROOT, "build-gpu"))
    p.add_argument("--seed", type=int, default=int(time.time()) % 100000)
    a = p.parse_args(argv)
    a.stages = [s.strip() for s in a.stages.split(",") if s.strip()]
    bad = [s for s in a.stages if s not in STAGES]
    if bad:
        p.error(f"unknown stage(s) {', '.join(bad)}; stages are {', '.join(STAGES)}")
    if a.model is None:
        a.model = "small" if a.cpu_only else "3b"
    if a.budget <= 0:
        p.error("--budget must be positive")
    return a


class Budget:
    def __init__(self, seconds: float):
        self.deadline = time.time() + seconds

    def left(self) -> float:
        return self.deadline - time.time()

    def box(self, limit: float) -> float:
        return max(0.0, min(limit, self.left() - 5.0))  # 5 s kept for writing the report


def run(cmd, timeout: float, env=None, log=None) -> subprocess.CompletedProcess:
    if timeout <= 1:
        raise StageTimeout("no time left in the budget")
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT)
    except subprocess.TimeoutExpired as e:
        if log:
            with open(log, "a") as f:
                f.write(f"$ {' '.join(map(str, cmd))}\n(timed out after {timeout:.0f} s)\n{e.stdout or ''}{e.stderr or ''}\n")
        raise StageTimeout(f"{os.path.basename(str(cmd[0]))} ran past {timeout:.0f} s")
    if log:
        with open(log, "a") as f:
            f.write(f"$ {' '.join(map(str, cmd))}\n(rc {r.returncode})\n{r.stdout}{r.stderr}\n")
    return r


def last_json(out: str) -> dict:
    for line in reversed(out.strip().splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    raise ValueError("no JSON line in the output")


class Ctx:
    def __init__(self, a, report: Report):
        self.a = a
        self.report = report
        self.budget = Budget(a.budget)
        self.log = os.path.join(a.out, "log.txt")
        self.env = dict(os.environ)
        self.bin = a.bin
        self.work = tempfile.mkdtemp(prefix="vlatext-gpu-check-")
        self.devices = ["cpu"] if a.cpu_only else ["cuda", "cpu"]
        self.model = None  # the transformers model of the model stage, kept for train and decode
        self.manifest = None

    def exe(self, name: str) -> str:
        if not self.bin:
            raise RuntimeError("no binaries (the build stage did not run or failed)")
        return os.path.join(self.bin, name)

    def check_tool(self, args, timeout, **kw) -> dict:
        r = run([self.exe("vlatext_model_check"), *map(str, args)], timeout, env=self.env, log=self.log)
        if r.returncode != 0:
            raise RuntimeError(f"vlatext_model_check {args[0]} failed: {r.stderr.strip()[-400:]}")
        return last_json(r.stdout)


def stage_env(c: Ctx, st: Stage, timeout: float):
    st.numbers["python"] = platform.python_version()
    try:
        import torch

        st.numbers["torch"] = torch.__version__
        st.numbers["gpu"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    except ImportError:
        st.numbers["torch"] = "not installed"
    try:
        import transformers

        st.numbers["transformers"] = transformers.__version__
    except ImportError:
        st.numbers["transformers"] = "not installed"
    if shutil.which("nvidia-smi"):
        r = run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"], timeout, log=c.log)
        st.numbers["nvidia-smi"] = r.stdout.strip()
    lib = find_cublaslt()
    st.numbers["cuBLASLt"] = lib or "not found"
    if lib and "VLATEXT_CUBLASLT" not in c.env:
        c.env["VLATEXT_CUBLASLT"] = lib
    if not c.a.cpu_only:
        st.check("cuBLASLt found", lib is not None, lib or "no libcublasLt.so.13/.so.12 in the CUDA toolkit or the Python wheels")


def find_cublaslt() -> str | None:
    pats = ["/usr/local/cuda/lib64/libcublasLt.so.1[23]"]
    for sp in sys.path:
        pats += [os.path.join(sp, "nvidia", "*", "lib", "libcublasLt.so.1[23]"), os.path.join(sp, "torch", "lib", "libcublasLt.so.1[23]")]
    for pat in pats:
        hits = sorted(glob.glob(pat), reverse=True)
        if hits:
            return hits[0]
    return None


def stage_build(c: Ctx, st: Stage, timeout: float):
    if c.bin:
        st.status, st.reason = "skip", f"using the binaries in {c.bin}"
        return
    t0 = time.time()
    cuda = "OFF" if c.a.cpu_only else "ON"
    gen = ["-G", "Ninja"] if shutil.which("ninja") else []
    r = run(["cmake", "-S", ROOT, "-B", c.a.build_dir, *gen, "-DCMAKE_BUILD_TYPE=Release", f"-DVLATEXT_CUDA={cuda}", "-DVLATEXT_WERROR=OFF"], timeout, log=c.log)
    if not st.check("cmake configure", r.returncode == 0, r.stderr.strip()[-300:]):
        return
    targets = ["vlatext_model_check"] + ([] if c.a.cpu_only else ["vlatext_cuda_tests"])
    r = run(["cmake", "--build", c.a.build_dir, "--parallel", str(os.cpu_count() or 4), "--target", *targets], timeout - (time.time() - t0), log=c.log)
    if st.check("build", r.returncode == 0, r.stdout.strip()[-300:] if r.returncode else ""):
        c.bin = c.a.build_dir


def stage_abi(c: Ctx, st: Stage, timeout: float):
    headers = []
    for sp in sys.path:
        headers += glob.glob(os.path.join(sp, "nvidia", "*", "include", "cublasLt.h"))
    headers += glob.glob("/usr/local/cuda/include/cublasLt.h")
    if not headers:
        st.status, st.reason = "skip", "no cublasLt.h here (CUDA toolkit or nvidia-cublas wheel headers)"
        return
    inc = os.path.dirname(headers[0])
    cuda_inc = "/usr/local/cuda/include"
    r = run(["g++", "-std=c++17", "-fsyntax-only", f"-I{inc}", f"-I{cuda_inc}", "-I" + os.path.join(ROOT, "native"), os.path.join(ROOT, "scripts", "gpu-check", "cublaslt_abi.cpp")], timeout, log=c.log)
    st.check("our cuBLASLt declarations match " + headers[0], r.returncode == 0, r.stderr.strip()[-600:])


def stage_kernels(c: Ctx, st: Stage, timeout: float):
    exe = c.exe("vlatext_cuda_tests")
    if not os.path.exists(exe):
        st.status, st.reason = "skip", f"no {exe} (a CUDA build makes it)"
        return
    r = run([exe, str(c.a.seed)], timeout, env=c.env, log=c.log)
    for line in r.stdout.splitlines():
        if line.startswith(("PASS ", "FAIL ")):
            ok = line.startswith("PASS")
            st.check(line[5:], ok)
        elif line.startswith("SKIP "):
            st.check(line, c.a.cpu_only, "skipped" + ("" if c.a.cpu_only else " on a GPU machine"))
        elif line.startswith("gpu: "):
            st.numbers.setdefault("backends", []).append(line[5:])
    st.check("vlatext_cuda_tests exit status", r.returncode == 0, f"rc {r.returncode}" + (f": {r.stderr.strip()[-300:]}" if r.returncode else ""))


def golden_inputs(c: Ctx, folder: str, case: str):
    """tokens, positions, image rows and features of one golden, as raw files; the HF logits."""
    import numpy as np
    from safetensors.numpy import load_file

    g = load_file(os.path.join(folder, f"{case}.safetensors"))
    cfg = json.loads(read_text(os.path.join(folder, "config.json")))
    ids = g["input_ids"].astype(np.int32)
    rows = np.nonzero(ids == cfg["image_token_id"])[0].astype(np.int32)
    base = os.path.join(c.work, f"{os.path.basename(folder)}-{case}")
    ids.tofile(base + ".tokens")
    g["position_ids"].astype(np.int32).tofile(base + ".positions")
    rows.tofile(base + ".rows")
    g["vision_features"].astype(np.float32).tofile(base + ".inject")
    return base, g["logits"], cfg


def stage_goldens(c: Ctx, st: Stage, timeout: float):
    import numpy as np
    from hf_side import write_manifest

    t0 = time.time()
    for variant in ("full", "window"):
        folder = os.path.join(ROOT, "test", "goldens", "qwen25vl", variant)
        cfg = json.loads(read_text(os.path.join(folder, "config.json")))
        man = os.path.join(c.work, f"{variant}.manifest")
        write_manifest(man, cfg["text_config"], [os.path.join(folder, "model.safetensors")],
                       rename=lambda n: ("model." + n[len("model.language_model."):]) if n.startswith("model.language_model.") else (n if n == "lm_head.weight" else None))
        for case in ("1img", "2img"):
            base, want_f32, _ = golden_inputs(c, folder, case)
            from safetensors.numpy import load_file

            want_bf16 = load_file(os.path.join(folder, f"{case}-bf16w.safetensors"))["logits"]  # the same inputs, bf16-rounded weights
            for dev in c.devices:
                for dtype, want, tol in (("f32", want_f32, 1e-4), ("bf16", want_bf16, 1.5e-2)):
                    out = f"{base}.{dev}.{dtype}.logits"
                    left = timeout - (time.time() - t0)
                    c.check_tool(["forward", "--manifest", man, "--device", dev, "--dtype", dtype, "--tokens", base + ".tokens", "--positions", base + ".positions", "--inject-rows", base + ".rows",
                                  "--inject", base + ".inject", "--out", out], left)
                    got = np.fromfile(out, dtype=np.float32).reshape(want.shape)
                    e = rel_err(got, want)
                    st.check(f"{variant}/{case} {dev} {dtype} logits vs transformers", e <= tol, f"max|d|/max|HF| = {e:.3g} (tolerance {tol:g})")


def stage_model(c: Ctx, st: Stage, timeout: float):
    """The random model in transformers, saved; its logits in vlatext against transformers."""
    import numpy as np
    import hf_side

    dev = "cpu" if c.a.cpu_only else "cuda"
    t0 = time.time()
    c.model = hf_side.build(c.a.model, dev, seed=c.a.seed)
    st.numbers["build_s"] = round(time.time() - t0, 1)
    path = os.path.join(c.work, "text.safetensors")
    hf_side.save_safetensors(hf_side.text_tensors(c.model), path)
    st.numbers["save_s"] = round(time.time() - t0 - st.numbers["build_s"], 1)
    c.manifest = os.path.join(c.work, "model.manifest")
    hf_side.write_manifest(c.manifest, c.model.config.get_text_config().to_dict(), [path], grammar=hf_side.qwen_grammar())
    rng = np.random.default_rng(c.a.seed)
    tokens = rng.integers(0, c.model.config.get_text_config().vocab_size, size=64).astype(np.int32)
    tokens.tofile(os.path.join(c.work, "model.tokens"))
    want = hf_side.logits(c.model, tokens.tolist(), dev, f32=True)
    # bf16 weights exactly as saved; the reference runs them in f32, vlatext rounds activations to bf16
    # before the GPU's large products: 3e-2 of the logits' range (the goldens' bf16 level, doubled for 36 layers)
    for vdev in c.devices:
        out = os.path.join(c.work, f"model.{vdev}.logits")
        left = timeout - (time.time() - t0)
        j = c.check_tool(["forward", "--manifest", c.manifest, "--device", vdev, "--dtype", "bf16", "--tokens", os.path.join(c.work, "model.tokens"), "--out", out], left)
        got = np.fromfile(out, dtype=np.float32).reshape(want.shape)
        e = rel_err(got, want)
        agree = float(np.mean(np.argmax(got, 1) == np.argmax(want, 1)))
        st.check(f"{c.a.model} {vdev} bf16 logits vs transformers", e <= 3e-2, f"max|d|/max|HF| = {e:.3g} (tolerance 3e-2); top-1 agreement {agree:.2f}")
        st.numbers[f"{vdev} load_ms"] = j["load_ms"]
        st.numbers[f"{vdev} forward_ms (64 tokens)"] = j["forward_ms"]
        st.numbers[f"{vdev} backend"] = j["backend"]
        np.save(os.path.join(c.work, f"model.{vdev}.npy"), got)
    if len(c.devices) == 2:
        a, b = (np.fromfile(os.path.join(c.work, f"model.{d}.logits"), dtype=np.float32) for d in c.devices)
        e = rel_err(a, b)
        st.check(f"{c.a.model} cuda vs cpu engine logits", e <= 3e-2, f"max|d|/max|cpu| = {e:.3g} (tolerance 3e-2)")


def stage_train(c: Ctx, st: Stage, timeout: float):
    import numpy as np
    import hf_side

    if c.model is None:
        st.status, st.reason = "skip", "the model stage did not run"
        return
    dev = "cpu" if c.a.cpu_only else "cuda"
    B, T, steps, rank = (2, 64, 3, 8) if c.a.cpu_only else (4, 434, 4, 16)  # VLA-0: ~226 prompt (incl. 128 image) + ~208 answer tokens
    rng = np.random.default_rng(c.a.seed + 1)
    V = c.model.config.get_text_config().vocab_size
    tokens = rng.integers(0, V, size=B * T).astype(np.int32)
    targets = rng.integers(0, V, size=B * T).astype(np.int32)
    targets[np.arange(B * T) % T < 226 * T // 434] = -100  # loss on the answer only
    targets[np.arange(B * T) % T == T - 1] = -100  # (HF's shifted labels cannot see the last one)
    tokens.tofile(os.path.join(c.work, "train.tokens"))
    targets.tofile(os.path.join(c.work, "train.targets"))
    t0 = time.time()
    ours = c.check_tool(["train", "--manifest", c.manifest, "--device", dev, "--dtype", "bf16", "--batch", B, "--seq", T, "--steps", steps, "--rank", rank, "--tokens", os.path.join(c.work, "train.tokens"),
                         "--targets", os.path.join(c.work, "train.targets")], timeout * 0.5)
    hf = hf_side.train_bench(c.model, tokens.tolist(), targets.tolist(), B, T, steps, rank, dev)
    st.numbers.update({"batch x seq": f"{B} x {T}", "LoRA rank": rank, "vlatext tokens/s": ours["tokens_per_s"], "HF+PEFT tokens/s": hf["tokens_per_s"],
                       "speed ratio (goal >= 2)": ours["tokens_per_s"] / hf["tokens_per_s"] if hf["tokens_per_s"] else 0.0,
                       "vlatext peak GiB (device memory in use, pool included)": ours["peak_bytes"] / 2**30, "HF peak GiB allocated / reserved": f"{hf['peak_bytes'] / 2**30:.2f} / {hf['peak_reserved_bytes'] / 2**30:.2f}",
                       "vlatext loss": ours["loss"], "HF loss": hf["loss"], "vlatext step ms": ours["step_ms"], "HF step ms": hf["step_ms"], "seconds": round(time.time() - t0, 1)})
    # step 0: LoRA B = 0 on both sides, so the loss is the base model's on the same tokens
    e = abs(ours["loss"][0] - hf["loss"][0]) / max(1e-6, abs(hf["loss"][0]))
    st.check("first-step loss equals HF's (same weights and tokens, LoRA B = 0)", e <= 1e-2, f"{ours['loss'][0]:.5f} vs {hf['loss'][0]:.5f} (rel {e:.2g}, tolerance 1e-2: bf16)")
    st.check("vlatext loss finite and falling", all(np.isfinite(ours["loss"])) and ours["loss"][-1] <= ours["loss"][0] + 1e-3, str(ours["loss"]))


def stage_decode(c: Ctx, st: Stage, timeout: float):
    import numpy as np
    import hf_side

    if c.model is None:
        st.status, st.reason = "skip", "the model stage did not run"
        return
    dev = "cpu" if c.a.cpu_only else "cuda"
    P, K = 226, (2 if c.a.cpu_only else 4)  # consecutive prompts: chunk k is chunk k-1's draft
    t0 = time.time()
    res = {}
    for mode in ("plain", "jump", "speculative"):
        res[mode] = c.check_tool(["decode", "--manifest", c.manifest, "--device", dev, "--dtype", "bf16", "--prompt", P, "--chunks", K, "--mode", mode], timeout * 0.25)
    for mode in ("jump", "speculative"):
        st.check(f"greedy output identical: {mode} vs plain decoding (every chunk)", res[mode]["chunk_tokens"] == res["plain"]["chunk_tokens"],
                 f"{sum(len(t) for t in res['plain']['chunk_tokens'])} tokens in {K} chunks")
    rng = np.random.default_rng(11)
    prompt = rng.integers(0, c.model.config.get_text_config().vocab_size, size=P).tolist()
    hf = hf_side.decode_bench(c.model, prompt, 208, min(K, 3), dev)
    best = lambda chunks: min(ch["ms"] for ch in chunks)  # noqa: E731
    for mode, r in res.items():
        ch = r["chunks"] if mode != "speculative" else r["chunks"][1:]  # the first chunk has no draft
        st.numbers[f"vlatext {mode} chunk ms (best of {len(ch)})"] = best(ch)
        st.numbers[f"vlatext {mode} ms per token"] = min(x["ms"] / max(1, x["tokens"]) for x in ch)
        st.numbers[f"vlatext {mode} tokens / model calls"] = " ".join(f"{x['tokens']}/{x['model_calls']}" for x in r["chunks"])
        st.check(f"vlatext {mode}: 56 integers then end", all(x["finished"] for x in r["chunks"]), str(r["chunks"][0]))
    sp = res["speculative"]["chunks"][1:]
    st.numbers["speculative draft tokens accepted"] = f"{sum(x['accepted'] for x in sp)}/{sum(x['drafted'] for x in sp)}"
    st.numbers[f"HF generate 208 tokens ms (best of {len(hf['chunks'])})"] = best(hf["chunks"])
    st.numbers["HF ms per token"] = best(hf["chunks"]) / 208
    st.numbers["ratio HF / vlatext jump-forward"] = best(hf["chunks"]) / best(res["jump"]["chunks"])
    st.numbers["ratio HF / vlatext speculative"] = best(hf["chunks"]) / best(res["speculative"]["chunks"][1:])
    st.numbers["peer (SGLang bf16, H100 PCIe, 1074 ms) x 2.0/4.8 TB/s bandwidth-normalized ms"] = round(1074 * 2.0 / 4.8, 1)
    st.numbers["seconds"] = round(time.time() - t0, 1)


RUNNERS = {"env": stage_env, "build": stage_build, "abi": stage_abi, "kernels": stage_kernels, "goldens": stage_goldens, "model": stage_model, "train": stage_train, "decode": stage_decode}


def run_stage(c: Ctx, name: str) -> Stage:
    st = Stage(name)
    box = c.budget.box(BOXES[name])
    t0 = time.time()
    if box <= 1:
        st.status, st.reason = "skip", "the budget is spent"
    else:
        try:
            RUNNERS[name](c, st, box)
            st.settle()
        except StageTimeout as e:
            st.status, st.reason = "timeout", str(e)
        except Exception as e:  # a broken stage is recorded, the next one still runs
            st.status, st.reason = "error", f"{type(e).__name__}: {e}"[:600]
    st.seconds = time.time() - t0
    c.report.add(st)
    print(f"[gpu-check] {name}: {st.status} in {st.seconds:.0f} s {st.reason}", flush=True)
    return st


def main(argv=None) -> int:
    a = parse_args(argv if argv is not None else sys.argv[1:])
    report = Report(a.out, {"mode": "cpu-only" if a.cpu_only else "gpu", "model": a.model, "seed": a.seed, "budget_s": a.budget, "host": platform.node()})
    c = Ctx(a, report)
    for name in STAGES:
        if name in a.stages:
            run_stage(c, name)
    shutil.rmtree(c.work, ignore_errors=True)
    report.write()
    print(f"[gpu-check] overall: {report.overall()} (report: {os.path.join(a.out, 'report.md')})", flush=True)
    return 0 if report.overall() == "pass" else 1


if __name__ == "__main__":
    sys.exit(main())
