#!/usr/bin/env python3
"""
Golden outputs from Hugging Face transformers for tiny random Qwen2.5-VL models.

Run where torch + transformers exist (the lent GPU machine has both; CPU works too):
    python3 test/goldens/make_qwen25vl_goldens.py --out test/goldens/qwen25vl
It writes, per case (two configs: window attention active or not; one and two images):
    <case>/config.json            the model config (transformers' own classes build the model)
    <case>/model.safetensors      the seeded random weights, HF names
    <case>/inputs.safetensors     input_ids, pixel_values, image_grid_thw, position_ids (3, N)
    <case>/outputs.safetensors    vision features (after the merger), final logits
    <case>/meta.json              shapes, seeds, versions
The TypeScript tests compare vlatext's vision tower and decoder against these files
(vision features and logits within 1e-4 relative). Keep the cases small (a few MB).
"""
import argparse
import json
import os

import numpy as np
import torch
from safetensors.torch import save_file
from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration
import transformers


def tiny_config(window: bool) -> Qwen2_5_VLConfig:
    vision = dict(
        depth=4 if window else 2,
        hidden_size=64,
        intermediate_size=96,
        num_heads=4,
        in_chans=3,
        out_hidden_size=96,
        patch_size=14,
        spatial_merge_size=2,
        temporal_patch_size=2,
        # 112 px windows = 8x8 patches: a 224x112 image has two windows in the windowed layers
        window_size=112,
        fullatt_block_indexes=[1, 3] if window else [0, 1],
        tokens_per_second=2,
        hidden_act="silu",
    )
    text = dict(
        vocab_size=300,
        hidden_size=96,
        intermediate_size=160,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        rms_norm_eps=1e-6,
        rope_theta=10000.0,
        rope_scaling={"type": "mrope", "mrope_section": [2, 3, 7]},  # sums to head_dim / 2 = 12
        tie_word_embeddings=True,
    )
    cfg = Qwen2_5_VLConfig(vision_config=vision, text_config=text, **text,
                           image_token_id=296, video_token_id=297, vision_start_token_id=298, vision_end_token_id=299)
    cfg._attn_implementation = "eager"
    return cfg


def pixel_inputs(images, patch=14, merge=2, tps=2, mean=(0.48145466, 0.4578275, 0.40821073), std=(0.26862954, 0.26130258, 0.27577711)):
    """Qwen2VLImageProcessor's flattening, on images already at multiples of 28 (no resize)."""
    flat, grids = [], []
    for img in images:  # (H, W, 3) uint8
        x = (img.astype(np.float32) / 255.0 - np.array(mean, np.float32)) / np.array(std, np.float32)
        x = x.transpose(2, 0, 1)[None]  # (1, C, H, W)
        x = np.repeat(x, tps, axis=0)
        c, h, w = x.shape[1], x.shape[2] // patch, x.shape[3] // patch
        x = x.reshape(1, tps, c, h // merge, merge, patch, w // merge, merge, patch)
        x = x.transpose(0, 3, 6, 4, 7, 2, 1, 5, 8)
        flat.append(x.reshape(h * w, c * tps * patch * patch))
        grids.append([1, h, w])
    return torch.from_numpy(np.concatenate(flat)), torch.tensor(grids)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="test/goldens/qwen25vl")
    a = ap.parse_args()
    rng = np.random.default_rng(0)
    for window in (False, True):
        for n_images in (1, 2):
            torch.manual_seed(1234)
            cfg = tiny_config(window)
            model = Qwen2_5_VLForConditionalGeneration(cfg).float().eval()
            with torch.no_grad():
                for p in model.parameters():
                    p.normal_(0.0, 0.05)
            images = [rng.integers(0, 256, size=(112, 224, 3), dtype=np.uint8) for _ in range(n_images)]
            pixels, grid = pixel_inputs(images)
            tokens = [5, 6, 7]
            for g in grid.tolist():
                tokens += [298] + [296] * (g[1] * g[2] // 4) + [299]
            tokens += [8, 9, 10, 11]
            input_ids = torch.tensor([tokens])
            with torch.no_grad():
                position_ids, _ = model.model.get_rope_index(input_ids, grid, None, attention_mask=torch.ones_like(input_ids))
                feats = model.model.visual(pixels, grid_thw=grid)
                out = model(input_ids=input_ids, pixel_values=pixels, image_grid_thw=grid)
            name = f"{'window' if window else 'full'}-{n_images}img"
            d = os.path.join(a.out, name)
            os.makedirs(d, exist_ok=True)
            cfg.save_pretrained(d)
            save_file({k: v.contiguous() for k, v in model.state_dict().items()}, os.path.join(d, "model.safetensors"))
            save_file({"input_ids": input_ids.int(), "pixel_values": pixels.float(), "image_grid_thw": grid.int(), "position_ids": position_ids[:, 0].int()}, os.path.join(d, "inputs.safetensors"))
            save_file({"vision_features": feats.float().contiguous(), "logits": out.logits[0].float().contiguous()}, os.path.join(d, "outputs.safetensors"))
            json.dump({"torch": torch.__version__, "transformers": transformers.__version__, "tokens": len(tokens), "grid": grid.tolist()}, open(os.path.join(d, "meta.json"), "w"), indent=2)
            print("wrote", d)


if __name__ == "__main__":
    main()
