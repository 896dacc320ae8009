"""Report judgement: title, summary, report-level safety, actionability and priority, and what the
judgement means for the report's lifecycle.

Offline (default, deterministic): the most central signals give an extractive title and summary;
the safety rules run over every signal; actionability and priority come from what the signals say
(defects, requests, praise, severity words), where they come from (error tracking, session replay,
evaluations, labelled issues) and how much weight they carry. With a chat model
(`llm_review.llm_report_summary`) the model writes all of it, validated against a schema.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Protocol, Sequence

from signals_assets.grouping.extractive_text import summary_from, title_from
from signals_assets.reports import lifecycle
from signals_assets.safety.filter import SafetyVerdict

CENTRAL_SIGNALS = 3
IMMEDIATELY_ACTIONABLE = "immediately_actionable"
REQUIRES_HUMAN_INPUT = "requires_human_input"
NOT_ACTIONABLE = "not_actionable"
# The one vocabulary of the judgement, offline or by a chat model (llm/review.py validates against it).
ACTIONABILITY = (IMMEDIATELY_ACTIONABLE, REQUIRES_HUMAN_INPUT, NOT_ACTIONABLE)
PRIORITIES = ("P0", "P1", "P2", "P3", "P4")  # most urgent first
MANY_SIGNALS = 10
HEAVY_WEIGHT = 3.0


@dataclass(frozen=True)
class ReportSignal:
    signal_id: str
    description: str
    source_product: str = ""
    source_type: str = ""
    weight: float = 0.5
    extra: dict = field(default_factory=dict)
    embedding: Sequence[float] = ()


@dataclass(frozen=True)
class ReportJudgement:
    title: str
    summary: str
    central_signal_ids: list[str]
    safety: SafetyVerdict
    actionability: str = ""  # empty when the report is unsafe: it is not assessed further
    actionability_reason: str = ""
    priority: str = ""
    priority_reason: str = ""


class SafetyJudge(Protocol):
    name: str

    def check_report(self, texts: Sequence[str]) -> SafetyVerdict: ...


def central_order(embeddings: Sequence[Sequence[float]]) -> list[int]:
    """Indices sorted by similarity to the centroid, most central first (stable for ties)."""
    import numpy as np

    matrix = np.asarray(embeddings, dtype=np.float32)
    centroid = matrix.mean(axis=0)
    scores = matrix @ centroid
    return sorted(range(len(matrix)), key=lambda i: (-float(scores[i]), i))


def judge_report(signals: Sequence[ReportSignal], safety_judge: SafetyJudge, chat=None) -> ReportJudgement:
    """The whole judgement. `chat` (an OpenAIChatProvider) writes title, summary, actionability and
    priority when given; an unsafe report gets only the extractive title and summary."""
    if not signals:
        raise ValueError("a report judgement needs at least one signal")
    order = central_order([s.embedding for s in signals])
    central = [signals[i] for i in order]
    title = title_from(central[0].description)
    summary = summary_from([s.description for s in central[:CENTRAL_SIGNALS]])
    central_ids = [s.signal_id for s in central[:CENTRAL_SIGNALS]]
    safety = safety_judge.check_report([s.description for s in signals])
    if not safety.safe:
        return ReportJudgement(title, summary, central_ids, safety)
    if chat is not None:
        from signals_assets.llm.review import llm_report_summary

        answer = llm_report_summary(
            chat,
            [
                {
                    "description": s.description,
                    "source_product": s.source_product,
                    "source_type": s.source_type,
                    "weight": s.weight,
                }
                for s in central
            ],
        )
        return ReportJudgement(
            answer["title"],
            answer["summary"],
            central_ids,
            safety,
            answer["actionability"],
            answer["actionability_reason"],
            answer["priority"],
            answer["priority_reason"],
        )
    actionability, actionability_reason = offline_actionability(signals)
    priority, priority_reason = offline_priority(central, actionability)  # central first: independent of arrival order
    return ReportJudgement(
        title, summary, central_ids, safety, actionability, actionability_reason, priority, priority_reason
    )


# ---- offline actionability and priority ----------------------------------------------------------


def _words(*alternatives: str) -> re.Pattern:
    return re.compile(r"(?<![\w-])(?:" + "|".join(alternatives) + r")(?![\w-])", re.IGNORECASE)


_DEFECT = _words(
    r"errors?",
    r"bugs?",
    r"broken",
    r"breaks?",
    r"crash(?:es|ed|ing)?",
    r"fail(?:s|ed|ing|ures?)?",
    r"exceptions?",
    r"declined",
    r"not (?:working|loading|arriving|saving|showing|sent|received)",
    r"(?:doesn'?t|does not|don'?t|won'?t"
    r"|can'?t|cannot|couldn'?t|never) \w+",
    r"unable to",
    r"missing",
    r"wrong",
    r"incorrect",
    r"timed? ?out",
    r"timeouts?",
    r"hang(?:s|ing)?",
    r"freez(?:e|es|ing)",
    r"stuck",
    r"blank",
    r"slow",
    r"regression",
    r"spins?",
    r"duplicated?",
    r"lost",
    r"rejected",
    r"invalid",
    r"expired?",
    r"corrupt(?:ed)?",
    r"5\d\d",
    r"404",
    r"typos?",
    r"traceback",
    r"stack trace",
    r"\w+Error",
    r"\w+Exception",
    r"glitch(?:es)?",
    r"misaligned",
    r"overlaps?",
    r"no results?",
    r"no \w+ found",
    r"nothing (?:happens|comes up|shows up|appears|loads)",
    r"useless",
    r"not found",
    r"empt(?:y|ies|ied)",
    r"disappear(?:s|ed|ing)?",
    r"vanish(?:es|ed|ing)?",
    r"no (?:\w+ ){1,3}(?:arrives?|arrived|comes? through|came through|shows? up|showed up|appears?|appeared)",
    r"(?:returns?|shows?|gives?|displays?) (?:no|nothing|zero)",
    r"problems?",
)
_REQUEST = _words(
    r"feature requests?",
    r"would be (?:nice|great|good)",
    r"it would be",
    r"please add",
    r"(?:could|can) you add",
    r"add support",
    r"support for",
    r"i wish",
    r"we wish",
    r"suggestions?",
    r"should we",
    r"would like",
    r"want to be able",
    r"ideas?",
    r"propos(?:al|e)",
    r"how (?:do|can|should) (?:i|we)",
    r"where (?:do|can) (?:i|we)",
    r"is it possible",
    r"is there a way",
    r"any plans",
    r"roadmap",
    r"pricing",
    r"refund",
    r"cancel my",
    r"let (?:us|me|admins|users)",
)
_NOISE = _words(
    r"thanks?",
    r"thank you",
    r"love",
    r"loving",
    r"great job",
    r"awesome",
    r"amazing",
    r"works? (?:great|perfectly"
    r"|fine|well)",
    r"just wanted to say",
    r"fyi",
    r"never ?mind",
    r"resolved itself",
    r"no (?:issue|problem)s?",
    r"kudos",
    r"well done",
    r"nice work",
)
_CRITICAL = _words(
    r"outage",
    r"(?:is|are|went|goes) down",
    r"down for",
    r"data loss",
    r"lost (?:all|data|orders)",
    r"security breach",
    r"breach",
    r"(?:all|every) (?:users?|customers?|requests?)",
    r"everyone",
    r"production is",
    r"sev ?0",
    r"p0",
)
_SEVERE = _words(
    r"crash(?:es|ed|ing)?",
    r"can'?t log ?in",
    r"cannot log ?in",
    r"locked out",
    r"payments? (?:fail\w*|declined)",
    r"declined",
    r"checkout (?:fails|is broken|broken)",
    r"5\d\d",
    r"data corruption",
    r"blocking",
    r"blocked",
    r"security",
    r"vulnerab\w+",
    r"urgent",
    r"sev ?1",
    r"p1",
)
_MINOR = _words(r"typos?", r"cosmetic", r"minor", r"misaligned", r"alignment", r"colou?rs?", r"spacing", r"wording")
_DEFECT_SOURCES = {
    ("error_tracking", "issue_created"),
    ("error_tracking", "issue_reopened"),
    ("error_tracking", "issue_spiking"),
    ("llm_analytics", "evaluation_report"),
}
_DEFECT_PROBLEMS = {"blocking_exception", "non_blocking_exception", "failure"}
_UX_PROBLEMS = {"confusion", "abandonment"}


def _labels(signal: ReportSignal) -> set[str]:
    labels = signal.extra.get("labels") or signal.extra.get("tags") or []
    return {str(label).lower() for label in labels} if isinstance(labels, list) else set()


def _signal_kind(signal: ReportSignal) -> str:
    """defect | request | noise | unclear, from the source first and the words second."""
    source = (signal.source_product, signal.source_type)
    labels = _labels(signal)
    if source in _DEFECT_SOURCES or signal.extra.get("problem_type") in _DEFECT_PROBLEMS or "bug" in labels:
        return "defect"
    if signal.extra.get("problem_type") in _UX_PROBLEMS or labels & {
        "feature",
        "feature request",
        "enhancement",
        "question",
    }:
        return "request"
    text = signal.description
    if _DEFECT.search(text) or _CRITICAL.search(text):
        return "defect"
    if _REQUEST.search(text):
        return "request"
    if _NOISE.search(text):
        return "noise"
    return "unclear"


def offline_actionability(signals: Sequence[ReportSignal]) -> tuple[str, str]:
    kinds = [_signal_kind(s) for s in signals]
    counts = {kind: kinds.count(kind) for kind in ("defect", "request", "noise", "unclear")}
    total = len(signals)
    example = next((s.description for s, k in zip(signals, kinds) if k == "defect"), signals[0].description)
    if counts["defect"] * 2 >= total:
        return IMMEDIATELY_ACTIONABLE, (
            f"{counts['defect']} of {total} signals describe a defect, e.g. {title_from(example)!r}"
        )
    if counts["noise"] * 2 >= total and not counts["defect"]:
        return NOT_ACTIONABLE, (
            f"none of the {total} signals describes a defect, and {counts['noise']} are praise or noise"
        )
    # Requests, questions and anything the words do not settle go to a person rather than away.
    asks = counts["request"] + counts["unclear"] + counts["noise"]
    return REQUIRES_HUMAN_INPUT, (
        f"{asks} of {total} signals ask for a change, a decision or an answer rather "
        f"than describing a defect ({counts['defect']} do)"
    )


def _source_floor(signals: Sequence[ReportSignal]) -> tuple[int, str]:
    """The most urgent level a source marks (Linear priority 1 urgent, Zendesk urgent/high, error spikes)."""
    level, why = 4, ""
    for signal in signals:
        extra = signal.extra
        hint = None
        if signal.source_product == "linear" and isinstance(extra.get("priority"), int) and extra["priority"] in (1, 2):
            hint = extra["priority"], f"Linear priority {extra.get('priority_label') or extra['priority']}"
        elif signal.source_product == "zendesk" and str(extra.get("priority", "")).lower() in ("urgent", "high"):
            hint = (1 if str(extra["priority"]).lower() == "urgent" else 2), f"Zendesk priority {extra['priority']}"
        elif signal.source_type == "issue_spiking":
            hint = 1, "an error tracking spike"
        if hint and hint[0] < level:
            level, why = hint
    return level, why


def offline_priority(signals: Sequence[ReportSignal], actionability: str) -> tuple[str, str]:
    if actionability == NOT_ACTIONABLE:
        return "P4", "nothing to change"
    text = "\n".join(s.description for s in signals)
    if match := _CRITICAL.search(text):
        level, why = 0, f"mentions {match.group(0)!r}"
    elif match := _SEVERE.search(text):
        level, why = 1, f"mentions {match.group(0)!r}"
    elif match := _MINOR.search(text):
        level, why = 3, f"minor: {match.group(0)!r}"
    elif actionability == IMMEDIATELY_ACTIONABLE:
        level, why = 2, "a defect without severity words"
    else:
        level, why = 3, "a request, not a defect"
    floor, floor_why = _source_floor(signals)
    if floor < level:
        level, why = floor, floor_why
    weight = sum(s.weight for s in signals)
    if level > 1 and (len(signals) >= MANY_SIGNALS or weight >= HEAVY_WEIGHT):
        level -= 1
        why += f"; raised: {len(signals)} signals, weight {weight:g}"
    return f"P{level}", why


# ---- lifecycle -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class LifecycleDecision:
    status: str | None  # the new status; None: the report stays a candidate and is researched
    event: str
    detail: str
    resets_weight: bool = False

    def moves(self, current: str) -> str | None:
        """The status the decision moves a report that is `current` to; None when the lifecycle stays
        as it is (only a candidate is moved on, and an actionable one by its research)."""
        return self.status if current == lifecycle.CANDIDATE else None

    def outcome(self, current: str) -> str:
        """What the decision does to a report that is `current`, for the run's log and metadata."""
        if current != lifecycle.CANDIDATE:
            return f"report is {current}, not a candidate: lifecycle unchanged"
        if self.status is None:
            return "actionable: research follows"
        return f"{self.status}: {self.detail}"


def lifecycle_decision(judgement: ReportJudgement) -> LifecycleDecision:
    """unsafe → failed; not actionable → potential with its weight reset; needs input → pending_input;
    actionable → research (the research run moves it on)."""
    if not judgement.safety.safe:
        return LifecycleDecision(lifecycle.FAILED, "failed", f"report-level safety judge: {judgement.safety.reason}")
    if judgement.actionability == NOT_ACTIONABLE:
        return LifecycleDecision(
            lifecycle.POTENTIAL, "not_actionable", judgement.actionability_reason, resets_weight=True
        )
    if judgement.actionability == REQUIRES_HUMAN_INPUT:
        return LifecycleDecision(lifecycle.PENDING_INPUT, "needs_input", judgement.actionability_reason)
    return LifecycleDecision(None, "actionable", judgement.actionability_reason)


def parse_extra(value: str | dict | None) -> dict:
    if isinstance(value, dict):
        return value
    try:
        parsed = json.loads(value or "{}")
    except json.JSONDecodeError:
        return {}
    return parsed if isinstance(parsed, dict) else {}
