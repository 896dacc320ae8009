import json
import time
from dataclasses import dataclass, field

import dagster as dg

from signals_assets import inbox
from signals_assets.jobs import signal_batch_job
from signals_assets.objects import ObjectStore
from signals_assets.partitions import signal_batches
from signals_assets.recovery import next_step
from signals_assets.resources.object_store import ObjectStoreResource
from signals_assets.sensors.run_attempts import failure_reason, last_failed_run, unit_attempts


@dataclass
class BatchWork:
    """What the unfinished batches need, in key order."""

    to_run: list[tuple[str, str]] = field(default_factory=list)  # (batch, run key)
    in_flight: list[str] = field(default_factory=list)
    waiting: list[str] = field(default_factory=list)  # back-off details; later batches are held behind them
    held: list[str] = field(default_factory=list)
    parked_now: list[str] = field(default_factory=list)


def batch_work(instance: dg.DagsterInstance, store: ObjectStore, max_attempts: int, backoff_seconds: float,
               now: float | None = None, daemon_retries: bool = True) -> BatchWork:
    """Decide for every unfinished batch, in key order; park the ones out of attempts.

    A batch waiting out its back-off holds back later batches that would need a new run (their
    grouping would only refuse); a parked batch holds back nothing."""
    now = time.time() if now is None else now
    work = BatchWork()
    for progress in inbox.batch_progress(store):
        if progress.finished or progress.parked is not None:
            continue
        batch = progress.batch
        attempts = unit_attempts(instance, signal_batch_job.name, batch, batch, daemon_retries)
        decision = next_step(batch, attempts, now, max_attempts, backoff_seconds,
                             attempts_forgiven=inbox.attempts_before_unpark(store, batch))
        if decision.action == "park":
            reason = f"{decision.detail}; last: {failure_reason(instance, last_failed_run(attempts))}"
            inbox.park_batch(store, batch, reason, decision.failed_attempts)
            work.parked_now.append(batch)
        elif decision.action == "in_flight":
            work.in_flight.append(batch)
        elif decision.action == "wait":
            work.waiting.append(decision.detail)
        elif work.waiting:
            work.held.append(batch)
        else:
            work.to_run.append((batch, decision.run_key))
    return work


def build_signal_inbox_sensor(max_signals_per_batch: int, interval_seconds: int = 15, max_attempts: int = 3,
                              backoff_seconds: float = 60) -> dg.SensorDefinition:
    @dg.sensor(
        name="signal_inbox_sensor",
        job=signal_batch_job,
        minimum_interval_seconds=interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Claims pending inbox objects into batches and requests one run per batch "
        "(run key = batch key). An unfinished batch whose runs all failed is requested again with "
        "back-off (`<batch>-retry<N>`), in key order, and parked with its reason after "
        f"{max_attempts} failed attempts.",
    )
    def signal_inbox_sensor(context: dg.SensorEvaluationContext, object_store: ObjectStoreResource):
        cursor = json.loads(context.cursor) if context.cursor else {}
        store = object_store.open()
        claim = inbox.claim_pending(store, max_signals_per_batch, cursor.get("last_batch"))
        work = batch_work(context.instance, store, max_attempts, backoff_seconds)
        new_cursor = json.dumps({
            "last_batch": claim.last_batch,
            "claimed_signals": cursor.get("claimed_signals", 0) + claim.claimed_signals,
        })
        seen = (f"{len(work.in_flight)} batch(es) in flight, {len(work.waiting)} waiting to retry "
                f"({'; '.join(work.waiting)}), {len(work.held)} held behind them, parked now: {work.parked_now}")
        if not work.to_run:
            return dg.SensorResult(skip_reason=f"inbox empty in {store.describe()}; {seen}", cursor=new_cursor)
        batches = [batch for batch, _ in work.to_run]
        context.log.info(f"claimed {claim.claimed_signals} signals into {claim.new_batches}; requesting "
                         f"{[key for _, key in work.to_run]}; {seen}")
        return dg.SensorResult(
            run_requests=[dg.RunRequest(run_key=key, partition_key=batch) for batch, key in work.to_run],
            dynamic_partitions_requests=[signal_batches.build_add_request(batches)],
            cursor=new_cursor,
        )

    return signal_inbox_sensor
