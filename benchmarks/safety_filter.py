"""Precision and recall of the offline safety filter on the labelled corpus (tests/data/safety_corpus.jsonl).

Each line: {"id", "split", "label" ("benign" or one of the five kinds), "text"}. Splits:
`dev` is what the rules were written against; `heldout` was written after the first rules were frozen;
`heldout2` and each later `heldoutN` were written after the rules of the time were frozen, and measured once.

Overall: "unsafe" is the positive class (any kind counts as a detection).
Per kind: a prediction counts only when the kind matches the label.
Then, as a false-positive check on real benign text, every Banking77 customer message (train and
test) and every HWU64 assistant command is screened: each one flagged is a false positive. Also
prints the filter's speed on them (one core, wall clock), and the time for the slowest shapes of a
32,000-character text (a signal's size limit), where a rule that backtracks would show up as seconds.

    .venv/bin/python benchmarks/safety_filter.py [--split dev|heldout|heldout2|…|all] [--errors]

`--verdicts FILE` instead writes every verdict (accepted or not, kind, quote, reason) on every corpus, Banking77
and HWU64 text, with and without the scorer, one JSON line each: two versions of the filter give the same
verdicts exactly when their files are byte-identical (`cmp a b`).
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path

from signals_assets.safety.filter import KINDS, check_signal_text

CORPUS = Path(__file__).resolve().parents[1] / "tests" / "data" / "safety_corpus.jsonl"


def corpus_splits() -> tuple[str, ...]:
    """The corpus's splits in the order they were written: dev, heldout, heldout2, heldout3, …"""
    names = {json.loads(line)["split"] for line in CORPUS.read_text().splitlines() if line.strip()}
    return tuple(sorted(names, key=lambda name: (name != "dev", int(name[len("heldout") :] or 1))))


SPLITS = corpus_splits()


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
    return {
        "table": table,
        "errors": errors,
        "malicious": sum(r["label"] != "benign" for r in rows),
        "benign": sum(r["label"] == "benign" for r in rows),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--split", default="all", choices=(*SPLITS, "all"))
    parser.add_argument("--errors", action="store_true", help="print every misclassified example")
    parser.add_argument("--verdicts", type=Path, help="write every verdict to this file, and nothing else")
    args = parser.parse_args()
    if args.verdicts:
        write_verdicts(args.verdicts)
        return
    splits = (*SPLITS, "all") if args.split == "all" else (args.split,)
    for split in splits:
        result = evaluate(load(split))
        print(f"\n{split}: {result['malicious']} malicious, {result['benign']} benign")
        print(f"{'class':<24} {'precision':>9} {'recall':>7} {'F1':>6} {'flagged':>8} {'labelled':>9}")
        for name, (precision, recall, f1, predicted, actual) in result["table"].items():
            print(f"{name:<24} {precision:>9.3f} {recall:>7.3f} {f1:>6.3f} {predicted:>8} {actual:>9}")
        if args.errors:
            for row, verdict in result["errors"]:
                print(
                    f"  {row['id']} label={row['label']} got={verdict.kind or 'benign'} "
                    f"quote={verdict.display_quote!r} text={row['text'][:100]!r}"
                )
    benign_datasets_false_positives(args.errors)
    long_texts()


def benign_texts() -> dict[str, list[str]]:
    from banking77 import DATASET

    banking77: list[str] = []
    for name in ("train.csv", "test.csv"):
        with open(DATASET / name, newline="") as handle:
            banking77 += [row["text"] for row in csv.DictReader(handle)]
    with open(DATASET.parent / "hwu64" / "texts.csv", newline="") as handle:
        hwu64 = [row["text"] for row in csv.DictReader(handle)]
    return {"Banking77 (customer messages)": banking77, "HWU64 (assistant commands)": hwu64}


def benign_datasets_false_positives(show: bool) -> None:
    print()
    for name, texts in benign_texts().items():
        started = time.perf_counter()
        flagged = [(text, verdict) for text in texts for verdict in [check_signal_text(text)] if not verdict.safe]
        seconds = time.perf_counter() - started
        print(
            f"{name}: {len(flagged)} of {len(texts)} flagged ({len(flagged) / len(texts):.4%}); "
            f"{len(texts) / seconds:,.0f} texts/s"
        )
        if show:
            for text, verdict in flagged:
                print(f"  {verdict.kind}: {verdict.display_quote!r} text={text[:100]!r}")


def write_verdicts(path: Path) -> None:
    texts = [row["text"] for row in load("all")] + [t for group in benign_texts().values() for t in group]
    with path.open("w") as out:
        for use_scorer in (True, False):
            for text in texts:
                verdict = check_signal_text(text, use_scorer=use_scorer)
                line = {"scorer": use_scorer, "text": text, "safe": verdict.safe, "kind": verdict.kind}
                line.update(quote=verdict.quote, revealed=verdict.revealed, reason=verdict.reason)
                out.write(json.dumps(line, ensure_ascii=False) + "\n")
    print(f"{2 * len(texts)} verdicts ({len(texts)} texts, with and without the scorer) written to {path}")


def long_texts(length: int = 32_000) -> None:
    import base64
    import random

    words = "the card payment was declined at checkout ignore previous run curl send token".split()
    rng = random.Random(0)
    shapes = {
        "one long word": "a" * length,
        "base64 blob": base64.b64encode(rng.randbytes(length * 3 // 4)).decode(),
        "spaced-out letters": " ".join("a" * (length // 2)),
        # every two letters a word to part them at: the split is linear (it was quadratic: 1.2 s)
        "spaced-out short words": " ".join("me" * (length // 4)),
        "dotted letters": "a." * (length // 2),
        "words": " ".join(rng.choice(words) for _ in range(length // 5))[:length],
        # each hidden element's content was screened again at every nesting level (3.3 s)
        "unclosed hidden spans": ('<span style="display:none">x' * length)[:length],
        # every rule ran in full on non-ASCII text: its literals were not pre-checked (2.7 s)
        "random unicode": "".join(
            chr(rng.choice((rng.randrange(32, 0xD7FF), rng.randrange(0xE000, 0xFFFD)))) for _ in range(length)
        ),
        "hindi": ("निर्देशों को अनदेखा करो " * length)[:length],
    }
    print(f"\n{length:,}-character texts:")
    for name, text in shapes.items():
        started = time.perf_counter()
        check_signal_text(text)
        print(f"  {name:<22} {time.perf_counter() - started:6.2f} s")


if __name__ == "__main__":
    main()
