"""The grouping stage of `pipeline_throughput.py` in a process that is already warm: how much of the
stage a long-lived worker (Dagster imported, the instance opened, the model loaded, chdb started, the
safety rules compiled, all before the signals arrive) would save.

One process runs `signals process` (the CLI's own `main`, in process) twice on one fresh SIGNALS_HOME:
first on 3 of the texts under other idempotency keys (the warm-up), then on the --size texts emitted
meanwhile by `signals emit-file`. Prints the second's stage to all assigned (its start to the end of
its last `report_assignments` step), its ratio to the embedder alone (measured in the same process
afterwards), and each step of its batch runs with their `seconds` phases. Usage:
    .venv/bin/python benchmarks/warm_process.py [--size 2000] [--dataset banking77|hwu64|FILE.csv]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from banking77 import protocol_texts, ticket_signal, write_signals_jsonl  # noqa: E402
from pipeline_throughput import SIGNALS, embedder_texts_per_second, run_breakdowns  # noqa: E402

WARM_UP_SIGNALS = 3


def process_in_this_process() -> float:
    """`signals process` through the CLI's entry point in this process; returns its start (epoch seconds)."""
    from signals_assets.cli.main import main

    started = time.time()
    if main(["process"]):
        raise SystemExit("signals process failed")
    return started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=2000)
    parser.add_argument("--dataset", default="banking77", help="banking77 (dev texts), hwu64, or a labelled .csv")
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="signals-bench-warm-"))
    os.environ.update(SIGNALS_HOME=str(home), DAGSTER_HOME=str(home / "dagster_home"))
    texts = protocol_texts(size=args.size, dataset=args.dataset)
    signals, warm_up = home / "signals.jsonl", home / "warm_up.jsonl"
    write_signals_jsonl(signals, texts)
    # The same texts under keys of their own: a warm-up that leaves every measured signal new.
    warm_up.write_text(
        "".join(
            json.dumps({**ticket_signal(number, text), "idempotency_key": f"warm-up-{number}"}) + "\n"
            for number, (text, _) in enumerate(texts[:WARM_UP_SIGNALS])
        )
    )
    subprocess.run([SIGNALS, "teams", "set", "1", "--consent"], check=True, stdout=subprocess.DEVNULL)
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    subprocess.run([SIGNALS, "emit-file", str(warm_up), "--team-id", "1"], check=True, **quiet)

    load_before = os.getloadavg()[0]
    warm_up_started = process_in_this_process()
    print(f"warm-up: {WARM_UP_SIGNALS} signals, signals process {time.time() - warm_up_started:.1f} s (cold)")
    subprocess.run([SIGNALS, "emit-file", str(signals), "--team-id", "1"], check=True, **quiet)
    started = process_in_this_process()

    embedder_rate, _, _ = embedder_texts_per_second([text for text, _ in texts])
    batch_runs = [
        run
        for run in run_breakdowns(home / "dagster_home")
        if run["job"] == "signal_batch_job" and run["start"] >= started
    ]
    assigned_seconds = max(run["steps"]["report_assignments"][1] for run in batch_runs) - started
    print(
        f"warm grouping stage, {len(texts)} signals, to all assigned: {assigned_seconds:.1f} s "
        f"({len(texts) / assigned_seconds:.0f} signals/s; / embedder: {len(texts) / assigned_seconds / embedder_rate:.3f}); "
        f"embedder alone {embedder_rate:.0f} texts/s, so 0.5x allows {2 * len(texts) / embedder_rate:.1f} s"
    )
    for run in batch_runs:
        print(
            f"batch run: starts {run['start'] - started:.1f} s after process start, {run['end'] - run['start']:.1f} s"
        )
        for step, (step_start, step_end) in sorted(run["steps"].items(), key=lambda item: item[1][0]):
            phases = ", ".join(
                f"{k} {v:.2f}" for k, v in sorted(run["phases"].get(step, {}).items(), key=lambda i: -i[1])
            )
            print(f"    {step}: {step_end - step_start:.2f} s" + (f" ({phases})" if phases else ""))
    print(f"load average (1 min) before: {load_before:.1f}, after: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"SIGNALS_HOME={home}")


if __name__ == "__main__":
    main()
