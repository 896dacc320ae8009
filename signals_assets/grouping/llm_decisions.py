"""The grouping engine's LLM steps: search queries, the match decision, the PR-specificity check and
the merge confirmation of the consolidation step.

Prompts and answer validators; the client (`signals_assets/llm/client.py`) fences the signal text,
sends the request, validates the answer and re-asks on an invalid one. `merge_labels` proposes the
consolidation's merges from the embeddings and has the model confirm each.
"""

from __future__ import annotations

import json
import logging
import re
from collections import Counter
from typing import TYPE_CHECKING, Sequence

from signals_assets.llm.client import (
    MAX_REASON_CHARS,
    MAX_SUMMARY_CHARS,
    Fence,
    InvalidAnswer,
    NoValidAnswer,
    OpenAIChatClient,
    cut_text,
    one_line,
    required_text,
)

if TYPE_CHECKING:
    from signals_assets.grouping.consolidation import PoolSignal
    from signals_assets.reports.lifecycle import ReportState

log = logging.getLogger(__name__)

MAX_QUERIES = 3
MAX_QUERY_CHARS = 200
MAX_TITLE_CHARS = 70
MAX_SUMMARY_SENTENCES = 2
MAX_CANDIDATE_CHARS = 1000  # candidates are context for the decision; full texts would crowd the prompt
MAX_SPECIFICITY_SIGNALS = 8
MAX_SPECIFICITY_CHARS = 500
MAX_MERGE_SIGNALS = 8  # signals shown per report when confirming a merge


def _validate_queries(answer: dict) -> list[str]:
    queries = answer.get("queries")
    if not isinstance(queries, list) or not 1 <= len(queries) <= MAX_QUERIES:
        raise InvalidAnswer(f'"queries" must be a list of 1 to {MAX_QUERIES} strings')
    return [required_text(query, f"queries[{number}]", MAX_QUERY_CHARS) for number, query in enumerate(queries)]


def _validate_match(answer: dict, candidates: dict[str, dict]) -> dict:
    reason = required_text(answer.get("reason"), '"reason"', MAX_REASON_CHARS)
    match_type = answer.get("match_type")
    if match_type == "existing":
        signal_id = answer.get("signal_id")
        candidate = candidates.get(str(signal_id)) if isinstance(signal_id, (str, int)) else None
        if candidate is None:
            raise InvalidAnswer(
                f'"signal_id" {json.dumps(signal_id)} is not one of the candidates\' signal_id values'
                if candidates
                else 'there are no candidates: "match_type" must be "new"'
            )
        return {
            "reason": reason,
            "match_type": "existing",
            "signal_id": candidate["signal_id"],
            "report_id": candidate["report_id"],
        }
    if match_type == "new":
        title = required_text(answer.get("title"), '"title"', MAX_TITLE_CHARS)
        summary = required_text(answer.get("summary"), '"summary"', MAX_SUMMARY_CHARS)
        sentences = len(re.findall(r"[.!?]+(?:\s|$)", summary)) or 1
        if sentences > MAX_SUMMARY_SENTENCES:
            raise InvalidAnswer(f'"summary" has {sentences} sentences, it must have 1 or 2')
        return {"reason": reason, "match_type": "new", "title": title, "summary": summary}
    raise InvalidAnswer('"match_type" must be "existing" or "new"')


def _validate_specificity(answer: dict) -> dict:
    pr_title = required_text(answer.get("pr_title"), '"pr_title"', MAX_TITLE_CHARS)
    if not isinstance(answer.get("specific_enough"), bool):
        raise InvalidAnswer('"specific_enough" must be true or false')
    reason = required_text(answer.get("reason"), '"reason"', MAX_REASON_CHARS)
    return {"pr_title": pr_title, "specific_enough": answer["specific_enough"], "reason": reason}


def _validate_merge(answer: dict) -> dict:
    reason = required_text(answer.get("reason"), '"reason"', MAX_REASON_CHARS)
    if not isinstance(answer.get("same_problem"), bool):
        raise InvalidAnswer('"same_problem" must be true or false')
    return {"reason": reason, "same_problem": answer["same_problem"]}


class OpenAIChatProvider(OpenAIChatClient):
    """Search queries, match decision, PR-specificity check and merge confirmation on an
    OpenAI-compatible chat model."""

    def search_queries(self, description: str, source: str) -> list[str]:
        fence = Fence([description])
        system = (
            "You help group product feedback signals (support tickets, GitHub and Linear issues, error "
            "tracking issues, session replay problems, LLM evaluation reports) that share a root cause. "
            f"Write 1 to {MAX_QUERIES} short natural-language search queries that would find other signals, of any "
            "kind, sharing this signal's root cause, feature or user journey. Give each query a different "
            "angle: the component or feature involved; the behaviour or kind of problem; the business or user "
            f"impact. Each query has at most {MAX_QUERY_CHARS} characters.\n{fence.rules}\n"
            'Answer with JSON only: {"queries": ["...", "..."]}'
        )
        user = f"Signal source: {one_line(source)}\n{fence.block('signal', description)}"
        return self.ask("search_queries", system, user, _validate_queries, temperature=0.7)

    def match(self, signal: dict, candidates: list[dict]) -> dict:
        """`{reason, match_type: "existing", signal_id, report_id}` or `{reason, match_type: "new", title, summary}`."""
        by_id: dict[str, dict] = {}
        for candidate in candidates:
            if str(candidate["signal_id"]) not in by_id:
                by_id[str(candidate["signal_id"])] = {
                    **candidate,
                    "report_title": candidate["report_title"] or "(untitled)",
                }
        shown = list(by_id.values())
        fence = Fence([signal["description"], *(c["description"] for c in shown), *(c["report_title"] for c in shown)])
        system = (
            "You decide whether a new product feedback signal belongs to an existing group (report) of "
            "signals or starts a new group. Signals belong together when they share a root cause, feature or "
            "user journey, so that one fix would resolve them all; similar keywords alone are not enough. "
            "For example: two signals about the same experiment match; signals about two unrelated "
            "experiments do not; error tracking issues that one fix resolves match.\n"
            "The candidates are signals already in groups, found by semantic search, each shown with its "
            f"group's title and size and its similarity to the new signal.\n{fence.rules}\n"
            'Answer with JSON only, "reason" first (under 100 characters). To join a group, name the best '
            'matching candidate: {"reason": "...", "match_type": "existing", "signal_id": "<candidate signal_id>"}. '
            'To start a new group: {"reason": "...", "match_type": "new", "title": "<at most '
            f'{MAX_TITLE_CHARS} characters>", "summary": "<1 or 2 sentences, at most {MAX_SUMMARY_CHARS} characters>"}}.'
        )
        source = "/".join(str(signal[key]) for key in ("source_product", "source_type") if key in signal)
        parts = [
            f"New signal from {one_line(source)}:" if source else "New signal:",
            fence.block("new signal", signal["description"]),
        ]
        if not shown:
            parts.append('There are no candidates: answer with "match_type": "new".')
        for number, candidate in enumerate(shown, 1):
            description = cut_text(candidate["description"], MAX_CANDIDATE_CHARS)
            parts += [
                f"Candidate {number}: signal_id={one_line(candidate['signal_id'])} "
                f"report_id={one_line(candidate['report_id'])} group size={int(candidate['report_size'])} "
                f"similarity={float(candidate['similarity']):.4f}",
                fence.block(f"group title of candidate {number}", candidate["report_title"]),
                fence.block(f"description of candidate {number}", description),
            ]
        return self.ask(
            "match", system, "\n\n".join(parts), lambda answer: _validate_match(answer, by_id), temperature=0.2
        )

    def specificity(self, report_title: str, report_signals: list[str], new_signal: str) -> dict:
        """`{pr_title, specific_enough, reason}`: could one focused change resolve the report plus this signal?"""
        shown = [cut_text(text, MAX_SPECIFICITY_CHARS) for text in report_signals[:MAX_SPECIFICITY_SIGNALS]]
        fence = Fence([report_title, new_signal, *shown])
        system = (
            "You check whether a group of product feedback signals is specific enough for one pull request. "
            f"Write one PR title (at most {MAX_TITLE_CHARS} characters) that covers all the signals of the group "
            "and the new signal, and judge whether one focused change would resolve them all. Judge by the "
            f"fix, not by where the symptoms appear.\n{fence.rules}\n"
            'Answer with JSON only: {"pr_title": "...", "specific_enough": true or false, "reason": "..."}'
        )
        parts = [
            fence.block("current group title", report_title),
            f"Signals in the group ({len(shown)} of {len(report_signals)} shown):",
        ]
        parts += [fence.block(f"group signal {number}", text) for number, text in enumerate(shown, 1)]
        if len(report_signals) > len(shown):
            parts.append(f"… and {len(report_signals) - len(shown)} more")
        parts.append(fence.block("new signal", new_signal))
        return self.ask("specificity", system, "\n\n".join(parts), _validate_specificity, temperature=0.2)

    def confirm_merge(self, first: Sequence[str], second: Sequence[str], similarity: float) -> dict:
        """`{reason, same_problem}`: are two reports, given by their signal texts, one problem?"""
        shown = [
            [cut_text(text, MAX_SPECIFICITY_CHARS) for text in texts[:MAX_MERGE_SIGNALS]] for texts in (first, second)
        ]
        fence = Fence([text for texts in shown for text in texts])
        system = (
            "You check whether two groups (reports) of product feedback signals are one problem and should be "
            "merged into one report. Merge only when one focused change would resolve the signals of both "
            "groups: the same root cause, feature or user journey. Similar wording or the same product area "
            f"alone is not enough.\n{fence.rules}\n"
            'Answer with JSON only, "reason" first (under 100 characters): '
            '{"reason": "...", "same_problem": true or false}'
        )
        parts = [f"The two groups' centroid similarity is {similarity:.4f}."]
        for name, texts, total in (("A", shown[0], len(first)), ("B", shown[1], len(second))):
            parts.append(f"Group {name} ({len(texts)} of {total} signals shown):")
            parts += [fence.block(f"group {name} signal {number}", text) for number, text in enumerate(texts, 1)]
        return self.ask("merge", system, "\n\n".join(parts), _validate_merge, temperature=0.0)


def merge_labels(
    chat: OpenAIChatProvider,
    pool: Sequence[PoolSignal],
    stored: int,
    states: dict[str, ReportState],
    max_proposals: int,
) -> list[int]:
    """The consolidation's label per pool signal after the merges the model confirms (the same label
    for the signals of merged reports; one label per report otherwise).

    Proposals are pairs of reports ranked by the cosine of their centroids, best first, at most
    `max_proposals` asked. A pair is proposed only when both reports are wholly in the pool (a merge
    moves every signal) and at least one of them gained a signal in this batch (`pool[stored:]`):
    pairs of unchanged reports were proposed when they last changed, so a re-run with nothing new
    asks nothing. A refused answer, or none valid within the client's retries, leaves the two apart
    (logged); a transport failure fails the batch, as in every other decision."""
    import numpy as np

    from signals_assets.grouping.engine import ReportStats

    reports = list(dict.fromkeys(p.report_id for p in pool))
    label_of = {report_id: number for number, report_id in enumerate(reports)}
    size = Counter(p.report_id for p in pool)
    whole = [r for r in reports if r in states and size[r] == states[r].signal_count]
    changed = {p.report_id for p in pool[stored:]} & set(whole)
    if max_proposals <= 0 or len(whole) < 2 or not changed:
        return [label_of[p.report_id] for p in pool]
    members: dict[str, list[PoolSignal]] = {r: [] for r in whole}
    for p in pool:
        if p.report_id in members:
            members[p.report_id].append(p)
    texts = {r: [p.description for p in members[r]] for r in whole}
    centroids = np.stack([ReportStats.of([p.embedding for p in members[r]]).centroid for r in whole])
    # Only rows of changed reports: (changed × whole) cosines, each pair once (a pair of two changed
    # reports is kept in the row of the later one), so memory stays at batch size × pool reports.
    rows = np.array([i for i, r in enumerate(whole) if r in changed])
    cosine = centroids[rows] @ centroids.T
    columns = np.arange(len(whole))
    is_changed = np.isin(columns, rows)
    cosine[is_changed[None, :] & (columns[None, :] >= rows[:, None])] = -np.inf
    count = min(max_proposals, int(np.isfinite(cosine).sum()))
    best = np.argpartition(-cosine, count - 1, axis=None)[:count] if count else np.array([], dtype=int)
    pairs = sorted(
        (-float(cosine.flat[k]), *(whole[i] for i in sorted((int(rows[k // len(whole)]), int(k % len(whole))))))
        for k in best
    )
    root = {r: r for r in whole}

    def find(report_id: str) -> str:
        while root[report_id] != report_id:
            report_id = root[report_id]
        return report_id

    for negative_cosine, first, second in pairs:
        if find(first) == find(second):
            continue  # already one report through earlier confirmations
        try:
            answer = chat.confirm_merge(texts[first], texts[second], -negative_cosine)
        except NoValidAnswer as error:
            log.warning("merge of %s and %s not applied: %s", first, second, error)
            continue
        log.info(
            "merge of %s and %s %s: %s",
            first,
            second,
            "confirmed" if answer["same_problem"] else "refused",
            answer["reason"],
        )
        if answer["same_problem"]:
            root[find(second)] = find(first)
    return [label_of[find(p.report_id)] if p.report_id in root else label_of[p.report_id] for p in pool]
