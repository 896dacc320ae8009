"""Runs the research agent (`sandbox/agent.py`) through Dagster Pipes and returns its outcome."""

import json
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg

AGENT_SCRIPT = Path(__file__).resolve().parents[2] / "sandbox" / "agent.py"
LOG_FILE_NAME = "research.jsonl"
RESULT_STATUSES = ("ready", "pending_input")
SANDBOX_MODES = ("subprocess",)


class SandboxResearchError(Exception):
    """The research agent failed, timed out or finished without a result."""


@dataclass
class ResearchOutcome:
    status: str  # ready | pending_input
    repository: str | None
    findings: list[dict]  # {file, start_line, end_line, score, reason}
    repository_ranking: list[dict]  # {name, score, reason}
    actionability: str  # immediately_actionable | requires_human_input
    priority: str  # P0 .. P4
    reason: str
    log_lines: list[dict] = field(default_factory=list)  # the agent's JSONL log: {ts, type, message, data?}
    sandbox: str = ""  # the mode it ran in


class SandboxResource(dg.ConfigurableResource):
    """Where the research agent runs. `subprocess` (the default) runs it as a local process; each
    mode is one `_run_<mode>` method, so a hardened container mode can sit beside it."""

    mode: str = "subprocess"
    python_executable: str = ""  # default: the interpreter running Dagster
    timeout_seconds: int = 600

    def run_research(
        self, context: dg.AssetExecutionContext, report: dict, repositories: list[dict], max_files: int = 5
    ) -> ResearchOutcome:
        """Research one report: `report` {report_id, title, summary, signals}, `repositories` [{name, path}].

        Raises SandboxResearchError when the agent fails, exceeds `timeout_seconds` or reports no result.
        """
        if self.mode not in SANDBOX_MODES:
            raise ValueError(f"sandbox mode {self.mode!r} is not supported (supported: {', '.join(SANDBOX_MODES)})")
        runner = {"subprocess": self._run_subprocess}[self.mode]
        with tempfile.TemporaryDirectory(prefix="signals-research-") as work_dir:
            log_path = Path(work_dir) / LOG_FILE_NAME
            started = time.monotonic()
            try:
                messages = runner(context, report, repositories, max_files, Path(work_dir))
            except Exception as error:
                raise SandboxResearchError(
                    self._failure_message(error, time.monotonic() - started, read_log(log_path))
                ) from error
            log_lines = read_log(log_path)
        result = next((m for m in reversed(messages) if isinstance(m, dict) and "status" in m), None)
        if result is None:
            raise SandboxResearchError(
                f"research agent for report {report.get('report_id')} exited without reporting a result "
                f"({len(log_lines)} log lines{_last_console_line(log_lines)})"
            )
        if result["status"] not in RESULT_STATUSES:
            raise SandboxResearchError(f"research agent reported an unknown status {result['status']!r}")
        return ResearchOutcome(
            status=result["status"],
            repository=result.get("repository"),
            findings=list(result.get("findings") or []),
            repository_ranking=list(result.get("repository_ranking") or []),
            actionability=result.get("actionability") or "requires_human_input",
            priority=result.get("priority") or "",
            reason=result.get("reason") or "",
            log_lines=log_lines,
            sandbox=self.mode,
        )

    def _run_subprocess(
        self, context: dg.AssetExecutionContext, report: dict, repositories: list[dict], max_files: int, work_dir: Path
    ) -> list[Any]:
        extras = {
            "report": report,
            "repositories": [{"name": r["name"], "path": str(Path(r["path"]).resolve())} for r in repositories],
            "max_files": max_files,
            "log_path": str(work_dir / LOG_FILE_NAME),
        }
        # The agent supervises itself in a child process: PipesSubprocessClient has no timeout.
        command = [self.python_executable or sys.executable, str(AGENT_SCRIPT),
                   "--timeout-seconds", str(self.timeout_seconds)]
        invocation = dg.PipesSubprocessClient(cwd=str(work_dir)).run(context=context, command=command, extras=extras)
        return invocation.get_custom_messages()

    def _failure_message(self, error: Exception, elapsed: float, log_lines: list[dict]) -> str:
        if elapsed >= self.timeout_seconds:
            return f"research agent exceeded its {self.timeout_seconds}s limit and was stopped"
        return f"research agent failed ({self.mode}): {error}{_last_console_line(log_lines)}"


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


def _last_console_line(log_lines: list[dict]) -> str:
    console = [line for line in log_lines if line.get("type") == "console"]
    return f"; last agent message: {console[-1]['message'].splitlines()[0]}" if console else ""
