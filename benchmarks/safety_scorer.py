"""Train the safety filter's learned scorer, and measure it leave-one-split-out.

    .venv/bin/python benchmarks/safety_scorer.py train   # writes signals_assets/safety/scorer_weights.json
    .venv/bin/python benchmarks/safety_scorer.py loso    # prints the leave-one-split-out table

Training data: every corpus split's attacks but NEVER_TRAINED's (positives) against its benign look-alikes and Banking77's
train messages (negatives). Logistic regression with L2 over `scorer.features`, fitted by L-BFGS from zero
weights: deterministic. Features seen in fewer than MIN_COUNT training texts are dropped, and weights
below PRUNE in magnitude are not stored, which keeps the file small.

`loso`: for every held-out split K, trains on everything but K and flags K's texts with the scorer (where a
cue is present, as shipped); next to it the rules alone, today's (tuned on every split but heldout11) and
as they were when K was new (the honest figure), and each OR the scorer; then the mean and the worst.
(From a worktree outside /work/main, prefix `SIGNALS_DATASETS=/work/shared/datasets`.)
"""

from __future__ import annotations

import argparse
import csv
import functools
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from banking77 import DATASET  # noqa: E402
from safety_filter import load  # noqa: E402

from signals_assets.safety import (
    filter as safety_filter,  # noqa: E402
    scorer,  # noqa: E402
)

MIN_COUNT = 2
L2 = 1.0
PRUNE = 0.005
BANKING77_WEIGHT = 0.2  # a Banking77 message counts a fifth of a look-alike: it is plainly benign
# Written after the shipped weights froze: measured on, never trained on (heldout14 blind, by another author;
# heldout15 by the rules' author, whose misses the rules were then generalised from, but not the scorer; heldout16
# and heldout17 blind, from docs/safety.md alone, the rules then changed against them, not the scorer; heldout18
# the same, measured once, then two of its shapes fixed; heldout19 and heldout20 blind, measured once, then the rules
# changed; heldout21 and heldout22 blind, measured once on the rules and on the retrained scorers; heldout23 blind,
# measured once on main and once on the scorer retrained with the dev58 texts).
NEVER_TRAINED = frozenset(
    {
        "heldout14",
        "heldout15",
        "heldout16",
        "heldout17",
        "heldout18",
        "heldout19",
        "heldout20",
        "heldout21",
        "heldout22",
        "heldout23",
    }
)


def training_rows() -> list[dict]:
    return [row for row in load("all") if row["split"] not in NEVER_TRAINED]


def banking77(name: str) -> list[str]:
    with open(DATASET / name, newline="") as handle:
        return [row["text"] for row in csv.DictReader(handle)]


def hwu64() -> list[str]:
    with open(DATASET.parent / "hwu64" / "texts.csv", newline="") as handle:
        return [row["text"] for row in csv.DictReader(handle)]


@functools.cache
def cached_features(text: str) -> list[str]:
    return sorted(scorer.features(text))


def fit(rows: list[dict], negatives: list[str]) -> tuple[float, dict[str, float]]:
    import numpy as np
    from scipy.optimize import minimize
    from scipy.sparse import csr_matrix

    texts = [r["text"] for r in rows] + negatives
    labels = np.array([r["label"] != "benign" for r in rows] + [False] * len(negatives), dtype=float)
    sample_weight = np.array([1.0] * len(rows) + [BANKING77_WEIGHT] * len(negatives))
    featured = [cached_features(text) for text in texts]
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
    bias, weights = fit(training_rows(), banking77("train.csv"))
    scorer.WEIGHTS.write_text(json.dumps({"bias": bias, "weights": weights}, sort_keys=True, separators=(",", ":")))
    print(f"wrote {scorer.WEIGHTS}: {len(weights)} weights")


# The rules each split was measured on when it was new (the commit after which it was written); heldout11
# was written blind and measured on the final rules. The first `heldout` predates the freeze log.
FRESH_RULES = {
    "heldout2": ("3775ce2", "signals_assets/safety.py"),
    "heldout3": ("b79b719", "signals_assets/safety.py"),
    "heldout4": ("4e98442", "signals_assets/safety.py"),
    "heldout5": ("7700a37", "signals_assets/safety.py"),
    "heldout6": ("5d32569", "signals_assets/safety.py"),
    "heldout7": ("ef2d108", "signals_assets/safety.py"),
    "heldout8": ("ac0b176", "signals_assets/safety.py"),
    "heldout9": ("1aef280", "signals_assets/safety.py"),
    "heldout10": ("f69257f", "signals_assets/safety.py"),
    "heldout11": ("2bb4228", "signals_assets/safety/filter.py"),
    "heldout12": ("cb35029", "signals_assets/safety/filter.py"),
    "heldout13": ("4418e85", "signals_assets/safety/filter.py"),
    "heldout14": ("2b727b3", "signals_assets/safety/filter.py"),
    "heldout16": ("2d04548", "signals_assets/safety/filter.py"),
    "heldout17": ("09fd29d", "signals_assets/safety/filter.py"),
    "heldout18": ("297c671", "signals_assets/safety/filter.py"),
    "heldout19": ("3172b11", "signals_assets/safety/filter.py"),
    "heldout20": ("8842f5f", "signals_assets/safety/filter.py"),
    "heldout21": ("e53e489", "signals_assets/safety/filter.py"),
    "heldout22": ("de0bbb0", "signals_assets/safety/filter.py"),
    "heldout23": ("3f9c858", "signals_assets/safety/filter.py"),
}


def rules_at(commit: str, path: str):
    """The rules module as it was at `commit` (read with `git show`, loaded from a temporary file)."""
    import importlib.util
    import subprocess
    import tempfile

    source = subprocess.run(["git", "show", f"{commit}:{path}"], check=True, capture_output=True, text=True).stdout
    handle = tempfile.NamedTemporaryFile("w", suffix=f"_rules_{commit}.py", delete=False)
    handle.write(source)
    handle.close()
    spec = importlib.util.spec_from_file_location(f"rules_{commit}", handle.name)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


def recall_precision(rows: list[dict], flags: list[bool]) -> tuple[float, float]:
    hits = sum(f and r["label"] != "benign" for r, f in zip(rows, flags))
    attacks = sum(r["label"] != "benign" for r in rows)
    flagged = sum(flags)
    return hits / attacks, hits / flagged if flagged else 1.0


def loso() -> None:
    from safety_filter import SPLITS

    negatives = banking77("train.csv")
    rows = training_rows()
    columns = ("rules now", "scorer alone", "now + scorer", "rules when fresh", "fresh + scorer")
    print(f"{'held out':<10}" + "".join(f"{name:>22}" for name in columns) + "   (recall / precision)")
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in columns}
    for held in [s for s in SPLITS if s != "dev"]:
        model = fit([r for r in rows if r["split"] != held], negatives)
        scorer._model = lambda model=model: model  # type: ignore[assignment]
        test = load(held)
        now = [not safety_filter.check_signal_text(r["text"], use_scorer=False).safe for r in test]
        scored = [not safety_filter._scored(r["text"]).safe for r in test]
        flags = {"rules now": now, "scorer alone": scored, "now + scorer": [a or b for a, b in zip(now, scored)]}
        if held in FRESH_RULES:
            old = rules_at(*FRESH_RULES[held])
            fresh = [not old.check_signal_text(r["text"]).safe for r in test]
            flags |= {"rules when fresh": fresh, "fresh + scorer": [a or b for a, b in zip(fresh, scored)]}
        line = f"{held:<10}"
        for name in columns:
            if name in flags:
                results[name].append(recall_precision(test, flags[name]))
                line += f"{'%.3f / %.3f' % results[name][-1]:>22}"
            else:
                line += f"{'-':>22}"
        print(line, flush=True)
    line = f"{'mean':<10}"
    worst = f"{'worst':<10}"
    for name in columns:
        recalls, precisions = zip(*results[name])
        line += f"{'%.3f / %.3f' % (sum(recalls) / len(recalls), sum(precisions) / len(precisions)):>22}"
        worst += f"{'%.3f / %.3f' % (min(recalls), min(precisions)):>22}"
    print(line)
    print(worst)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=("train", "loso"))
    args = parser.parse_args()
    train() if args.command == "train" else loso()


if __name__ == "__main__":
    main()
