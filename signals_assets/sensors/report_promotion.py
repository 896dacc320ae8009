import hashlib
import sys
import time
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Callable, Sequence

import dagster as dg

from signals_assets.assets.grouping import PROMOTED_METADATA_KEY
from signals_assets.assets.reports import ROUNDS_TAG, report_research
from signals_assets.jobs import RANGE_END_TAG, RANGE_START_TAG, TEAM_TAG, report_job
from signals_assets.partition_keys import REPORTS
from signals_assets.partitions import has_materialisation, reports
from signals_assets.recovery.attempts import attempt_unit, next_step
from signals_assets.reports import promotions as promotion_facts, quotas, store as report_store
from signals_assets.research import store as research_store
from signals_assets.resources.object_store import ObjectStoreResource
from signals_assets.sensors.cadence import minimum_interval_seconds
from signals_assets.sensors.run_attempts import (
    RUN_KEY_TAG,
    ended_failed_attempts,
    failure_reason,
    last_failed_run,
    next_recording_key,
    round_attempts,
)
from signals_assets.storage.clickhouse import StoreSession
from signals_assets.storage.object_store import ObjectStore


def promotions_from_metadata(metadata: dict) -> list[dict]:
    """The promotions a report_assignments materialisation lists (for people and tests; the sensor
    reads the durable promotion objects)."""
    value = metadata.get(PROMOTED_METADATA_KEY)
    return list(value.data) if value is not None else []


@dataclass
class PromotionWork:
    to_run: list[tuple[dict, str]] = field(default_factory=list)  # (promotion, attempt key)
    in_flight: list[str] = field(default_factory=list)
    waiting: list[str] = field(default_factory=list)
    done_now: list[str] = field(default_factory=list)
    parked_now: list[str] = field(default_factory=list)
    deferred: list[str] = field(default_factory=list)  # over their team's daily limit
    held: list[str] = field(default_factory=list)  # for their team's next run (`hold_behind_queued_runs`)

    def run_requests(self, partition_order: Sequence[str], reports_per_run: int) -> list[dg.RunRequest]:
        """Few report runs for the rounds to run (the sensor requests them; `signals process` executes
        them in-process): per team, a partition range of at most `reports_per_run` reports, tagged
        with its team, the attempt keys of its rounds and a queue priority fair across teams.
        `partition_order`: the `reports` partition set as it is now."""
        groups = promotion_facts.report_run_groups(self.to_run, partition_order, reports_per_run)
        priorities = quotas.queue_priorities([int(group[0][0]["team_id"]) for group in groups], self.in_flight)
        return [report_run_request(group, priority) for group, priority in zip(groups, priorities)]

    def run_requests_for(
        self, rounds: set[str], partition_order: Sequence[str], reports_per_run: int
    ) -> list[dg.RunRequest]:
        """`run_requests` for the rounds to run whose attempt keys are in `rounds`."""
        return PromotionWork(to_run=[item for item in self.to_run if item[1] in rounds]).run_requests(
            partition_order, reports_per_run
        )

    def hold_behind_queued_runs(self, teams: set[int]) -> None:
        """Leave the rounds of `teams`, each with a report run still in the queue, to the team's next run.
        Report runs go one at a time, so a run requested now would only queue behind that one: held, the
        rounds promoted while it waits share one run, requested once it starts, instead of one run (a
        new process, seconds of start-up) each."""
        held = [p for p, _ in self.to_run if int(p["team_id"]) in teams]
        self.held = [promotion_facts.promotion_unit(p["report_id"], int(p["round"])) for p in held]
        self.to_run = [(p, key) for p, key in self.to_run if int(p["team_id"]) not in teams]

    def partitions_request(self) -> dg.AddDynamicPartitionsRequest:
        return reports.build_add_request(sorted({p["report_id"] for p, _ in self.to_run}))


def report_run_request(group: list[tuple[dict, str]], priority: int = 0) -> dg.RunRequest:
    """One run for a group of `report_run_groups`. Its run key stands for the exact attempts and
    promotions it covers, so a re-evaluated tick asks for the same run and a report promoted again
    (new promotion time) gets a new one."""
    attempt_keys = [key for _, key in group]
    identity = " ".join(f"{key}@{p['promoted_at']}" for p, key in sorted(group, key=lambda item: item[1]))
    team = str(group[0][0]["team_id"])
    tags = {TEAM_TAG: team, ROUNDS_TAG: " ".join(attempt_keys), "dagster/priority": str(priority)}
    first, last = group[0][0]["report_id"], group[-1][0]["report_id"]
    run_key = f"reports-{team}-{hashlib.sha256(identity.encode()).hexdigest()[:16]}"
    if first == last:
        return dg.RunRequest(run_key=run_key, partition_key=first, tags=tags)
    return dg.RunRequest(run_key=run_key, tags={**tags, RANGE_START_TAG: first, RANGE_END_TAG: last})


def unrecorded_report_requests(
    instance: dg.DagsterInstance,
    store: ObjectStore,
    session: Callable[[], AbstractContextManager[StoreSession]],
    daemon_retries: bool = True,
    now: float | None = None,
) -> list[dg.RunRequest]:
    """Runs that record the reports failed attempts researched but left without a `report_research`
    materialisation: a kill ended the run after their rounds' outcomes, before its step recorded them, so
    the UI showed them failed. Only a report whose current round is one the failed run attempted (a run may
    hold two rounds of a report) and has its outcome: both steps of its run leave that round as it is
    (`assets.reports.rounds_taken`) and record the report, as Dagster's retry of the failed run does while
    it has retries left (`daemon_retries`: a failed run Dagster will retry is left to that retry). Looks at
    the newest failed attempts (`run_attempts.ended_failed_attempts`)."""
    # {report: {round: (attempt key, team, the run's own key)}}: the rounds of the report that the newest
    # failed run holding it attempted (a run may hold two rounds of one report: `report_run_groups`)
    attempted: dict[str, dict[int, tuple[str, str, str]]] = {}
    for run in ended_failed_attempts(instance, report_job.name, daemon_retries, now):
        of_run: dict[str, dict[int, tuple[str, str, str]]] = {}
        for key in run.tags.get(ROUNDS_TAG, "").split():
            unit = attempt_unit(key)
            of_run.setdefault(promotion_facts.unit_report(unit), {})[promotion_facts.unit_round(unit)] = (
                key,
                run.tags.get(TEAM_TAG, ""),
                run.tags[RUN_KEY_TAG],
            )
        for report, rounds in of_run.items():
            attempted.setdefault(report, rounds)
    # The instance's and the object store's answers first, so that the store (whose lock a sensor tick
    # should not wait for) is opened only while a report is left to record: one recorded, retired, or
    # with a round still open (its own run records it; a parked one rightly shows failed) needs none.
    candidates = [
        report
        for report, rounds in sorted(attempted.items())
        if any(next_recording_key(attempt_unit(key), run_key) for key, _, run_key in rounds.values())
        and instance.has_dynamic_partition(REPORTS, report)
        and not has_materialisation(instance, report_research.key, report)
        and not promotion_facts.has_open_round(store, report)
    ]
    if not candidates:
        return []
    with session() as db:
        current = report_store.current_rounds(db, candidates)
        recordings = {}  # {report: (the attempt at its current round, its team, the recording run's key)}
        for report in candidates:
            key, team, run_key = attempted[report].get(current[report], ("", "", ""))
            if key and (recording := next_recording_key(attempt_unit(key), run_key)):
                recordings[report] = (key, team, recording)
        rounds = [{"report_id": r, "round": current[r]} for r in recordings]
        open_rounds = {p["report_id"] for p in research_store.without_outcome(db, rounds)}
    return [
        dg.RunRequest(run_key=recording, partition_key=report, tags={TEAM_TAG: team, ROUNDS_TAG: key})
        for report, (key, team, recording) in recordings.items()
        if report not in open_rounds
    ]


def promotion_work(
    instance: dg.DagsterInstance,
    store: ObjectStore,
    max_attempts: int,
    backoff_seconds: float,
    now: float | None = None,
    daemon_retries: bool = True,
    max_reports_per_team_day: int = sys.maxsize,
) -> PromotionWork:
    """Decide for every pending promotion; park the ones out of attempts.

    Only runs created after the promotion count: a report promoted again (re-grouping) is
    researched again; a run covering its round that succeeded means the round is done."""
    now = time.time() if now is None else now
    work = PromotionWork()
    admission = quotas.admit(
        store,
        promotion_facts.pending_promotions(store),
        now,
        lambda team: quotas.team_daily_limit(store, team, max_reports_per_team_day),
    )
    work.deferred = [promotion_facts.promotion_unit(p["report_id"], int(p["round"])) for p in admission.deferred]
    if not admission.admitted:
        return work
    # One read of the run storage for every pending round (a run covers several rounds).
    since = min(float(p["promoted_at"]) for p in admission.admitted) - 1
    by_unit = round_attempts(instance, report_job.name, ROUNDS_TAG, since, daemon_retries, now)
    for promotion in admission.admitted:
        report, round_ = promotion["report_id"], int(promotion["round"])
        unit = promotion_facts.promotion_unit(report, round_)
        attempts = [a for a in by_unit.get(unit, []) if a.created_at >= promotion["promoted_at"]]
        if any(a.succeeded for a in attempts):
            promotion_facts.promotion_done(store, report, round_)
            work.done_now.append(unit)
            continue
        decision = next_step(
            unit,
            attempts,
            now,
            max_attempts,
            backoff_seconds,
            attempts_forgiven=int(promotion.get("attempts_forgiven", 0)),
        )
        if decision.action == "park":
            reason = f"{decision.detail}; last: {failure_reason(instance, last_failed_run(attempts))}"
            promotion_facts.park_promotion(store, promotion, reason, decision.failed_attempts)
            work.parked_now.append(unit)
        elif decision.action == "run":
            work.to_run.append((promotion, decision.run_key))
        elif decision.action == "in_flight":
            work.in_flight.append(unit)
        else:
            work.waiting.append(decision.detail)
    return work


def teams_with_a_queued_report_run(instance: dg.DagsterInstance) -> set[int]:
    queued = instance.get_runs(dg.RunsFilter(job_name=report_job.name, statuses=[dg.DagsterRunStatus.QUEUED]))
    return {int(run.tags[TEAM_TAG]) for run in queued if TEAM_TAG in run.tags}


def build_report_promotion_sensor(
    max_attempts: int = 3,
    backoff_seconds: float = 60,
    reports_per_run: int = 50,
    max_reports_per_team_day: int = sys.maxsize,
    interval_seconds: int = 5,
) -> dg.SensorDefinition:
    @dg.sensor(
        name="report_promotion_sensor",
        job=report_job,
        minimum_interval_seconds=minimum_interval_seconds(interval_seconds),
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Reads the pending promotions (object store `promotions/`, written by report_assignments, "
        "removed when the round has an outcome), adds `reports` partitions and requests few report runs: per "
        f"team, a partition range of up to {reports_per_run} reports, none while one of the team's report runs "
        "is still queued (the rounds promoted meanwhile share its next run); a round whose run failed is "
        "retried with back-off, then parked with its reason.",
    )
    def report_promotion_sensor(context: dg.SensorEvaluationContext, object_store: ObjectStoreResource):
        work = promotion_work(
            context.instance,
            object_store.open(),
            max_attempts,
            backoff_seconds,
            max_reports_per_team_day=max_reports_per_team_day,
        )
        work.hold_behind_queued_runs(teams_with_a_queued_report_run(context.instance))
        seen = (
            f"{len(work.in_flight)} round(s) in flight, "
            f"{len(work.held)} held for their team's next run (one of its runs is queued), "
            f"waiting to retry: {work.waiting}, "
            f"done: {work.done_now}, parked now: {work.parked_now}, "
            f"deferred to the next day (team limit): {len(work.deferred)}"
        )
        if not work.to_run:
            return dg.SkipReason(f"no promotion to run; {seen}")
        requests = work.run_requests(context.instance.get_dynamic_partitions(REPORTS), reports_per_run)
        context.log.info(f"{len(work.to_run)} round(s) in {len(requests)} run(s); {seen}")
        return dg.SensorResult(run_requests=requests, dynamic_partitions_requests=[work.partitions_request()])

    return report_promotion_sensor
