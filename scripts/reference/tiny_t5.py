"""A tiny random T5 (v1.1 layout: gated-GELU FFN, untied LM head) from Hugging Face transformers, with
its logits on fixed inputs and its greedy and beam-search outputs.

Run once to produce crates/pelt-backbone/tests/data/tiny_t5/ (config.json, model.safetensors,
reference.json); the Rust test loads the folder with pelt's T5 and compares (the tests never run Python).
Needs a venv with torch and transformers (not the project venv), e.g. the side-by-side benchmark's:

    bench/compare/setup.sh && bench/compare/.venv/bin/python scripts/reference/tiny_t5.py
"""
import json
import pathlib

import torch
import transformers
from transformers import T5Config, T5ForConditionalGeneration

OUT = pathlib.Path(__file__).resolve().parents[2] / "crates/pelt-backbone/tests/data/tiny_t5"

INPUTS = [[5, 17, 23, 42, 8, 1], [9, 3, 77, 1, 0, 0]]  # second row padded (pad 0, eos 1)
DECODER = [[0, 12, 5, 30], [0, 7, 7, 2]]


def main():
    torch.manual_seed(0)
    config = T5Config(
        vocab_size=100,
        d_model=16,
        d_kv=4,
        d_ff=32,
        num_layers=2,
        num_decoder_layers=2,
        num_heads=3,
        relative_attention_num_buckets=8,
        relative_attention_max_distance=20,
        feed_forward_proj="gated-gelu",
        tie_word_embeddings=False,
        dropout_rate=0.0,
        layer_norm_epsilon=1e-6,
        decoder_start_token_id=0,
        pad_token_id=0,
        eos_token_id=1,
    )
    model = T5ForConditionalGeneration(config).eval()
    # Random init leaves LayerNorm weights at 1: perturb them so the test checks they are loaded; and
    # scale the decoder's weights up so that decoding does not settle on one token at once (a weak check).
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "layer_norm" in name:
                p.add_(0.1 * torch.randn_like(p))
            elif name.startswith("decoder.") and "relative_attention_bias" not in name:
                p.mul_(3.0)
    OUT.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(OUT, safe_serialization=True)
    ids = torch.tensor(INPUTS)
    mask = (ids != 0).long()
    mask[0, :] = 1
    dec = torch.tensor(DECODER)
    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=mask, decoder_input_ids=dec).logits
        greedy = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=8, num_beams=1, do_sample=False)
        beam = model.generate(
            input_ids=ids, attention_mask=mask, max_new_tokens=8, num_beams=3, do_sample=False,
            length_penalty=1.0, early_stopping=True,
        )
    ref = {
        "transformers": transformers.__version__,
        "torch": torch.__version__,
        "input_ids": INPUTS,
        "attention_mask": mask.tolist(),
        "decoder_input_ids": DECODER,
        "logits_shape": list(logits.shape),
        "logits": [round(v, 6) for v in logits.flatten().tolist()],
        "greedy": greedy.tolist(),
        "beam3": beam.tolist(),
    }
    (OUT / "reference.json").write_text(json.dumps(ref) + "\n")
    print(f"wrote {OUT}: logits {list(logits.shape)}, greedy {greedy.tolist()}, beam {beam.tolist()}")


if __name__ == "__main__":
    main()
