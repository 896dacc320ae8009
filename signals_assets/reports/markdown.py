"""A report as Markdown for its materialisation page in the Dagster UI: title, summary, status,
judgement, signals and research findings, read from the store.

Every text that comes from a signal, a model or the research agent is untrusted: `inline_text`
escapes it so it renders as the same plain text, never as a link, image, heading, table cell break
or HTML (the UI renders GitHub-flavoured Markdown).
"""

from __future__ import annotations

import json
import re
import string

from signals_assets.display_text import DISPLAY_UNSAFE
from signals_assets.storage.clickhouse import StoreSession
from signals_assets.storage.facts import current_assignments, latest_report_states, signals_ever_in

EXCERPT_CHARS = 240
TEXT_CHARS = 2000  # title, summary and reasons: long enough for any judgement, bounded for the page
MAX_SIGNALS_SHOWN = 50
MAX_FINDINGS_SHOWN = 20

# Every ASCII punctuation character may be backslash-escaped in CommonMark, which turns it into a
# literal; escaping all of them also breaks bare-URL autolinks (`:`, `/`, `.`, `@`).
_ESCAPED = {c: "\\" + c for c in string.punctuation} | {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
_WHITESPACE = re.compile(r"\s+")
# What would hide or reorder the page, and tab, newline and zero-width spaces and joiners: one line of text.
_INVISIBLE = re.compile(f"[\t\n\u200b-\u200d{DISPLAY_UNSAFE}]")


def inline_text(text: object, max_chars: int = TEXT_CHARS) -> str:
    """`text` as one line of literal Markdown text (safe in a table cell), at most `max_chars`
    characters of the original (then "…")."""
    flat = _WHITESPACE.sub(" ", _INVISIBLE.sub(" ", str(text))).strip()
    if len(flat) > max_chars:
        flat = flat[: max_chars - 1].rstrip() + "…"
    return "".join(_ESCAPED.get(c, c) for c in flat)


# Each query reads all reports of a run at once: {teams} their teams, {reports} their ids.
_REPORT_SQL = f"""
SELECT s.report_id AS report_id, s.status AS status, s.title AS event_title, s.summary AS event_summary,
       s.research_round AS research_round
FROM ({latest_report_states("team_id IN {teams} AND report_id IN {reports}")}) AS s
"""

_SUMMARY_SQL = """
SELECT report_id, title, summary, safety, safety_kind, actionability, actionability_reason, priority, priority_reason
FROM report_summaries WHERE team_id IN {teams} AND report_id IN {reports}
ORDER BY report_id, generated_at DESC LIMIT 1 BY report_id
"""

_EVER_IN_REPORTS = signals_ever_in("team_id IN {teams}")  # read by id: the reports' signals, not the team's
_SIGNALS_SQL = f"""
SELECT a.report_id AS report_id, s.source_product AS source_product, s.source_type AS source_type,
       s.source_id AS source_id, s.signal_id AS signal_id, s.description AS description
FROM ({current_assignments(f"team_id IN {{teams}} AND signal_id IN ({_EVER_IN_REPORTS})")}) AS a
INNER JOIN (
    SELECT team_id, signal_id, source_product, source_type, source_id, description FROM signals
    WHERE team_id IN {{teams}} AND signal_id IN ({_EVER_IN_REPORTS})
) AS s ON s.team_id = a.team_id AND s.signal_id = a.signal_id
WHERE a.report_id IN {{reports}} AND a.deleted = 0
ORDER BY a.report_id, a.first_position
"""

_RESEARCH_SQL = """
SELECT report_id, research_round, status, repository, findings, reason, log_key
FROM research_results WHERE team_id IN {teams} AND report_id IN {reports}
ORDER BY report_id, research_round DESC, finished_at DESC LIMIT 1 BY report_id
"""


def report_views(db: StoreSession, teams: dict[str, int]) -> dict[str, dict]:
    """What each report's page shows, for {report: team}, from the base tables (the SQL model views
    may not be built yet): one query per table for all the reports."""
    if not teams:
        return {}
    params = {"teams": sorted(set(teams.values())), "reports": list(teams)}

    def by_report(sql: str) -> dict[str, dict]:
        return {row.pop("report_id"): row for row in db.query(sql, params)}

    states, summaries, researched = by_report(_REPORT_SQL), by_report(_SUMMARY_SQL), by_report(_RESEARCH_SQL)
    signals: dict[str, list[dict]] = {report: [] for report in teams}
    for row in db.query(_SIGNALS_SQL, params):
        signals[row.pop("report_id")].append(row)
    views = {}
    for report in teams:
        state, summary, research = states.get(report, {}), summaries.get(report, {}), researched.get(report)
        if research is not None:
            research["findings"] = json.loads(research["findings"] or "[]")
        views[report] = {
            "report_id": report,
            "status": state.get("status", ""),
            "title": summary.get("title") or state.get("event_title", ""),
            "summary": summary.get("summary") or state.get("event_summary", ""),
            "judgement": summary,
            "signals": signals[report],
            "research": research,
        }
    return views


def _field(label: str, value: object) -> str:
    return f"- **{label}:** {inline_text(value) if value not in (None, '') else '—'}"


def _lines(finding: dict) -> str:
    start, end = finding.get("start_line"), finding.get("end_line")
    if start in (None, ""):
        return "—"
    return inline_text(start if end in (None, "", start) else f"{start}–{end}")


def render_report_markdown(view: dict) -> str:
    """The report page as Markdown (see `report_views` for the fields)."""
    judgement = view["judgement"]
    parts = [
        f"## {inline_text(view['title'] or view['report_id'])}",
        "",
        inline_text(view["summary"]) if view["summary"] else "_No summary yet._",
        "",
        _field("Report", view["report_id"]),
        _field("Status", view["status"]),
        _field("Priority", judgement.get("priority"))
        + (f" ({inline_text(judgement['priority_reason'])})" if judgement.get("priority_reason") else ""),
        _field("Actionability", judgement.get("actionability"))
        + (f" ({inline_text(judgement['actionability_reason'])})" if judgement.get("actionability_reason") else ""),
        _field("Safety", " ".join(filter(None, [judgement.get("safety"), judgement.get("safety_kind")]))),
        "",
        f"### Signals ({len(view['signals'])})",
        "",
    ]
    if view["signals"]:
        parts += ["| source | id | excerpt |", "| --- | --- | --- |"]
        for signal in view["signals"][:MAX_SIGNALS_SHOWN]:
            source = inline_text(f"{signal['source_product']}/{signal['source_type']}")
            parts.append(
                f"| {source} | {inline_text(signal['source_id'], 80)} | "
                f"{inline_text(signal['description'], EXCERPT_CHARS)} |"
            )
        if len(view["signals"]) > MAX_SIGNALS_SHOWN:
            parts.append(f"\n_… and {len(view['signals']) - MAX_SIGNALS_SHOWN} more signals._")
    else:
        parts.append("_No live signals._")
    parts += ["", "### Research", ""]
    research = view["research"]
    if research is None:
        parts.append("_Not researched yet._")
        return "\n".join(parts) + "\n"
    parts += [
        _field("Round", research["research_round"]),
        _field("Outcome", research["status"]),
        _field("Repository", research["repository"]),
        _field("Reason", research["reason"]),
        # The key in the object store, as text: the UI must not link to storage.
        _field("Research log", research["log_key"]),
        "",
    ]
    findings = research["findings"]
    if findings:
        parts += ["| file | lines | reason |", "| --- | --- | --- |"]
        for finding in findings[:MAX_FINDINGS_SHOWN]:
            parts.append(
                f"| {inline_text(finding.get('file', ''), 300)} | {_lines(finding)} | "
                f"{inline_text(finding.get('reason', ''), EXCERPT_CHARS)} |"
            )
    else:
        parts.append("_No findings._")
    return "\n".join(parts) + "\n"


def stored_reports_markdown(db: StoreSession, teams: dict[str, int]) -> dict[str, str]:
    """`render_report_markdown` of each report of {report: team} as stored now, read through an open
    store session."""
    return {report: render_report_markdown(view) for report, view in report_views(db, teams).items()}
