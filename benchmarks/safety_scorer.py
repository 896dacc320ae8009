"""Train the safety filter's learned scorer, and measure it leave-one-split-out.

    .venv/bin/python benchmarks/safety_scorer.py train   # writes signals_assets/safety/scorer_weights.json
    .venv/bin/python benchmarks/safety_scorer.py loso    # prints the leave-one-split-out table

Training data: every corpus split's attacks (positives) against its benign look-alikes and Banking77's
train messages (negatives). Logistic regression with L2 over `scorer.features`, fitted by L-BFGS from zero
weights: deterministic. Features seen in fewer than MIN_COUNT training texts are dropped, and weights
below PRUNE in magnitude are not stored, which keeps the file small.

`loso`: for every held-out split K, trains on everything but K, and scores K with the filter as shipped
(rules, then the scorer where a cue is present) next to the rules alone; then the mean and worst recall,
and the flags on Banking77 test (not trained on) and HWU64 (never trained or tuned on).
(From a worktree outside /work/main, prefix `SIGNALS_DATASETS=/work/shared/datasets`.)
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from banking77 import DATASET  # noqa: E402
from safety_filter import load  # noqa: E402

from signals_assets.safety import filter as safety_filter  # noqa: E402
from signals_assets.safety import scorer  # noqa: E402

MIN_COUNT = 2
L2 = 1.0
PRUNE = 0.005
BANKING77_WEIGHT = 0.2  # a Banking77 message counts a fifth of a look-alike: it is plainly benign


def banking77(name: str) -> list[str]:
    with open(DATASET / name, newline="") as handle:
        return [row["text"] for row in csv.DictReader(handle)]


def hwu64() -> list[str]:
    with open(DATASET.parent / "hwu64" / "texts.csv", newline="") as handle:
        return [row["text"] for row in csv.DictReader(handle)]


def fit(rows: list[dict], negatives: list[str]) -> tuple[float, dict[str, float]]:
    import numpy as np
    from scipy.optimize import minimize
    from scipy.sparse import csr_matrix

    texts = [r["text"] for r in rows] + negatives
    labels = np.array([r["label"] != "benign" for r in rows] + [False] * len(negatives), dtype=float)
    sample_weight = np.array([1.0] * len(rows) + [BANKING77_WEIGHT] * len(negatives))
    featured = [sorted(scorer.features(text)) for text in texts]
    counts: dict[str, int] = {}
    for found in featured:
        for feature in found:
            counts[feature] = counts.get(feature, 0) + 1
    vocabulary = sorted(f for f, n in counts.items() if n >= MIN_COUNT)
    index = {f: i for i, f in enumerate(vocabulary)}
    indptr, indices = [0], []
    for found in featured:
        indices += [index[f] for f in found if f in index]
        indptr.append(len(indices))
    matrix = csr_matrix((np.ones(len(indices)), indices, indptr), shape=(len(texts), len(vocabulary)))

    def loss(params):
        bias, weights = params[0], params[1:]
        margin = matrix @ weights + bias
        probability = 1.0 / (1.0 + np.exp(-margin))
        log_loss = np.logaddexp(0.0, margin) - labels * margin
        value = (sample_weight * log_loss).sum() + 0.5 * L2 * weights @ weights
        residual = sample_weight * (probability - labels)
        gradient = np.concatenate(([residual.sum()], matrix.T @ residual + L2 * weights))
        return value, gradient

    result = minimize(loss, np.zeros(len(vocabulary) + 1), jac=True, method="L-BFGS-B", options={"maxiter": 500})
    bias, weights = float(result.x[0]), result.x[1:]
    kept = {f: round(float(w), 4) for f, w in zip(vocabulary, weights) if abs(w) >= PRUNE}
    return round(bias, 4), kept


def train() -> None:
    bias, weights = fit(load("all"), banking77("train.csv"))
    scorer.WEIGHTS.write_text(json.dumps({"bias": bias, "weights": weights}, sort_keys=True, separators=(",", ":")))
    print(f"wrote {scorer.WEIGHTS}: {len(weights)} weights")


def recall_precision(rows: list[dict], flags: list[bool]) -> tuple[float, float]:
    hits = sum(f and r["label"] != "benign" for r, f in zip(rows, flags))
    attacks = sum(r["label"] != "benign" for r in rows)
    flagged = sum(flags)
    return hits / attacks, hits / flagged if flagged else 1.0


def loso() -> None:
    from safety_filter import SPLITS

    negatives = banking77("train.csv")
    rows = load("all")
    table = []
    for held in [s for s in SPLITS if s != "dev"]:
        model = fit([r for r in rows if r["split"] != held], negatives)
        scorer._model.cache_clear()
        scorer._model = lambda model=model: model  # type: ignore[assignment]
        test = [r for r in rows if r["split"] == held]
        rules = [not safety_filter.check_signal_text(r["text"], use_scorer=False).safe for r in test]
        combined = [not safety_filter.check_signal_text(r["text"]).safe for r in test]
        table.append((held, recall_precision(test, rules), recall_precision(test, combined)))
        print(f"{held:<10} rules recall {table[-1][1][0]:.3f} precision {table[-1][1][1]:.3f}   "
              f"with scorer recall {table[-1][2][0]:.3f} precision {table[-1][2][1]:.3f}", flush=True)
    for name, column in (("rules", 1), ("with scorer", 2)):
        recalls = [entry[column][0] for entry in table]
        precisions = [entry[column][1] for entry in table]
        print(f"{name}: mean recall {sum(recalls) / len(recalls):.3f}, worst {min(recalls):.3f}; "
              f"mean precision {sum(precisions) / len(precisions):.3f}, worst {min(precisions):.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=("train", "loso"))
    args = parser.parse_args()
    train() if args.command == "train" else loso()


if __name__ == "__main__":
    main()
