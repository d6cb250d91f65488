#!/usr/bin/env python3
"""
Golden outputs from Hugging Face transformers for tiny random Qwen2.5-VL models.

Run where torch + transformers + Pillow exist (CPU is enough; the models are tiny):
    python3 test/goldens/make_qwen25vl_goldens.py --out test/goldens/qwen25vl
Tested with transformers 4.5x (the API VLA-0 used) and 5.x.

It writes, per model config ("full": every vision layer full attention; "window":
windowed layers active, with a partial window):
    <config>/config.json             transformers' own save_pretrained
    <config>/model.safetensors       seeded random weights, HF names
    <config>/<n>img.safetensors      per case (one and two images): input_ids,
                                     pixel_values, image_grid_thw, position_ids (3, N),
                                     vision_features (after the merger), logits (N, V)
    <config>/<n>img-bf16w.safetensors  vision_features and logits of the same model with its
                                     weight matrices (every parameter of 2+ dimensions) rounded
                                     to bf16 (torch's round-to-nearest-even) and computed in f32:
                                     what vlatext's bf16 weight storage holds
and processor.safetensors: raw uint8 images (stored as F16, exact) of sizes that
need resizing up and down, and the pixel_values / image_grid_thw that
Qwen2VLImageProcessor (PIL, bicubic) makes of them, and meta.json (versions, shapes).
Integers are stored as F32 (exact below 2^24), so one reader serves every file.
The TypeScript tests (test/vision/hf-goldens.test.ts) compare vlatext's processor,
get_rope_index, vision tower and decoder against these files.
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
from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

IMAGE_TOKEN, VIDEO_TOKEN, VISION_START, VISION_END = 296, 297, 298, 299
MEAN = (0.48145466, 0.4578275, 0.40821073)
STD = (0.26862954, 0.26130258, 0.27577711)


def tiny_config(window: bool) -> Qwen2_5_VLConfig:
    vision = dict(
        depth=3 if window else 2,
        hidden_size=32,
        intermediate_size=48,
        num_heads=2,
        in_chans=3,
        out_hidden_size=64,
        patch_size=14,
        spatial_merge_size=2,
        temporal_patch_size=2,
        # window_size 112 px = 4x4 merged units: a 112x224 image has two full windows,
        # a 140x196 one (5x7 merged units) has partial windows at its edges
        window_size=112,
        fullatt_block_indexes=[1] if window else [0, 1],
        tokens_per_second=2,
        hidden_act="silu",
    )
    text = dict(
        vocab_size=300,
        hidden_size=64,
        intermediate_size=96,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        rms_norm_eps=1e-6,
        rope_theta=10000.0,
        rope_scaling={"type": "mrope", "mrope_section": [2, 3, 3]},  # sums to head_dim / 2 = 8
        tie_word_embeddings=not window,  # one config tied, one with its own lm_head
        bos_token_id=0,
        eos_token_id=1,
        pad_token_id=2,
    )
    cfg = Qwen2_5_VLConfig(vision_config=vision, text_config=text, **text,
                           image_token_id=IMAGE_TOKEN, video_token_id=VIDEO_TOKEN,
                           vision_start_token_id=VISION_START, vision_end_token_id=VISION_END)
    cfg._attn_implementation = "eager"
    return cfg


def pil_processor(**kwargs):
    try:
        from transformers import Qwen2VLImageProcessorPil as Proc  # 5.x: the PIL backend
    except ImportError:
        from transformers import Qwen2VLImageProcessor as Proc  # 4.x: the slow processor is PIL
    return Proc(**kwargs)


def process(proc, images):
    """pixel_values (patches, 1176) and image_grid_thw (n, 3) from transformers' processor."""
    r = proc(images=[PIL.Image.fromarray(img) for img in images], return_tensors="pt")
    return r["pixel_values"].float(), r["image_grid_thw"]


def rope_index(model, input_ids, grid):
    """get_rope_index across transformers versions (5.x wants mm_token_type_ids)."""
    fn = model.model.get_rope_index
    mask = torch.ones_like(input_ids)
    if "mm_token_type_ids" in inspect.signature(fn).parameters:
        types = (input_ids == IMAGE_TOKEN).int()
        return fn(input_ids, types, image_grid_thw=grid, attention_mask=mask)[0]
    return fn(input_ids, grid, None, attention_mask=mask)[0]


def vision_features(model, pixels, grid):
    out = model.model.visual(pixels, grid_thw=grid)
    if isinstance(out, torch.Tensor):  # 4.x returns the merged features
        return out
    return out.pooler_output  # 5.x: the merger's output is the pooler output


def forward_logits(model, input_ids, pixels, grid):
    kwargs = dict(input_ids=input_ids, pixel_values=pixels, image_grid_thw=grid)
    if "mm_token_type_ids" in inspect.signature(model.model.forward).parameters:
        kwargs["mm_token_type_ids"] = (input_ids == IMAGE_TOKEN).int()
    return model(**kwargs).logits[0]


def f32(t):
    return t.detach().float().contiguous()


def f16_image(img):
    """uint8 pixels as F16: exact (integers below 2048), half the bytes of F32."""
    return torch.from_numpy(img).to(torch.float16).contiguous()


def model_cases(out, rng, meta):
    # the images (sides multiples of 28: the processor flattens them without resizing),
    # shared by every case: the one-image cases use the first
    images = [rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8) for h, w in [(112, 224), (140, 196)]]
    save_file({f"image{i}": f16_image(img) for i, img in enumerate(images)}, os.path.join(out, "images.safetensors"))
    proc = pil_processor()
    for window in (False, True):
        torch.manual_seed(1234 + window)
        cfg = tiny_config(window)
        model = Qwen2_5_VLForConditionalGeneration(cfg).float().eval()
        with torch.no_grad():
            for name, p in model.named_parameters():
                # norms near 1 (as trained models have them), everything else small random
                if p.dim() == 1 and name.endswith("weight") and ("norm" in name or "ln_q" in name):
                    p.copy_(1.0 + 0.1 * torch.randn_like(p))
                else:
                    p.normal_(0.0, 0.08)
        name = "window" if window else "full"
        d = os.path.join(out, name)
        os.makedirs(d, exist_ok=True)
        cfg.save_pretrained(d)
        state = {k: f32(v) for k, v in model.state_dict().items()}
        if cfg.tie_word_embeddings:
            state.pop("lm_head.weight", None)
        save_file(state, os.path.join(d, "model.safetensors"))
        for n_images in (1, 2):
            pixels, grid = process(proc, images[:n_images])
            tokens = [int(t) for t in rng.integers(3, 290, size=3)]
            for g in grid.tolist():
                tokens += [VISION_START] + [IMAGE_TOKEN] * (g[1] * g[2] // 4) + [VISION_END]
                tokens += [int(t) for t in rng.integers(3, 290, size=2)]
            tokens += [int(t) for t in rng.integers(3, 290, size=4)]
            input_ids = torch.tensor([tokens])
            with torch.no_grad():
                position_ids = rope_index(model, input_ids, grid)
                feats = vision_features(model, pixels, grid)
                logits = forward_logits(model, input_ids, pixels, grid)
            save_file({
                "input_ids": f32(input_ids[0]),
                "image_grid_thw": f32(grid),
                "position_ids": f32(position_ids[:, 0]),
                "vision_features": f32(feats),
                "logits": f32(logits),
            }, os.path.join(d, f"{n_images}img.safetensors"))
            meta[f"{name}/{n_images}img"] = {"tokens": len(tokens), "grid": grid.tolist(), "logits_absmax": float(logits.abs().max()), "features_absmax": float(feats.abs().max())}
            # the same inputs through bf16-rounded weight matrices (norms and biases stay f32)
            with torch.no_grad():
                saved = {k: p.detach().clone() for k, p in model.named_parameters() if p.dim() >= 2}
                for k, p in model.named_parameters():
                    if p.dim() >= 2:
                        p.copy_(p.to(torch.bfloat16).float())
                feats_b = vision_features(model, pixels, grid)
                logits_b = forward_logits(model, input_ids, pixels, grid)
                for k, p in model.named_parameters():
                    if k in saved:
                        p.copy_(saved[k])
            save_file({"vision_features": f32(feats_b), "logits": f32(logits_b)}, os.path.join(d, f"{n_images}img-bf16w.safetensors"))
            print("wrote", d, n_images, "image(s)")


def processor_cases(out, rng, meta):
    """The PIL processor on images that must be resized: up (below min_pixels), down, odd sizes."""
    proc = pil_processor(min_pixels=56 * 56, max_pixels=28 * 28 * 8)
    tensors = {}
    for i, (h, w) in enumerate([(45, 61), (97, 130), (150, 200)]):
        # smooth gradients plus noise and a sharp edge: bicubic overshoot gets clamped
        yy, xx = np.mgrid[0:h, 0:w]
        base = np.stack([xx * 255 / w, yy * 255 / h, (xx + yy) % 64 * 4], -1)
        base[h // 3:h // 2, :, :] = [255, 0, 0]
        img = np.clip(base + rng.normal(0, 20, size=base.shape), 0, 255).astype(np.uint8)
        pixels, grid = process(proc, [img])
        tensors[f"image{i}"] = f16_image(img)
        tensors[f"pixel_values{i}"] = f32(pixels)
        tensors[f"image_grid_thw{i}"] = f32(grid)
        meta[f"processor/image{i}"] = {"size": [h, w], "grid": grid.tolist()}
    save_file(tensors, os.path.join(out, "processor.safetensors"))
    print("wrote processor cases")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="test/goldens/qwen25vl")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    rng = np.random.default_rng(0)
    torch.set_num_threads(1)
    meta = {"torch": torch.__version__, "transformers": transformers.__version__, "pillow": PIL.__version__, "processor_min_pixels": 56 * 56, "processor_max_pixels": 28 * 28 * 8}
    model_cases(a.out, rng, meta)
    processor_cases(a.out, rng, meta)
    with open(os.path.join(a.out, "meta.json"), "w") as f:
        json.dump(meta, f, indent=2)
        f.write("\n")


if __name__ == "__main__":
    main()
