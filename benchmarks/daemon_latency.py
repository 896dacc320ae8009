"""Latency and burst throughput under `dagster-daemon` on the shipped local instance settings.

Starts `dagster-daemon run -w workspace.yaml` (the daemon starts the code server itself) on a fresh
temporary SIGNALS_HOME whose DAGSTER_HOME holds deploy/dagster.local.yaml, with the team's repository
scripts/demo/shop_app (research runs the subprocess sandbox on it). Then:

1. waves of 3 similar signals (paraphrases of one complaint about the demo shop, a new topic per wave), each
   emitted once the previous wave has settled, after a random pause of up to one sensor interval (so
   the sensor's phase is not always the same); prints per wave emit -> all assigned and emit -> report
   `ready`, with where the time went (sensor wait, queue and launch, run work of the batch run and of
   the report run), then p50 and max;
2. `--burst` Banking77 dev texts emitted at once (train texts beyond the dev set's 3,080): seconds until
   every accepted signal is assigned and every promoted report has its outcome, and until the object
   store shows nothing in flight (what the sensors see); the number of Dagster runs it took, by job;
3. with `--other-team-waves K`, fairness: while the burst is grouped, a second team emits K waves of 3
   similar signals, the first `--other-team-delay` seconds after the burst and then one every
   `--other-team-delay` seconds; prints per wave emit -> all assigned, how many batches were grouped
   between its emit and its own batch's grouping (the burst's batches ahead of it: at most one is the
   promise), emit -> report `ready` and how long its report waited from the grouping to its run's start
   while the burst's report runs were queued.

With `--history N` the team is not new: N Banking77 train texts are emitted and grouped first (and the
reports they promote researched) by `signals process`, before the daemon starts, so the waves are grouped
against a pool of that history (the consolidation re-clusters the pool after every batch, up to
`SIGNALS_CONSOLIDATION_POOL` signals).

Peak RSS: the VmHWM of every run worker process (from /proc, sampled every 0.2 s; the worker is
found by the pid its run logged), largest per job, for the waves and for the burst.
Times come afterwards from the batches' report_assignments materialisations, the reports' first
outcome event after their promotion (the store) and Dagster's run records: polling the chdb store
during the runs would contend with them for it. Usage (SIGNALS_DATASETS: the folder holding banking77/):
    SIGNALS_DATASETS=/work/shared/datasets .venv/bin/python benchmarks/daemon_latency.py [--waves 8] [--burst 2000] [--history 6000]
        [--other-team-waves 4 [--other-team-delay 45]]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from banking77 import protocol_texts, ticket_signal  # noqa: E402
from dagster_dev import BIN, start_daemon  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
# Source ids of the history's signals: apart from the burst's (0..), the waves' (100,000..) and the
# other team's waves (200,000..).
HISTORY_SOURCE_IDS = 1_000_000
OTHER_TEAM_SOURCE_IDS = 200_000
OTHER_TEAM = 2
DEMO_REPOSITORY = REPO_ROOT / "scripts" / "demo" / "shop_app"


class WorkerMemory:
    """Samples VmHWM of every process under the daemon (the run workers are its descendants)."""

    def __init__(self, root_pid: int, period: float = 0.2):
        self.root_pid, self.period = root_pid, period
        self.peak_kb: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _descendants(self) -> list[int]:
        children: dict[int, list[int]] = {}
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    with open(f"/proc/{entry}/stat") as handle:
                        parent = int(handle.read().rsplit(")", 1)[1].split()[1])
                except (OSError, IndexError, ValueError):
                    continue
                children.setdefault(parent, []).append(int(entry))
        found, todo = [], [self.root_pid]
        while todo:
            pid = todo.pop()
            found.append(pid)
            todo.extend(children.get(pid, []))
        return found

    def _sample(self) -> None:
        while not self._stop.wait(self.period):
            for pid in self._descendants():
                try:
                    with open(f"/proc/{pid}/status") as handle:
                        line = next(row for row in handle if row.startswith("VmHWM:"))
                except (OSError, StopIteration):
                    continue
                self.peak_kb[pid] = max(self.peak_kb.get(pid, 0), int(line.split()[1]))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def in_flight(store) -> str:
    """What the sensors still see to do ('' when nothing): the object store only, as the sensors read it."""
    from signals_assets.ingestion import inbox
    from signals_assets.reports import promotions

    pending = inbox.pending_inbox_count(store)
    batches = len(inbox.unfinished(inbox.batch_progress(store)))
    rounds = len(promotions.pending_promotions(store))
    return f"{pending} in inbox, {batches} batches, {rounds} promotions" if pending or batches or rounds else ""


def wait_settled(store, timeout: float) -> float:
    """Seconds until the object store shows nothing in flight; raises after `timeout`."""
    started = time.monotonic()
    while (left := in_flight(store)) and time.monotonic() - started < timeout:
        time.sleep(0.5)
    if left:
        raise SystemExit(f"not settled after {timeout:.0f} s: {left}")
    return time.monotonic() - started


def wait_runs_ended(dagster_home: Path, timeout: float = 120) -> None:
    """Let the last runs finish (a settled batch may still be refreshing its SQL models) before stopping."""
    import dagster as dg

    deadline = time.monotonic() + timeout
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        while time.monotonic() < deadline and instance.get_run_records(
            filters=dg.RunsFilter(
                statuses=[dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED]
            )
        ):
            time.sleep(0.5)


def emit(store, texts: list[str], first_source_id: int, team: int = 1) -> list[int]:
    from signals_assets.facade import emit_signal

    for i, text in enumerate(texts):
        emit_signal(team, **ticket_signal(first_source_id + i, text), store=store)
    return list(range(first_source_id, first_source_id + len(texts)))


# A report's outcome: the first lifecycle event after its promotion that leaves it neither candidate nor
# in progress (ready, or a judgement that stops it: pending_input, potential, failed).
OUTCOMES_SQL = """
SELECT e.report_id AS report_id, any(p.promoted) AS promoted,
       toUnixTimestamp64Micro(min(e.at)) / 1e6 AS t, argMin(e.status, e.at) AS status
FROM report_events AS e
INNER JOIN (SELECT report_id, min(at) AS promoted FROM report_events WHERE event = 'promoted' GROUP BY report_id) AS p
    ON p.report_id = e.report_id
WHERE e.at > p.promoted AND e.status NOT IN ('candidate', 'in_progress') AND e.report_id IN ({reports})
GROUP BY e.report_id
"""


def store_facts(source_ids: list[int], as_grouped: bool = False) -> tuple[list[str], list[dict], int]:
    """For the given signals: the batches holding the accepted ones, the outcome of every report they
    joined that was promoted (report_id, t, status), and how many signals were rejected. The reports are
    those the signals are in now, or with `as_grouped` those their own batch put them in (a wave's, before
    a later batch, such as the burst's, merged them into another report)."""
    from signals_assets.cli.read_models import store_session
    from signals_assets.settings import load_settings

    ids = ",".join(f"'{i}'" for i in source_ids)
    assignments = (
        "(SELECT signal_id, batch_key, argMax(report_id, seq) AS report_id FROM report_assignments "
        "GROUP BY signal_id, batch_key)"
        if as_grouped
        else "current_assignments"
    )
    own_batch = " AND a.batch_key = s.batch_key" if as_grouped else ""
    with store_session(load_settings()) as db:
        joined = db.query(
            "SELECT s.batch_key AS batch, a.report_id AS report FROM signals AS s "
            f"LEFT JOIN {assignments} AS a ON a.signal_id = s.signal_id{own_batch} WHERE s.source_id IN ({ids})"
        )
        if unassigned := [r for r in joined if not r["report"]]:
            raise SystemExit(f"{len(unassigned)} of {len(joined)} accepted signals are not assigned")
        reports = ",".join(sorted({f"'{r['report']}'" for r in joined})) or "''"
        outcomes = db.query(OUTCOMES_SQL.format(reports=reports))
    return sorted({r["batch"] for r in joined}), outcomes, len(source_ids) - len(joined)


def assigned_at(instance, batches: list[str]) -> float:
    """When the last of `batches` was grouped: its report_assignments materialisation."""
    import dagster as dg

    times = []
    for batch in batches:
        result = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey("report_assignments"), asset_partitions=[batch]),
            limit=1,
            ascending=True,
        )
        times.append(result.records[0].timestamp)
    return max(times)


def runs_since(instance, since: float) -> list:
    import dagster as dg

    records = instance.get_run_records(filters=dg.RunsFilter(created_after=_utc(since)))
    return sorted(records, key=lambda r: r.create_timestamp)


def _utc(timestamp: float):
    from datetime import datetime, timezone

    return datetime.fromtimestamp(timestamp, timezone.utc)


def run_phases(record) -> tuple[float, float, float]:
    """A run's creation time (the sensor's tick), created -> started (queue and launch of its worker),
    started -> ended (its work)."""
    created = record.create_timestamp.timestamp()
    started = record.start_time or created
    return created, started - created, (record.end_time or started) - started


def peak_rss_by_job(instance, memory: WorkerMemory, records) -> dict[str, float]:
    """Largest run-worker VmHWM (MB) per job among `records`."""
    from signals_assets.sensors.dead_runs import run_worker_pid

    peaks: dict[str, float] = {}
    for record in records:
        worker = run_worker_pid(instance, record.dagster_run)  # (pid, when it was recorded)
        if worker is not None and worker[0] in memory.peak_kb:
            job = record.dagster_run.job_name
            peaks[job] = max(peaks.get(job, 0.0), memory.peak_kb[worker[0]] / 1024)
    return peaks


# Waves of 3 similar signals, a new topic each wave (a repeated topic would join its earlier report), each
# about a part of the demo repository so research finds code and the report ends `ready`.
WAVE_TOPICS = [
    [
        "My card payment was declined at checkout.",
        "Card payment declined at checkout again today.",
        "At checkout my card payment keeps getting declined.",
    ],
    [
        "The password reset email never arrives in my inbox.",
        "I requested a password reset but the email never arrived.",
        "Password reset emails are not arriving for me.",
    ],
    [
        "Product search returns no results when I misspell a product name.",
        "Product search shows no results when the product name is misspelled.",
        "A misspelled product name gives no results in product search.",
    ],
    [
        "Login fails with an error after I enter the right password.",
        "I cannot log in: the right password gives an error.",
        "Logging in with the correct password fails with an error.",
    ],
    [
        "Items disappear from my cart when I refresh the page.",
        "My cart empties itself after a page refresh.",
        "Refreshing the page removes the items in my cart.",
    ],
    [
        "The mobile app does not sync my orders with the website.",
        "Orders placed on the website never sync to the mobile app.",
        "Mobile app order sync with the website is broken.",
    ],
    [
        "The order confirmation email is never sent after checkout.",
        "I never get an order confirmation email after paying.",
        "No order confirmation email arrives after checkout.",
    ],
    [
        "Product pages show the wrong price for items on sale.",
        "Sale items show the wrong price on the product page.",
        "The product page price is wrong for discounted items.",
    ],
]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--waves", type=int, default=len(WAVE_TOPICS), choices=range(1, len(WAVE_TOPICS) + 1))
    parser.add_argument("--burst", type=int, default=2000, help="signals emitted at once after the waves (0: none)")
    parser.add_argument("--timeout", type=float, default=900, help="seconds a wave or the burst may take")
    parser.add_argument(
        "--history", type=int, default=0, help="Banking77 train texts the team had grouped before (0: a new team)"
    )
    parser.add_argument(
        "--other-team-waves",
        type=int,
        default=0,
        choices=range(len(WAVE_TOPICS) + 1),
        help="waves of 3 a second team emits while the burst is grouped (0: none)",
    )
    parser.add_argument(
        "--other-team-delay",
        type=float,
        default=45,
        help="seconds from the burst to the other team's first wave, and between its waves",
    )
    args = parser.parse_args()
    if args.other_team_waves and not args.burst:
        parser.error("--other-team-waves needs a --burst to compete with")
    home = Path(tempfile.mkdtemp(prefix="signals-daemon-bench-"))
    dagster_home = home / "dagster_home"
    dagster_home.mkdir(parents=True)
    shutil.copy(REPO_ROOT / "deploy" / "dagster.local.yaml", dagster_home / "dagster.yaml")
    os.environ.update(SIGNALS_HOME=str(home), DAGSTER_HOME=str(dagster_home), PYTHONUNBUFFERED="1")

    import dagster as dg

    from signals_assets.ingestion.teams import TeamConfig, save_team
    from signals_assets.settings import load_settings
    from signals_assets.storage.object_store import open_object_store

    settings = load_settings()
    store = open_object_store(settings)
    for team in (1, OTHER_TEAM):
        save_team(store, TeamConfig(team_id=team, ai_processing_consent=True, repositories=[str(DEMO_REPOSITORY)]))
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        instance.get_runs(limit=1)  # create the run storage before the daemon's processes race to
    if args.history:
        emit(store, [text for text, _ in protocol_texts(size=args.history, split="train")], HISTORY_SOURCE_IDS)
        started = time.monotonic()
        subprocess.run([str(BIN / "signals"), "process"], check=True, stdout=subprocess.DEVNULL)
        print(
            f"history: {args.history} signals grouped, their reports researched, in {time.monotonic() - started:.0f} s"
        )

    log_path = home / "daemon.log"
    daemon = start_daemon(dict(os.environ), log_path)
    memory = WorkerMemory(daemon.pid)
    rng = random.Random(0)
    waves, burst, other_waves = [], None, []
    try:
        for number, texts in enumerate(WAVE_TOPICS[: args.waves]):
            time.sleep(rng.uniform(0, settings.sensor_interval_seconds))
            load = os.getloadavg()[0]
            emitted_at = time.time()
            ids = emit(store, texts, 100_000 + 10 * number)
            wait_settled(store, args.timeout)
            waves.append((emitted_at, ids, load))
        if args.burst:
            texts = [text for text, _ in protocol_texts(size=args.burst)]
            if len(texts) < args.burst:  # more than the dev set holds
                texts = [text for text, _ in protocol_texts(size=args.burst, split="train")]
            load = os.getloadavg()[0]
            emitted_at = time.time()
            ids = emit(store, texts, 0)
            emit_seconds = time.time() - emitted_at
            for number, wave in enumerate(WAVE_TOPICS[: args.other_team_waves]):
                time.sleep(max(0.0, emitted_at + (number + 1) * args.other_team_delay - time.time()))
                wave_at = time.time()
                wave_ids = emit(store, wave, OTHER_TEAM_SOURCE_IDS + 10 * number, team=OTHER_TEAM)
                other_waves.append((wave_at, wave_ids, in_flight(store)))
            settled_seconds = time.time() - emitted_at + wait_settled(store, args.timeout)
            burst = (emitted_at, ids, load, emit_seconds, settled_seconds, os.getloadavg()[0])
        wait_runs_ended(dagster_home)
    finally:
        memory.stop()
        try:
            os.killpg(daemon.pid, signal.SIGTERM)
            daemon.wait(timeout=60)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(daemon.pid, signal.SIGKILL)

    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        report_waves(instance, memory, waves, settings.sensor_interval_seconds)
        if burst:
            report_burst(instance, memory, *burst)
        if other_waves:
            report_other_team(instance, other_waves)
    print(f"{os.cpu_count()} CPUs; SIGNALS_HOME={home} (daemon log: {log_path})")


def report_waves(instance, memory: WorkerMemory, waves: list, interval: int) -> None:
    print(f"waves of 3 similar signals (inbox sensor interval {interval} s); seconds from emit:")
    print(
        "wave load  assigned ready outcome | batch run: wait launch work | report run: wait launch work\n"
        "(wait: to the run's creation from the emit, resp. the grouping; launch: queue and worker start-up)"
    )
    to_assigned, to_ready, records = [], [], []
    for number, (emitted_at, ids, load) in enumerate(waves):
        batches, outcomes, rejected = store_facts(ids, as_grouped=True)
        # A wave that joined a report researched before it (the history's) brings no outcome of its own.
        joined = sum(1 for o in outcomes if o["t"] <= emitted_at)
        outcomes = [o for o in outcomes if o["t"] > emitted_at]
        assigned = assigned_at(instance, batches) - emitted_at
        ready = max((o["t"] for o in outcomes), default=float("nan")) - emitted_at
        statuses = ",".join(sorted(o["status"] for o in outcomes)) or "none promoted"
        runs = [
            r
            for r in runs_since(instance, emitted_at)
            if r.create_timestamp.timestamp() < emitted_at + assigned + (ready if outcomes else 0)
        ]
        records += runs
        phases, previous_end = [], emitted_at
        for job in ("signal_batch_job", "report_job"):
            record = next((r for r in runs if r.dagster_run.job_name == job), None)
            if record is None:
                phases.append("   -     -     -")
                continue
            created, launch, work = run_phases(record)
            phases.append(f"{created - previous_end:6.1f} {launch:5.1f} {work:5.1f}")
            previous_end = emitted_at + assigned  # the promotion is written when the batch is grouped
        to_assigned.append(assigned)
        if all(o["status"] == "ready" for o in outcomes) and outcomes:
            to_ready.append(ready)
        note = f" ({rejected} rejected)" if rejected else ""
        note += f" (joined {joined} report(s) researched before the wave)" if joined else ""
        print(f"{number:4d} {load:4.1f} {assigned:9.1f} {ready:5.1f} {statuses:>7} | {phases[0]} | {phases[1]}{note}")
    print(f"emit -> all assigned: p50 {statistics.median(to_assigned):.1f} s, max {max(to_assigned):.1f} s")
    if to_ready:
        print(
            f"emit -> report ready: p50 {statistics.median(to_ready):.1f} s, max {max(to_ready):.1f} s "
            f"({len(to_ready)} waves ended ready)"
        )
    print_peaks(peak_rss_by_job(instance, memory, records), "waves")


def report_burst(instance, memory, emitted_at, ids, load, emit_seconds, settled_seconds, load_after) -> None:
    batches, outcomes, rejected = store_facts(ids)
    runs = runs_since(instance, emitted_at)
    by_job = Counter(r.dagster_run.job_name for r in runs)
    statuses = Counter(r.dagster_run.status.value for r in runs)
    print(
        f"burst of {len(ids)} signals (emitted in {emit_seconds:.1f} s; load {load:.1f} before, {load_after:.1f} after):"
    )
    print(f"  {len(ids) - rejected} accepted, all assigned, in {len(batches)} batches; {rejected} rejected")
    print(f"  emit -> all assigned {assigned_at(instance, batches) - emitted_at:.1f} s")
    if outcomes:
        print(
            f"  {len(outcomes)} promoted reports judged and researched "
            f"({dict(sorted(Counter(o['status'] for o in outcomes).items()))}); "
            f"emit -> last outcome {max(o['t'] for o in outcomes) - emitted_at:.1f} s"
        )
    print(f"  emit -> nothing in flight in the object store (what the sensors see) {settled_seconds:.1f} s")
    print(f"  dagster runs: {len(runs)} {dict(sorted(by_job.items()))} {dict(sorted(statuses.items()))}")
    print_peaks(peak_rss_by_job(instance, memory, runs), "burst")


def report_other_team(instance, waves: list) -> None:
    """Per wave of the other team: emit -> assigned, the batches grouped in between (the burst's ahead of
    it), emit -> ready, and its report run's wait beside the burst's report runs."""
    import dagster as dg

    from signals_assets.jobs import TEAM_TAG

    grouped: dict[str, float] = {}  # each batch's first grouping
    for record in instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey("report_assignments")), limit=10_000, ascending=True
    ).records:
        grouped.setdefault(record.partition_key, record.timestamp)
    report_runs = [r for r in runs_since(instance, min(w[0] for w in waves)) if r.dagster_run.job_name == "report_job"]
    print(f"team {OTHER_TEAM}'s waves of 3 during the burst; seconds from emit:")
    print(
        "wave assigned batches-ahead ready | its report run: wait launch | team 1 report runs waiting then | seen at emit"
    )
    for number, (emitted_at, ids, seen) in enumerate(waves):
        batches, outcomes, _ = store_facts(ids, as_grouped=True)
        done = assigned_at(instance, batches)
        ahead = sorted(b for b, t in grouped.items() if emitted_at < t < done and b not in batches)
        ready = max((o["t"] for o in outcomes), default=float("nan")) - emitted_at
        statuses = ",".join(sorted(o["status"] for o in outcomes)) or "none promoted"
        own = next(
            (
                r
                for r in report_runs
                if r.dagster_run.tags.get(TEAM_TAG) == str(OTHER_TEAM) and r.create_timestamp.timestamp() >= done
            ),
            None,
        )
        run = "   -     -"
        waiting = 0
        if own is not None:
            created, launch, _ = run_phases(own)
            run = f"{created - done:5.1f} {launch:5.1f}"
            started = created + launch
            waiting = sum(
                1
                for r in report_runs
                if r.dagster_run.tags.get(TEAM_TAG) != str(OTHER_TEAM)
                and r.create_timestamp.timestamp() < started < (r.start_time or float("inf"))
            )
        print(
            f"{number:4d} {done - emitted_at:8.1f} {len(ahead):14d} {ready:5.1f} {statuses} | {run} | {waiting:24d} | {seen or 'nothing'}"
        )


def print_peaks(peaks: dict[str, float], label: str) -> None:
    for job, megabytes in sorted(peaks.items()):
        print(f"  peak RSS of a {job} run worker ({label}): {megabytes:.0f} MB")


if __name__ == "__main__":
    main()
