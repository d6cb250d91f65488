#!/usr/bin/env python3
"""PyTorch's causal attention (F.scaled_dot_product_attention, float32) at the shapes bench_kernels
times, for bench/kernels.ts.

Reads a JSON object on stdin: {"threads": [1, 2], "shapes": [{"shape", "B", "T", "NH", "KV", "hd"}]}
and prints one JSON line per shape, thread count and pass: "forward" times SDPA alone (under
no_grad, as inference runs it), "backward" times the backward of a forward that needs gradients
(forward+backward minus that forward), with q (B, NH, T, hd) and k, v (B, KV, T, hd) grouped
(enable_gqa), best of several runs. Needs torch (pip install torch); npm test never runs this.
"""
import json
import sys
import time


def best(f, reps: int) -> float:
    f()
    b = 1e30
    for _ in range(reps):
        t0 = time.perf_counter()
        f()
        b = min(b, time.perf_counter() - t0)
    return b


def main() -> int:
    import torch
    import torch.nn.functional as F

    req = json.load(sys.stdin)
    reps = 3 if "--quick" in sys.argv else 10
    torch.manual_seed(0)
    for th in req["threads"]:
        torch.set_num_threads(th)
        for s in req["shapes"]:
            B, T, NH, KV, hd = s["B"], s["T"], s["NH"], s["KV"], s["hd"]
            q = torch.randn(B, NH, T, hd, requires_grad=True)
            k = torch.randn(B, KV, T, hd, requires_grad=True)
            v = torch.randn(B, KV, T, hd, requires_grad=True)
            g = torch.randn(B, NH, T, hd)

            def fwd():
                with torch.no_grad():
                    F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)

            def fwd_grad():
                return F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)

            def fwd_bwd():
                q.grad = k.grad = v.grad = None
                fwd_grad().backward(g)

            tf = best(fwd, reps)
            tfg = best(lambda: fwd_grad(), reps)
            tfb = best(fwd_bwd, reps)
            for name, t in (("forward", tf), ("backward", max(tfb - tfg, 1e-9))):
                print(json.dumps({"kind": "torch-attention", "shape": s["shape"], "pass": name, "threads": th, "ms": t * 1e3}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
