#!/usr/bin/env python3
"""
Golden logits of the shipped pretrained default (models/tiny-vlm) from Hugging Face
transformers, loaded the way a user would: from_pretrained on the directory.

    python3 test/goldens/make_tiny_vlm_golden.py --model models/tiny-vlm --out test/goldens/tiny-vlm

Reads <out>/scene.png (a toy-world frame, both cameras tiled, written by vlatext) and writes
<out>/golden.safetensors and <out>/meta.json:
    input_ids        the question prompt as the directory's own tokenizer and chat template make it
                     (AutoTokenizer.apply_chat_template), one image
    pixel_values     what the directory's preprocessor (AutoImageProcessor) makes of scene.png
    image_grid_thw
    logits           (N, V) of Qwen2_5_VLForConditionalGeneration.from_pretrained(model), f32
    answer_ids       the greedy answer (transformers' generate, 8 new tokens at most)
meta.json: versions, the question, and the SHA-256 of the model.safetensors the golden was made
from (the TypeScript test, test/models/pretrained.test.ts, says when the golden is stale).
Integers are stored as F32 (exact below 2^24); the image is not stored (scene.png is).
"""
import argparse
import hashlib
import inspect
import json
import os

import numpy as np
import PIL
import torch
import transformers
from PIL import Image
from safetensors.torch import save_file
from transformers import AutoImageProcessor, AutoTokenizer, Qwen2_5_VLForConditionalGeneration

QUESTION = "where is the red block?"
SYSTEM = "Answer the question about the picture."  # src/train/pretrain.ts PRETRAIN_SYSTEM


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    torch.manual_seed(0)
    tok = AutoTokenizer.from_pretrained(a.model)
    proc = AutoImageProcessor.from_pretrained(a.model)
    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(a.model, torch_dtype=torch.float32).eval()
    image = Image.open(os.path.join(a.out, "scene.png")).convert("RGB")
    messages = [
        {"role": "system", "content": [{"type": "text", "text": SYSTEM}]},
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": QUESTION}]},
    ]
    text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    pix = proc(images=[image], return_tensors="pt")
    grid = pix["image_grid_thw"]
    n_image = int(grid.prod().item()) // (proc.merge_size**2)
    text = text.replace("<|image_pad|>", "<|image_pad|>" * n_image, 1)
    ids = tok(text, return_tensors="pt", add_special_tokens=False)["input_ids"]
    kwargs = dict(input_ids=ids, pixel_values=pix["pixel_values"], image_grid_thw=grid)
    # transformers 5.x finds the image tokens (for the 3D positions) through mm_token_type_ids, which its
    # processor makes; AutoProcessor would also need torchvision (for the video processor), so they are made here
    if "mm_token_type_ids" in inspect.signature(model.model.forward).parameters:
        kwargs["mm_token_type_ids"] = (ids == model.config.image_token_id).int()
    with torch.no_grad():
        out = model(**kwargs)
        gen = model.generate(**kwargs, max_new_tokens=8, do_sample=False)
    answer = gen[0, ids.shape[1]:]
    save_file(
        {
            "input_ids": ids[0].to(torch.float32).contiguous(),
            "pixel_values": pix["pixel_values"].to(torch.float32).contiguous(),
            "image_grid_thw": grid[0].to(torch.float32).contiguous(),
            "logits": out.logits[0].to(torch.float32).contiguous(),
            "answer_ids": answer.to(torch.float32).contiguous(),
        },
        os.path.join(a.out, "golden.safetensors"),
    )
    with open(os.path.join(a.model, "model.safetensors"), "rb") as f:
        sha = hashlib.sha256(f.read()).hexdigest()
    meta = {
        "transformers": transformers.__version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "pillow": PIL.__version__,
        "question": QUESTION,
        "answer": tok.decode(answer, skip_special_tokens=True),
        "model_sha256": sha,
    }
    with open(os.path.join(a.out, "meta.json"), "w") as f:
        json.dump(meta, f, indent=2)
        f.write("\n")
    print(json.dumps(meta, indent=2))


if __name__ == "__main__":
    main()
