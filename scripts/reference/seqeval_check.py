"""seqeval's entity-level scores on real NER tags, for pelt's `conll::score` to be checked against.

Gold tags: the first 300 sentences of WNUT-17 dev, MIT-Restaurant test and MIT-Movie test
(../shared/data/ner). Predictions: the gold tags corrupted by a seeded generator — tags replaced by
other tags of the set or by I- versions of B- tags (ill-formed sequences included: an I- after O, a
type change inside an entity), entities dropped — so that the check covers conlleval's chunking rules,
not only well-formed input. Writes crates/pelt-data/tests/data/seqeval_reference.json (tags as indices
into each case's tag list) with seqeval's micro and per-type precision, recall, F1 and support; the
Rust test (crates/pelt-data/tests/seqeval.rs) recomputes them and never runs Python.

    python3 -m venv /tmp/seqv && /tmp/seqv/bin/pip install seqeval==1.2.2
    /tmp/seqv/bin/python scripts/reference/seqeval_check.py
"""
import json
import pathlib
import random

import seqeval
from seqeval.metrics import classification_report, f1_score, precision_score, recall_score

ROOT = pathlib.Path(__file__).resolve().parents[2]
DATA = ROOT.parent / "shared" / "data" / "ner"
OUT = ROOT / "crates/pelt-data/tests/data/seqeval_reference.json"
CASES = [
    ("wnut17_dev", DATA / "wnut17" / "emerging.dev.conll"),
    ("mit_restaurant_test", DATA / "mit-restaurant" / "test.txt"),
    ("mit_movie_test", DATA / "mit-movie" / "test.txt"),
]


def read(path, limit=300):
    sentences, current = [], []
    for raw in path.read_bytes().decode("utf-8").split("\n"):
        line = raw.rstrip("\r")
        if line.startswith("-DOCSTART-"):
            continue
        fields = line.replace("\t", " ").split()
        if not fields:
            if current:
                sentences.append(current)
                current = []
            continue
        current.append(fields[-1])
    if current:
        sentences.append(current)
    return sentences[:limit]


def corrupt(gold, tags, rng):
    pred = []
    for sentence in gold:
        out = []
        for tag in sentence:
            u = rng.random()
            if u < 0.08:
                out.append(rng.choice(tags))
            elif u < 0.14 and tag.startswith("B-"):
                out.append("I-" + tag[2:])
            elif u < 0.20 and tag != "O":
                out.append("O")
            else:
                out.append(tag)
        pred.append(out)
    return pred


def main():
    rng = random.Random(17)
    cases = []
    for name, path in CASES:
        gold = read(path)
        tags = sorted({t for s in gold for t in s})
        pred = corrupt(gold, tags, rng)
        report = classification_report(gold, pred, output_dict=True, zero_division=0)
        per_type = {
            k: {"precision": v["precision"], "recall": v["recall"], "f1": v["f1-score"], "support": int(v["support"])}
            for k, v in report.items()
            if k not in ("micro avg", "macro avg", "weighted avg")
        }
        index = {t: i for i, t in enumerate(tags)}
        cases.append(
            {
                "name": name,
                "tags": tags,
                "gold": [[index[t] for t in s] for s in gold],
                "pred": [[index[t] for t in s] for s in pred],
                "precision": precision_score(gold, pred),
                "recall": recall_score(gold, pred),
                "f1": f1_score(gold, pred),
                "per_type": per_type,
            }
        )
    OUT.write_text(json.dumps({"seqeval": seqeval.__version__ if hasattr(seqeval, "__version__") else "1.2.2", "cases": cases}) + "\n")
    for c in cases:
        print(c["name"], round(c["f1"], 4))


if __name__ == "__main__":
    main()
