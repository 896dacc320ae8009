"""Reading a unit's attempts (batch or report round) from Dagster's run storage."""

import time
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timezone

import dagster as dg

from signals_assets.assets.grouping import REFUSED_TAG
from signals_assets.jobs import batch_attempt_tag
from signals_assets.recovery.attempts import Attempt, attempt_number, attempt_unit
from signals_assets.sensors.dead_runs import INTERRUPTED_TAG, RETRY_CONSUMER_CURSOR

RUN_KEY_TAG = "dagster/run_key"
PARTITION_TAG = "dagster/partition"
WILL_RETRY_TAG = "dagster/will_retry"
AUTO_RETRY_RUN_ID_TAG = "dagster/auto_retry_run_id"
# The daemon launches a promised retry seconds after the failure; one still missing after this long
# never comes (e.g. the daemon was killed in between), and the unit is retried by its own attempt keys.
PROMISED_RETRY_GRACE_SECONDS = 300
# More failures than this unread by the retry consumer: it is far behind, and only the grace tells.
UNREAD_FAILURES_LIMIT = 1000
# How many of the newest failed attempts of a job `ended_failed_attempts` returns.
FAILED_RUNS_LOOKED_AT = 25
# The attempt key of a run that only records what a failed attempt did (`signal_inbox.unrecorded_batch_work`,
# `report_promotion.unrecorded_report_requests`).
RECORDING_SUFFIX = "-recorded"
# How many such runs one batch or report gets: the daemon never requests a run key twice, so each is numbered
# (`…-recorded`, `…-recorded2`, …); one that keeps failing is left to the operator (a backfill records it).
MAX_RECORDING_RUNS = 3


def next_recording_key(unit: str, newest_failed_key: str) -> str | None:
    """The run key of the next run that records what a failed run did for `unit` (a batch, or a report's
    attempt unit), given the run key of `unit`'s newest failed run: `<unit>-recorded` after an attempt,
    the next number after a failed recording run, None after MAX_RECORDING_RUNS of them."""
    recorded = f"{unit}{RECORDING_SUFFIX}"
    number = newest_failed_key[len(recorded) :] if newest_failed_key.startswith(recorded) else None
    done = 0 if number is None else 1 if number == "" else int(number) if number.isdigit() else 0
    if done >= MAX_RECORDING_RUNS:
        return None
    return f"{recorded}{done + 1}" if done else recorded


def retry_promised(run: dg.DagsterRun) -> bool:
    """Dagster said it will retry the failed run and has not yet named the retry."""
    return (
        run.status == dg.DagsterRunStatus.FAILURE
        and run.tags.get(WILL_RETRY_TAG) == "true"
        and AUTO_RETRY_RUN_ID_TAG not in run.tags
    )


def retry_consumer_position(instance: dg.DagsterInstance, daemon_retries: bool) -> int | None:
    """How far Dagster's run-retry consumer has read the run failures, when the daemon's retries count;
    None when they do not or it cannot be told (no cursor yet). Read it before the runs it judges
    (`unread_failures_of`): the consumer names its retry on the failed run before it moves past the
    failure, so a failure it had read by then shows its retry in runs read after; read the other way
    round, a retry made in between looks like one that is not coming, and the unit is run twice."""
    if not daemon_retries:
        return None
    cursor = instance.daemon_cursor_storage.get_cursor_values({RETRY_CONSUMER_CURSOR}).get(RETRY_CONSUMER_CURSOR)
    return int(cursor) if cursor is not None and cursor.isdigit() else None


def unread_failures_of(
    instance: dg.DagsterInstance, records: Sequence[dg.RunRecord], position: int | None
) -> frozenset[str] | None:
    """The runs with a failure after `position` (`retry_consumer_position`, read before `records`): those
    the run-retry consumer had not read. A promised retry of any other failed run of `records` is not
    coming: it drops a failure it read a moment before the run's status said so (the event is written
    first). Read only when a run of `records` has a retry promised; None when that cannot be told (no
    position, or the consumer far behind)."""
    if position is None or not any(retry_promised(r.dagster_run) for r in records):
        return None
    unread = instance.event_log_storage.get_logs_for_all_runs_by_log_id(
        after_cursor=position, dagster_event_type={dg.DagsterEventType.RUN_FAILURE}, limit=UNREAD_FAILURES_LIMIT
    )
    return None if len(unread) >= UNREAD_FAILURES_LIMIT else frozenset(entry.run_id for entry in unread.values())


def as_attempt(
    record: dg.RunRecord,
    daemon_retries: bool = True,
    now: float | None = None,
    unread: frozenset[str] | None = None,
) -> Attempt:
    """`daemon_retries`: whether a retry Dagster promised (the daemon makes it) counts as in flight,
    until the retry consumer has read the failure (`unread`: `unread_failures_of`, None when not known)
    and for at most PROMISED_RETRY_GRACE_SECONDS after it; `signals process` does not wait for one,
    the daemon may not be running."""
    run = record.dagster_run
    now = time.time() if now is None else now
    retry_pending = (
        daemon_retries
        and retry_promised(run)
        and (unread is None or run.run_id in unread)
        and (record.end_time is None or now - record.end_time < PROMISED_RETRY_GRACE_SECONDS)
    )
    return Attempt(
        run_key=run.tags.get(RUN_KEY_TAG, ""),
        in_flight=not run.is_finished or retry_pending,
        succeeded=run.status == dg.DagsterRunStatus.SUCCESS,
        refused=run.tags.get(REFUSED_TAG) == run.run_id,
        ended_at=record.end_time,
        run_id=run.run_id,
        created_at=record.create_timestamp.timestamp(),
        # Dagster's retries copy their parent's tags: the tag names the run it is about.
        interrupted=run.tags.get(INTERRUPTED_TAG) == run.run_id,
    )


def ended_failed_attempts(
    instance: dg.DagsterInstance, job_name: str, daemon_retries: bool = True, now: float | None = None
) -> list[dg.DagsterRun]:
    """The FAILED_RUNS_LOOKED_AT newest failed attempts of `job_name` (runs with a run key: a failed
    manual run is the operator's to run again) that no retry Dagster promised is still to follow
    (`as_attempt`, with `daemon_retries`)."""
    position = retry_consumer_position(instance, daemon_retries)
    records = instance.get_run_records(
        filters=dg.RunsFilter(job_name=job_name, statuses=[dg.DagsterRunStatus.FAILURE]), limit=FAILED_RUNS_LOOKED_AT
    )
    records = [r for r in records if RUN_KEY_TAG in r.dagster_run.tags]
    unread = unread_failures_of(instance, records, position)
    return [r.dagster_run for r in records if not as_attempt(r, daemon_retries, now, unread).in_flight]


def unit_attempts(
    instance: dg.DagsterInstance,
    job_name: str,
    partition: str,
    unit: str,
    daemon_retries: bool = True,
    now: float | None = None,
) -> list[Attempt]:
    """The runs of `job_name` for `partition` whose run key is one of `unit`'s attempt keys."""
    position = retry_consumer_position(instance, daemon_retries)
    records = instance.get_run_records(filters=dg.RunsFilter(job_name=job_name, tags={PARTITION_TAG: partition}))
    unread = unread_failures_of(instance, records, position)
    return [
        as_attempt(r, daemon_retries, now, unread)
        for r in records
        if attempt_number(unit, r.dagster_run.tags.get(RUN_KEY_TAG, "")) is not None
    ]


def batch_attempts(
    instance: dg.DagsterInstance, job_name: str, batch: str, daemon_retries: bool = True, now: float | None = None
) -> list[Attempt]:
    """The attempts of a batch: runs of its own partition under one of its attempt keys, and runs over a
    range of batches that name an attempt of it in its per-batch tag (a range run that did not finish
    the batch is a failed attempt of it, like a single run)."""
    attempts = unit_attempts(instance, job_name, batch, batch, daemon_retries, now)
    tag = batch_attempt_tag(batch)
    keys = {key for _, values in instance.get_run_tags([tag]) for key in values}
    if keys:
        position = retry_consumer_position(instance, daemon_retries)
        records = instance.get_run_records(filters=dg.RunsFilter(job_name=job_name, tags={tag: sorted(keys)}))
        unread = unread_failures_of(instance, records, position)
        attempts += [
            replace(as_attempt(r, daemon_retries, now, unread), run_key=r.dagster_run.tags[tag]) for r in records
        ]
    return attempts


def round_attempts(
    instance: dg.DagsterInstance,
    job_name: str,
    rounds_tag: str,
    since: float,
    daemon_retries: bool = True,
    now: float | None = None,
) -> dict[str, list[Attempt]]:
    """The attempts of every report round made by runs of `job_name` created at or after `since`
    (unix time), by round. A run covers the rounds its `rounds_tag` lists (attempt keys separated by
    spaces); a run without it, the round of its run key."""
    position = retry_consumer_position(instance, daemon_retries)
    records = instance.get_run_records(
        filters=dg.RunsFilter(job_name=job_name, created_after=datetime.fromtimestamp(since, tz=timezone.utc))
    )
    unread = unread_failures_of(instance, records, position)
    by_unit: dict[str, list[Attempt]] = {}
    for record in records:
        attempt = as_attempt(record, daemon_retries, now, unread)
        for key in (record.dagster_run.tags.get(rounds_tag) or attempt.run_key).split():
            by_unit.setdefault(attempt_unit(key), []).append(replace(attempt, run_key=key))
    return by_unit


def last_failed_run(attempts: list[Attempt]) -> str:
    failed = [a for a in attempts if not (a.succeeded or a.refused)]
    return max(failed, key=lambda a: a.ended_at or 0).run_id if failed else ""


def failure_reason(instance: dg.DagsterInstance, run_id: str) -> str:
    """The last step or run failure message of a run, for a park record."""
    for event_type in (dg.DagsterEventType.STEP_FAILURE, dg.DagsterEventType.RUN_FAILURE):
        entries = instance.all_logs(run_id, of_type=event_type)
        if entries:
            event = entries[-1].dagster_event
            error = getattr(event.event_specific_data, "error", None) if event else None
            # Dagster wraps what the step raised ("Error occurred while executing op …"): the cause says why.
            while error is not None and error.cls_name == "DagsterExecutionStepExecutionError" and error.cause:
                error = error.cause
            message = error.message.strip() if error else entries[-1].message
            return f"run {run_id}: {message}"[:500]
    return f"run {run_id} failed" if run_id else "no failed run"
