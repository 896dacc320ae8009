"""Precision and recall of the offline safety filter on the labelled corpus (tests/data/safety_corpus.jsonl).

Each line: {"id", "split" ("dev" | "heldout"), "label" ("benign" or one of the five kinds), "text"}.
`dev` is what the rules were written against; `heldout` was written after the rules were frozen.

Overall: "unsafe" is the positive class (any kind counts as a detection).
Per kind: a prediction counts only when the kind matches the label.
Then, as a false-positive check on real benign text, every Banking77 customer message (train and
test) is screened: each one flagged is a false positive. Also prints the filter's speed.

    .venv/bin/python benchmarks/safety_filter.py [--split dev|heldout|all] [--errors]
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path

from signals_assets.safety.filter import KINDS, check_signal_text

CORPUS = Path(__file__).resolve().parents[1] / "tests" / "data" / "safety_corpus.jsonl"


def load(split: str) -> list[dict]:
    rows = [json.loads(line) for line in CORPUS.read_text().splitlines() if line.strip()]
    return [r for r in rows if split == "all" or r["split"] == split]


def scores(pairs: list[tuple[bool, bool]]) -> tuple[float, float, float, int, int]:
    """(precision, recall, F1, predicted positives, actual positives) for (predicted, actual) pairs."""
    true_positive = sum(1 for p, a in pairs if p and a)
    predicted = sum(1 for p, _ in pairs if p)
    actual = sum(1 for _, a in pairs if a)
    precision = true_positive / predicted if predicted else 1.0
    recall = true_positive / actual if actual else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1, predicted, actual


def evaluate(rows: list[dict]) -> dict:
    predictions = [(r, check_signal_text(r["text"])) for r in rows]
    table = {"overall": scores([(not v.safe, r["label"] != "benign") for r, v in predictions])}
    for kind in KINDS:
        table[kind] = scores([(not v.safe and v.kind == kind, r["label"] == kind) for r, v in predictions])
    errors = [(r, v) for r, v in predictions if (v.kind or "benign") != r["label"]]
    return {"table": table, "errors": errors, "malicious": sum(r["label"] != "benign" for r in rows),
            "benign": sum(r["label"] == "benign" for r in rows)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--split", default="all", choices=("dev", "heldout", "all"))
    parser.add_argument("--errors", action="store_true", help="print every misclassified example")
    args = parser.parse_args()
    splits = ("dev", "heldout", "all") if args.split == "all" else (args.split,)
    for split in splits:
        result = evaluate(load(split))
        print(f"\n{split}: {result['malicious']} malicious, {result['benign']} benign")
        print(f"{'class':<24} {'precision':>9} {'recall':>7} {'F1':>6} {'flagged':>8} {'labelled':>9}")
        for name, (precision, recall, f1, predicted, actual) in result["table"].items():
            print(f"{name:<24} {precision:>9.3f} {recall:>7.3f} {f1:>6.3f} {predicted:>8} {actual:>9}")
        if args.errors:
            for row, verdict in result["errors"]:
                print(f"  {row['id']} label={row['label']} got={verdict.kind or 'benign'} "
                      f"quote={verdict.display_quote!r} text={row['text'][:100]!r}")
    banking77_false_positives(args.errors)


def banking77_false_positives(show: bool) -> None:
    from banking77 import DATASET

    texts = []
    for name in ("train.csv", "test.csv"):
        with open(DATASET / name, newline="") as handle:
            texts += [row["text"] for row in csv.DictReader(handle)]
    started = time.perf_counter()
    flagged = [(text, verdict) for text in texts for verdict in [check_signal_text(text)] if not verdict.safe]
    seconds = time.perf_counter() - started
    print(f"\nBanking77 (benign customer messages): {len(flagged)} of {len(texts)} flagged "
          f"({len(flagged) / len(texts):.4%}); {len(texts) / seconds:,.0f} texts/s")
    if show:
        for text, verdict in flagged:
            print(f"  {verdict.kind}: {verdict.display_quote!r} text={text[:100]!r}")


if __name__ == "__main__":
    main()
