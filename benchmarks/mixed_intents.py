"""A labelled set shaped like the held-out one (many intents of 30 short texts, from more than one
domain), made from the sets on this machine: 30 texts of at most 10 words of every Banking77 *train*
intent and of every HWU64 intent (141 intents, 4,222 texts). Writes it as a CSV for
`grouping_quality.py --dataset FILE.csv --size 4222` and prints plain average linkage at its best cut on
the same embeddings, the baseline the issue gives for the held-out set (0.615 there).

A measurement only: HWU64 is never tuned on, and nothing is chosen by this set.

    .venv/bin/python benchmarks/mixed_intents.py [--output mixed_intents.csv]
"""

from __future__ import annotations

import argparse
import csv
import random
from pathlib import Path

from banking77 import DATASETS, labelled_rows

PER_INTENT = 30
MAX_WORDS = 10
SEED = 11


def mixed_rows() -> list[tuple[str, str]]:
    rng = random.Random(SEED)
    rows: list[tuple[str, str]] = []
    for name, path in (
        ("banking77", DATASETS / "banking77" / "train.csv"),
        ("hwu64", DATASETS / "hwu64" / "texts.csv"),
    ):
        by_intent: dict[str, list[str]] = {}
        for text, intent in labelled_rows(path):
            by_intent.setdefault(intent, []).append(text)
        for intent, texts in sorted(by_intent.items()):
            short = [text for text in texts if len(text.split()) <= MAX_WORDS] or texts
            rows += [(text, f"{name}:{intent}") for text in rng.sample(short, min(PER_INTENT, len(short)))]
    rng.shuffle(rows)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=Path("mixed_intents.csv"))
    args = parser.parse_args()
    rows = mixed_rows()
    with open(args.output, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "category"])
        writer.writerows(rows)
    print(f"{args.output}: {len(rows)} texts, {len({intent for _, intent in rows})} intents", flush=True)

    import numpy as np
    from offline_matching_sim import best_average_linkage, embed

    truth = [intent for _, intent in rows]
    vectors = embed([text for text, _ in rows]).astype(np.float64)
    for part in ("", "banking77:", "hwu64:"):
        chosen = [i for i, intent in enumerate(truth) if intent.startswith(part)]
        scores, cut = best_average_linkage(vectors[chosen], [truth[i] for i in chosen])
        print(
            f"average linkage at its best cut ({part.rstrip(':') or 'all'}, {len(chosen)} texts): "
            f"ARI {scores['ari']:.3f}, pair precision {scores['pair_precision']:.3f} at distance {cut:.3f}"
        )


if __name__ == "__main__":
    main()
