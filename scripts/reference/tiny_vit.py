"""A tiny random ViT from Hugging Face transformers, with its outputs on fixed images.

Run once to produce crates/pelt-backbone/tests/data/tiny_vit/ (config.json, model.safetensors,
reference.json); the Rust test loads the folder with pelt's ViT and compares its last hidden state
against these numbers (the tests never run Python). Needs a venv with torch and transformers (not the
project venv), e.g. the side-by-side benchmark's:

    bench/compare/setup.sh && bench/compare/.venv/bin/python scripts/reference/tiny_vit.py

The images are a deterministic pattern, not random draws, so the Rust side rebuilds them exactly:
pixel (b, c, y, x) = sin(0.37·(b + 1) + 0.11·c + 0.05·(y·W + x)).
"""
import json
import math
import pathlib

import torch
import transformers
from transformers import ViTConfig, ViTModel

OUT = pathlib.Path(__file__).resolve().parents[2] / "crates/pelt-backbone/tests/data/tiny_vit"


def images(batch, channels, size):
    px = torch.empty(batch, channels, size, size)
    for b in range(batch):
        for c in range(channels):
            for y in range(size):
                for x in range(size):
                    px[b, c, y, x] = math.sin(0.37 * (b + 1) + 0.11 * c + 0.05 * (y * size + x))
    return px


def main():
    torch.manual_seed(0)
    config = ViTConfig(
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        image_size=8,
        patch_size=4,
        num_channels=3,
        hidden_act="gelu",
        layer_norm_eps=1e-12,
    )
    model = ViTModel(config, add_pooling_layer=False).eval()
    # Random init leaves LayerNorms at (1, 0) and the class token at zero: perturb them so the test
    # also checks they are loaded and used.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "layernorm" in name or "cls_token" in name:
                p.add_(0.1 * torch.randn_like(p))
    OUT.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(OUT, safe_serialization=True)
    px = images(2, config.num_channels, config.image_size)
    with torch.no_grad():
        hidden = model(pixel_values=px).last_hidden_state
    ref = {
        "transformers": transformers.__version__,
        "torch": torch.__version__,
        "shape": list(hidden.shape),
        "last_hidden_state": [round(v, 7) for v in hidden.flatten().tolist()],
    }
    (OUT / "reference.json").write_text(json.dumps(ref, indent=1) + "\n")
    print(f"wrote {OUT}: hidden {list(hidden.shape)}")


if __name__ == "__main__":
    main()
