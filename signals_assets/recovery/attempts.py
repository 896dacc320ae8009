"""When to run a unit of work (a batch, a report round) again, and when to give up on it.

Pure decisions over the attempts made so far, shared by the sensors and `signals process`. An
attempt is one run key: `<unit>` first, then `<unit>-retry<N>` (deterministic, so a sensor tick
that dies and is re-evaluated requests the same key). Dagster's own run retries of one run key are
the same attempt. A failed attempt is retried after an exponential back-off; after
`max_attempts` failed attempts the unit is parked with the reason, never silently dropped. A run
that refused to group out of order is not the unit's fault and never counts. Nor does, up to
INTERRUPTIONS_ALLOWED, an attempt cut off by a restart: every run of it was *interrupted* (its worker
died with the process that asked for it: the daemon, `signals process` or the host was killed), so
killing the platform again and again never parks healthy work. A unit that kills the process
running it every time (say, memory) would look the same; past the allowance each interruption counts.
"""

from __future__ import annotations

from dataclasses import dataclass

RETRY_SUFFIX = "-retry"
# Interrupted attempts of one unit forgiven before they count as failed: far more restarts than a
# unit meets by chance, few enough that one that crashes its own process is parked within the hour.
INTERRUPTIONS_ALLOWED = 20


@dataclass(frozen=True)
class Attempt:
    run_key: str
    in_flight: bool  # queued or running, or failed with Dagster's own retry still to come
    succeeded: bool
    refused: bool  # refused to run before an earlier unit finished: not a failure of this unit
    ended_at: float | None  # unix time
    run_id: str = ""
    created_at: float = 0.0
    interrupted: bool = False  # failed because a restart killed its worker with the process that asked for it


@dataclass(frozen=True)
class Decision:
    action: str  # "run" | "in_flight" | "wait" | "park"
    run_key: str = ""
    failed_attempts: int = 0
    detail: str = ""


def attempt_run_key(unit: str, number: int) -> str:
    return unit if number == 0 else f"{unit}{RETRY_SUFFIX}{number}"


def attempt_number(unit: str, run_key: str) -> int | None:
    """The attempt a run key stands for, None when it is not one of `unit`'s keys."""
    if run_key == unit:
        return 0
    suffix = run_key[len(unit) :]
    if run_key.startswith(unit) and suffix.startswith(RETRY_SUFFIX) and suffix[len(RETRY_SUFFIX) :].isdigit():
        return int(suffix[len(RETRY_SUFFIX) :])
    return None


def attempt_unit(run_key: str) -> str:
    """The unit an attempt key belongs to: the key without its `-retry<N>` suffix."""
    unit, separator, number = run_key.rpartition(RETRY_SUFFIX)
    return unit if separator and number.isdigit() else run_key


def next_attempt_number(unit: str, attempts: list[Attempt]) -> int:
    """The first attempt number after every one of `unit`'s keys among `attempts`."""
    numbers = [n for n in (attempt_number(unit, a.run_key) for a in attempts) if n is not None]
    return max(numbers, default=-1) + 1


def counted_failures(attempts: list[Attempt]) -> tuple[int, int]:
    """(counted, interrupted) of the failed attempts, the run keys none of whose runs succeeded,
    refused or is in flight: `interrupted` had every run interrupted by a restart; `counted` count
    against the unit's limit (those that failed on their own, and interruptions past
    INTERRUPTIONS_ALLOWED)."""
    keys = {a.run_key for a in attempts}
    fine = {a.run_key for a in attempts if a.succeeded or a.refused or a.in_flight}
    own_failures = {a.run_key for a in attempts if not a.interrupted}
    failed = keys - fine
    interrupted = len(failed - own_failures)
    return len(failed) - interrupted + max(0, interrupted - INTERRUPTIONS_ALLOWED), interrupted


def next_step(
    unit: str,
    attempts: list[Attempt],
    now: float,
    max_attempts: int,
    backoff_seconds: float,
    attempts_forgiven: int = 0,
    used_keys: int | None = None,
) -> Decision:
    """What to do for an unfinished `unit` given its attempts.

    `attempts_forgiven`: failed attempts an operator has already waived (unparking).
    `used_keys`: attempt keys ever used (default: those in `attempts`), so a new key is never reused."""
    if any(a.in_flight for a in attempts):
        return Decision("in_flight", detail=f"{unit}: a run is queued or running")
    failed, interrupted = counted_failures(attempts)
    counted = max(0, failed - attempts_forgiven)
    number = max(used_keys or 0, next_attempt_number(unit, attempts))
    if counted >= max_attempts:
        restarts = f"; {interrupted} cut off by restarts ({INTERRUPTIONS_ALLOWED} forgiven)" if interrupted else ""
        return Decision(
            "park",
            failed_attempts=failed,
            detail=f"{unit}: {counted} attempt(s) failed (limit {max_attempts}){restarts}",
        )
    if counted:
        last_end = max((a.ended_at or 0) for a in attempts)
        ready_at = last_end + backoff_seconds * 2 ** (counted - 1)
        if now < ready_at:
            return Decision(
                "wait",
                failed_attempts=failed,
                detail=f"{unit}: attempt {counted} failed, retry in {ready_at - now:.0f}s",
            )
    return Decision("run", attempt_run_key(unit, number), failed_attempts=failed)
