#!/usr/bin/env python3
"""
Golden outputs from Hugging Face transformers for tiny random Qwen3-VL models
(Qwen3VLForConditionalGeneration: its vision tower with DeepStack mergers, interleaved
M-RoPE, the Qwen3 text model with DeepStack features added to its first layers).

Run where torch + transformers + Pillow exist (CPU is enough):
    python3 test/goldens/make_qwen3vl_goldens.py --out test/goldens/qwen3vl

Per model config ("a": depth 3, DeepStack after vision blocks 0 and 1, tied embeddings;
"b": depth 2, DeepStack after block 1, its own lm_head):
    <config>/config.json, preprocessor_config.json   transformers' save_pretrained
    <config>/model.safetensors    seeded random weights, HF names
    <config>/<n>img.safetensors   input_ids, image_grid_thw, position_ids (3, N) from
                                  get_rope_index, vision_features (merger output),
                                  deepstack_features (K, tokens, C), logits (N, V)
    <config>/<n>img-bf16w.safetensors   vision_features, deepstack_features and logits with the
                                  weight matrices and embeddings rounded to bf16 (what vlatext's
                                  bf16 storage holds; the position table stays f32 there and here)
images.safetensors: the raw uint8 images (F16). Image sides are multiples of
patch * merge (16): the processor only normalizes and reorders (its resize is the
Qwen2.5-VL one, covered by test/goldens/qwen25vl).
"""
import argparse
import inspect
import json
import os

import numpy as np
import PIL
import torch
import transformers
from safetensors.torch import save_file
from transformers import Qwen3VLConfig, Qwen3VLForConditionalGeneration

IMAGE, VIDEO, VS, VE = 296, 297, 298, 299


def tiny_config(a: bool) -> Qwen3VLConfig:
    vision = dict(depth=3 if a else 2, hidden_size=32, intermediate_size=48, num_heads=2, in_channels=3, patch_size=8, spatial_merge_size=2,
                  temporal_patch_size=2, out_hidden_size=64, num_position_embeddings=16, deepstack_visual_indexes=[0, 1] if a else [1],
                  hidden_act="gelu_pytorch_tanh")
    text = dict(vocab_size=300, hidden_size=64, intermediate_size=96, num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=2, head_dim=16,
                max_position_embeddings=1024, rms_norm_eps=1e-6,
                rope_parameters={"rope_type": "default", "rope_theta": 500000.0, "mrope_section": [2, 3, 3], "mrope_interleaved": True},
                tie_word_embeddings=a, bos_token_id=0, eos_token_id=1, pad_token_id=2)
    cfg = Qwen3VLConfig(vision_config=vision, text_config=text, image_token_id=IMAGE, video_token_id=VIDEO, vision_start_token_id=VS,
                        vision_end_token_id=VE, tie_word_embeddings=a)
    cfg._attn_implementation = "eager"
    return cfg


def processor():
    from transformers import Qwen2VLImageProcessorPil as Proc
    return Proc(patch_size=8, merge_size=2, temporal_patch_size=2, image_mean=[0.5, 0.5, 0.5], image_std=[0.5, 0.5, 0.5], min_pixels=16 * 16, max_pixels=64 * 128)


def f32(t):
    return t.detach().float().contiguous()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="test/goldens/qwen3vl")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    rng = np.random.default_rng(0)
    torch.set_num_threads(1)
    meta = {"torch": torch.__version__, "transformers": transformers.__version__, "pillow": PIL.__version__, "ids": {"image": IMAGE, "vision_start": VS, "vision_end": VE}}
    images = [rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8) for h, w in [(48, 80), (64, 48)]]
    save_file({f"image{i}": torch.from_numpy(img).to(torch.float16).contiguous() for i, img in enumerate(images)}, os.path.join(a.out, "images.safetensors"))
    proc = processor()
    for name in ("a", "b"):
        torch.manual_seed(99 + (name == "b"))
        cfg = tiny_config(name == "a")
        model = Qwen3VLForConditionalGeneration(cfg).float().eval()
        with torch.no_grad():
            for pname, p in model.named_parameters():
                if p.dim() == 1 and pname.endswith("weight") and "norm" in pname:
                    p.copy_(1.0 + 0.1 * torch.randn_like(p))
                else:
                    p.normal_(0.0, 0.08)
        d = os.path.join(a.out, name)
        os.makedirs(d, exist_ok=True)
        cfg.save_pretrained(d)
        proc.save_pretrained(d)
        state = {k: f32(v) for k, v in model.state_dict().items()}
        if cfg.tie_word_embeddings:
            state.pop("lm_head.weight", None)
        save_file(state, os.path.join(d, "model.safetensors"))
        for n in (1, 2):
            r = proc(images=[PIL.Image.fromarray(img) for img in images[:n]], return_tensors="pt")
            pixels, grid = r["pixel_values"].float(), r["image_grid_thw"]
            tokens = [int(t) for t in rng.integers(3, 290, size=3)]
            for g in grid.tolist():
                tokens += [VS] + [IMAGE] * (g[1] * g[2] // 4) + [VE] + [int(t) for t in rng.integers(3, 290, size=2)]
            tokens += [int(t) for t in rng.integers(3, 290, size=4)]
            ids = torch.tensor([tokens])
            types = (ids == IMAGE).int()
            with torch.no_grad():
                fn = model.model.get_rope_index
                if "mm_token_type_ids" in inspect.signature(fn).parameters:
                    pos = fn(ids, types, image_grid_thw=grid, attention_mask=torch.ones_like(ids))[0]
                else:
                    pos = fn(ids, grid, None, attention_mask=torch.ones_like(ids))[0]
                out = model.model.visual(pixels, grid_thw=grid)
                kwargs = dict(input_ids=ids, pixel_values=pixels, image_grid_thw=grid)
                if "mm_token_type_ids" in inspect.signature(model.model.forward).parameters:
                    kwargs["mm_token_type_ids"] = types
                logits = model(**kwargs).logits[0]
            save_file({
                "input_ids": f32(ids[0]),
                "image_grid_thw": f32(grid),
                "position_ids": f32(pos[:, 0]),
                "vision_features": f32(out.pooler_output),
                "deepstack_features": f32(torch.stack(out.deepstack_features)),
                "logits": f32(logits),
            }, os.path.join(d, f"{n}img.safetensors"))
            saved = {}
            with torch.no_grad():
                for k, p in model.named_parameters():
                    if p.dim() >= 2 and "pos_embed" not in k:
                        saved[k] = p.detach().clone()
                        p.copy_(p.to(torch.bfloat16).float())
                out_b = model.model.visual(pixels, grid_thw=grid)
                logits_b = model(**kwargs).logits[0]
                for k, p in model.named_parameters():
                    if k in saved:
                        p.copy_(saved[k])
            save_file({"vision_features": f32(out_b.pooler_output), "deepstack_features": f32(torch.stack(out_b.deepstack_features)), "logits": f32(logits_b)}, os.path.join(d, f"{n}img-bf16w.safetensors"))
            meta[f"{name}/{n}img"] = {"tokens": len(tokens), "grid": grid.tolist(), "logits_absmax": float(logits.abs().max()), "features_absmax": float(out.pooler_output.abs().max())}
            print("wrote", d, n)
    with open(os.path.join(a.out, "meta.json"), "w") as f:
        json.dump(meta, f, indent=2)
        f.write("\n")


if __name__ == "__main__":
    main()
