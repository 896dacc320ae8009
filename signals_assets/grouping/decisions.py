"""Match-decision providers behind one interface: offline (default, deterministic) and an
OpenAI-compatible chat model. Both answer the same two questions for the grouping engine:
which search queries to probe with, and which candidate report (if any) a signal joins."""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Protocol, Sequence

from signals_assets.grouping.engine import BatchSignal, CandidateReport, MatchDecision
from signals_assets.grouping.extractive_text import title_from

if TYPE_CHECKING:
    from signals_assets.grouping.consolidation import ConsolidationParameters, PoolSignal
    from signals_assets.grouping.llm_decisions import OpenAIChatProvider
    from signals_assets.grouping.similarity_scale import SimilarityScale
    from signals_assets.reports.lifecycle import ReportState

log = logging.getLogger(__name__)

SPLIT_PREFIX = "Split from group: "


class Provider(Protocol):
    name: str
    needs_texts: bool  # whether decisions need the candidates' descriptions
    calls_model: bool  # whether search queries, decisions or merges call a model (the store is released then)
    consolidation: ConsolidationParameters | None  # to consolidate the open pool after each batch

    def search_queries(self, signal: BatchSignal) -> list[str]: ...

    def decide(
        self, signal: BatchSignal, reports: list[CandidateReport], scale: SimilarityScale | None = None
    ) -> MatchDecision:
        """`scale`: the team's similarity scale (`similarity_scale.pool_scale`), for providers that use one."""
        ...

    def regroup_pool(self, pool: Sequence[PoolSignal], stored: int, states: dict[str, ReportState]) -> list[int]:
        """The consolidation's label per open-pool signal (`engine.Regroup`)."""
        ...


class OfflineProvider:
    """An adaptive similarity decision per signal (signals_assets.grouping.offline_matching), then the open
    pool re-clustered after each batch (signals_assets.grouping.consolidation). Keyword query probes are off
    by default: on Banking77 they did not measurably help (see keyword_queries)."""

    name = "offline"
    needs_texts = False
    calls_model = False

    def __init__(self, parameters=None, query_probes: int = 0, consolidation=None):
        from signals_assets.grouping.consolidation import ConsolidationParameters
        from signals_assets.grouping.offline_matching import MatchParameters

        self.parameters = parameters or MatchParameters()
        self.query_probes = query_probes
        self.consolidation: ConsolidationParameters | None = consolidation or ConsolidationParameters()

    def search_queries(self, signal: BatchSignal) -> list[str]:
        from signals_assets.grouping.offline_matching import keyword_queries

        return keyword_queries(signal.description, self.query_probes) if self.query_probes else []

    def decide(
        self, signal: BatchSignal, reports: list[CandidateReport], scale: SimilarityScale | None = None
    ) -> MatchDecision:
        from signals_assets.grouping.offline_matching import decide
        from signals_assets.grouping.similarity_scale import REFERENCE

        return decide(signal.embedding, reports, self.parameters, scale or REFERENCE)

    def regroup_pool(self, pool: Sequence[PoolSignal], stored: int, states: dict[str, ReportState]) -> list[int]:
        from signals_assets.grouping.consolidation import ConsolidationParameters, regroup_offline

        return regroup_offline(pool, stored, self.consolidation or ConsolidationParameters())


@dataclass
class LLMProvider:
    """Match and specificity decisions by a chat model, then merges of open reports that the model
    confirms (`llm_decisions.merge_labels`, at most `merge_proposals` asked per batch and team; 0: the
    decisions stand as made); the offline queries are not used."""

    chat: OpenAIChatProvider
    merge_proposals: int = 0
    name: str = "openai"
    needs_texts: bool = True
    calls_model: bool = True
    consolidation: ConsolidationParameters | None = None

    def __post_init__(self) -> None:
        from signals_assets.grouping.consolidation import ConsolidationParameters

        # only the pool's bound is used: the merges are the model's
        self.consolidation = ConsolidationParameters() if self.merge_proposals > 0 else None

    def search_queries(self, signal: BatchSignal) -> list[str]:
        """The model's queries; none (the signal's own text still probes) when it gives no valid answer."""
        from signals_assets.llm.client import NoValidAnswer

        try:
            return self.chat.search_queries(signal.description, source="signal")
        except NoValidAnswer as error:
            log.warning(f"signal {signal.signal_id}: searched without the model's queries: {error}")
            return []

    def decide(
        self, signal: BatchSignal, reports: list[CandidateReport], scale: SimilarityScale | None = None
    ) -> MatchDecision:
        """The model's decision; the offline rule's (on the team's `scale`) when the model gives no valid
        answer, so a signal that derails the model cannot fail its batch (a transport failure still does)."""
        from signals_assets.llm.client import NoValidAnswer

        try:
            return self._model_decision(signal, reports)
        except NoValidAnswer as error:
            log.warning(f"signal {signal.signal_id}: decided by the offline rule: {error}")
            decision = OfflineProvider().decide(signal, reports, scale)
            return replace(decision, reason=f"offline rule, the model gave no valid answer: {decision.reason}")

    def _model_decision(self, signal: BatchSignal, reports: list[CandidateReport]) -> MatchDecision:
        candidates = [
            {
                "signal_id": r.best_signal_id,
                "report_id": r.report_id,
                "report_title": r.title,
                "report_size": r.size,
                "similarity": round(r.best_similarity, 4),
                "description": r.best_signal_text,
            }
            for r in reports
        ]
        answer = self.chat.match({"description": signal.description}, candidates)
        if answer["match_type"] == "new":
            return MatchDecision(None, reason=answer["reason"], title=answer["title"], summary=answer["summary"])
        report = next(r for r in reports if r.report_id == answer["report_id"])
        check = self.chat.specificity(report.title, list(report.member_texts), signal.description)
        if not check["specific_enough"]:
            return MatchDecision(
                None,
                reason=f"PR-specificity rejected: {check['reason']}",
                title=title_from(signal.description),
                summary=SPLIT_PREFIX + report.title,
            )
        return MatchDecision(report.report_id, answer["signal_id"], answer["reason"], title=check["pr_title"])

    def regroup_pool(self, pool: Sequence[PoolSignal], stored: int, states: dict[str, ReportState]) -> list[int]:
        from signals_assets.grouping.llm_decisions import merge_labels

        return merge_labels(self.chat, pool, stored, states, self.merge_proposals)
