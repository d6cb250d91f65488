"""The transformers side of the device check: the model built from a config (random weights,
no download), its weights saved for vlatext, and the reference numbers (logits, LoRA training
with PEFT, generate with VLA-0's digits-only processor), measured in the same run."""
from __future__ import annotations

import json
import os
import struct
import time

# Qwen2.5-VL-3B-Instruct's config.json (Hugging Face hub, Qwen/Qwen2.5-VL-3B-Instruct), the
# fields that shape the model; nothing is downloaded.
QWEN25VL_3B_TEXT = dict(
    vocab_size=151936, hidden_size=2048, intermediate_size=11008, num_hidden_layers=36, num_attention_heads=16, num_key_value_heads=2,
    max_position_embeddings=128000, rms_norm_eps=1e-6, rope_theta=1000000.0, rope_scaling={"type": "mrope", "mrope_section": [16, 24, 24]},
    tie_word_embeddings=True, hidden_act="silu", bos_token_id=151643, eos_token_id=151645, sliding_window=32768, use_sliding_window=False,
    max_window_layers=70, attention_dropout=0.0,
)
QWEN25VL_3B_VISION = dict(
    depth=32, hidden_size=1280, intermediate_size=3420, num_heads=16, in_chans=3, out_hidden_size=2048, patch_size=14, spatial_merge_size=2,
    temporal_patch_size=2, window_size=112, fullatt_block_indexes=[7, 15, 23, 31], tokens_per_second=2, hidden_act="silu",
)
QWEN25VL_IDS = dict(image_token_id=151655, video_token_id=151656, vision_start_token_id=151652, vision_end_token_id=151653)
# A small model with the same vocabulary and layout, for running the whole check on a CPU.
SMALL_TEXT = dict(QWEN25VL_3B_TEXT, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                  rope_scaling={"type": "mrope", "mrope_section": [2, 3, 3]})
SMALL_VISION = dict(QWEN25VL_3B_VISION, depth=2, hidden_size=32, intermediate_size=48, num_heads=2, out_hidden_size=64, fullatt_block_indexes=[1])

# Qwen2's vocabulary: the digits "0".."9" are ids 15..24, " " is 220, <|im_end|> 151645
# (checked against the tokenizer in test/bench/gpu-check.test.ts).
QWEN_DIGIT_IDS = list(range(15, 25))
QWEN_SPACE_ID = 220
QWEN_EOS_ID = 151645


def config(kind: str):
    from transformers import Qwen2_5_VLConfig

    text, vision = (QWEN25VL_3B_TEXT, QWEN25VL_3B_VISION) if kind == "3b" else (SMALL_TEXT, SMALL_VISION)
    cfg = Qwen2_5_VLConfig(vision_config=vision, text_config=text, **text, **QWEN25VL_IDS)
    return cfg


def build(kind: str, device: str, seed: int = 0):
    """The model with random weights (transformers' initializer, std 0.02), bf16, sdpa attention."""
    import torch
    from transformers import Qwen2_5_VLForConditionalGeneration

    torch.manual_seed(seed)
    cfg = config(kind)
    cfg._attn_implementation = "sdpa"
    with torch.device(device):
        model = Qwen2_5_VLForConditionalGeneration._from_config(cfg, dtype=torch.bfloat16)
    return model.eval()


def text_tensors(model) -> dict:
    """The language model's tensors under vlatext's (Qwen2) names: model.layers.*, model.embed_tokens,
    model.norm, lm_head (only when untied)."""
    out = {}
    for name, t in model.state_dict().items():
        for prefix in ("model.language_model.", "language_model.model.", "model.text_model."):
            if name.startswith(prefix):
                out["model." + name[len(prefix):]] = t
        if name == "lm_head.weight" and not model.config.get_text_config().tie_word_embeddings:
            out[name] = t
    return out


def save_safetensors(tensors: dict, path: str) -> None:
    from safetensors.torch import save_file

    save_file({k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}, path)


def safetensors_entries(path: str) -> list[tuple[str, str, int, int]]:
    """(name, dtype, absolute byte offset, elements) of every tensor, from the file's header."""
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
    out = []
    for name, e in header.items():
        if name == "__metadata__":
            continue
        count = 1
        for d in e["shape"]:
            count *= d
        out.append((name, e["dtype"], 8 + n + e["data_offsets"][0], count))
    return out


def write_manifest(path: str, text_cfg: dict, files: list[str], rename=lambda n: n, grammar: tuple[int, list[tuple[int, str]]] | None = None) -> None:
    """native/tests/model_check.cpp's manifest for a Qwen2-family language model."""
    C, NH = text_cfg["hidden_size"], text_cfg["num_attention_heads"]
    rope = text_cfg.get("rope_parameters") or text_cfg.get("rope_scaling") or {}
    theta = rope.get("rope_theta", text_cfg.get("rope_theta", 10000.0))
    lines = [" ".join(str(x) for x in ["config", "qwen2", text_cfg["vocab_size"], C, text_cfg["num_hidden_layers"], NH, text_cfg["num_key_value_heads"], C // NH,
                                        text_cfg["intermediate_size"], text_cfg.get("rms_norm_eps", 1e-6), theta, int(bool(text_cfg.get("tie_word_embeddings", False)))])]
    if rope.get("mrope_section"):
        lines.append("rope_sections " + " ".join(str(s) for s in rope["mrope_section"]))
    for i, p in enumerate(files):
        lines.append(f"file {i} {os.path.abspath(p)}")
        for name, dt, off, count in safetensors_entries(p):
            new = rename(name)
            if new:
                lines.append(f"tensor {new} {i} {dt} {off} {count}")
    if grammar:
        lines.append(f"grammar {grammar[0]}")
        lines += [f"token {tid} {text.encode().hex()}" for tid, text in grammar[1]]
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def qwen_grammar() -> tuple[int, list[tuple[int, str]]]:
    return QWEN_EOS_ID, [(tid, str(d)) for d, tid in enumerate(QWEN_DIGIT_IDS)] + [(QWEN_SPACE_ID, " ")]


def sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def logits(model, tokens, device: str, f32: bool = True):
    """All logits of one text-only sequence (HF computes the M-RoPE positions), in f32."""
    import torch

    m = model.float() if f32 else model
    with torch.no_grad():
        out = m(input_ids=torch.tensor([tokens], device=device)).logits[0].float().cpu().numpy()
    if f32:
        model.to(torch.bfloat16)
    return out


def hf_labels(targets, T: int):
    """vlatext's targets are per position (logit i predicts targets[i]); HF shifts its labels by one."""
    out = []
    for b in range(len(targets) // T):
        row = targets[b * T:(b + 1) * T]
        out.append([-100] + list(row[:-1]))
    return out


def train_bench(model, tokens, targets, B: int, T: int, steps: int, rank: int, device: str) -> dict:
    """LoRA (all linear layers of the language model) steps with PEFT, bf16, AdamW: tokens/s
    (first step excluded), peak memory, losses."""
    import torch
    from peft import LoraConfig, get_peft_model

    lc = LoraConfig(r=rank, lora_alpha=2 * rank, lora_dropout=0.0, target_modules=r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)")
    pm = get_peft_model(model, lc)
    pm.train()
    opt = torch.optim.AdamW([p for p in pm.parameters() if p.requires_grad], lr=1e-4, weight_decay=0.0)
    ids = torch.tensor(tokens, device=device).view(B, T)
    labels = torch.tensor(hf_labels(targets, T), device=device)
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    losses, times = [], []
    for s in range(steps):
        t0 = time.perf_counter()
        loss = pm(input_ids=ids, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for p in pm.parameters() if p.requires_grad], 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        sync(device)
        times.append((time.perf_counter() - t0) * 1000)
        losses.append(float(loss.detach()))
    timed = sum(times[1:])
    cuda = device.startswith("cuda")
    peak = torch.cuda.max_memory_allocated() if cuda else 0
    reserved = torch.cuda.max_memory_reserved() if cuda else 0
    pm.unload()
    model.eval()
    del opt
    if cuda:
        torch.cuda.empty_cache()
    return {"tokens_per_s": B * T * (steps - 1) / (timed / 1000) if steps > 1 else 0.0, "peak_bytes": peak, "peak_reserved_bytes": reserved, "loss": losses, "step_ms": times}


def decode_bench(model, prompt, new_tokens: int, chunks: int, device: str) -> dict:
    """Greedy generate of exactly new_tokens tokens per chunk through VLA-0's digits-only processor."""
    import torch
    from transformers import LogitsProcessor, LogitsProcessorList

    allowed = torch.tensor(QWEN_DIGIT_IDS + [QWEN_SPACE_ID, QWEN_EOS_ID], device=device)

    class DigitsOnly(LogitsProcessor):
        def __call__(self, input_ids, scores):
            mask = torch.full_like(scores, float("-inf"))
            mask[:, allowed] = 0
            return scores + mask

    ids = torch.tensor([prompt], device=device)
    kw = dict(do_sample=False, logits_processor=LogitsProcessorList([DigitsOnly()]), pad_token_id=QWEN_EOS_ID)
    with torch.no_grad():
        model.generate(input_ids=ids, max_new_tokens=8, min_new_tokens=8, **kw)  # warm-up
        out = []
        for _ in range(chunks):
            sync(device)
            t0 = time.perf_counter()
            g = model.generate(input_ids=ids, max_new_tokens=new_tokens, min_new_tokens=new_tokens, **kw)
            sync(device)
            out.append({"ms": (time.perf_counter() - t0) * 1000, "tokens": int(g.shape[1] - ids.shape[1])})
    return {"chunks": out}
