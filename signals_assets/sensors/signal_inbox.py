import json
import time
from dataclasses import dataclass, field

import dagster as dg

from signals_assets.ingestion import inbox
from signals_assets.jobs import signal_batch_job
from signals_assets.partitions import signal_batches
from signals_assets.recovery.attempts import next_step
from signals_assets.resources.object_store import ObjectStoreResource
from signals_assets.sensors.cadence import minimum_interval_seconds
from signals_assets.sensors.run_attempts import failure_reason, last_failed_run, unit_attempts
from signals_assets.storage.object_store import ObjectStore


@dataclass
class BatchWork:
    """What the unfinished batches need, in key order."""

    to_run: list[tuple[str, str]] = field(default_factory=list)  # (batch, run key)
    in_flight: list[str] = field(default_factory=list)
    waiting: list[str] = field(default_factory=list)  # back-off details; later batches are held behind them
    held: list[str] = field(default_factory=list)
    parked_now: list[str] = field(default_factory=list)

    def run_requests(self) -> list[dg.RunRequest]:
        """One run per batch to run, keyed by its attempt (the sensor requests them; `signals process`
        executes them in-process)."""
        return [dg.RunRequest(run_key=key, partition_key=batch) for batch, key in self.to_run]

    def partitions_request(self) -> dg.AddDynamicPartitionsRequest:
        return signal_batches.build_add_request([batch for batch, _ in self.to_run])


def batch_work(
    instance: dg.DagsterInstance,
    store: ObjectStore,
    max_attempts: int,
    backoff_seconds: float,
    now: float | None = None,
    daemon_retries: bool = True,
) -> BatchWork:
    """Decide for every unfinished batch, in key order; park the ones out of attempts.

    A batch waiting out its back-off holds back later batches that would need a new run (their
    grouping would only refuse); a parked batch holds back nothing."""
    now = time.time() if now is None else now
    work = BatchWork()
    for progress in inbox.batch_progress(store):
        if progress.finished or progress.parked is not None:
            continue
        batch = progress.batch
        attempts = unit_attempts(instance, signal_batch_job.name, batch, batch, daemon_retries, now)
        decision = next_step(
            batch,
            attempts,
            now,
            max_attempts,
            backoff_seconds,
            attempts_forgiven=inbox.attempts_before_unpark(store, batch),
        )
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


def build_signal_inbox_sensor(
    max_signals_per_batch: int,
    interval_seconds: int = 5,
    max_attempts: int = 3,
    backoff_seconds: float = 60,
    max_per_team: int | None = None,
    max_open_batches: int = 1,
) -> dg.SensorDefinition:
    @dg.sensor(
        name="signal_inbox_sensor",
        job=signal_batch_job,
        minimum_interval_seconds=minimum_interval_seconds(interval_seconds),
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Claims pending inbox objects into batches (round-robin across teams, at most "
        f"{max_open_batches} unfinished batch(es) at a time) and requests one run per batch "
        "(run key = batch key). An unfinished batch whose runs all failed is requested again with "
        "back-off (`<batch>-retry<N>`), in key order, and parked with its reason after "
        f"{max_attempts} failed attempts.",
    )
    def signal_inbox_sensor(context: dg.SensorEvaluationContext, object_store: ObjectStoreResource):
        cursor = json.loads(context.cursor) if context.cursor else {}
        store = object_store.open()
        # Claimed late, claimed fair: a batch formed only when the previous ones are nearly done sees
        # every team's latest signals, so another team's burst delays them by at most those batches.
        open_batches = len(inbox.unfinished_batches(store))
        claim = inbox.claim_pending(
            store,
            max_signals_per_batch,
            cursor.get("last_batch"),
            max_per_team=max_per_team,
            max_batches=max(0, max_open_batches - open_batches),
        )
        work = batch_work(context.instance, store, max_attempts, backoff_seconds)
        new_cursor = json.dumps(
            {
                "last_batch": claim.last_batch,
                "claimed_signals": cursor.get("claimed_signals", 0) + claim.claimed_signals,
            }
        )
        seen = (
            f"{len(work.in_flight)} batch(es) in flight, {len(work.waiting)} waiting to retry "
            f"({'; '.join(work.waiting)}), {len(work.held)} held behind them, parked now: {work.parked_now}"
        )
        if not work.to_run:
            return dg.SensorResult(
                skip_reason=f"no batch to run in {store.describe()} ({open_batches} unfinished, claims wait "
                f"below {max_open_batches}); {seen}",
                cursor=new_cursor,
            )
        context.log.info(
            f"claimed {claim.claimed_signals} signals into {claim.new_batches}; requesting "
            f"{[key for _, key in work.to_run]}; {seen}"
        )
        return dg.SensorResult(
            run_requests=work.run_requests(),
            dynamic_partitions_requests=[work.partitions_request()],
            cursor=new_cursor,
        )

    return signal_inbox_sensor
