import sys
import time
from dataclasses import dataclass, field

import dagster as dg

from signals_assets.assets.grouping import PROMOTED_METADATA_KEY
from signals_assets.jobs import TEAM_TAG, report_job
from signals_assets.partitions import reports
from signals_assets.recovery.attempts import next_attempt_number, next_step
from signals_assets.reports import promotions as promotion_facts, quotas
from signals_assets.resources.object_store import ObjectStoreResource
from signals_assets.sensors.run_attempts import failure_reason, last_failed_run, unit_attempts
from signals_assets.storage.object_store import ObjectStore


def promotions_from_metadata(metadata: dict) -> list[dict]:
    """The promotions a report_assignments materialisation lists (for people and tests; the sensor
    reads the durable promotion objects)."""
    value = metadata.get(PROMOTED_METADATA_KEY)
    return list(value.data) if value is not None else []


@dataclass
class PromotionWork:
    to_run: list[tuple[dict, str]] = field(default_factory=list)  # (promotion, run key)
    in_flight: list[str] = field(default_factory=list)
    waiting: list[str] = field(default_factory=list)
    done_now: list[str] = field(default_factory=list)
    parked_now: list[str] = field(default_factory=list)
    deferred: list[str] = field(default_factory=list)  # over their team's daily limit

    def run_requests(self) -> list[dg.RunRequest]:
        """One report run per round to run, keyed by its attempt, tagged with its team and a queue
        priority fair across teams (the sensor requests them; `signals process` executes them in-process)."""
        priorities = quotas.queue_priorities([int(p["team_id"]) for p, _ in self.to_run], self.in_flight)
        return [
            dg.RunRequest(
                run_key=key,
                partition_key=p["report_id"],
                tags={TEAM_TAG: str(p["team_id"]), "dagster/priority": str(priority)},
            )
            for (p, key), priority in zip(self.to_run, priorities)
        ]

    def partitions_request(self) -> dg.AddDynamicPartitionsRequest:
        return reports.build_add_request(sorted({p["report_id"] for p, _ in self.to_run}))


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
    researched again; a run of it that succeeded means its round is done."""
    now = time.time() if now is None else now
    work = PromotionWork()
    admission = quotas.admit(
        store,
        promotion_facts.pending_promotions(store),
        now,
        lambda team: quotas.team_daily_limit(store, team, max_reports_per_team_day),
    )
    work.deferred = [promotion_facts.promotion_unit(p["report_id"], int(p["round"])) for p in admission.deferred]
    for promotion in admission.admitted:
        report, round_ = promotion["report_id"], int(promotion["round"])
        unit = promotion_facts.promotion_unit(report, round_)
        every = unit_attempts(instance, report_job.name, report, unit, daemon_retries)
        attempts = [a for a in every if a.created_at >= promotion["promoted_at"]]
        if any(a.succeeded for a in attempts):
            promotion_facts.promotion_done(store, report, round_)
            work.done_now.append(unit)
            continue
        used = next_attempt_number(unit, every)
        decision = next_step(
            unit,
            attempts,
            now,
            max_attempts,
            backoff_seconds,
            attempts_forgiven=int(promotion.get("attempts_forgiven", 0)),
            used_keys=used,
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


def build_report_promotion_sensor(
    max_attempts: int = 3, backoff_seconds: float = 60, max_reports_per_team_day: int = sys.maxsize
) -> dg.SensorDefinition:
    @dg.sensor(
        name="report_promotion_sensor",
        job=report_job,
        minimum_interval_seconds=10,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Reads the pending promotions (object store `promotions/`, written by report_assignments, "
        "removed when the round has an outcome), adds `reports` partitions and requests one run per research "
        "round; a round whose runs failed is retried with back-off, then parked with its reason.",
    )
    def report_promotion_sensor(context: dg.SensorEvaluationContext, object_store: ObjectStoreResource):
        work = promotion_work(
            context.instance,
            object_store.open(),
            max_attempts,
            backoff_seconds,
            max_reports_per_team_day=max_reports_per_team_day,
        )
        seen = (
            f"{len(work.in_flight)} round(s) in flight, waiting to retry: {work.waiting}, "
            f"done: {work.done_now}, parked now: {work.parked_now}, "
            f"deferred to the next day (team limit): {len(work.deferred)}"
        )
        if not work.to_run:
            return dg.SkipReason(f"no promotion to run; {seen}")
        return dg.SensorResult(
            run_requests=work.run_requests(),
            dynamic_partitions_requests=[work.partitions_request()],
        )

    return report_promotion_sensor
