"""A tiny random MPNet from Hugging Face transformers (`MPNetModel`: BERT's encoder with RoBERTa's position
ids, no segment embeddings and one relative-position bias table shared by every layer), with its last hidden
states on fixed inputs, one of them padded and both long enough to reach the logarithmic buckets.

Run once to produce crates/pelt-backbone/tests/data/tiny_mpnet/ (config.json, model.safetensors,
reference.json); the Rust test (tests/mpnet.rs) loads the folder with pelt's BERT-family encoder and
compares (the tests never run Python). Needs a venv with torch and transformers (not the project venv),
e.g. the side-by-side benchmark's:

    bench/compare/setup.sh && bench/compare/.venv/bin/python scripts/reference/tiny_mpnet.py
"""
import json
import pathlib

import torch
import transformers
from transformers import MPNetConfig, MPNetModel

OUT = pathlib.Path(__file__).resolve().parents[2] / "crates/pelt-backbone/tests/data/tiny_mpnet"

# <s> = 0, <pad> = 1, </s> = 2 as in MPNet's vocabulary; the second row is padded. 20 positions: relative
# distances up to 19 pass the 8 exact buckets of each direction into the logarithmic ones.
FIRST = [0] + [5 + (7 * i) % 90 for i in range(18)] + [2]
SECOND = [0] + [40 + (3 * i) % 50 for i in range(11)] + [2] + [1] * 7
INPUTS = [FIRST, SECOND]


def main():
    torch.manual_seed(0)
    config = MPNetConfig(
        vocab_size=100,
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=64,
        relative_attention_num_buckets=32,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        pad_token_id=1,
        bos_token_id=0,
        eos_token_id=2,
    )
    model = MPNetModel(config, add_pooling_layer=False).eval()
    # Random init leaves LayerNorms at 1 / 0 and draws a small bias table: perturb and scale them so the
    # test checks that they are loaded and used.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "LayerNorm" in name:
                p.add_(0.1 * torch.randn_like(p))
            elif "relative_attention_bias" in name:
                p.mul_(50.0)
    OUT.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(OUT, safe_serialization=True)
    ids = torch.tensor(INPUTS)
    mask = (ids != 1).long()
    with torch.no_grad():
        hidden = model(input_ids=ids, attention_mask=mask).last_hidden_state
    ref = {
        "transformers": transformers.__version__,
        "torch": torch.__version__,
        "input_ids": INPUTS,
        "attention_mask": mask.tolist(),
        "hidden_shape": list(hidden.shape),
        "hidden": [round(v, 7) for v in hidden.flatten().tolist()],
    }
    (OUT / "reference.json").write_text(json.dumps(ref) + "\n")
    print(f"wrote {OUT}: hidden {list(hidden.shape)}")


if __name__ == "__main__":
    main()
