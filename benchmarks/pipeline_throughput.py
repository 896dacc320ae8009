"""End to end on the Banking77 dev texts (`--dataset hwu64|FILE.csv` for others): `signals emit-file`, then
`signals process`.

Prints wall time and signals/second of both commands (and the CPU seconds of `signals process`), the offline embedder's raw texts/second on the
same texts in the same run and the ratio of the two, the number of Dagster runs `signals process`
made (by job), checks that every accepted signal was assigned exactly once, and prints the grouping
scores (ARI, pair precision/recall) of the result. The grouping stage (start of `signals process` to
the end of its last batch run, and to the end of its last `report_assignments` step: every signal
assigned) is printed with its rate and its ratio to the embedder's, with its CPU seconds (and the
best ratio they allow on this machine's cores, every core busy throughout) and its main thread's (the
best ratio that thread allows, on any number of cores), then each run's breakdown from
the instance (launch, each step, the phases the batch assets record in their `seconds` metadata, its number of event-log entries) and its peak RSS (the process sampled every 50 ms).
Runs on a fresh temporary SIGNALS_HOME (or SIGNALS_HOME if set). With `--repo PATH` the team has a
repository, so research has code to rank; the research time per report is printed by sandbox
(e.g. SIGNALS_SANDBOX=docker for containers). Usage:
    .venv/bin/python benchmarks/pipeline_throughput.py [--size 2000] [--dataset banking77|hwu64|FILE.csv] [--repo scripts/demo/shop_app]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from banking77 import grouping_scores, protocol_texts, write_signals_jsonl  # noqa: E402

SIGNALS = str(Path(sys.executable).with_name("signals"))
# From the research_started event to the recorded outcome: the sandbox run plus its bookkeeping.
RESEARCH_SECONDS = """
SELECT r.sandbox AS sandbox, r.status AS status, count() AS n, avg(d) AS mean, median(d) AS median, max(d) AS max
FROM (
    SELECT r.sandbox AS sandbox, r.status AS status,
           dateDiff('millisecond', e.started, r.finished_at) / 1000 AS d
    FROM research_results AS r
    INNER JOIN (SELECT report_id, research_round, max(at) AS started FROM report_events
                WHERE event = 'research_started' GROUP BY report_id, research_round) AS e
        ON e.report_id = r.report_id AND e.research_round = r.research_round
) AS r
GROUP BY sandbox, status ORDER BY sandbox, status
"""


def timed(*args: str) -> float:
    started = time.monotonic()
    subprocess.run([SIGNALS, *args], check=True, stdout=subprocess.DEVNULL)
    return time.monotonic() - started


def rss_bytes(pid: int) -> int:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return 0
    return next((int(line.split()[1]) * 1024 for line in status.splitlines() if line.startswith("VmRSS:")), 0)


def cpu_seconds(pid: int, thread: int | None = None) -> float:
    """The CPU seconds the process has used so far, all its threads (the model's included), or one thread's."""
    stat = Path(f"/proc/{pid}/stat" if thread is None else f"/proc/{pid}/task/{thread}/stat")
    try:
        fields = stat.read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime and stime


def timed_sampled(*args: str) -> tuple[float, float, list[tuple[float, int]], list[tuple[float, float, float]], float]:
    """Like `timed`, also the wall-clock start, (time, RSS) and (time, CPU seconds, its main thread's CPU
    seconds) samples of the process (it runs every Dagster run of `signals process` in itself, so a run's peak is the peak
    within its time span) and the CPU seconds it and its children used (less sensitive than wall time
    to a busy machine)."""
    started_at, started = time.time(), time.monotonic()
    cpu_before = children_cpu_seconds()
    process = subprocess.Popen([SIGNALS, *args], stdout=subprocess.DEVNULL)
    samples, cpu_samples = [], []
    while process.poll() is None:
        samples.append((time.time(), rss_bytes(process.pid)))
        cpu_samples.append((time.time(), cpu_seconds(process.pid), cpu_seconds(process.pid, process.pid)))
        time.sleep(0.05)
    if process.returncode:
        raise subprocess.CalledProcessError(process.returncode, [SIGNALS, *args])
    return time.monotonic() - started, started_at, samples, cpu_samples, children_cpu_seconds() - cpu_before


def children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def embedder_texts_per_second(texts: list[str]) -> tuple[float, float, float]:
    """The offline embedder alone on `texts` (batch 64, after a warm-up batch): texts/second, the CPU
    seconds of its pass (all threads) and those of the calling thread (the model's other threads help it)."""
    from signals_assets.llm.minilm import load_encoder

    encoder = load_encoder()
    encoder.batch_size = 64
    encoder.encode(texts[:64])
    started, cpu_started, thread_started = time.monotonic(), time.process_time(), time.thread_time()
    encoder.encode(texts)
    return (
        len(texts) / (time.monotonic() - started),
        time.process_time() - cpu_started,
        time.thread_time() - thread_started,
    )


def run_breakdowns(dagster_home: Path) -> list[dict]:
    """Per run, oldest first: job, start and end (epoch seconds), step start and end times and the `seconds`
    metadata of each asset it materialised (the run's phases, on every partition alike), from the instance."""
    import dagster as dg

    out = []
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        for run in reversed(instance.get_runs()):
            stats = instance.get_run_stats(run.run_id)
            step_stats = [s for s in instance.get_run_step_stats(run.run_id) if s.start_time and s.end_time]
            steps = {s.step_key: (s.start_time, s.end_time) for s in step_stats}
            first_step = min((s.start_time for s in step_stats), default=stats.start_time)
            phases: dict[str, dict[str, float]] = {}
            records = instance.get_records_for_run(
                run.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION, limit=10_000
            ).records
            for record in records:
                materialization = record.event_log_entry.asset_materialization
                seconds = materialization.metadata.get("seconds") if materialization else None
                if seconds is not None:  # the run's phases: the same on every partition of the run
                    phases[materialization.asset_key.to_user_string()] = dict(seconds.value)
            out.append(
                {
                    "job": run.job_name,
                    "start": stats.start_time or stats.launch_time,
                    "first_step": first_step,
                    "end": stats.end_time,
                    "steps": steps,
                    "phases": phases,
                    # Each entry is a commit to the run's sqlite event log: the load-independent part of its fixed cost.
                    "events": len(instance.all_logs(run.run_id)),
                }
            )
    return out


def step_memory(samples: list[tuple[float, int]], start: float, end: float) -> str:
    """The step's peak RSS and how far it rose above the RSS at the step's start."""
    at_start = next((rss for at, rss in reversed(samples) if at <= start), 0)
    peak = max((rss for at, rss in samples if start <= at <= end), default=at_start)
    return f"peak RSS {peak / 2**20:.0f} MiB, {(peak - at_start) / 2**20:+.0f} MiB in the step"


def print_runs(runs: list[dict], process_started: float, samples: list[tuple[float, int]]) -> None:
    previous_end = process_started
    for index, run in enumerate(runs, start=1):
        peak = max((rss for at, rss in samples if run["start"] <= at <= run["end"]), default=0)
        print(
            f"run {index} {run['job']}: {run['end'] - run['start']:.1f} s, starts {run['start'] - previous_end:.1f} s "
            f"after the previous (process start for the first); first step after {run['first_step'] - run['start']:.1f} s; "
            f"peak RSS {peak / 2**20:.0f} MiB; {run['events']} event-log entries"
        )
        for step, (start, end) in sorted(run["steps"].items(), key=lambda item: item[1][0] - item[1][1]):
            phases = run["phases"].get(step, {})
            detail = ", ".join(f"{k} {v:.2f}" for k, v in sorted(phases.items(), key=lambda item: -item[1]))
            print(
                f"    {step}: {end - start:.2f} s"
                + (f" ({detail})" if detail else "")
                + f"; {step_memory(samples, start, end)}"
            )
        previous_end = run["end"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=2000)
    parser.add_argument(
        "--dataset", default="banking77", help="banking77 (dev texts), hwu64, or the path of a labelled .csv"
    )
    parser.add_argument("--repo", action="append", default=[], help="a repository of the team (repeatable)")
    args = parser.parse_args()
    home = Path(os.environ.get("SIGNALS_HOME") or tempfile.mkdtemp(prefix="signals-bench-"))
    os.environ.update(SIGNALS_HOME=str(home), DAGSTER_HOME=str(home / "dagster_home"))
    texts = protocol_texts(size=args.size, dataset=args.dataset)
    jsonl = home / "banking77.jsonl"
    home.mkdir(parents=True, exist_ok=True)
    write_signals_jsonl(jsonl, texts)
    repos = [arg for path in args.repo for arg in ("--repo", str(Path(path).resolve()))]
    subprocess.run([SIGNALS, "teams", "set", "1", "--consent", *repos], check=True, stdout=subprocess.DEVNULL)

    load_before = os.getloadavg()[0]
    emit_seconds = timed("emit-file", str(jsonl), "--team-id", "1")
    process_seconds, process_started, samples, cpu_samples, process_cpu = timed_sampled("process")

    from signals_assets.settings import load_settings
    from signals_assets.storage.clickhouse import open_chdb

    settings = load_settings()
    with open_chdb(settings.clickhouse_path, settings.clickhouse_database) as db:
        accepted = int(db.scalar("SELECT count() FROM signals"))
        rejected = db.query("SELECT reason, count() AS n FROM rejected_signals GROUP BY reason")
        per_signal = db.query(
            "SELECT s.source_id AS source_id, groupArray(a.report_id) AS reports FROM signals AS s "
            "LEFT JOIN current_assignments AS a ON a.signal_id = s.signal_id GROUP BY s.source_id"
        )
        statuses = db.query("SELECT status, count() AS n FROM reports GROUP BY status ORDER BY status")
        research = db.query(RESEARCH_SECONDS)
    assigned_once = sum(1 for r in per_signal if len([x for x in r["reports"] if x]) == 1)
    by_source = {int(r["source_id"]): r["reports"][0] for r in per_signal if r["reports"]}
    truth = [texts[i][1] for i in sorted(by_source)]
    predicted = [by_source[i] for i in sorted(by_source)]
    scores = grouping_scores(truth, predicted)
    total = len(texts)
    embedder_rate, embedder_cpu, embedder_thread_cpu = embedder_texts_per_second([text for text, _ in texts])
    runs = run_breakdowns(home / "dagster_home")
    by_job: dict[str, int] = {}
    for run in runs:
        by_job[run["job"]] = by_job.get(run["job"], 0) + 1
    batch_runs = [run for run in runs if run["job"] == "signal_batch_job"]
    grouping_seconds = max(run["end"] for run in batch_runs) - process_started
    # Every signal is assigned when the last report_assignments step ends; the SQL models and checks follow.
    assigned_seconds = max(run["steps"]["report_assignments"][1] for run in batch_runs) - process_started
    # No schedule on this machine's cores finishes the stage sooner than its CPU seconds over the cores.
    stage_cpu, stage_main_cpu = max(
        ((cpu, main) for at, cpu, main in cpu_samples if at <= process_started + grouping_seconds), default=(0.0, 0.0)
    )
    stage_floor = stage_cpu / (os.cpu_count() or 1)
    peak = {
        job: max(
            (rss for at, rss in samples for run in runs if run["job"] == job and run["start"] <= at <= run["end"]),
            default=0,
        )
        for job in by_job
    }
    print(f"signals: {total}, accepted {accepted}, rejected {json.dumps(rejected)}")
    print(f"assigned exactly once: {assigned_once}/{accepted}")
    print(f"emit-file: {emit_seconds:.1f} s ({total / emit_seconds:.0f} signals/s)")
    print(f"process:   {process_seconds:.1f} s ({total / process_seconds:.1f} signals/s); {process_cpu:.1f} CPU s")
    print(
        f"embedder alone: {embedder_rate:.0f} texts/s ({embedder_cpu:.1f} CPU s); end to end / embedder: "
        f"{total / process_seconds / embedder_rate:.3f}"
    )
    print(
        f"grouping stage (process start to last batch run's end): {grouping_seconds:.1f} s "
        f"({accepted / grouping_seconds:.1f} signals/s; / embedder: {accepted / grouping_seconds / embedder_rate:.3f})"
    )
    print(
        f"  of which to all assigned (the last report_assignments step's end): {assigned_seconds:.1f} s "
        f"({accepted / assigned_seconds:.1f} signals/s; / embedder: {accepted / assigned_seconds / embedder_rate:.3f})"
    )
    print(
        f"  its CPU: {stage_cpu:.1f} s (the model's pass alone {embedder_cpu:.1f}), so on {os.cpu_count()} cores at least "
        f"{stage_floor:.1f} s with every core busy throughout: at most {accepted / stage_floor / embedder_rate:.3f} "
        "of the embedder"
    )
    # The steps run one after another on the main thread, which also drives the model's pass.
    print(
        f"  its main thread's CPU: {stage_main_cpu:.1f} s (the model's pass alone {embedder_thread_cpu:.1f} s of the "
        f"calling thread), so at least {stage_main_cpu:.1f} s however many cores: at most "
        f"{accepted / max(stage_main_cpu, 1e-9) / embedder_rate:.3f} of the embedder"
    )
    print(f"dagster runs: {len(runs)} ({json.dumps(by_job, sort_keys=True)})")
    print(
        "peak RSS of the process during runs, by job: "
        + ", ".join(f"{job} {rss / 2**20:.0f} MiB" for job, rss in sorted(peak.items()))
    )
    print_runs(runs, process_started, samples)
    print(f"reports by status: {json.dumps(statuses)}")
    for row in research:
        print(
            f"research ({row['sandbox']}, {row['status']}): {row['n']} reports, seconds per report "
            f"mean {row['mean']:.1f}, median {row['median']:.1f}, max {row['max']:.1f}"
        )
    print("grouping: " + ", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in scores.items()))
    print(f"load average (1 min) before: {load_before:.1f}, after: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"SIGNALS_HOME={home}")


if __name__ == "__main__":
    main()
