"""sacreBLEU 2.4.3's corpus BLEU and chrF++ on real data-to-text references, for pelt's
`pelt_data::textgen` to be checked against.

Cases: the first 150 MRs of E2E's devset.csv and the first 150 entries of WebNLG 2017's dev
1-3 triple files (../shared/data/d2t). Each case's "hypothesis" is one of its own references, edited
by a seeded generator (words dropped, swapped, repeated; punctuation and numbers kept, so 13a's rules
are exercised), scored against the remaining references (a multi-reference corpus, as the metrics are
used). Writes crates/pelt-data/tests/data/sacrebleu_reference.json; the Rust test
(crates/pelt-data/tests/textgen.rs) recomputes the scores and never runs Python.

    python3 -m venv /tmp/sb && /tmp/sb/bin/pip install sacrebleu==2.4.3
    /tmp/sb/bin/python scripts/reference/sacrebleu_check.py
"""
import csv
import glob
import json
import pathlib
import random
import xml.etree.ElementTree as ET

import sacrebleu
from sacrebleu.metrics import BLEU, CHRF

ROOT = pathlib.Path(__file__).resolve().parents[2]
D2T = ROOT.parent / "shared" / "data" / "d2t"
OUT = ROOT / "crates/pelt-data/tests/data/sacrebleu_reference.json"


def e2e(limit=150):
    groups = {}
    with open(D2T / "e2e" / "devset.csv", newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            groups.setdefault(row["mr"], []).append(row["ref"])
    return [refs for refs in list(groups.values())[:limit] if len(refs) > 1]


def webnlg(limit=150):
    out = []
    for size in ("1triples", "2triples", "3triples"):
        for path in sorted(glob.glob(str(D2T / "webnlg2017" / "dev" / size / "*.xml"))):
            for entry in ET.parse(path).getroot().iter("entry"):
                refs = [lex.text.strip() for lex in entry.iter("lex") if lex.text]
                if len(refs) > 1:
                    out.append(refs)
    return out[:limit]


def edit(text, rng):
    words = text.split()
    out = []
    for w in words:
        u = rng.random()
        if u < 0.1:
            continue
        if u < 0.15 and out:
            out[-1], w = w, out[-1]
        out.append(w)
        if rng.random() < 0.03:
            out.append(w)
    return " ".join(out)


def main():
    rng = random.Random(38)
    cases = []
    for name, groups in (("e2e_dev", e2e()), ("webnlg2017_dev", webnlg())):
        hyps = [edit(refs[0], rng) for refs in groups]
        refs = [refs[1:] for refs in groups]
        # sacreBLEU takes references as streams: pad the shorter lists with None.
        most = max(len(r) for r in refs)
        streams = [[r[i] if i < len(r) else None for r in refs] for i in range(most)]
        bleu_metric, chrf_metric = BLEU(), CHRF(word_order=2)
        bleu = bleu_metric.corpus_score(hyps, streams)
        chrf = chrf_metric.corpus_score(hyps, streams)
        cases.append({"name": name, "hypotheses": hyps, "references": refs, "bleu": bleu.score, "chrf_pp": chrf.score,
                      "bleu_signature": str(bleu_metric.get_signature()),
                      "chrf_signature": str(chrf_metric.get_signature())})
        print(name, round(bleu.score, 4), round(chrf.score, 4))
    OUT.write_text(json.dumps({"sacrebleu": sacrebleu.__version__, "cases": cases}, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
