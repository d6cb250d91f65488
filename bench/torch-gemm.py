#!/usr/bin/env python3
"""PyTorch's CPU matmul (MKL / oneDNN) at the shapes bench_kernels times, for bench/engine.ts.

Reads a JSON object on stdin: {"threads": [1, 2], "shapes": [{"shape", "form", "wdtype", "M", "N", "K"}]}
where a shape is one linear-layer product as bench_kernels prints it (C (M, N) = A (M, K) . B):
  forward   inp (M, K) @ W.t(),  W (N, K)
  dinp      dout (M, K) @ W,     W (K, N)
  dweight   dout.t() @ inp,      dout (K, M), inp (K, N)
and prints one JSON line per shape, thread count and dtype (f32: everything float32; bf16:
everything bfloat16, as torch runs a bf16 model) with the best time of several runs into a
preallocated output. `--blas-path` prints the OpenBLAS library SciPy ships (32-bit ints), for
bench_kernels' VLATEXT_BLAS, and exits.
Needs torch (pip install torch); npm test never runs this.
"""
import json
import sys
import time


def blas_path() -> int:
    try:
        import glob
        import os

        import scipy  # noqa: F401  (its wheel bundles libscipy_openblas)

        libs = glob.glob(os.path.join(os.path.dirname(scipy.__file__), "..", "scipy.libs", "libscipy_openblas*.so"))
        if libs:
            print(os.path.realpath(libs[0]))
            return 0
    except ImportError:
        pass
    return 1


def best_time(f, min_reps: int, budget: float) -> float:
    f()
    best, start, reps = float("inf"), time.perf_counter(), 0
    while reps < min_reps or (time.perf_counter() - start < budget and reps < 200):
        t0 = time.perf_counter()
        f()
        best = min(best, time.perf_counter() - t0)
        reps += 1
    return best


def main() -> int:
    if "--blas-path" in sys.argv:
        return blas_path()
    try:
        import torch
    except ImportError:
        print("torch-gemm.py: PyTorch is not installed (pip install torch)", file=sys.stderr)
        return 1
    req = json.load(sys.stdin)
    quick = "--quick" in sys.argv
    budget = 0.15 if quick else 0.5
    torch.manual_seed(0)
    for th in req["threads"]:
        torch.set_num_threads(int(th))
        for s in req["shapes"]:
            M, N, K, form = int(s["M"]), int(s["N"]), int(s["K"]), s["form"]
            for dtype_name, dtype in (("f32", torch.float32), ("bf16", torch.bfloat16)):
                if form == "forward":
                    a, b = torch.randn(M, K, dtype=dtype), torch.randn(N, K, dtype=dtype).t()
                elif form == "dinp":
                    a, b = torch.randn(M, K, dtype=dtype), torch.randn(K, N, dtype=dtype)
                else:
                    a, b = torch.randn(K, M, dtype=dtype).t(), torch.randn(K, N, dtype=dtype)
                out = torch.empty(M, N, dtype=dtype)
                with torch.no_grad():
                    t = best_time(lambda: torch.matmul(a, b, out=out), 1 if quick else 3, budget)
                print(json.dumps({"kind": "torch", "shape": s["shape"], "form": form, "wdtype": s["wdtype"], "threads": th, "dtype": dtype_name, "ms": t * 1e3, "gflops": 2.0 * M * N * K / t / 1e9}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
