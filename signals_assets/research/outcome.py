"""What a research run produced: the agent's result message and its JSONL log (read, checked and
encoded for the object store), or why the run failed."""

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from signals_assets.ingestion.validation import shown, storable_text

RESULT_STATUSES = ("ready", "pending_input")
CONFIDENCES = ("high", "low")
MAX_REASON_CHARS = 2000
# A finding's file path: no longer than a path a filesystem opens (PATH_MAX is 4096 bytes).
MAX_PATH_CHARS = 4096


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


def research_outcome(
    messages: list[Any], log_lines: list[dict], report_id: Any, sandbox: str, max_files: int, repositories: list[str]
) -> ResearchOutcome:
    """The agent's last result message as an outcome; SandboxResearchError when there is none, its status is
    unknown or its shape is not the agent's (at most `max_files` findings; only the names in `repositories`,
    those it was given): the sandbox's output is not trusted, and the report pages render what is stored."""
    result = next((m for m in reversed(messages) if isinstance(m, dict) and "status" in m), None)
    if result is None:
        raise SandboxResearchError(
            f"research agent for report {report_id} exited without reporting a result "
            f"({len(log_lines)} log lines{last_console_line(log_lines)})",
            log_lines,
        )
    if result["status"] not in RESULT_STATUSES:
        raise SandboxResearchError(f"research agent reported an unknown status {result['status']!r}", log_lines)
    try:
        return ResearchOutcome(
            status=result["status"],
            repository=_one_of(result.get("repository"), "repository", (None, *repositories)),
            findings=_entries(result.get("findings"), "findings", max(0, max_files), _finding),
            repository_ranking=_entries(
                result.get("repository_ranking"),
                "repository_ranking",
                len(repositories),
                lambda entry, name: _ranked(entry, name, repositories),
            ),
            confidence=_one_of(result.get("confidence"), "confidence", CONFIDENCES),
            reason=_reason(result.get("reason"), "reason"),
            log_lines=log_lines,
            sandbox=sandbox,
        )
    except ValueError as malformed:
        raise SandboxResearchError(f"research agent reported a malformed result: {malformed}", log_lines) from None


def _finding(entry: dict, name: str) -> dict:
    start = _line_number(entry.get("start_line"), f"{name}.start_line")
    end = _line_number(entry.get("end_line"), f"{name}.end_line")
    if end < start:
        raise ValueError(f"{name}.end_line must not come before start_line ({end} < {start})")
    return {
        # Kept as given (a name not valid UTF-8 reaches it as lone surrogates, stored as JSON escapes).
        "file": _file(entry.get("file"), f"{name}.file"),
        "start_line": start,
        "end_line": end,
        "score": _score(entry.get("score"), f"{name}.score"),
        "reason": _reason(entry.get("reason"), f"{name}.reason"),
    }


def _ranked(entry: dict, name: str, repositories: list[str]) -> dict:
    return {
        "name": _one_of(entry.get("name"), f"{name}.name", tuple(repositories)),
        "score": _score(entry.get("score"), f"{name}.score"),
        "reason": _reason(entry.get("reason"), f"{name}.reason"),
    }


def _entries(value: Any, name: str, most: int, entry) -> list[dict]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ValueError(f"{name} must be a list, not {type(value).__name__}")
    if len(value) > most:
        raise ValueError(f"{name} must have at most {most} entries, not {len(value)}")
    checked = []
    for number, item in enumerate(value):
        if not isinstance(item, dict):
            raise ValueError(f"{name}[{number}] must be an object, not {type(item).__name__}")
        checked.append(entry(item, f"{name}[{number}]"))
    return checked


def _line_number(value: Any, name: str) -> int:
    if type(value) is not int or value < 1:
        raise ValueError(f"{name} must be a positive integer, not {shown(value)}")
    return value


def _score(value: Any, name: str) -> float:
    if type(value) not in (int, float) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, not {shown(value)}")
    return value


def _one_of(value: Any, name: str, allowed: tuple) -> Any:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(map(str, allowed))}, not {shown(value)}")
    return value


def _file(value: Any, name: str) -> str:
    """Kept as given: a file name that is not valid UTF-8 (common in a team's repository) reaches it as lone
    surrogates, which the findings keep as JSON escapes."""
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name} must be a non-empty string, not {shown(value)}")
    if len(value) > MAX_PATH_CHARS:
        raise ValueError(f"{name} must be at most {MAX_PATH_CHARS} characters, not {len(value)}")
    return value


def _reason(value: Any, name: str) -> str:
    """A reason, cut to MAX_REASON_CHARS (it may quote a long path) and storable: the store cannot encode
    the lone surrogates of a file name that is not valid UTF-8."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ValueError(f"{name} must be a string, not {type(value).__name__}")
    return storable_text(value[:MAX_REASON_CHARS])


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
