"""Grouping quality of the real pipeline on a grouping protocol (`banking77.protocol_texts`): the Banking77
dev protocol by default, `--split train` for Banking77's tuning sample, `--dataset hwu64` for the
transfer check (measure only, never tune on it), `--dataset FILE.csv` for any other labelled set (a `text`
column and a `category`, `label` or `intent` column; `--size` rows sampled with seed 0, like HWU64).

For each of the 5 arrival orders: a fresh SIGNALS_HOME, the 2,000 texts emitted through the
facade, claimed into batches and run through `signal_batch_job` (buffer, embed, group) in process;
then ARI, pair precision/recall and the number of reports against the intent labels, plus the
plain nearest-neighbour threshold baseline (join the nearest earlier text's group if cosine ≥
0.675) on the same stored embeddings. Finally the "unrelated signals" check: one train text per
intent (seeded), the share of texts that end up sharing a report.
    .venv/bin/python benchmarks/grouping_quality.py [--dataset banking77|hwu64|FILE.csv] [--split test|train]
        [--orders 5] [--size 2000] [--single-seeds 5] [--research-between-batches]
"""

import argparse
import csv
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy

sys.path.insert(0, str(Path(__file__).resolve().parent))
from banking77 import DATASET, grouping_scores, protocol_texts  # noqa: E402

BASELINE_THRESHOLD = 0.675


def run_pipeline(texts: list[str], research: bool = False) -> tuple[list[int], list[str], "numpy.ndarray", float]:
    """The assigned texts' positions, their report ids and stored embeddings (in emission order), and the
    wall time. With
    `research`, each batch's promoted reports are researched before the next batch is grouped, as
    under the daemon: the consolidation re-clusters researched reports too, each keeping its id on its
    home cluster."""
    import dagster as dg
    import numpy as np

    from signals_assets.cli.commands import research_pending
    from signals_assets.definitions import defs
    from signals_assets.facade import emit_signal
    from signals_assets.ingestion import inbox
    from signals_assets.ingestion.teams import TeamConfig, save_team
    from signals_assets.settings import load_settings
    from signals_assets.storage.clickhouse import open_chdb
    from signals_assets.storage.object_store import open_object_store

    home = tempfile.mkdtemp(prefix="signals-quality-")
    os.environ["SIGNALS_HOME"] = home
    settings = load_settings()
    store = open_object_store(settings)
    save_team(store, TeamConfig(team_id=1, ai_processing_consent=True))
    started = time.monotonic()
    for number, text in enumerate(texts):
        emit_signal(
            1,
            "zendesk",
            "ticket",
            str(number),
            text,
            extra={
                "url": f"https://support.example/{number}",
                "type": "question",
                "tags": [],
                "created_at": "2026-11-01T00:00:00Z",
                "priority": "normal",
                "status": "open",
            },
            store=store,
        )
    batches = inbox.claim_all(store, settings.batch_max_signals)
    definitions = defs()
    job = definitions.resolve_job_def("signal_batch_job")
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("signal_batches", batches)
        for batch in batches:
            job.execute_in_process(
                partition_key=batch,
                instance=instance,
                run_config={"loggers": {"console": {"config": {"log_level": "ERROR"}}}},
            )
            if research:
                research_pending(definitions, instance, store, settings)
    seconds = time.monotonic() - started
    with open_chdb(settings.clickhouse_path, settings.clickhouse_database) as db:
        rows = db.query(
            "SELECT s.source_id AS n, a.report_id AS report, e.embedding AS vector FROM signals AS s "
            "INNER JOIN current_assignments AS a ON a.signal_id = s.signal_id "
            "INNER JOIN signal_embeddings AS e ON e.signal_id = s.signal_id"
        )
        # a text the screening turned away (the safety filter's false positive) is not lost: it is
        # scored as missing and counted, and every other text must be assigned
        rejected = {int(r["n"]): r["reason"] for r in db.query("SELECT source_id AS n, reason FROM rejected_signals")}
    rows.sort(key=lambda r: int(r["n"]))
    assert len(rows) + len(rejected) == len(texts), (
        f"{len(rows)} of {len(texts)} signals assigned, {len(rejected)} rejected"
    )
    for number, reason in sorted(rejected.items()):
        print(f"rejected at screening ({reason}), left out of the scores: {texts[number]!r}", flush=True)
    assigned = [int(r["n"]) for r in rows]
    reports = [r["report"] for r in rows]
    return assigned, reports, np.asarray([r["vector"] for r in rows], dtype=np.float32), seconds


def threshold_baseline(vectors) -> list[int]:
    import numpy as np

    groups: list[int] = []
    for i in range(len(vectors)):
        if i:
            similarities = vectors[:i] @ vectors[i]
            best = int(np.argmax(similarities))
            if similarities[best] >= BASELINE_THRESHOLD:
                groups.append(groups[best])
                continue
        groups.append(i)
    return groups


def one_per_intent(seed: int) -> list[str]:
    """One train text per intent, in categories.json order (seed 0 is the tuning script's sample)."""
    import numpy as np

    with open(DATASET / "train.csv", newline="") as handle:
        by_intent: dict[str, list[str]] = {}
        for row in csv.DictReader(handle):
            by_intent.setdefault(row["category"], []).append(row["text"])
    rng = np.random.default_rng(seed)
    intents = json.loads((DATASET / "categories.json").read_text())
    return [by_intent[intent][int(rng.choice(len(by_intent[intent])))] for intent in intents]


def print_summary(rows) -> None:
    def summary(index: int, key: str) -> str:
        values = [row[index][key] for row in rows]
        spread = statistics.stdev(values) if len(values) > 1 else 0.0
        return f"{statistics.mean(values):.3f} ± {spread:.3f}"

    print("\n| method | ARI | pair precision | pair recall | reports |\n|---|---|---|---|---|")
    for label, index in (("pipeline (offline provider)", 1), (f"threshold {BASELINE_THRESHOLD} baseline", 2)):
        print(
            f"| {label} | {summary(index, 'ari')} | {summary(index, 'pair_precision')} | "
            f"{summary(index, 'pair_recall')} | {summary(index, 'groups')} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--dataset",
        default="banking77",
        help="banking77, hwu64, or the path of a labelled .csv (columns text and category, label or intent)",
    )
    parser.add_argument(
        "--split", choices=("test", "train"), default="test", help="banking77 only: dev or tuning texts"
    )
    parser.add_argument("--orders", type=int, default=5)
    parser.add_argument("--size", type=int, default=2000)
    parser.add_argument("--single-seeds", type=int, default=5, help="samples of one text per intent")
    parser.add_argument(
        "--research-between-batches",
        action="store_true",
        help="research each batch's promoted reports before the next batch, as under the daemon",
    )
    args = parser.parse_args()
    if args.dataset != "banking77" and args.split != "test":
        parser.error("--split train exists for banking77 only: any other set is a transfer check, never tuned on")
    if args.dataset not in ("banking77", "hwu64") and not args.dataset.endswith(".csv"):
        parser.error(f"--dataset {args.dataset!r}: give banking77, hwu64 or the path of a labelled .csv file")
    print(f"{args.dataset} {args.split}, research between batches: {args.research_between_batches}", flush=True)
    rows = []
    for order in range(args.orders):
        pairs = protocol_texts(order, args.size, args.dataset, args.split)
        assigned, reports, vectors, seconds = run_pipeline([text for text, _ in pairs], args.research_between_batches)
        truth = [pairs[number][1] for number in assigned]
        pipeline = grouping_scores(truth, reports)
        baseline = grouping_scores(truth, [str(g) for g in threshold_baseline(vectors)])
        rows.append((order, pipeline, baseline, seconds))
        print(
            f"order {order}: pipeline ARI {pipeline['ari']:.3f} precision {pipeline['pair_precision']:.3f} "
            f"recall {pipeline['pair_recall']:.3f} reports {pipeline['groups']} ({seconds:.0f} s) | "
            f"baseline ARI {baseline['ari']:.3f} precision {baseline['pair_precision']:.3f} "
            f"recall {baseline['pair_recall']:.3f} groups {baseline['groups']}",
            flush=True,
        )
    if rows:
        print_summary(rows)
    shares = []
    for seed in range(args.single_seeds):
        singles = one_per_intent(seed)
        _, reports, _, _ = run_pipeline(singles)
        shared = sum(1 for r in reports if reports.count(r) > 1)
        shares.append(shared / len(singles))
        print(f"one train text per intent, seed {seed}: {shared}/{len(singles)} texts share a report")
    if shares:
        print(f"mean share {statistics.mean(shares):.1%} (bar ≤ 10%)")


if __name__ == "__main__":
    main()
