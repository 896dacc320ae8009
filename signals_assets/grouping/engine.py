"""The grouping engine's batch logic: candidates → candidate reports → decision → lifecycle.

Pure functions over plain data; `grouping/store.py` reads candidates and report statistics
from ClickHouse and writes the results, and a provider (offline or LLM) makes each decision.
Signals are decided in batch order and each sees the signals decided before it in the same
batch, so two similar signals of one batch end in one report.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Callable, Sequence

from signals_assets.grouping.extractive_text import summary_from, title_from
from signals_assets.reports import lifecycle
from signals_assets.reports.lifecycle import ReportState

if TYPE_CHECKING:
    import numpy

    from signals_assets.grouping.consolidation import ConsolidationParameters, PoolSignal

TOP_K = 10


@dataclass(frozen=True)
class BatchSignal:
    signal_id: str
    team_id: int
    description: str
    weight: float
    embedding: Sequence[float]
    probes: tuple = ()  # embeddings of the search queries; the signal's own text is always probe 0


@dataclass(frozen=True)
class Candidate:
    signal_id: str
    report_id: str
    similarity: float
    probe: int = 0


class ReportStats:
    """Running statistics of a report's members, updated as signals join during a batch.

    Keeps the sum of the (L2-normalised) member vectors and the count. With unit members and the
    unit centroid c = S/|S|, the mean member cosine to the centroid is |S|/n exactly, and the mean
    pairwise member similarity is (|S|² − n)/(n(n − 1)): no second pass over the members. Also
    keeps the title and a few member texts for providers that read them.
    """

    MAX_EXAMPLES = 8  # member texts kept for a specificity check

    def __init__(self, total=None, count: int = 0, title: str = "", examples: Sequence[str] = ()):
        import numpy as np

        self.total = None if total is None else np.asarray(total, dtype=np.float64)
        self.count = count
        self.title = title
        self.examples = list(examples)[: self.MAX_EXAMPLES]
        self._unit: tuple[numpy.ndarray, float] | None = None  # asked per candidate: cached until the next `add`

    @classmethod
    def of(cls, vectors: Sequence[Sequence[float]], title: str = "") -> "ReportStats":
        stats = cls(title=title)
        for vector in vectors:
            stats.add(vector)
        return stats

    def add(self, vector: Sequence[float], text: str = "") -> None:
        import numpy as np

        unit = np.asarray(vector, dtype=np.float64)
        norm = float(np.linalg.norm(unit))
        unit = unit / norm if norm > 0 else unit
        self.total = unit if self.total is None else self.total + unit
        self.count += 1
        self._unit = None
        if text and len(self.examples) < self.MAX_EXAMPLES:
            self.examples.append(text)

    @property
    def centroid(self) -> numpy.ndarray:
        """Unit centroid (the direction of the member sum)."""
        return self._summary()[0]

    @property
    def cohesion(self) -> float:
        if self.total is None or not self.count:
            return 0.0
        return self._summary()[1]

    def _summary(self) -> tuple[numpy.ndarray, float]:
        """(centroid, cohesion), computed once until the next `add`."""
        import numpy as np

        total = self.total
        if total is None:
            raise ValueError("a report with no members has no centroid")
        if self._unit is None:
            norm = float(np.linalg.norm(total))
            self._unit = (total / norm if norm > 0 else total, norm / self.count if self.count else 0.0)
        return self._unit

    def candidate(
        self,
        report_id: str,
        best_similarity: float,
        best_signal_id: str,
        probe_hits: int = 1,
        best_signal_text: str = "",
    ) -> "CandidateReport":
        return CandidateReport(
            report_id,
            self.centroid,
            self.count,
            self.cohesion,
            best_similarity,
            best_signal_id,
            probe_hits,
            self.title,
            best_signal_text,
            tuple(self.examples),
        )


@dataclass(frozen=True)
class CandidateReport:
    """A report found by at least one probe, with what a provider needs to decide."""

    report_id: str
    centroid: Sequence[float] | numpy.ndarray  # unit length
    size: int
    cohesion: float  # mean cosine of the members to the centroid; 1.0 for a single member
    best_similarity: float  # best cosine of the signal to one of the report's found members
    best_signal_id: str
    probe_hits: int = 1  # how many probes (text, search queries) found the report
    title: str = ""
    best_signal_text: str = ""  # texts are filled only for providers that read them (LLM)
    member_texts: tuple[str, ...] = ()


@dataclass(frozen=True)
class MatchDecision:
    report_id: str | None  # None: start a new report
    matched_signal_id: str = ""
    reason: str = ""
    score: float = 0.0
    title: str = ""  # for a new report, or a better title for the matched one
    summary: str = ""


Decide = Callable[[BatchSignal, list[CandidateReport]], MatchDecision]
# The consolidation's clustering: a label per pool signal, given the pool (`pool[stored:]` came in this
# batch) and the report states after the one-pass decisions.
Regroup = Callable[[Sequence["PoolSignal"], int, dict[str, ReportState]], list[int]]


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
    reason: str = ""


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


def cluster_report_ids(team_id: int, seed_signal_id: str) -> tuple[str, str]:
    """The ids the consolidation gives a new cluster whose first signal is `seed_signal_id`: its own id,
    else (taken) a variant of it."""
    return report_id_for(team_id, seed_signal_id), report_id_for(team_id, f"{seed_signal_id}+")


def candidate_reports(
    signal: BatchSignal, candidates: list[Candidate], stats: dict[str, ReportStats], texts: dict[str, str]
) -> list[CandidateReport]:
    """Group the per-probe candidates by report, with the report's context; best first."""
    by_report: dict[str, list[Candidate]] = {}
    for candidate in candidates:
        if candidate.report_id in stats:
            by_report.setdefault(candidate.report_id, []).append(candidate)
    reports = []
    for report_id, found in by_report.items():
        best = max(found, key=lambda c: c.similarity)
        reports.append(
            stats[report_id].candidate(
                report_id, best.similarity, best.signal_id, len({c.probe for c in found}), texts.get(best.signal_id, "")
            )
        )
    return sorted(reports, key=lambda r: (-r.best_similarity, r.report_id))


class _Decided:
    """One team's signals decided so far in the batch (not deleted), with their float32 embeddings as the
    first rows of one matrix filled in place: stacking them again for every later signal cost the batch
    time quadratic in its size."""

    def __init__(self, capacity: int, dimensions: int):
        import numpy as np

        self.matrix = np.empty((capacity, dimensions), dtype=np.float32)
        self.signals: list[tuple[str, str]] = []  # (signal id, report id), in decision order

    def add(self, signal_id: str, report_id: str, vector) -> None:
        self.matrix[len(self.signals)] = vector
        self.signals.append((signal_id, report_id))


def _local_candidates(signal: BatchSignal, earlier: _Decided) -> list[Candidate]:
    """The nearest earlier signals of the batch."""
    import numpy as np

    if not earlier.signals:
        return []
    matrix = earlier.matrix[: len(earlier.signals)]
    found = []
    for probe, vector in enumerate((signal.embedding, *signal.probes)):
        similarities = matrix @ np.asarray(vector, dtype=np.float32)
        for index in np.argsort(-similarities, kind="stable")[:TOP_K]:
            other, report_id = earlier.signals[index]
            found.append(Candidate(other, report_id, float(similarities[index]), probe))
    return found


def _top_per_probe(candidates: list[Candidate]) -> list[Candidate]:
    by_probe: dict[int, list[Candidate]] = {}
    for candidate in candidates:
        by_probe.setdefault(candidate.probe, []).append(candidate)
    return [c for found in by_probe.values() for c in sorted(found, key=lambda c: -c.similarity)[:TOP_K]]


def plan_batch(
    signals: Sequence[BatchSignal],
    stored_candidates: dict[str, list[Candidate]],
    stats: dict[str, ReportStats],
    states: dict[str, ReportState],
    decide: Decide,
    texts: dict[str, str] | None = None,
) -> BatchPlan:
    """Decide every signal in order; `stats` and `states` (as before this batch) are updated.

    `texts` maps candidate signal ids to descriptions, for providers that read them."""
    import numpy as np

    plan = BatchPlan()
    texts = {**(texts or {}), **{s.signal_id: s.description for s in signals}}
    vectors = [np.asarray(s.embedding, dtype=np.float32) for s in signals]
    team_sizes = Counter(s.team_id for s in signals)
    decided: dict[int, _Decided] = {}  # by team, each sized for the team's signals in the batch
    for signal, vector in zip(signals, vectors):
        if signal.team_id not in decided:
            decided[signal.team_id] = _Decided(team_sizes[signal.team_id], len(vector))
        earlier = decided[signal.team_id]
        local = _local_candidates(signal, earlier)
        found = _top_per_probe(stored_candidates.get(signal.signal_id, []) + local)
        reports = candidate_reports(signal, found, stats, texts)
        decision = decide(signal, reports) if reports else MatchDecision(None, reason="no candidates")
        matched = next((r for r in reports if r.report_id == decision.report_id), None)
        assignment = _assign(signal, decision, matched, stats, states, plan.events)
        plan.assignments.append(assignment)
        if not assignment.deleted:
            earlier.add(signal.signal_id, assignment.report_id, vector)
    return plan


def _promoted_if_due(state: ReportState, events: list[Event]) -> ReportState:
    """The state after the promotion rule, with a `promoted` event when it fires."""
    if not lifecycle.should_promote(state):
        return state
    state = state.moved_to(lifecycle.CANDIDATE, research_round=state.research_round + 1)
    events.append(
        Event(
            state.report_id,
            "promoted",
            lifecycle.CANDIDATE,
            signals_at_run=state.signals_at_run,
            research_round=state.research_round,
            detail=f"{state.signal_count} signals, weight {state.total_weight:g}",
        )
    )
    return state


def _assign(signal, decision: MatchDecision, matched: CandidateReport | None, stats, states, events) -> Assignment:
    matched_status = states[matched.report_id].status if matched and matched.report_id in states else None
    similarity = matched.best_similarity if matched else 0.0
    matched_signal = decision.matched_signal_id or (matched.best_signal_id if matched else "")
    if matched and matched_status == lifecycle.DELETED:
        return Assignment(
            signal.signal_id,
            matched.report_id,
            "deleted_report",
            matched_signal,
            similarity,
            signal.weight,
            deleted=True,
            reason=decision.reason,
        )
    if matched and matched_status != lifecycle.RESOLVED:
        report_id, kind = matched.report_id, "joined"
        stats[report_id].add(signal.embedding, signal.description)
        if decision.title and decision.title != stats[report_id].title:
            stats[report_id].title = decision.title
            events.append(Event(report_id, "retitled", states[report_id].status, decision.title, decision.summary))
    else:
        report_id = report_id_for(signal.team_id, signal.signal_id)
        kind = "recurrence" if matched else "created"
        title = decision.title or title_from(signal.description)
        states[report_id] = ReportState(report_id).moved_to(lifecycle.POTENTIAL)
        stats[report_id] = ReportStats(title=title)
        stats[report_id].add(signal.embedding, signal.description)
        events.append(
            Event(
                report_id,
                "created",
                lifecycle.POTENTIAL,
                title,
                decision.summary or summary_from([signal.description]),
                detail=f"recurrence_of:{matched.report_id}" if matched else decision.reason,
            )
        )
    state = states[report_id].with_signal(signal.weight)
    states[report_id] = _promoted_if_due(state, events)
    return Assignment(
        signal.signal_id,
        report_id,
        kind,
        matched_signal if matched else "",
        similarity,
        signal.weight,
        deleted=False,
        reason=decision.reason,
    )


OPEN_STATUSES = (lifecycle.POTENTIAL, lifecycle.CANDIDATE)  # research not started: consolidation may reshape
# Research finished: the consolidation re-clusters such reports too, each keeping its id on its home cluster.
RESEARCHED_STATUSES = (lifecycle.READY, lifecycle.PENDING_INPUT)
# The reports whose signals the consolidation re-clusters; never one with research in flight (in_progress).
CONSOLIDATED_STATUSES = OPEN_STATUSES + RESEARCHED_STATUSES


def consolidate(
    plan: BatchPlan,
    signals: Sequence[BatchSignal],
    earlier: list[PoolSignal],
    before: dict[str, ReportState],
    states: dict[str, ReportState],
    params: ConsolidationParameters,
    regroup: Regroup | None = None,
    past_rounds: dict[str, int] | None = None,
) -> BatchPlan:
    """The batch's plan after re-clustering the pool (signals_assets.grouping.consolidation).

    `earlier` holds the pool's signals from earlier batches (oldest first): those of open and of
    researched reports; `before` the states of their reports and of the batch's candidate reports as
    stored, `states` the same after the one-pass plan. Researched reports are re-clustered too, each
    keeping its id on its home cluster: they gain the signals clustered with them, lose those clustered
    elsewhere, and two that turn out to be one problem are merged into the older one. Promotions are
    decided on the consolidated membership (a ready report that changes is re-judged and re-researched
    as the lifecycle says); a researched report that changes gets a `consolidated` event;
    a report that existed before and ends with no signal is suppressed with a `merged_into` event naming
    the report that took most of its signals. `regroup` labels the pool (default: the offline
    re-clustering, `regroup_offline`). `past_rounds` holds the research rounds of reports with no signal
    left whose ids a cluster may get again (`cluster_report_ids`): a report merged away and opened again
    by its first signal goes on from its last round."""
    from signals_assets.grouping.consolidation import PoolSignal, anchor_researched, map_clusters, regroup_offline

    team_id = signals[0].team_id if signals else 0
    by_id = {s.signal_id: s for s in signals}
    status_before = {r: (before.get(r) or s).status for r, s in states.items()}
    pooled_ids = {r for r, status in status_before.items() if status in CONSOLIDATED_STATUSES}
    batch_pool = [
        PoolSignal(a.signal_id, a.report_id, by_id[a.signal_id].embedding, a.weight, by_id[a.signal_id].description)
        for a in plan.assignments
        if not a.deleted and a.report_id in pooled_ids
    ]
    pool = (earlier + batch_pool)[-params.pool_limit :]
    if not pool:
        return plan

    def new_report_id(seed: str, used: set[str]) -> str:
        report_id, variant = cluster_report_ids(team_id, seed)
        return report_id if report_id not in used and report_id not in states else variant

    stored = max(0, len(pool) - len(batch_pool))  # pool signals counted in the stored report states
    stored_part = pool[:stored]
    members_before = Counter(p.report_id for p in stored_part)
    # older first: the position of a report's first stored pool signal; reports opened in this batch last
    age = {p.report_id: position for position, p in reversed(list(enumerate(stored_part)))}
    rank = {r: age.get(r, len(pool)) for r in pooled_ids}
    researched = sorted(
        (r for r in members_before if status_before.get(r) in RESEARCHED_STATUSES), key=lambda r: (rank[r], r)
    )
    complete = {r for r in researched if members_before[r] == before[r].signal_count}
    labels, anchored = anchor_researched(
        pool,
        stored,
        regroup(pool, stored, states) if regroup else regroup_offline(pool, stored, params),
        researched,
        complete,
    )
    final = map_clusters(pool, labels, rank, new_report_id, anchored)
    moved = {p.signal_id: r for p, r in zip(pool, final) if r != p.report_id}
    members_after = Counter(final)
    weight_change: dict[str, float] = {}
    for p in stored_part:
        weight_change[p.report_id] = weight_change.get(p.report_id, 0.0) - p.weight
    for p, report_id in zip(pool, final):
        weight_change[report_id] = weight_change.get(report_id, 0.0) + p.weight

    result = BatchPlan()
    for a in plan.assignments:
        if a.signal_id in moved:
            a = replace(a, report_id=moved[a.signal_id], decision="consolidated", matched_signal_id="", similarity=0.0)
        result.assignments.append(a)
    result.assignments += [
        Assignment(p.signal_id, moved[p.signal_id], "consolidated", "", 0.0, p.weight, False)
        for p in earlier
        if p.signal_id in moved
    ]

    first_member, first_position = {}, {}
    for position, (p, report_id) in enumerate(zip(pool, final)):
        first_member.setdefault(report_id, p)
        first_position.setdefault(report_id, position)
    changed = {r for r in members_before.keys() | members_after.keys() if members_before[r] != members_after[r]}
    changed |= {r for r in pooled_ids if r not in before}  # opened in this batch
    # the one-pass plan's promotions of pooled reports are decided again below; its other events stand
    # for the reports that keep signals, a retitle with the status the report had before any promotion
    result.events = [
        e
        if e.report_id not in pooled_ids or e.event == "created"
        else replace(e, status=(before[e.report_id].status if e.report_id in before else None) or lifecycle.POTENTIAL)
        for e in plan.events
        if e.report_id not in pooled_ids or (e.event in ("created", "retitled") and members_after[e.report_id])
    ]
    states_after = {}
    for report_id in changed:
        # A report opened again keeps counting its research rounds: a round number it was researched in
        # before has that outcome already, and a promotion of it would be taken as done, never researched.
        base = before.get(report_id) or ReportState(
            report_id, research_round=(past_rounds or {}).get(report_id, 0)
        ).moved_to(lifecycle.POTENTIAL)
        states_after[report_id] = replace(
            base,
            signal_count=base.signal_count + members_after[report_id] - members_before[report_id],
            total_weight=base.total_weight + weight_change.get(report_id, 0.0),
        )
    # an existing report that lost every signal is merged into the report that took most of them (ties:
    # the one that took its first pool signal), counted in one pass over the pool
    emptied = {r for r, state in states_after.items() if not state.signal_count and r in before}
    taken: dict[str, Counter] = {r: Counter() for r in emptied}
    for p, new in zip(pool, final):
        if p.report_id in taken:
            taken[p.report_id][new] += 1
    merged_into = {r: taken[r].most_common(1)[0][0] for r in states_after if r in emptied}
    moved_in = Counter(moved.values())
    moved_out = Counter(p.report_id for p in stored_part if p.signal_id in moved)
    for report_id in sorted(changed, key=lambda r: (first_position.get(r, len(final)), r)):
        state = states_after[report_id]
        if report_id in merged_into:
            suppressed = state.moved_to(lifecycle.SUPPRESSED)
            result.events.append(_event(report_id, "merged_into", suppressed, f"merged into {merged_into[report_id]}"))
            continue
        if not state.signal_count:
            continue
        if report_id not in states:
            seed = first_member[report_id]
            result.events.append(
                Event(
                    report_id,
                    "created",
                    lifecycle.POTENTIAL,
                    title_from(seed.description),
                    summary_from([seed.description]),
                    detail="consolidated",
                )
            )
        if status_before.get(report_id) in RESEARCHED_STATUSES and (moved_in[report_id] or moved_out[report_id]):
            absorbed = sorted(r for r, target in merged_into.items() if target == report_id)
            detail = ", ".join(
                part
                for part in (
                    f"{moved_in[report_id]} signals moved in" if moved_in[report_id] else "",
                    f"{moved_out[report_id]} signals moved out" if moved_out[report_id] else "",
                    f"absorbed {', '.join(absorbed)}" if absorbed else "",
                )
                if part
            )
            result.events.append(_event(report_id, "consolidated", state, detail))
        _promoted_if_due(state, result.events)
    return result


def _event(report_id: str, event: str, state: ReportState, detail: str) -> Event:
    """A lifecycle event that keeps the report's research gate and round."""
    return Event(
        report_id,
        event,
        state.status or "",
        signals_at_run=state.signals_at_run,
        research_round=state.research_round,
        detail=detail,
    )
