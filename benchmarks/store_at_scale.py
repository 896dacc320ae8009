"""The platform around the grouping against a store of a million signals of one team: `signals
status`, the `reports` count check and one real batch run.

    python benchmarks/store_at_scale.py FOLDER [--run] [--batch 500]

FOLDER: a case folder kept by `grouping_scale.py --stores DIR` (e.g. DIR/1000000x1-b500-s0). It is
used as SIGNALS_HOME (`clickhouse` is made a link to its `store`) and is modified: run on a copy.
Printed, each with the load average:
- `signals status` of the team in its own process: wall time and what it printed;
- the `reports` count check as a batch run of the store's last stored batch runs it (that batch's
  500 signals lie in about 500 reports): wall time and verdict.
With `--run`, one `signals process` of `--batch` Banking77 texts emitted for the team: each run's
steps and peak RSS (as pipeline_throughput.py prints them), then `signals status` again. The stored
vectors must be under the embedder's model name, as grouping_scale.py writes them since 2026-12-02
(a store built before holds "bench" and is refused). The batch joins the stored reports like any
other batch (stored batches are from 2026-11-20; the window is 30 days).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from banking77 import protocol_texts, write_signals_jsonl  # noqa: E402
from grouping_scale import DIMENSIONS  # noqa: E402
from pipeline_throughput import SIGNALS, print_runs, run_breakdowns, timed_sampled  # noqa: E402

TEAM = 1  # grouping_scale.py's team of a one-team case


def load() -> str:
    return f"load average {os.getloadavg()[0]:.1f}"


def status(home: Path) -> None:
    started = time.monotonic()
    printed = subprocess.run(
        [SIGNALS, "status", "--team-id", str(TEAM)], check=True, capture_output=True, text=True
    ).stdout
    print(f"signals status {TEAM}: {time.monotonic() - started:.2f} s ({load()})")
    print("".join(f"    {line}\n" for line in printed.splitlines()), end="")


def count_check(home: Path) -> None:
    from signals_assets.checks import guarantees
    from signals_assets.cli.read_models import store_session
    from signals_assets.settings import load_settings

    with store_session(load_settings()) as db:
        last = db.scalar("SELECT max(batch_key) FROM report_assignments WHERE team_id = {team}", {"team": TEAM})
        started = time.monotonic()
        verdict = guarantees.report_counts_match(db, guarantees.BatchScope(last, last))
        seconds = time.monotonic() - started
    print(f"reports count check, batch {last}: {seconds:.2f} s ({load()}): {verdict.summary}")


def stored_models(home: Path) -> list[str]:
    from signals_assets.storage.clickhouse import open_chdb

    with open_chdb(home / "store", "signals") as db:
        return [r["model"] for r in db.query("SELECT DISTINCT model FROM signal_embeddings ORDER BY model")]


def batch_run(home: Path, size: int) -> None:
    texts = protocol_texts(size=size, dataset="banking77")
    jsonl = home / "batch.jsonl"
    write_signals_jsonl(jsonl, texts)
    subprocess.run([SIGNALS, "teams", "set", str(TEAM), "--consent"], check=True, stdout=subprocess.DEVNULL)
    subprocess.run([SIGNALS, "emit-file", str(jsonl), "--team-id", str(TEAM)], check=True, stdout=subprocess.DEVNULL)
    before = load()
    seconds, started, samples, cpu = timed_sampled("process")
    print(f"signals process, {size} signals: {seconds:.1f} s, {cpu:.1f} CPU s ({before} before, {load()} after)")
    print(f"peak RSS of the process: {max(rss for _, rss in samples) / 2**20:.0f} MiB")
    print_runs(run_breakdowns(home / "dagster_home"), started, samples)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--run", action="store_true", help="also one real batch run")
    parser.add_argument("--batch", type=int, default=500)
    args = parser.parse_args()
    home = args.folder.resolve()
    if not (home / "store").is_dir():
        raise SystemExit(f"{home}: no `store` folder; pass a case folder kept by grouping_scale.py --stores")
    if not (home / "clickhouse").exists():
        (home / "clickhouse").symlink_to("store")
    os.environ.update(
        SIGNALS_HOME=str(home),
        DAGSTER_HOME=str(home / "dagster_home"),
        SIGNALS_CLICKHOUSE_VECTOR_INDEX="hnsw",
        SIGNALS_CLICKHOUSE_VECTOR_DIMENSIONS=str(DIMENSIONS),
    )
    status(home)
    count_check(home)
    if args.run:
        from signals_assets.llm.minilm import MODEL_NAME

        if stored_models(home) != [MODEL_NAME]:
            # Written again, a million vectors would rebuild the HNSW index twice (the insert and the
            # merge that follows it): longer than building the store anew.
            raise SystemExit(f"{home}: the stored embeddings are not all {MODEL_NAME}'s: build the store anew")
        batch_run(home, args.batch)
        status(home)
    return 0


if __name__ == "__main__":
    sys.exit(main())
