#!/usr/bin/env python3
"""
The Hugging Face side of bench/vs-hf.ts: build a random model, and run transformers
(+ PEFT) contestants on it, one job per process. Driven by bench/vs-hf.ts, which
passes every setting; run alone only to debug one contestant.

    python3 bench/vs-hf.py build  --out DIR --config '<json>' [--seed S]
    python3 bench/vs-hf.py train  --model DIR --inputs FILE --mode lora|full
                                  [--dtype fp32|bf16] [--bf16 weights|autocast]
                                  [--threads N] [--warmup W] [--steps S]
    python3 bench/vs-hf.py decode --model DIR --inputs FILE [--new 64] [--reps R] [--threads N]

Needs torch, transformers and peft (pip install torch transformers peft; tested with
torch 2.13 CPU, transformers 5.18, peft 0.21). Each job prints its progress on stderr
and one JSON object, its result, as the last line of stdout.

What each job measures (the same as the vlatext worker, bench/vs-hf-worker.ts):
- build: <DIR>/config.json + model.safetensors (save_pretrained, f32) of a model
  initialised by transformers (normal(0, initializer_range)), with the q/k/v biases
  drawn too (transformers zeroes them, so the bias path would go unchecked), and
  <DIR>/lora-init: a PEFT LoRA adapter (r, alpha from the config; A kaiming-uniform,
  B zero) that every LoRA contestant starts from, so their loss curves can be compared
  step by step.
- train: the inputs' fixed batch (B, T, every position a target), cross-entropy over all
  B*T positions, backward, clip_grad_norm_ 1.0, torch.optim.AdamW(fused=True: what
  transformers' Trainer uses by default, "adamw_torch_fused") with lr 1e-4, wd 0.01;
  `warmup` steps, then `steps` timed ones. LoRA: PEFT adapters on the seven projections,
  dropout 0; full: every parameter trained. fp32 unless --dtype bf16 (LoRA only):
    --bf16 weights   the model loaded in bfloat16 (weights, activations and gradients
                     in bf16), PEFT's adapters and the optimizer in fp32
                     (autocast_adapter_dtype), the loss in fp32: HF's smallest setup
    --bf16 autocast  fp32 weights, forward under torch.autocast("cpu", bfloat16): as fast
                     or a little faster (measured at 20m, 1 thread: 1338 against 1254
                     tokens/s), ~5% more memory
  The driver runs both and compares vlatext with the faster for speed and the smaller
  for memory.
- decode: model.generate(do_sample=False, use_cache=True) of `new` tokens after the
  inputs' prompt, batch 1, fp32; tokens/s = new / (wall time of the whole call,
  prefill included), the median of `reps` runs after one short warm-up run.
Peak RSS is VmHWM from /proc/self/status at the end of the job (ru_maxrss elsewhere).
"""
import argparse
import json
import os
import resource
import statistics
import sys
import time


def rss_kib(field):
    """VmHWM (peak) or VmRSS (now) in KiB; ru_maxrss when /proc is not there."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def emit(obj):
    print(json.dumps(obj), flush=True)


try:
    import torch
    import torch.nn.functional as F
    import transformers
    import peft
    from peft import LoraConfig, PeftModel, get_peft_model
    from transformers import AutoConfig, AutoModelForCausalLM, GenerationConfig
except ImportError as e:  # the driver checks first; this is for running the script alone
    print(f"vs-hf.py needs torch, transformers and peft ({e}).\n  hint: pip install torch transformers peft", file=sys.stderr)
    sys.exit(3)

transformers.utils.logging.set_verbosity_error()
transformers.utils.logging.disable_progress_bar()
BASELINE_KIB = rss_kib("VmRSS")  # after the imports, before any model


def versions():
    return {"python": sys.version.split()[0], "torch": torch.__version__, "transformers": transformers.__version__, "peft": peft.__version__, "cpuCapability": torch.backends.cpu.get_cpu_capability()}


def set_threads(n):
    torch.set_num_threads(n)
    torch.set_num_interop_threads(1)


def load_inputs(path):
    with open(path) as f:
        return json.load(f)


def cmd_build(a):
    cfg = json.loads(a.config)
    lora = cfg.pop("lora")
    model_type = cfg.pop("model_type")
    torch.manual_seed(a.seed)
    config = AutoConfig.for_model(model_type, **cfg)
    model = AutoModelForCausalLM.from_config(config, attn_implementation="sdpa", dtype=torch.float32)
    std = config.initializer_range
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("proj.bias"):
                p.normal_(0.0, std)
    model.save_pretrained(a.out, max_shard_size="100GB")
    targets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    torch.manual_seed(a.seed + 1)
    pm = get_peft_model(model, LoraConfig(r=lora["rank"], lora_alpha=lora["alpha"], lora_dropout=0.0, target_modules=targets, bias="none", init_lora_weights=True))
    pm.save_pretrained(os.path.join(a.out, "lora-init"))
    emit({"params": sum(p.numel() for p in model.parameters()), "loraParams": sum(p.numel() for n, p in pm.named_parameters() if "lora_" in n), "versions": versions()})


def cmd_train(a):
    set_threads(a.threads)
    inp = load_inputs(a.inputs)
    B, T = inp["B"], inp["T"]
    x = torch.tensor(inp["tokens"], dtype=torch.long).view(B, T)
    y = torch.tensor(inp["targets"], dtype=torch.long).view(B, T)
    bf16_weights = a.dtype == "bf16" and a.bf16 == "weights"
    autocast = a.dtype == "bf16" and a.bf16 == "autocast"
    if a.dtype == "bf16" and a.mode != "lora":
        raise SystemExit("--dtype bf16 is for LoRA runs only (a bf16 full fine-tune needs fp32 master weights)")
    t_load = time.perf_counter()
    model = AutoModelForCausalLM.from_pretrained(a.model, dtype=torch.bfloat16 if bf16_weights else torch.float32, attn_implementation="sdpa")
    if a.mode == "lora":
        # autocast_adapter_dtype (the default) keeps the adapters fp32 on a bf16 base
        model = PeftModel.from_pretrained(model, os.path.join(a.model, "lora-init"), is_trainable=True)
    else:
        for p in model.parameters():
            p.requires_grad_(True)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    trainable = sum(p.numel() for p in params)
    log(f"loaded in {time.perf_counter() - t_load:.1f}s: {trainable} trainable parameters ({', '.join(sorted({str(p.dtype) for p in params}))}), base {next(model.parameters()).dtype}")
    try:
        opt = torch.optim.AdamW(params, lr=a.lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=a.weight_decay, fused=True)
        fused = True
    except (RuntimeError, TypeError):
        opt = torch.optim.AdamW(params, lr=a.lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=a.weight_decay)
        fused = False
    V = model.config.vocab_size if hasattr(model.config, "vocab_size") else model.get_base_model().config.vocab_size

    def step():
        if autocast:
            with torch.autocast("cpu", dtype=torch.bfloat16):
                logits = model(input_ids=x, use_cache=False).logits
        else:
            logits = model(input_ids=x, use_cache=False).logits
        loss = F.cross_entropy(logits.float().view(-1, V), y.view(-1))
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(params, a.clip)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss.item(), norm.item()

    losses, norms, secs = [], [], []
    for s in range(a.warmup + a.steps):
        t0 = time.perf_counter()
        loss, norm = step()
        secs.append(time.perf_counter() - t0)
        losses.append(loss)
        norms.append(norm)
        log(f"step {s + 1}/{a.warmup + a.steps}{' (warm-up)' if s < a.warmup else ''}: loss {loss:.6f}, grad norm {norm:.4f}, {secs[-1]:.2f}s")
    timed = sum(secs[a.warmup:])
    setup = {"fp32": "fp32", "bf16": "bf16 weights (model.to(bfloat16)), fp32 LoRA adapters and AdamW" if bf16_weights else "fp32 weights, torch.autocast(cpu, bfloat16) forward"}[a.dtype]
    emit({
        "tokensPerSec": B * T * a.steps / timed,
        "seconds": timed,
        "stepSeconds": secs,
        "losses": losses,
        "gradNorms": norms,
        "peakRssKiB": rss_kib("VmHWM"),
        "baselineRssKiB": BASELINE_KIB,
        "trainable": trainable,
        "setup": f"{setup}; AdamW fused={fused}; sdpa; {a.threads} threads",
        "versions": versions(),
    })


def cmd_decode(a):
    set_threads(a.threads)
    inp = load_inputs(a.inputs)
    model = AutoModelForCausalLM.from_pretrained(a.model, dtype=torch.float32, attn_implementation="sdpa")
    model.eval()
    ids = torch.tensor([inp["prompt"]], dtype=torch.long)
    # no end token: every contestant generates exactly `new` tokens
    def gen(n):
        return GenerationConfig(do_sample=False, use_cache=True, max_new_tokens=n, eos_token_id=None, pad_token_id=None, bos_token_id=None)

    rates, tokens = [], None
    with torch.inference_mode():
        model.generate(ids, generation_config=gen(4))
        for r in range(a.reps):
            t0 = time.perf_counter()
            out = model.generate(ids, generation_config=gen(a.new))
            dt = time.perf_counter() - t0
            got = out[0, ids.shape[1]:].tolist()
            rates.append(len(got) / dt)
            if tokens is not None and got != tokens:
                raise SystemExit("HF generate gave different tokens on two greedy runs")
            tokens = got
            log(f"run {r + 1}/{a.reps}: {len(got)} tokens in {dt:.2f}s ({rates[-1]:.1f} tokens/s)")
    emit({"tokensPerSec": statistics.median(rates), "rates": rates, "tokens": tokens, "peakRssKiB": rss_kib("VmHWM"), "baselineRssKiB": BASELINE_KIB, "setup": f"generate(do_sample=False, use_cache=True), fp32, sdpa, {a.threads} threads", "versions": versions()})


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="build and save a random model and its initial LoRA adapter")
    b.add_argument("--out", required=True)
    b.add_argument("--config", required=True, help="JSON: model_type, the transformers config fields, and lora: {rank, alpha}")
    b.add_argument("--seed", type=int, default=0)
    t = sub.add_parser("train", help="time training steps")
    t.add_argument("--model", required=True)
    t.add_argument("--inputs", required=True)
    t.add_argument("--mode", choices=["lora", "full"], required=True)
    t.add_argument("--dtype", choices=["fp32", "bf16"], default="fp32")
    t.add_argument("--bf16", choices=["weights", "autocast"], default="weights")
    t.add_argument("--threads", type=int, default=os.cpu_count())
    t.add_argument("--warmup", type=int, default=2)
    t.add_argument("--steps", type=int, default=5)
    t.add_argument("--lr", type=float, default=1e-4)
    t.add_argument("--weight-decay", type=float, default=0.01)
    t.add_argument("--clip", type=float, default=1.0)
    d = sub.add_parser("decode", help="time greedy generation")
    d.add_argument("--model", required=True)
    d.add_argument("--inputs", required=True)
    d.add_argument("--new", type=int, default=64)
    d.add_argument("--reps", type=int, default=3)
    d.add_argument("--threads", type=int, default=os.cpu_count())
    a = p.parse_args()
    {"build": cmd_build, "train": cmd_train, "decode": cmd_decode}[a.cmd](a)


if __name__ == "__main__":
    main()
