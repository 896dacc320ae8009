"""Kill -9 trials for the crash-safety guarantees, shared by
tests/test_fault_injection.py (short) and benchmarks/fault_injection.py (long).

A trial runs on a fresh SIGNALS_HOME with two teams emitting the demo signals in waves (batches of
20). For each planned kill it starts the pipeline with `SIGNALS_FAULT_PAUSE_AT=<stage>:<n>` (see
signals_assets/recovery/faults.py; a planned bare `<stage>` gets an arrival n drawn from those its
earlier runs saw come, see `choose_arrival`), waits until a process reports that it reached the stage, and SIGKILLs
it: the daemon's whole process group (code server and run workers; with the Docker run launcher
also the run containers) or `signals process`. Then it restarts without the fault, waits (bounded)
for the pipeline to settle, stops everything, and checks with read-only queries on the store and
the Dagster instance that every emitted signal is in exactly one report of its own team or rejected
with a reason, no report is left candidate/in_progress, no run is left unfinished and no pool slot
is held, and batches were grouped in key order (by when each batch's grouping committed: its stage
marker's time; see `grouping_order_defects`).

A kill planned as `random` does not wait for a stage: the pipeline starts without a fault and is
SIGKILLed after a delay drawn uniformly over the span it is busy (`signals process`: 60 s until the
trial sees a run of it finish first, then that run's time; the daemon: 120 s, its start, sensor
ticks and a wave's runs), so it lands wherever the process happens to be: mid store write, sensor
tick, run launch, chdb part write. With `kill_emits`, the emitter is killed too: each
`signals emit-file` after the first is killed at a random moment of its run, then run again whole.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
DEMO_SIGNALS = REPO_ROOT / "scripts" / "demo" / "signals.jsonl"
DEMO_REPOSITORY = REPO_ROOT / "scripts" / "demo" / "shop_app"
TEAMS = (1, 2)
BATCH_MAX_SIGNALS = 20
GROUPING_POOL = "signals_grouping"
UNFINISHED_RUN_STATUSES = ("QUEUED", "NOT_STARTED", "STARTING", "STARTED", "CANCELING")
IN_FLIGHT_REPORT_STATUSES = ("candidate", "in_progress")
DUPLICATE_REASON = "duplicate"  # rejected_signals.reason of a signal id already accepted
RANDOM = "random"  # a kill planned at a random time rather than at a stage
# The busy span a random kill's delay is drawn over until the trial has seen one: roughly a
# `signals process` run over one wave, or the daemon's settle, on 2 loaded cores.
DEFAULT_BUSY_SECONDS = {"process": 60.0, "daemon": 120.0}
# Settings a developer's shell may hold that would point a trial at other data or services.
FOREIGN_VARIABLES = ("SIGNALS_", "DAGSTER_HOME", "SIGNALS_FAULT_")


@dataclass
class Kill:
    stage: str  # as planned: `<stage>` (the harness picks the arrival), `<stage>:<occurrence>` or `random`
    arrival: str = ""  # the SIGNALS_FAULT_PAUSE_AT value of the last attempt, or `<delay>s` for `random`
    reached: bool = False  # killed there (`random`: while still running); False: it never came
    missed: list[str] = field(default_factory=list)  # arrivals tried before that never came
    seconds: float = 0.0


def choose_arrival(planned: str, seen: dict[str, int], rng: random.Random) -> str:
    """The `SIGNALS_FAULT_PAUSE_AT` value for a planned kill: `<stage>:<n>` as given; for a bare
    `<stage>`, n drawn uniformly from the arrivals at that stage that one earlier run of the trial saw
    (`seen`, the most in any run), or 1 when none did. Deterministic for the rng's seed and the counts."""
    from signals_assets.recovery.faults import parse_pause

    stage, _ = parse_pause(planned)
    if ":" in planned:
        return planned
    return f"{stage}:{rng.randint(1, max(1, seen.get(stage, 0)))}"


DEFECT_CHECKS = (
    "lost",
    "duplicated",
    "cross_team",
    "stranded",
    "stuck_runs",
    "held_slots",
    "out_of_order",
    "double_outcomes",
    "unrecorded",
    "unreadable",
)


@dataclass
class TrialResult:
    mode: str
    instance: str
    kills: list[Kill]
    emitted: int = 0
    emits_killed: int = 0  # `signals emit-file` runs killed mid-way (then run again whole)
    accepted: int = 0
    rejected: int = 0
    in_one_report: int = 0
    settled: bool = False
    settle_seconds: float = 0.0
    process_exit_codes: list[int] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)  # emitted, neither in a report nor rejected (not as a duplicate)
    # accepted twice, rejected twice (not as a duplicate), both, or in two reports
    duplicated: list[str] = field(default_factory=list)
    cross_team: list[str] = field(default_factory=list)  # a signal in another team's report
    stranded: list[str] = field(default_factory=list)  # reports left candidate / in_progress
    stuck_runs: list[str] = field(default_factory=list)  # runs left queued / started
    held_slots: list[str] = field(default_factory=list)  # grouping pool slots of finished runs
    out_of_order: list[str] = field(default_factory=list)  # a batch grouped after a later one
    double_outcomes: list[str] = field(default_factory=list)  # a report round with two outcomes
    # grouped batches Dagster shows no report_assignments of, researched reports no report_research of
    unrecorded: list[str] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)  # the store or instance failed to open after the kills
    report_statuses: dict = field(default_factory=dict)

    def defects(self) -> dict[str, int]:
        counts = {name: len(getattr(self, name)) for name in DEFECT_CHECKS}
        counts["unsettled"] = int(not self.settled)
        # `signals process` must finish everything on the run after the last kill and say so.
        counts["process_rerun_failed"] = int(bool(self.process_exit_codes) and self.process_exit_codes[-1] != 0)
        return {name: count for name, count in counts.items() if count}

    def as_dict(self) -> dict:
        return asdict(self)


def base_environment(root: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(FOREIGN_VARIABLES)}
    env.update(
        {
            "SIGNALS_HOME": str(root / "signals_home"),
            "DAGSTER_HOME": str(root / "dagster_home"),
            "SIGNALS_BATCH_MAX_SIGNALS": str(BATCH_MAX_SIGNALS),
            "SIGNALS_SENSOR_INTERVAL_SECONDS": "2",
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


def local_instance_config() -> dict:
    """The shipped local instance settings, as `signals process` and scripts/dev install them."""
    import yaml

    return yaml.safe_load((REPO_ROOT / "deploy" / "dagster.local.yaml").read_text())


@contextmanager
def production_trial(root: Path, image: str, signals_per_wave: int = 14, seed: int = 1):
    """A daemon trial on the production instance: Postgres storage and the Docker run launcher
    (deploy/dagster.yaml adapted to this machine's engine as in tests/test_docker_run_launcher.py).
    A kill also kills the run containers, as a host crash would; they are removed afterwards."""
    from concurrent.futures import ThreadPoolExecutor

    from signals_assets.recovery.faults import MARKER_DIR_VARIABLE, PAUSE_VARIABLE
    from signals_assets.research.docker_sandbox import engine_client

    from conftest import fresh_postgres_database
    from test_docker_run_launcher import TEST_LABEL, host_network_config

    label = root.name + "-" + os.urandom(4).hex()
    client = engine_client()  # the product's patience: removal on the vfs driver passed docker-py's 60 s
    selector = {"label": f"{TEST_LABEL}={label}"}

    def kill_run_containers() -> None:
        for container in client.containers.list(filters=selector):
            container.kill()

    config = host_network_config(root, label)
    launcher = config["run_launcher"]["config"]
    launcher["env_vars"] += [PAUSE_VARIABLE, MARKER_DIR_VARIABLE]
    with fresh_postgres_database() as database:
        # The launcher requires every variable it passes on to be set in the daemon's environment.
        extra = {name: "" for name in launcher["env_vars"] if name not in base_environment(root)}
        extra.update(database)
        extra.update({"SIGNALS_ASSETS_IMAGE": image, MARKER_DIR_VARIABLE: str(root / "markers")})
        try:
            trial = FaultTrial(
                root, "daemon", config, "production", signals_per_wave, extra, kill_run_containers, seed=seed
            )
            yield trial
        finally:
            containers = client.containers.list(all=True, filters=selector)
            with ThreadPoolExecutor() as pool:  # removal takes tens of seconds each on the vfs driver
                list(pool.map(lambda container: container.remove(force=True), containers))


def demo_payloads() -> list[dict]:
    return [json.loads(line) for line in DEMO_SIGNALS.read_text().splitlines() if line.strip()]


class FaultTrial:
    """One SIGNALS_HOME and Dagster instance; `mode` is "daemon" or "process"; `seed` drives the
    choice of arrivals for kills planned without one."""

    def __init__(
        self,
        root: Path,
        mode: str,
        instance_config: dict,
        instance: str = "local",
        signals_per_wave: int = 14,
        extra_env: dict[str, str] | None = None,
        kill_containers=None,
        seed: int = 1,
        kill_emits: bool = False,
        first_team_batch_limit: int | None = None,
    ):
        import yaml

        if mode not in ("daemon", "process"):
            raise ValueError(f"mode={mode!r} must be daemon or process")
        self.root, self.mode, self.instance = root, mode, instance
        self.signals_per_wave = signals_per_wave
        self.kill_containers = kill_containers  # Docker run launcher: run containers die with the host
        self.env = {**base_environment(root), **(extra_env or {})}
        self.log_path = root / f"{mode}.log"
        self.emitted: dict[str, int] = {}  # signal id -> team
        self.kills: list[Kill] = []
        self.rng = random.Random(seed)
        self.fault_runs = 0
        self.arrivals_seen: dict[str, int] = {}  # stage -> the most arrivals one run of this trial reached
        self.exit_codes: list[int] = []
        self.busy_seconds = DEFAULT_BUSY_SECONDS[mode]  # the span random kills are drawn over
        self.waves = 0
        # With `kill_emits`, each `signals emit-file` after the first is killed at a random moment
        # of its run and then run again whole, as a client retries a send it got no answer for.
        self.kill_emits = kill_emits
        self.emit_seconds = 0.0  # the last emit-file run's time: the span its kills are drawn over
        self.emits_killed = 0
        (root / "dagster_home").mkdir(parents=True, exist_ok=True)
        (root / "dagster_home" / "dagster.yaml").write_text(yaml.safe_dump(instance_config))
        # A first team's per-batch limit below its waves keeps it a backlog, so the other team's waves get
        # batches of their own between its batches (`inbox.goes_alone`).
        limit = ("--max-signals-per-batch", str(first_team_batch_limit)) if first_team_batch_limit else ()
        self._cli("teams", "set", str(TEAMS[0]), "--consent", *limit, "--repo", str(DEMO_REPOSITORY))
        self._cli("teams", "set", str(TEAMS[1]), "--consent", "--repo", str(DEMO_REPOSITORY))

    # ---- driving the pipeline ------------------------------------------------------------------

    def _cli(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        done = subprocess.run(
            [str(BIN / "signals"), *args], env=self.env, capture_output=True, text=True, timeout=timeout, cwd=REPO_ROOT
        )
        if done.returncode != 0:
            raise RuntimeError(f"signals {' '.join(args)} exited {done.returncode}: {done.stderr[-2000:]}")
        return done

    def emit_wave(self) -> None:
        """Each team emits the next `signals_per_wave` demo signals (cycling), with fresh keys."""
        from signals_assets.ingestion.signal_ids import signal_id_for

        payloads = demo_payloads()
        for team in TEAMS:
            path = self.root / f"wave{self.waves}-team{team}.jsonl"
            lines = []
            for i in range(self.signals_per_wave):
                payload = dict(payloads[(self.waves * self.signals_per_wave + i) % len(payloads)])
                payload["source_id"] = f"{payload['source_id']}-w{self.waves}-{i}"
                payload["idempotency_key"] = f"w{self.waves}-t{team}-{i}"
                self.emitted[signal_id_for(team, payload["idempotency_key"])] = team
                lines.append(json.dumps(payload))
            path.write_text("\n".join(lines) + "\n")
            self._emit_file(path, team)
        self.waves += 1

    def _emit_file(self, path: Path, team: int) -> None:
        command = ("emit-file", str(path), "--team-id", str(team))
        if self.kill_emits and self.emit_seconds:
            process = subprocess.Popen(
                [str(BIN / "signals"), *command],
                env=self.env,
                cwd=REPO_ROOT,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
            try:
                process.wait(timeout=self.rng.uniform(0, self.emit_seconds))
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=60)
                self.emits_killed += 1
        started = time.monotonic()
        self._cli(*command)
        self.emit_seconds = time.monotonic() - started

    def _start(self, fault: str, marker_dir: Path) -> subprocess.Popen:
        env = {**self.env, "SIGNALS_FAULT_PAUSE_AT": fault, "SIGNALS_FAULT_MARKER_DIR": str(marker_dir)}
        command = (
            [str(BIN / "dagster-daemon"), "run", "-w", "workspace.yaml"]
            if self.mode == "daemon"
            else [str(BIN / "signals"), "process"]
        )
        with open(self.log_path, "ab") as log:
            log.write(f"\n==== {self.mode} fault={fault or 'none'} at {time.strftime('%H:%M:%S')}\n".encode())
        return subprocess.Popen(
            command,
            cwd=REPO_ROOT,
            env=env,
            stdout=open(self.log_path, "ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def _kill(self, process: subprocess.Popen) -> None:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait(timeout=60)
        if self.kill_containers:
            self.kill_containers()

    def kill_at(self, planned: str, timeout: float) -> Kill:
        """Run with the fault until a process pauses at the planned stage, then kill -9 everything.
        When a drawn arrival did not come although the stage did (this wave brought fewer arrivals
        than an earlier one) or `signals process` finished without it (e.g. research before any report
        is due), a fresh wave is emitted and the kill retried once at its first arrival, which lands
        whenever the stage comes at all."""
        from signals_assets.recovery.faults import parse_pause

        if planned == RANDOM:
            return self.kill_at_random(timeout)
        stage, _ = parse_pause(planned)
        kill = Kill(planned)
        started = time.monotonic()
        kill.arrival = choose_arrival(planned, self.arrivals_seen, self.rng)
        kill.reached, came, finished = self._pause_and_kill(kill.arrival, timeout)
        if not kill.reached and (came or finished) and ":" not in planned:
            kill.missed.append(kill.arrival)
            self.emit_wave()
            kill.arrival = f"{stage}:1"
            kill.reached, _, _ = self._pause_and_kill(kill.arrival, timeout)
        kill.seconds = round(time.monotonic() - started, 1)
        self.kills.append(kill)
        return kill

    def kill_at_random(self, timeout: float) -> Kill:
        """Run without a fault and kill -9 everything after a delay drawn uniformly over the busy span.
        When `signals process` finishes first, its run time becomes the span and, as for a stage that
        did not come, a fresh wave is emitted and the kill retried once with a new draw."""
        kill = Kill(RANDOM)
        started = time.monotonic()
        for attempt in range(2):
            delay = round(self.rng.uniform(0, min(self.busy_seconds, timeout)), 1)
            if attempt:
                kill.missed.append(kill.arrival)
                self.emit_wave()
            kill.arrival = f"{delay}s"
            kill.reached = self._run_and_kill(delay)
            if kill.reached:
                break
        kill.seconds = round(time.monotonic() - started, 1)
        self.kills.append(kill)
        return kill

    def _run_and_kill(self, delay: float) -> bool:
        """Whether the pipeline was still running `delay` seconds after its start, when it was killed."""
        started = time.monotonic()
        process = self._start("", self.root / "markers")
        try:
            code = process.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            return True
        finally:
            self._kill(process)
        self.exit_codes.append(code)
        self.busy_seconds = time.monotonic() - started
        return False

    def _new_marker_dir(self) -> Path:
        """A fresh marker folder for the next run with a fault: each run's arrivals are counted apart."""
        marker_dir = self.root / "markers" / str(self.fault_runs)
        marker_dir.mkdir(parents=True)
        self.fault_runs += 1
        return marker_dir

    def _pause_and_kill(self, fault: str, timeout: float) -> tuple[bool, int, bool]:
        """(paused and killed, arrivals at the stage, `signals process` finished without pausing) of
        one run with `fault`; the run's arrivals at every stage update `arrivals_seen`."""
        from signals_assets.recovery.faults import STAGES, arrivals, marker_path, parse_pause

        stage, _ = parse_pause(fault)
        marker_dir = self._new_marker_dir()
        reached = finished = False
        started = time.monotonic()
        process = self._start(fault, marker_dir)
        try:
            while time.monotonic() - started < timeout:
                if marker_path(marker_dir, stage).exists():
                    reached = True
                    break
                if process.poll() is not None:  # `signals process` finished without reaching it
                    self.exit_codes.append(process.returncode)
                    finished = process.returncode == 0
                    break
                time.sleep(0.2)
        finally:
            self._kill(process)
        for name in STAGES:
            self.arrivals_seen[name] = max(self.arrivals_seen.get(name, 0), arrivals(marker_dir, name))
        return reached, arrivals(marker_dir, stage), finished

    def settle(self, timeout: float) -> tuple[bool, float]:
        """Restart without faults and wait for the pipeline to settle; (settled, seconds)."""
        started = time.monotonic()
        if self.mode == "process":
            process = self._start("", self.root / "markers")
            try:
                code = process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                code = -1
            finally:
                self._kill(process)
            self.exit_codes.append(code)
            return self.is_settled(), round(time.monotonic() - started, 1)
        return self._daemon_until_settled("", self.root / "markers", timeout), round(time.monotonic() - started, 1)

    def _daemon_until_settled(self, fault: str, marker_dir: Path, timeout: float) -> bool:
        """Run the daemon with `fault` until two looks in a row find the pipeline settled, then kill it."""
        started = time.monotonic()
        process = self._start(fault, marker_dir)
        calm = 0
        try:
            while time.monotonic() - started < timeout and calm < 2:
                time.sleep(3)
                calm = calm + 1 if self.is_settled() else 0
        finally:
            self._kill(process)
        return calm >= 2

    def count_writes(self, timeout: float) -> tuple[int, int]:
        """(writes, research arrivals) of one run of the pipeline over what was emitted, counted with a
        `write` fault that never comes; the daemon runs until settled, `signals process` to its end."""
        from signals_assets.recovery.faults import arrivals

        never = "write:1000000000"
        if self.mode == "daemon":
            if not self._daemon_until_settled(never, self._new_marker_dir(), timeout):
                raise RuntimeError(f"counting writes: the daemon did not settle within {timeout:.0f} s")
        elif self.kill_at(never, timeout).reached:
            raise RuntimeError("counting writes: the run reached a write it cannot have made")
        markers = self.root / "markers" / str(self.fault_runs - 1)
        return arrivals(markers, "write"), arrivals(markers, "research")

    def is_settled(self) -> bool:
        """Nothing pending or in flight for any team, and no unfinished run."""
        from signals_assets.cli.read_models import is_settled

        for team in TEAMS:
            expected = sum(1 for t in self.emitted.values() if t == team)
            done = subprocess.run(
                [str(BIN / "signals"), "status", "--team-id", str(team), "--json"],
                env=self.env,
                capture_output=True,
                text=True,
                timeout=300,
                cwd=REPO_ROOT,
            )
            if done.returncode != 0 or not is_settled(json.loads(done.stdout), expected):
                return False
        state = self.instance_state()
        # Under the daemon a report run killed by a fault ends FAILURE when the daemon restarts, and the
        # research_reconciler sensor (every 60 s) then launches a housekeeping run: not settled before it.
        return not state["unfinished_runs"] and (self.mode != "daemon" or not state["unreconciled_report_failures"])

    def instance_state(self) -> dict:
        return json.loads(self._python("instance"))

    def _python(self, what: str) -> str:
        """A read-only check in a fresh interpreter on the trial's environment (chdb, instance)."""
        done = subprocess.run(
            [sys.executable, __file__, what], env=self.env, capture_output=True, text=True, timeout=300, cwd=REPO_ROOT
        )
        if done.returncode != 0:
            raise RuntimeError(f"{what} check failed: {done.stderr[-3000:]}")
        return done.stdout

    # ---- the whole trial -----------------------------------------------------------------------

    def run(self, stages: list[str], kill_timeout: float = 240, settle_timeout: float = 300) -> TrialResult:
        for stage in stages:  # a kill that does not land leaves the later ones planned
            self.emit_wave()
            self.kill_at(stage, kill_timeout)
        self.emit_wave()  # work that arrives while recovering
        settled, seconds = self.settle(settle_timeout)
        return self.check(settled, seconds)

    def check(self, settled: bool, settle_seconds: float) -> TrialResult:
        result = TrialResult(
            self.mode,
            self.instance,
            self.kills,
            emitted=len(self.emitted),
            emits_killed=self.emits_killed,
            settled=settled,
            settle_seconds=settle_seconds,
            process_exit_codes=self.exit_codes,
        )
        try:  # a kill must never leave the store or the instance unopenable
            facts = json.loads(self._python("store"))
            state = self.instance_state()
        except RuntimeError as error:
            result.unreadable.append(str(error)[-2000:])
            return result
        from signals_assets.partition_keys import report_team_id

        accepted_rows: dict[str, int] = {}
        for signal_id, count in facts["accepted"]:
            accepted_rows[signal_id] = accepted_rows.get(signal_id, 0) + count
        # A copy of an accepted signal is rejected as a `duplicate` by design: that row is no outcome
        # of its own (and alone, without the accepted row, it is a loss).
        rejected_rows: dict[str, int] = {}
        for signal_id, reason in facts["rejected"]:
            if reason != DUPLICATE_REASON:
                rejected_rows[signal_id] = rejected_rows.get(signal_id, 0) + 1
        rejected = set(rejected_rows)
        reports_of: dict[str, list[tuple[int, str]]] = {}
        for signal_id, team, report in facts["report_signals"]:
            reports_of.setdefault(signal_id, []).append((team, report))
        result.accepted = len(accepted_rows)
        result.rejected = len(rejected)
        for signal_id, team in sorted(self.emitted.items()):
            placed = reports_of.get(signal_id, [])
            if len(placed) == 1:
                result.in_one_report += 1
            if not placed and signal_id not in rejected:
                result.lost.append(signal_id)
            outcomes = accepted_rows.get(signal_id, 0) + rejected_rows.get(signal_id, 0)
            if outcomes > 1 or len(placed) > 1:
                result.duplicated.append(signal_id)
            if any(t != team or report_team_id(report) != team for t, report in placed):
                result.cross_team.append(signal_id)
        result.double_outcomes = [
            f"{report} round {round_}: {what}" for report, round_, what in facts["double_outcomes"]
        ]
        result.stranded = [report for report, status in facts["reports"] if status in IN_FLIGHT_REPORT_STATUSES]
        for _, status in facts["reports"]:
            result.report_statuses[status] = result.report_statuses.get(status, 0) + 1
        result.stuck_runs = [f"{run['job']} {run['run_id']} {run['status']}" for run in state["unfinished_runs"]]
        result.held_slots = [f"{GROUPING_POOL} slot of {run_id}" for run_id in state["held_slot_runs"]]
        result.out_of_order = grouping_order_defects(facts["grouped_at"])
        # The UI must show what the store holds: every grouped batch materialised (under the daemon by the
        # retry of a run a kill cut off, under `signals process` by its next run).
        result.unrecorded = sorted(
            set(facts["grouped_at"]) & set(state["batch_partitions"]) - set(state["assigned_partitions"])
        ) + sorted(set(facts["researched"]) & set(state["report_partitions"]) - set(state["researched_partitions"]))
        return result


def grouping_order_defects(grouped_at: dict[str, str]) -> list[str]:
    """Consecutive batches, in the order their groupings committed (`grouped_at`: each batch's
    `report_assignments` stage marker's time, written right after its grouping's store writes), whose
    keys go down: a batch grouped after a later one.

    Not the order of Dagster's materialisations: a run killed between a batch's grouping and the end of
    its step records none for it, and under the daemon Dagster's retry of the run materialises it
    (`skipped`: it was grouped), possibly after later batches were grouped on top of it in key order.
    """
    committed = sorted(grouped_at, key=lambda batch: datetime.fromisoformat(grouped_at[batch]))
    return [f"{later} grouped after {earlier}" for earlier, later in zip(committed, committed[1:]) if later < earlier]


# ---- read-only checks, run in a fresh interpreter on the trial's environment ----------------------


def store_facts() -> dict:
    from signals_assets.cli.read_models import store_session
    from signals_assets.ingestion import inbox
    from signals_assets.settings import load_settings
    from signals_assets.storage.object_store import open_object_store

    settings = load_settings()
    objects = open_object_store(settings)
    grouped_at = {
        progress.batch: json.loads(objects.get(inbox.stage_marker_key(progress.batch, inbox.GROUPED)))["at"]
        for progress in inbox.batch_progress(objects)
        if inbox.GROUPED in progress.stages_done
    }
    with store_session(settings) as db:
        return {
            "grouped_at": grouped_at,
            "accepted": [
                (r["signal_id"], int(r["n"]))
                for r in db.query("SELECT signal_id, count() AS n FROM signals GROUP BY signal_id")
            ],
            "rejected": [
                (r["signal_id"], r["reason"]) for r in db.query("SELECT signal_id, reason FROM rejected_signals")
            ],
            "report_signals": [
                (r["signal_id"], int(r["team_id"]), r["report_id"])
                for r in db.query("SELECT signal_id, team_id, report_id FROM report_signals")
            ],
            "reports": [(r["report_id"], r["status"]) for r in db.query("SELECT report_id, status FROM reports")],
            "researched": [r["report_id"] for r in db.query("SELECT DISTINCT report_id FROM research_results")],
            # A report round has one research result, one summary event and one research outcome
            # event (after its `research_started`, seq 0).
            "double_outcomes": [
                (r["report_id"], int(r["research_round"]), r["what"])
                for r in db.query(
                    "SELECT report_id, research_round, 'research results' AS what FROM research_results "
                    "GROUP BY report_id, research_round HAVING count() > 1 "
                    "UNION ALL SELECT report_id, research_round, concat(stage, ' events') AS what "
                    "FROM report_events WHERE stage = 'summary' OR (stage = 'research' AND seq > 0) "
                    "GROUP BY report_id, research_round, stage HAVING count() > 1"
                )
            ],
        }


def instance_facts() -> dict:
    import dagster as dg

    from signals_assets.partition_keys import REPORTS, SIGNAL_BATCHES

    with dg.DagsterInstance.from_config(os.environ["DAGSTER_HOME"]) as instance:
        runs = [r.dagster_run for r in instance.get_run_records()]
        unfinished = [
            {"job": r.job_name, "run_id": r.run_id, "status": r.status.value}
            for r in runs
            if r.status.value in UNFINISHED_RUN_STATUSES
        ]
        live = {r["run_id"] for r in unfinished}
        held = sorted(instance.event_log_storage.get_concurrency_info(GROUPING_POOL).active_run_ids - live)
        reconciled_until = max(
            (r.create_timestamp.timestamp() for r in records_of(instance, "research_reconciliation_job")),
            default=None,
        )
        # By when the run ended, not its update time: the daemon's retry tags a failed run seconds later.
        unreconciled = [
            r.dagster_run.run_id
            for r in records_of(instance, "report_job")
            if r.dagster_run.status.value in ("FAILURE", "CANCELED")
            and (reconciled_until is None or (r.end_time or r.update_timestamp.timestamp()) > reconciled_until)
        ]
        batch_partitions = instance.get_dynamic_partitions(SIGNAL_BATCHES)
        assigned_partitions = instance.get_materialized_partitions(dg.AssetKey("report_assignments"))
        report_partitions = instance.get_dynamic_partitions(REPORTS)
        researched_partitions = instance.get_materialized_partitions(dg.AssetKey("report_research"))
    return {
        "batch_partitions": batch_partitions,
        "assigned_partitions": sorted(assigned_partitions),
        "report_partitions": report_partitions,
        "researched_partitions": sorted(researched_partitions),
        "unfinished_runs": unfinished,
        "held_slot_runs": held,
        "unreconciled_report_failures": unreconciled,
    }


def records_of(instance, job_name: str) -> list:
    import dagster as dg

    return list(instance.get_run_records(filters=dg.RunsFilter(job_name=job_name)))


if __name__ == "__main__":
    sys.path.insert(0, str(REPO_ROOT))
    print(json.dumps({"store": store_facts, "instance": instance_facts}[sys.argv[1]](), default=str))
