"""First grouping engine: nearest assigned signal above a similarity threshold, then the lifecycle.

Pure functions over plain data; `assets/grouping.py` fetches candidates from ClickHouse and
writes the results. Each signal of a batch is decided in order and sees the signals decided
before it in the same batch, so two similar signals of one batch end in one report.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Sequence

from signals_assets import lifecycle
from signals_assets.lifecycle import ReportState
from signals_assets.text import summary_from, title_from

JOIN_THRESHOLD = 0.675  # best fixed threshold on the Banking77 dev set (shared/datasets/README.md)
TOP_K = 10


@dataclass(frozen=True)
class BatchSignal:
    signal_id: str
    team_id: int
    description: str
    weight: float
    embedding: Sequence[float]


@dataclass(frozen=True)
class Candidate:
    signal_id: str
    report_id: str
    similarity: float


@dataclass(frozen=True)
class Event:
    report_id: str
    event: str
    status: str
    title: str = ""
    summary: str = ""
    signals_at_run: int = 0
    research_round: int = 0
    detail: str = ""


@dataclass(frozen=True)
class Assignment:
    signal_id: str
    report_id: str
    decision: str  # joined | created | recurrence | deleted_report
    matched_signal_id: str
    similarity: float
    weight: float
    deleted: bool


@dataclass
class BatchPlan:
    assignments: list[Assignment] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)

    @property
    def promotions(self) -> list[Event]:
        return [e for e in self.events if e.event == "promoted"]


def report_id_for(team_id: int, seed_signal_id: str) -> str:
    """Deterministic, so re-materialising a batch recreates the same report ids."""
    return f"r{team_id}-{hashlib.sha1(f'{team_id}:{seed_signal_id}'.encode()).hexdigest()[:16]}"


def best_candidate(candidates: list[Candidate], threshold: float) -> Candidate | None:
    best = max(candidates, key=lambda c: c.similarity, default=None)
    return best if best is not None and best.similarity >= threshold else None


def plan_batch(
    signals: Sequence[BatchSignal],
    stored_candidates: dict[str, list[Candidate]],
    states: dict[str, ReportState],
    threshold: float = JOIN_THRESHOLD,
) -> BatchPlan:
    """Decide every signal in order; `states` (report id → state before this batch) is updated."""
    import numpy as np

    plan = BatchPlan()
    matrix = np.asarray([s.embedding for s in signals], dtype=np.float32).reshape(len(signals), -1)
    decided: list[tuple[int, str]] = []  # (index in batch, report id) of signals assigned so far
    for index, signal in enumerate(signals):
        same_team = [(i, report_id) for i, report_id in decided if signals[i].team_id == signal.team_id]
        local = []
        if same_team:
            similarities = matrix[[i for i, _ in same_team]] @ matrix[index]
            local = [
                Candidate(signals[i].signal_id, report_id, float(similarity))
                for (i, report_id), similarity in zip(same_team, similarities)
            ]
        candidates = sorted(stored_candidates.get(signal.signal_id, []) + local, key=lambda c: -c.similarity)
        match = best_candidate(candidates[:TOP_K], threshold)
        assignment = _assign(signal, match, states, plan.events)
        plan.assignments.append(assignment)
        if not assignment.deleted:
            decided.append((index, assignment.report_id))
    return plan


def _assign(signal: BatchSignal, match: Candidate | None, states: dict[str, ReportState], events: list[Event]):
    matched_state = states.get(match.report_id) if match else None
    matched_status = matched_state.status if matched_state else None
    if match and matched_status == lifecycle.DELETED:
        return Assignment(signal.signal_id, match.report_id, "deleted_report", match.signal_id, match.similarity,
                          signal.weight, deleted=True)
    if match and matched_status != lifecycle.RESOLVED:
        report_id, decision = match.report_id, "joined"
    else:
        report_id = report_id_for(signal.team_id, signal.signal_id)
        decision = "recurrence" if match else "created"
        states[report_id] = ReportState(report_id)
        states[report_id] = states[report_id].moved_to(lifecycle.POTENTIAL)
        events.append(Event(
            report_id, "created", lifecycle.POTENTIAL, title_from(signal.description), summary_from([signal.description]),
            detail=f"recurrence_of:{match.report_id}" if match else "",
        ))
    state = states[report_id].with_signal(signal.weight)
    if lifecycle.should_promote(state):
        state = state.moved_to(lifecycle.CANDIDATE, research_round=state.research_round + 1)
        events.append(Event(report_id, "promoted", lifecycle.CANDIDATE, signals_at_run=state.signals_at_run,
                            research_round=state.research_round,
                            detail=f"{state.signal_count} signals, weight {state.total_weight:g}"))
    states[report_id] = state
    return Assignment(signal.signal_id, report_id, decision, match.signal_id if match else "",
                      match.similarity if match else 0.0, signal.weight, deleted=False)
