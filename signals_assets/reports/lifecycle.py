"""Report statuses, guarded transitions and the promotion rule (weight threshold, research gate)."""

from __future__ import annotations

from dataclasses import dataclass, replace

POTENTIAL = "potential"
CANDIDATE = "candidate"
IN_PROGRESS = "in_progress"
PENDING_INPUT = "pending_input"
READY = "ready"
RESOLVED = "resolved"
FAILED = "failed"
DELETED = "deleted"
SUPPRESSED = "suppressed"

STATUSES = (POTENTIAL, CANDIDATE, IN_PROGRESS, PENDING_INPUT, READY, RESOLVED, FAILED, DELETED, SUPPRESSED)

WEIGHT_THRESHOLD = 1.0
RESEARCH_GATE_STEP = 3
RERESEARCH_MAX_SIGNALS = 10

_NOT_DELETED = set(STATUSES) - {DELETED}
TRANSITIONS: dict[str | None, set[str]] = {
    None: {POTENTIAL},
    POTENTIAL: {CANDIDATE, FAILED, SUPPRESSED, DELETED},
    CANDIDATE: {IN_PROGRESS, POTENTIAL, PENDING_INPUT, FAILED, SUPPRESSED, DELETED},
    IN_PROGRESS: {CANDIDATE, READY, PENDING_INPUT, POTENTIAL, FAILED, SUPPRESSED, DELETED},
    PENDING_INPUT: {POTENTIAL, RESOLVED, FAILED, SUPPRESSED, DELETED},
    READY: {CANDIDATE, POTENTIAL, RESOLVED, FAILED, SUPPRESSED, DELETED},
    RESOLVED: {POTENTIAL, FAILED, SUPPRESSED, DELETED},
    FAILED: {POTENTIAL, SUPPRESSED, DELETED},
    SUPPRESSED: {PENDING_INPUT, READY, RESOLVED, FAILED, POTENTIAL, DELETED},
    DELETED: set(),
}


class InvalidTransition(ValueError):
    def __init__(self, current: str | None, new: str):
        super().__init__(f"report status cannot change from {current or 'nothing'} to {new}")
        self.current, self.new = current, new


def check_transition(current: str | None, new: str) -> str:
    if new not in STATUSES:
        raise ValueError(f"status: {new!r} is not one of {', '.join(STATUSES)}")
    if new not in TRANSITIONS[current]:
        raise InvalidTransition(current, new)
    return new


@dataclass(frozen=True)
class ReportState:
    report_id: str
    status: str | None = None
    signal_count: int = 0
    total_weight: float = 0.0
    signals_at_run: int = 0
    research_round: int = 0

    def with_signal(self, weight: float) -> "ReportState":
        return replace(self, signal_count=self.signal_count + 1, total_weight=self.total_weight + weight)

    def moved_to(self, status: str, **changes) -> "ReportState":
        check_transition(self.status, status)
        return replace(self, status=status, **changes)


def should_promote(state: ReportState) -> bool:
    """Promote a potential report once it has weight and has passed its research gate; re-research
    a ready report on new signals while it has at most RERESEARCH_MAX_SIGNALS signals."""
    if state.status == POTENTIAL:
        return state.total_weight >= WEIGHT_THRESHOLD and state.signal_count >= state.signals_at_run
    if state.status == READY:
        return state.signal_count <= RERESEARCH_MAX_SIGNALS
    return False


def research_gate(signal_count: int) -> int:
    """`signals_at_run` set when research starts: the next run waits for a few more signals."""
    return signal_count + RESEARCH_GATE_STEP
