import json
import time
from dataclasses import dataclass, field
from typing import Sequence

import dagster as dg
from dagster._core.storage.tags import PARTITION_NAME_TAG

from signals_assets.assets.grouping import report_assignments
from signals_assets.ingestion import inbox
from signals_assets.jobs import (
    RANGE_END_TAG,
    RANGE_START_TAG,
    attempted_batches,
    batch_attempt_tag,
    signal_batch_job,
)
from signals_assets.partition_keys import SIGNAL_BATCHES
from signals_assets.partitions import has_materialisation, signal_batches
from signals_assets.recovery.attempts import next_step
from signals_assets.resources.object_store import ObjectStoreResource
from signals_assets.sensors.cadence import minimum_interval_seconds
from signals_assets.sensors.run_attempts import (
    RUN_KEY_TAG,
    batch_attempts,
    ended_failed_attempts,
    failure_reason,
    last_failed_run,
    next_recording_key,
)
from signals_assets.storage.object_store import ObjectStore


@dataclass
class BatchWork:
    """What the unfinished batches need, in key order."""

    to_run: list[tuple[str, str]] = field(default_factory=list)  # (batch, run key)
    retried: set[str] = field(default_factory=set)  # batches to run whose earlier attempt failed
    in_flight: list[str] = field(default_factory=list)
    waiting: list[str] = field(default_factory=list)  # back-off details; later batches are held behind them
    held: list[str] = field(default_factory=list)
    parked_now: list[str] = field(default_factory=list)
    stray: list[str] = field(default_factory=list)  # folders of no batch key, which nothing processes

    def run_requests(self, partition_order: Sequence[str] = (), max_batches_per_run: int = 1) -> list[dg.RunRequest]:
        """The runs for the batches to run, in key order (the sensor requests them; `signals process`
        executes them in-process): batches consecutive in the `signal_batches` partition set share a
        run, a partition range of at most `max_batches_per_run`, so its fixed costs are paid once. A
        batch whose earlier attempt failed runs alone: a poison batch costs the others no attempts.
        `partition_order`: the partition set as it is now; batches not in it yet come after it, in key
        order (the order in which `partitions_request` appends them)."""
        position = {key: index for index, key in enumerate(partition_order)}
        new = [batch for batch, _ in self.to_run if batch not in position]
        position.update({batch: len(partition_order) + index for index, batch in enumerate(new)})
        groups: list[list[tuple[str, str]]] = []
        for batch, key in self.to_run:
            last = groups[-1][-1][0] if groups else None
            if (
                last is None
                or {batch, last} & self.retried
                or position[batch] != position[last] + 1
                or len(groups[-1]) >= max_batches_per_run
            ):
                groups.append([])
            groups[-1].append((batch, key))
        return [batch_run_request(group) for group in groups]

    def partitions_request(self) -> dg.AddDynamicPartitionsRequest:
        return signal_batches.build_add_request([batch for batch, _ in self.to_run])


def batch_run_request(group: list[tuple[str, str]]) -> dg.RunRequest:
    """One run for consecutive batches (batch, attempt key): a single batch is its partition under its
    attempt key; a range carries the range tags and, per batch, the attempt it makes."""
    (first, first_key), (last, last_key) = group[0], group[-1]
    if len(group) == 1:
        return dg.RunRequest(run_key=first_key, partition_key=first)
    tags = {RANGE_START_TAG: first, RANGE_END_TAG: last, **{batch_attempt_tag(b): key for b, key in group}}
    return dg.RunRequest(run_key=f"{first_key}..{last_key}", tags=tags)


def batch_work(
    instance: dg.DagsterInstance,
    store: ObjectStore,
    max_attempts: int,
    backoff_seconds: float,
    now: float | None = None,
    daemon_retries: bool = True,
    listed: list[inbox.BatchProgress] | None = None,
) -> BatchWork:
    """Decide for every unfinished batch, in key order; park the ones out of attempts. `listed`: the
    open batches as the caller has just listed them (`inbox.open_batch_progress`); else listed here.

    A batch waiting out its back-off holds back later batches that would need a new run (their
    grouping would only refuse); a parked batch holds back nothing."""
    now = time.time() if now is None else now
    work = BatchWork()
    for progress in inbox.open_batch_progress(store) if listed is None else listed:
        if progress.stray:
            work.stray.append(inbox.stray_folder(progress))
            continue
        if progress.finished or progress.parked is not None:
            continue
        batch = progress.batch
        attempts = batch_attempts(instance, signal_batch_job.name, batch, daemon_retries, now)
        forgiven = inbox.attempts_before_unpark(store, batch)
        decision = next_step(batch, attempts, now, max_attempts, backoff_seconds, attempts_forgiven=forgiven)
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
            if decision.failed_attempts > forgiven:
                work.retried.add(batch)
    return work


def unrecorded_batch_work(
    instance: dg.DagsterInstance, store: ObjectStore, daemon_retries: bool = True, now: float | None = None
) -> BatchWork:
    """Runs that record the batches failed attempts grouped but left without a `report_assignments`
    materialisation: a kill, or a later batch of the run's range failing, ended the step before it recorded
    them, so the UI showed a grouped batch as failed. Every step of such a run skips a grouped batch
    (`assets.ingestion.grouped_by_earlier_run`) and records it, as Dagster's retry of the failed run
    does while it has retries left (`daemon_retries`: a failed run Dagster will retry, or has retried
    and whose retry has not ended, is left to that retry). Looks at the newest failed attempts
    (`run_attempts.ended_failed_attempts`)."""
    newest_key: dict[str, str] = {}  # {batch: the attempt key of its newest failed run}
    for run in ended_failed_attempts(instance, signal_batch_job.name, daemon_retries, now):  # newest first
        for batch in attempted_batches(run.tags.get(PARTITION_NAME_TAG), run.tags):
            newest_key.setdefault(batch, run.tags.get(batch_attempt_tag(batch), run.tags[RUN_KEY_TAG]))
    to_run = [
        (batch, key)
        for batch in sorted(newest_key)
        if (key := next_recording_key(batch, newest_key[batch]))
        # The instance's answers first: the object store's may each be a request to a server.
        and instance.has_dynamic_partition(SIGNAL_BATCHES, batch)  # not retired since
        and not has_materialisation(instance, report_assignments.key, batch)
        # Dagster's retry of the failed run, queued or running, records it: a recording run beside it is a second
        and not any(a.in_flight for a in batch_attempts(instance, signal_batch_job.name, batch, daemon_retries, now))
        and inbox.stage_done_by(store, batch, inbox.GROUPED) is not None
    ]
    return BatchWork(to_run=to_run)


def read_cursor(text: str | None) -> dict:
    """The sensor's cursor: the last batch it claimed and how many signals it claimed so far. The store,
    not the cursor, knows the batches (`claim_pending` keys new ones after them and ignores a last batch
    that is no batch key), so a cursor set by hand that does not parse reads as a fresh one instead of
    failing every tick."""
    try:
        cursor = json.loads(text) if text else {}
    except ValueError:
        cursor = {}
    cursor = cursor if isinstance(cursor, dict) else {}
    claimed = cursor.get("claimed_signals")
    return {"last_batch": cursor.get("last_batch"), "claimed_signals": claimed if type(claimed) is int else 0}


def build_signal_inbox_sensor(
    max_signals_per_batch: int,
    interval_seconds: int = 5,
    max_attempts: int = 3,
    backoff_seconds: float = 60,
    max_per_team: int | None = None,
    max_open_batches: int = 1,
    max_batches_per_run: int = 20,
) -> dg.SensorDefinition:
    @dg.sensor(
        name="signal_inbox_sensor",
        job=signal_batch_job,
        minimum_interval_seconds=minimum_interval_seconds(interval_seconds),
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Claims pending inbox objects into batches (round-robin across teams, at most "
        f"{max_open_batches} unfinished batch(es) at a time) and requests a run per range of up to "
        f"{max_batches_per_run} consecutive batches (a single batch: run key = batch key). An unfinished "
        "batch whose runs all failed is requested again alone with back-off (`<batch>-retry<N>`), in key "
        f"order, and parked with its reason after {max_attempts} failed attempts.",
    )
    def signal_inbox_sensor(context: dg.SensorEvaluationContext, object_store: ObjectStoreResource):
        cursor = read_cursor(context.cursor)
        store = object_store.open()
        # Claimed late, claimed fair: a batch formed only when the previous ones are nearly done sees
        # every team's latest signals, so another team's burst delays them by at most those batches.
        listed = inbox.open_batch_progress(store)
        open_batches = len(inbox.unfinished(listed))
        claim = inbox.claim_pending(
            store,
            max_signals_per_batch,
            cursor.get("last_batch"),
            max_per_team=max_per_team,
            max_batches=max(0, max_open_batches - open_batches),
        )
        # One listing a tick: the claim's batches are known. Listed again only when the claim formed
        # batches while others were unfinished: its moves take seconds, in which a run may finish one of
        # those, and by the first listing it would be requested again.
        fresh = None if claim.new_batches and open_batches else inbox.with_new_batches(listed, claim.new_batches)
        work = batch_work(context.instance, store, max_attempts, backoff_seconds, listed=fresh)
        new_cursor = json.dumps(
            {
                "last_batch": claim.last_batch,
                "claimed_signals": cursor["claimed_signals"] + claim.claimed_signals,
            }
        )
        seen = (
            f"{len(work.in_flight)} batch(es) in flight, {len(work.waiting)} waiting to retry "
            f"({'; '.join(work.waiting)}), {len(work.held)} held behind them, parked now: {work.parked_now}"
            + (
                f"; stray folders, which no batch run processes (see `signals status`): {work.stray}"
                if work.stray
                else ""
            )
            + (
                f"; {len(claim.refused)} inbox object(s) the store refused to move stay in the inbox "
                f"(first: {claim.refused[0]})"
                if claim.refused
                else ""
            )
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
            run_requests=work.run_requests(
                context.instance.get_dynamic_partitions(SIGNAL_BATCHES), max_batches_per_run
            ),
            dynamic_partitions_requests=[work.partitions_request()],
            cursor=new_cursor,
        )

    return signal_inbox_sensor
