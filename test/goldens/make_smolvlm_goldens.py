#!/usr/bin/env python3
"""
Golden outputs from Hugging Face transformers for tiny random SmolVLM2 models
(SmolVLMForConditionalGeneration: SigLIP vision encoder, pixel-shuffle connector,
Llama text model).

Run where torch + transformers + Pillow exist (CPU is enough; the models are tiny):
    python3 test/goldens/make_smolvlm_goldens.py --out test/goldens/smolvlm

It writes, per model config ("split": images split into tiles plus a global image,
scale factor 2, tied embeddings; "global": one global image per picture, scale
factor 4, its own lm_head, grouped-query attention):
    <config>/config.json, preprocessor_config.json   transformers' own save_pretrained
    <config>/model.safetensors       seeded random weights, HF names
    <config>/<n>img.safetensors      per case (one and two images): input_ids (the
                                     prompt expanded by transformers' own
                                     get_image_prompt_string), pixel_values (tiles, 3, H, W),
                                     rows / cols per image, vision_features (after the
                                     connector, (tiles, seq, C)), logits (N, V)
    <config>/<n>img-bf16w.safetensors  vision_features and logits of the same model with its
                                     weight matrices and embeddings rounded to bf16 (what vlatext's
                                     bf16 storage holds; the position table stays f32 there and here)
and processor.safetensors: raw uint8 images (stored as F16, exact) of sizes that need
resizing up and down, and the pixel_values / rows / cols SmolVLMImageProcessorPil
(PIL, Lanczos) makes of them with the "split" config's sizes. meta.json: versions,
token ids, shapes. Integers are stored as F32 (exact below 2^24).
The TypeScript tests (test/vision/smolvlm-goldens.test.ts) compare vlatext's processor,
prompt expansion, vision encoder and decoder against these files.
"""
import argparse
import json
import os
import re

import numpy as np
import PIL
import torch
import transformers
from safetensors.torch import save_file
from transformers import SmolVLMConfig, SmolVLMForConditionalGeneration
from transformers.models.smolvlm.image_processing_pil_smolvlm import SmolVLMImageProcessorPil
from transformers.models.smolvlm.processing_smolvlm import get_image_prompt_string

# token ids of the tiny vocabulary (300): the image token, the wrappers, "\n" and "\n\n",
# and <row_r_col_c> = ROW_COL + (r - 1) * 4 + (c - 1)
IMAGE, FAKE, GLOBAL, NL, NL2, ROW_COL = 296, 295, 294, 293, 292, 270
SPECIALS = {"<image>": IMAGE, "<fake_token_around_image>": FAKE, "<global-img>": GLOBAL}
TEXT = {"\n": NL, "\n\n": NL2}


def tiny_config(split: bool) -> SmolVLMConfig:
    vision = dict(
        hidden_size=32,
        intermediate_size=48,
        num_hidden_layers=2 if split else 3,
        num_attention_heads=2,
        image_size=32 if split else 64,
        patch_size=8,
        hidden_act="gelu_pytorch_tanh",
        layer_norm_eps=1e-6,
    )
    text = dict(
        model_type="llama",
        vocab_size=300,
        hidden_size=64,
        intermediate_size=96,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4 if split else 2,
        max_position_embeddings=1024,
        rms_norm_eps=1e-5,
        rope_theta=10000.0 if split else 100000.0,
        tie_word_embeddings=split,
        bos_token_id=0,
        eos_token_id=1,
        pad_token_id=2,
    )
    cfg = SmolVLMConfig(vision_config=vision, text_config=text, scale_factor=2 if split else 4, image_token_id=IMAGE, tie_word_embeddings=split, pad_token_id=2)
    cfg._attn_implementation = "eager"
    return cfg


def processor(split: bool) -> SmolVLMImageProcessorPil:
    if split:
        return SmolVLMImageProcessorPil(size={"longest_edge": 64}, max_image_size={"longest_edge": 32}, do_image_splitting=True)
    return SmolVLMImageProcessorPil(size={"longest_edge": 64}, max_image_size={"longest_edge": 64}, do_image_splitting=False)


def process(proc, images):
    """pixel_values (tiles, 3, H, W) and per-image rows / cols from transformers' processor."""
    r = proc(images=[[PIL.Image.fromarray(img) for img in images]], return_tensors="pt", return_row_col_info=True)
    px = r["pixel_values"][0].float()
    return px, r["rows"][0], r["cols"][0]


def tokenize(text):
    """The expanded prompt string -> ids: specials by table, <row_r_col_c>, and the newline runs."""
    ids = []
    for piece in re.split(r"(<image>|<fake_token_around_image>|<global-img>|<row_\d+_col_\d+>)", text):
        if not piece:
            continue
        if piece in SPECIALS:
            ids.append(SPECIALS[piece])
        elif m := re.fullmatch(r"<row_(\d+)_col_(\d+)>", piece):
            ids.append(ROW_COL + (int(m[1]) - 1) * 4 + int(m[2]) - 1)
        else:
            ids.append(TEXT[piece])
    return ids


def bf16_rounded(model):
    """The parameters vlatext stores as bf16 (2+ dimensions, not the position table), rounded in place; returns the originals."""
    saved = {}
    with torch.no_grad():
        for k, p in model.named_parameters():
            if p.dim() >= 2 and "position_embedding" not in k:
                saved[k] = p.detach().clone()
                p.copy_(p.to(torch.bfloat16).float())
    return saved


def restore(model, saved):
    with torch.no_grad():
        for k, p in model.named_parameters():
            if k in saved:
                p.copy_(saved[k])


def f32(t):
    return t.detach().float().contiguous()


def f16_image(img):
    """uint8 pixels as F16: exact (integers below 2048), half the bytes of F32."""
    return torch.from_numpy(img).to(torch.float16).contiguous()


def model_cases(out, rng, meta):
    images = [rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8) for h, w in [(40, 56), (50, 30)]]
    save_file({f"image{i}": f16_image(img) for i, img in enumerate(images)}, os.path.join(out, "images.safetensors"))
    for split in (True, False):
        torch.manual_seed(4321 + split)
        cfg = tiny_config(split)
        model = SmolVLMForConditionalGeneration(cfg).float().eval()
        with torch.no_grad():
            for name, p in model.named_parameters():
                # norms near 1 (as trained models have them), everything else small random
                if p.dim() == 1 and name.endswith("weight") and "norm" in name:
                    p.copy_(1.0 + 0.1 * torch.randn_like(p))
                else:
                    p.normal_(0.0, 0.08)
        name = "split" if split else "global"
        d = os.path.join(out, name)
        os.makedirs(d, exist_ok=True)
        cfg.save_pretrained(d)
        proc = processor(split)
        proc.save_pretrained(d)
        state = {k: f32(v) for k, v in model.state_dict().items()}
        if cfg.tie_word_embeddings:
            state.pop("lm_head.weight", None)
        save_file(state, os.path.join(d, "model.safetensors"))
        seq = int((cfg.vision_config.image_size // cfg.vision_config.patch_size) ** 2 / cfg.scale_factor**2)
        for n_images in (1, 2):
            px, rows, cols = process(proc, images[:n_images])
            tokens = [int(t) for t in rng.integers(3, 260, size=3)]
            for i in range(n_images):
                tokens += tokenize(get_image_prompt_string(rows[i], cols[i], seq, "<fake_token_around_image>", "<image>", "<global-img>"))
                tokens += [int(t) for t in rng.integers(3, 260, size=2)]
            tokens += [int(t) for t in rng.integers(3, 260, size=4)]
            input_ids = torch.tensor([tokens])
            with torch.no_grad():
                feats = model.model.get_image_features(px[None]).pooler_output
                logits = model(input_ids=input_ids, pixel_values=px[None]).logits[0]
            save_file({
                "input_ids": f32(input_ids[0]),
                "pixel_values": f32(px),
                "rows": torch.tensor(rows, dtype=torch.float32),
                "cols": torch.tensor(cols, dtype=torch.float32),
                "vision_features": f32(feats),
                "logits": f32(logits),
            }, os.path.join(d, f"{n_images}img.safetensors"))
            meta[f"{name}/{n_images}img"] = {"tokens": len(tokens), "tiles": int(px.shape[0]), "rows": rows, "cols": cols, "seq": seq, "logits_absmax": float(logits.abs().max()), "features_absmax": float(feats.abs().max())}
            saved = bf16_rounded(model)
            with torch.no_grad():
                feats_b = model.model.get_image_features(px[None]).pooler_output
                logits_b = model(input_ids=input_ids, pixel_values=px[None]).logits[0]
            restore(model, saved)
            save_file({"vision_features": f32(feats_b), "logits": f32(logits_b)}, os.path.join(d, f"{n_images}img-bf16w.safetensors"))
            print("wrote", d, n_images, "image(s)")


def processor_cases(out, rng, meta):
    """The PIL processor (split config) on images that must be resized: up, down, odd sizes, both orientations."""
    proc = processor(True)
    tensors = {}
    for i, (h, w) in enumerate([(23, 90), (100, 37), (64, 64), (17, 17)]):
        yy, xx = np.mgrid[0:h, 0:w]
        base = np.stack([xx * 255 / w, yy * 255 / h, (xx + yy) % 16 * 16], -1)
        base[h // 3:h // 2, :, :] = [255, 0, 0]
        img = np.clip(base + rng.normal(0, 20, size=base.shape), 0, 255).astype(np.uint8)
        px, rows, cols = process(proc, [img])
        tensors[f"image{i}"] = f16_image(img)
        tensors[f"pixel_values{i}"] = f32(px)
        tensors[f"rows_cols{i}"] = torch.tensor([rows[0], cols[0]], dtype=torch.float32)
        meta[f"processor/image{i}"] = {"size": [h, w], "tiles": int(px.shape[0]), "rows": rows[0], "cols": cols[0]}
    save_file(tensors, os.path.join(out, "processor.safetensors"))
    print("wrote processor cases")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="test/goldens/smolvlm")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    rng = np.random.default_rng(0)
    torch.set_num_threads(1)
    meta = {"torch": torch.__version__, "transformers": transformers.__version__, "pillow": PIL.__version__,
            "ids": {"image": IMAGE, "fake": FAKE, "global": GLOBAL, "newline": NL, "newline2": NL2, "row_col": ROW_COL}}
    model_cases(a.out, rng, meta)
    processor_cases(a.out, rng, meta)
    with open(os.path.join(a.out, "meta.json"), "w") as f:
        json.dump(meta, f, indent=2)
        f.write("\n")


if __name__ == "__main__":
    main()
