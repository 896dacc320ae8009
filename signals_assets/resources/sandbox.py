"""Runs the research agent (`sandbox/agent.py`) through Dagster Pipes and returns its outcome."""

import json
import os
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg

AGENT_SCRIPT = Path(__file__).resolve().parents[2] / "sandbox" / "agent.py"
LOG_FILE_NAME = "research.jsonl"
RESULT_STATUSES = ("ready", "pending_input")
SANDBOX_MODES = ("subprocess", "docker")


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
    actionability: str  # immediately_actionable | requires_human_input
    priority: str  # P0 .. P4
    reason: str
    log_lines: list[dict] = field(default_factory=list)  # the agent's JSONL log: {ts, type, message, data?}
    sandbox: str = ""  # the mode it ran in


class SandboxResource(dg.ConfigurableResource):
    """Where the research agent runs: `subprocess` (the default) as a local process, `docker` in a
    hardened container of `image` (scripts/build-sandbox-image) through PipesDockerClient."""

    mode: str = "subprocess"
    python_executable: str = ""  # subprocess: default the interpreter running Dagster
    timeout_seconds: int = 600  # wall clock, both modes
    image: str = "signals-research-agent:latest"
    container_command: list[str] = []  # docker: default the image's CMD (the agent)
    memory_mb: int = 512
    cpus: float = 1.0
    pids_limit: int = 128
    inactivity_timeout_seconds: int = 120  # docker: no output line for this long stops the container
    network: str = ""  # docker network joined when network_allowlist is set; otherwise no network
    network_allowlist: list[str] = []

    def run_research(
        self, context: dg.AssetExecutionContext, report: dict, repositories: list[dict], max_files: int = 5
    ) -> ResearchOutcome:
        """Research one report: `report` {report_id, title, summary, signals}, `repositories` [{name, path}].

        Raises SandboxResearchError when the agent fails, exceeds `timeout_seconds` or reports no result.
        """
        if self.mode not in SANDBOX_MODES:
            raise ValueError(f"sandbox mode {self.mode!r} is not supported (supported: {', '.join(SANDBOX_MODES)})")
        runner = {"subprocess": self._run_subprocess, "docker": self._run_docker}[self.mode]
        with tempfile.TemporaryDirectory(prefix="signals-research-") as work_dir:
            log_path = Path(work_dir) / LOG_FILE_NAME
            started = time.monotonic()
            try:
                messages = runner(context, report, repositories, max_files, Path(work_dir))
            except Exception as error:
                log_lines = read_log(log_path)
                message = (str(error) if isinstance(error, SandboxResearchError)
                           else self._failure_message(error, time.monotonic() - started, log_lines))
                raise SandboxResearchError(message, log_lines) from error
            log_lines = read_log(log_path)
        result = next((m for m in reversed(messages) if isinstance(m, dict) and "status" in m), None)
        if result is None:
            raise SandboxResearchError(
                f"research agent for report {report.get('report_id')} exited without reporting a result "
                f"({len(log_lines)} log lines{_last_console_line(log_lines)})", log_lines
            )
        if result["status"] not in RESULT_STATUSES:
            raise SandboxResearchError(f"research agent reported an unknown status {result['status']!r}", log_lines)
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

    def _run_docker(
        self, context: dg.AssetExecutionContext, report: dict, repositories: list[dict], max_files: int, work_dir: Path
    ) -> list[Any]:
        import docker
        from dagster_docker import PipesDockerClient
        from dagster_pipes import DagsterPipesError

        from signals_assets import docker_sandbox as ds

        client = docker.from_env()
        try:
            client.images.get(self.image)
        except docker.errors.ImageNotFound:
            # PipesDockerClient would try to pull it from a registry instead.
            raise SandboxResearchError(
                f"sandbox image {self.image} not found on {client.api.base_url}: build it with scripts/build-sandbox-image"
            ) from None
        self.prune_containers(context.instance, client)

        limits = self.container_limits()
        invocation = uuid.uuid4().hex
        repositories_inside, volumes = ds.repository_mounts(repositories)
        _give_to_sandbox_user(work_dir)
        volumes[str(work_dir)] = {"bind": ds.WORK_DIR, "mode": "rw"}
        labels = {ds.REPORT_LABEL: str(report.get("report_id", "")), ds.RUN_LABEL: context.run.run_id,
                  ds.INVOCATION_LABEL: invocation}
        extras = {"report": report, "repositories": repositories_inside, "max_files": max_files,
                  "log_path": f"{ds.WORK_DIR}/{LOG_FILE_NAME}"}
        reader = ds.ActivityTrackingLogsReader()
        watchdog = ds.ContainerWatchdog(client, invocation, lambda: reader.last_activity,
                                        limits.timeout_seconds, limits.inactivity_seconds)
        try:
            with watchdog:
                invocation_result = PipesDockerClient(message_reader=reader).run(
                    context=context, image=self.image, extras=extras, command=self.container_command or None,
                    container_kwargs=ds.container_kwargs(limits, labels, volumes),
                )
            return invocation_result.get_custom_messages()
        except DagsterPipesError as error:
            # The container ended badly (non-zero exit) or the Pipes session failed.
            raise SandboxResearchError(
                f"research container {watchdog.reason}" if watchdog.reason
                else ds.describe_exit(client, invocation, limits, list(reader.last_output))
            ) from error
        finally:
            # PipesDockerClient stops the container but never removes it; this also runs when the
            # run is terminated (Dagster raises an interrupt in the step).
            ds.remove_invocation_containers(client, invocation)

    def prune_containers(self, instance: dg.DagsterInstance, client=None) -> list[str]:
        """Remove research containers whose Dagster run has ended (e.g. its worker was killed)."""
        if self.mode != "docker":
            return []
        import docker

        from signals_assets.docker_sandbox import prune_sandbox_containers

        return prune_sandbox_containers(client or docker.from_env(), lambda run_id: _run_is_alive(instance, run_id))

    def container_limits(self):
        from signals_assets.docker_sandbox import ContainerLimits

        if self.network_allowlist and not self.network:
            raise ValueError("sandbox network_allowlist needs a network: the docker network that enforces it")
        return ContainerLimits(
            memory_mb=self.memory_mb, cpus=self.cpus, pids=self.pids_limit, timeout_seconds=self.timeout_seconds,
            inactivity_seconds=self.inactivity_timeout_seconds, network=self.network,
            network_allowlist=tuple(self.network_allowlist),
        )

    def _failure_message(self, error: Exception, elapsed: float, log_lines: list[dict]) -> str:
        if elapsed >= self.timeout_seconds:
            return f"research agent exceeded its {self.timeout_seconds}s limit and was stopped"
        return f"research agent failed ({self.mode}): {error}{_last_console_line(log_lines)}"


def _run_is_alive(instance: dg.DagsterInstance, run_id: str) -> bool | None:
    """Whether the Dagster run is still going; None when this instance does not know it."""
    run = instance.get_run_by_id(run_id) if run_id else None
    return None if run is None else not run.is_finished


def _give_to_sandbox_user(work_dir: Path) -> None:
    """The container's unprivileged user must be able to write its work dir (a bind mount)."""
    from signals_assets.docker_sandbox import SANDBOX_USER

    uid, gid = (int(part) for part in SANDBOX_USER.split(":"))
    if os.geteuid() == 0:
        os.chown(work_dir, uid, gid)
    else:
        work_dir.chmod(0o777)


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
