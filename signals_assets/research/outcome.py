"""What a research run produced: the agent's result message and its JSONL log (read, checked and
encoded for the object store), or why the run failed."""

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from signals_assets.ingestion.validation import storable_text

RESULT_STATUSES = ("ready", "pending_input")
MAX_REASON_CHARS = 2000


class SandboxResearchError(Exception):
    """The research agent failed, timed out or finished without a result; `log_lines` is what it logged."""

    def __init__(self, message: str, log_lines: list[dict] | None = None):
        super().__init__(message)
        self.log_lines = log_lines or []


@dataclass
class ResearchOutcome:
    status: str  # ready | pending_input
    repository: str | None
    findings: list[dict]  # {file, start_line, end_line, score, reason}
    repository_ranking: list[dict]  # {name, score, reason}
    confidence: str  # high | low: whether the report's words meet in the best finding's lines
    reason: str
    log_lines: list[dict] = field(default_factory=list)  # the agent's JSONL log: {ts, type, message, data?}
    sandbox: str = ""  # the mode it ran in


def research_outcome(messages: list[Any], log_lines: list[dict], report_id: Any, sandbox: str) -> ResearchOutcome:
    """The agent's last result message as an outcome; SandboxResearchError when there is none or it is unknown."""
    result = next((m for m in reversed(messages) if isinstance(m, dict) and "status" in m), None)
    if result is None:
        raise SandboxResearchError(
            f"research agent for report {report_id} exited without reporting a result "
            f"({len(log_lines)} log lines{last_console_line(log_lines)})",
            log_lines,
        )
    if result["status"] not in RESULT_STATUSES:
        raise SandboxResearchError(f"research agent reported an unknown status {result['status']!r}", log_lines)
    return ResearchOutcome(
        status=result["status"],
        repository=_text(result.get("repository")) or None,
        findings=list(result.get("findings") or []),
        repository_ranking=list(result.get("repository_ranking") or []),
        confidence=result.get("confidence") or "",
        reason=_text(result.get("reason"))[:MAX_REASON_CHARS],
        log_lines=log_lines,
        sandbox=sandbox,
    )


def _text(value: Any) -> str:
    """A text of the agent's result, storable: a file name that is not valid UTF-8 (common in a team's
    repository) reaches it as lone surrogates, which the store cannot encode; the report's findings keep
    the exact names (as JSON escapes)."""
    return storable_text(str(value)) if value else ""


def read_log(path: Path) -> list[dict]:
    """The agent's JSONL log; a line cut short by a killed agent is skipped."""
    if not path.exists():
        return []
    lines = []
    for raw in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            lines.append(json.loads(raw))
        except json.JSONDecodeError:
            continue
    return lines


def last_console_line(log_lines: list[dict]) -> str:
    """ "; last agent message: …" from the log (empty when the agent printed nothing), for error messages."""
    console = [line for line in log_lines if line.get("type") == "console"]
    return f"; last agent message: {console[-1]['message'].splitlines()[0]}" if console else ""


def research_log_key(report: str, round_: int, run_id: str) -> str:
    """Where the object store keeps the agent's log of one run of the round."""
    return f"research_logs/{report}/round-{round_}-{run_id}.jsonl"


def encode_log(log_lines: list[dict]) -> bytes:
    return "".join(json.dumps(line) + "\n" for line in log_lines).encode()


def failure_reason(error: BaseException) -> str:
    """Why a research run or a judgement failed, as recorded on the report, storable (an error may quote
    a server's or a file's text); a terminated run (Dagster interrupts the step) raises a BaseException
    without a useful message."""
    reason = str(error) if isinstance(error, Exception) else f"research run was interrupted ({type(error).__name__})"
    return storable_text(reason[:MAX_REASON_CHARS])
