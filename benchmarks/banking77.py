"""The grouping protocols (Banking77 dev and train, HWU64 transfer: 2,000 seeded texts, arrival orders) and
grouping metrics, shared by benchmarks."""

from __future__ import annotations

import csv
import json
import os
from collections import Counter
from math import comb
from pathlib import Path

DATASETS = Path(os.environ.get("SIGNALS_DATASETS", Path(__file__).resolve().parents[2] / "shared" / "datasets"))
DATASET = DATASETS / "banking77"

# (file, seed of the row sample, base seed of the arrival orders): Banking77 test is the dev protocol,
# Banking77 train the tuning sample, HWU64 the transfer check (never tuned on)
PROTOCOLS = {
    ("banking77", "test"): (DATASET / "test.csv", 0, 1000),
    ("banking77", "train"): (DATASET / "train.csv", 7, 2000),
    ("hwu64", "test"): (DATASETS / "hwu64" / "texts.csv", 0, 1000),
}


LABEL_COLUMNS = ("category", "label", "intent")  # what a labelled CSV may call its label column


def protocol_texts(
    order: int = 0, size: int = 2000, dataset: str = "banking77", split: str = "test"
) -> list[tuple[str, str]]:
    """(text, intent) pairs: rows rng(seed).permutation(rows)[:size] of the protocol's file (for the
    Banking77 dev protocol rng(0) over test.csv's 3,080), re-ordered with rng(base + k) for order k > 0.
    `dataset` may also be the path of any labelled CSV (a `text` column and one of LABEL_COLUMNS), sampled
    like HWU64: seed 0, orders from 1000."""
    import numpy as np

    if dataset.endswith(".csv"):
        path, sample_seed, order_seed = Path(dataset), 0, 1000
    elif (dataset, split) in PROTOCOLS:
        path, sample_seed, order_seed = PROTOCOLS[dataset, split]
    else:
        raise ValueError(
            f"no protocol for dataset {dataset!r} split {split!r}: choose one of {sorted(PROTOCOLS)} "
            "or the path of a labelled .csv file"
        )
    rows = labelled_rows(path)
    chosen = [rows[i] for i in np.random.default_rng(sample_seed).permutation(len(rows))[:size]]
    if order:
        chosen = [chosen[i] for i in np.random.default_rng(order_seed + order).permutation(len(chosen))]
    return chosen


def labelled_rows(path: Path) -> list[tuple[str, str]]:
    """(text, label) of every row of a CSV with a `text` column and a label column (LABEL_COLUMNS)."""
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        columns = reader.fieldnames or []
        label = next((c for c in LABEL_COLUMNS if c in columns), None)
        if "text" not in columns or label is None:
            raise ValueError(
                f"{path}: a labelled CSV needs a 'text' column and a label column named one of "
                f"{', '.join(LABEL_COLUMNS)}; its header is {columns}"
            )
        rows = [(r["text"], r[label]) for r in reader]
    for number, (text, intent) in enumerate(rows, start=2):
        if not (text or "").strip() or not (intent or "").strip():
            raise ValueError(f"{path} line {number}: 'text' and '{label}' must both be non-empty")
    return rows


def ticket_signal(number: int, text: str) -> dict:
    """The zendesk ticket signal of a text (the keyword arguments of `emit_signal` but the team)."""
    return {
        "source_product": "zendesk",
        "source_type": "ticket",
        "source_id": str(number),
        "description": text,
        "idempotency_key": f"banking77-{number}",
        "extra": {
            "url": f"https://support.example/tickets/{number}",
            "type": "question",
            "tags": [],
            "created_at": "2026-11-01T00:00:00Z",
            "priority": "normal",
            "status": "open",
        },
    }


def write_signals_jsonl(path: Path, texts: list[tuple[str, str]]) -> None:
    """Each text becomes one zendesk ticket signal; source_id is its position in the protocol order."""
    with open(path, "w") as handle:
        for number, (text, _) in enumerate(texts):
            handle.write(json.dumps(ticket_signal(number, text)) + "\n")


def grouping_scores(truth: list[str], predicted: list[str]) -> dict:
    """Adjusted Rand index and pairwise precision/recall/F1 over same-group pairs."""
    n = len(truth)

    def pairs(counts: Counter) -> int:
        return sum(comb(c, 2) for c in counts.values())

    same_both = pairs(Counter(zip(truth, predicted)))
    same_truth, same_pred, total = pairs(Counter(truth)), pairs(Counter(predicted)), comb(n, 2)
    expected = same_truth * same_pred / total if total else 0.0
    maximum = (same_truth + same_pred) / 2
    ari = (same_both - expected) / (maximum - expected) if maximum != expected else 1.0
    precision = same_both / same_pred if same_pred else 0.0
    recall = same_both / same_truth if same_truth else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "ari": ari,
        "pair_precision": precision,
        "pair_recall": recall,
        "pair_f1": f1,
        "groups": len(set(predicted)),
        "true_groups": len(set(truth)),
    }
