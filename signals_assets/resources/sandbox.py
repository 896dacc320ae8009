"""Runs the research agent (`sandbox/agent.py`) through Dagster Pipes and returns its outcome."""

import functools
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dagster as dg

from signals_assets.research.message_file import WholeLineFileMessageReader
from signals_assets.research.outcome import (
    ResearchOutcome,
    SandboxResearchError,
    last_console_line,
    read_log,
    research_outcome,
)

AGENT_SCRIPT = Path(__file__).resolve().parents[2] / "sandbox" / "agent.py"
LOG_FILE_NAME = "research.jsonl"
WORK_DIR_PREFIX = "signals-research-"  # then the run id, in the temporary folder
RUN_ID_CHARS = 36  # a Dagster run id: a UUID
SANDBOX_MODES = ("subprocess", "docker")
# All of the run worker's environment the subprocess agent gets: none of its secrets (API keys,
# database passwords). HOME and TMPDIR point into the run's own work dir.
SUBPROCESS_ENVIRONMENT = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "PYTHONPATH")
# SIGKILL follows SIGTERM after this long: a process may ignore SIGTERM (or inherit it ignored).
TERMINATION_GRACE_SECONDS = 5
# The agent's own alarm ends it at the limit; the run worker stops its process group this much later
# in case the alarm cannot (an agent that blocks SIGALRM, or a child it started).
DEADLINE_SLACK_SECONDS = 5
CANCEL_POLL_SECONDS = 0.5


class ResearchCancelled(Exception):
    """The report run stopped its research pool (it is being terminated)."""


class SandboxResource(dg.ConfigurableResource):
    """Where the research agent runs: `subprocess` (the default) as a local process with an
    allow-listed environment (not an isolation boundary), `docker` in a hardened container of
    `image` (scripts/build-sandbox-image); both through Dagster Pipes."""

    mode: str = "subprocess"
    python_executable: str = ""  # subprocess: default the interpreter running Dagster
    timeout_seconds: int = 600  # wall clock, both modes
    image: str = "signals-research-agent:latest"
    container_command: list[str] = []  # docker: default the image's CMD (the agent)
    memory_mb: int = 512  # docker: the container's memory; subprocess: the agent's address space
    cpus: float = 1.0
    pids_limit: int = 128
    inactivity_timeout_seconds: int = 120  # docker: no output line for this long stops the container
    network: str = ""  # docker network joined when network_allowlist is set; otherwise no network
    network_allowlist: list[str] = []
    work_dir_mb: int = 64  # docker: size of the tmpfs work dir (counts against memory_mb)
    file_size_mb: int = 16  # docker: largest file the container may write
    output_mb: int = 16  # docker: output read before the container is stopped
    open_files: int = 256  # docker: file-descriptor limit
    concurrency: int = 2  # research runs of one report run going at once (research/pool.py)
    # SIGNALS_HOME: a repository that holds or lies in it is never given to the agent (every team's data)
    data_folder: str = ""

    def run_research(
        self,
        context: dg.AssetExecutionContext,
        report: dict,
        repositories: list[dict],
        max_files: int = 5,
        cancelled: threading.Event | None = None,
    ) -> ResearchOutcome:
        """Research one report: `report` {report_id, title, summary, signals}, `repositories` [{name, path}].

        Raises SandboxResearchError when the agent fails, exceeds `timeout_seconds` or reports no result.
        A subprocess agent is stopped once `cancelled` is set; containers by `stop_run_containers`.
        """
        if self.mode not in SANDBOX_MODES:
            raise ValueError(f"sandbox mode {self.mode!r} is not supported (supported: {', '.join(SANDBOX_MODES)})")
        runner = {"subprocess": self._run_subprocess, "docker": self._run_docker}[self.mode]
        repositories = self.readable_repositories(repositories, context.log.warning)
        # Named after the run: should the run's worker be killed, whoever prunes its containers finds it.
        with tempfile.TemporaryDirectory(prefix=f"{WORK_DIR_PREFIX}{context.run.run_id}-") as work_dir:
            log_path = Path(work_dir) / LOG_FILE_NAME
            started = time.monotonic()
            try:
                messages = runner(context, report, repositories, max_files, Path(work_dir), cancelled)
            except Exception as error:
                log_lines = read_log(log_path)
                message = (
                    str(error)
                    if isinstance(error, SandboxResearchError)
                    else self._failure_message(error, time.monotonic() - started, log_lines)
                )
                raise SandboxResearchError(message, log_lines) from error
            log_lines = read_log(log_path)
        return research_outcome(
            messages, log_lines, report.get("report_id"), self.mode, max_files, [r["name"] for r in repositories]
        )

    def readable_repositories(self, repositories: list[dict], warn) -> list[dict]:
        """The repositories the agent may read, their folders resolved now (as the agent will find them):
        none in a system tree or that holds or lies in `data_folder`, and for a container none whose path
        is not UTF-8 (the engine would mount another folder, its name with U+FFFD). `signals teams set`
        refuses the first two, but a config written straight to the store, or a folder replaced by a
        symlink since, reaches research unchecked. Each one carries the `device` and `inode` of the
        folder checked, which the agent verifies before reading it: a container's mount is resolved
        only when it starts."""
        from signals_assets.ingestion.teams import data_folder_rule, system_tree_rule

        readable = []
        for repository in repositories:
            resolved, identity = checked_folder(repository["path"])
            rule = (
                system_tree_rule(resolved)
                or data_folder_rule(resolved, self.data_folder or None)
                or (self.mode == "docker" and _not_utf8_rule(resolved))
            )
            if rule:
                warn(
                    f"repository {repository['name']!r} ({repository['path']!r}) is not researched: {resolved!r} {rule}"
                )
            else:
                readable.append({**repository, "path": resolved, **identity})
        return readable

    def _run_subprocess(
        self,
        context: dg.AssetExecutionContext,
        report: dict,
        repositories: list[dict],
        max_files: int,
        work_dir: Path,
        cancelled: threading.Event | None,
    ) -> list[Any]:
        extras = {
            "report": report,
            "repositories": repositories,
            "max_files": max_files,
            "log_path": str(work_dir / LOG_FILE_NAME),
        }
        # The agent ends itself at the wall-clock limit (an alarm), Pipes runs it without a timeout, and
        # it caps its own memory.
        command = [
            self.python_executable or sys.executable,
            str(AGENT_SCRIPT),
            "--timeout-seconds",
            str(self.timeout_seconds),
            "--memory-mb",
            str(self.memory_mb),
            # its work dir is this process's to remove: the agent does so should this process be killed
            "--runner-pid",
            str(os.getpid()),
        ]
        # Not PipesSubprocessClient: it always passes the run worker's whole environment on.
        with dg.open_pipes_session(
            context=context,
            context_injector=dg.PipesFileContextInjector(str(work_dir / "context.json")),
            message_reader=WholeLineFileMessageReader(work_dir),
            extras=extras,
        ) as session:
            environment = {name: os.environ[name] for name in SUBPROCESS_ENVIRONMENT if name in os.environ}
            environment.update(HOME=str(work_dir), TMPDIR=str(work_dir), **session.get_bootstrap_env_vars())
            # Its own process group: stopping it reaches whatever the agent started.
            process = subprocess.Popen(command, cwd=work_dir, env=environment, start_new_session=True)
            try:
                exit_code = _wait_unless_cancelled(process, cancelled, self.timeout_seconds + DEADLINE_SLACK_SECONDS)
            finally:  # also after a normal exit: nothing the agent started outlives it
                stop_process_group(process)
        if exit_code != 0:
            raise RuntimeError(f"the agent process exited with code {exit_code}")
        return list(session.get_custom_messages())

    def _run_docker(
        self,
        context: dg.AssetExecutionContext,
        report: dict,
        repositories: list[dict],
        max_files: int,
        work_dir: Path,
        cancelled: threading.Event | None,
    ) -> list[Any]:
        from docker.errors import ImageNotFound

        from signals_assets.research import docker_sandbox as ds

        client = ds.engine_client()
        try:
            client.images.get(self.image)
        except ImageNotFound:
            raise SandboxResearchError(
                f"sandbox image {self.image} not found on {client.api.base_url}: build it with scripts/build-sandbox-image"
            ) from None
        self.prune_containers(context.instance, client, context.log.warning)

        repositories_inside, mounted_repositories = ds.repository_mounts(repositories)
        labels = {
            ds.REPORT_LABEL: str(report.get("report_id", "")),
            ds.RUN_LABEL: context.run.run_id,
            ds.INVOCATION_LABEL: uuid.uuid4().hex,
        }
        extras = {
            "report": report,
            "repositories": repositories_inside,
            "max_files": max_files,
            "log_path": f"{ds.WORK_DIR}/{LOG_FILE_NAME}",
        }
        try:
            return ds.run_agent_container(
                context,
                client,
                image=self.image,
                command=self.container_command,
                extras=extras,
                limits=self.container_limits(),
                labels=labels,
                mounted_repositories=mounted_repositories,
                host_dir=work_dir,
                log_file_name=LOG_FILE_NAME,
            )
        except ds.ContainerFailed as failure:
            raise SandboxResearchError(f"research container {failure}") from None

    def stop_run_containers(self, run_id: str, warn=None) -> None:
        """Remove the research containers of run `run_id` (the run is being terminated); their
        threads then see the container gone and clean up after it."""
        if self.mode != "docker":
            return
        from signals_assets.research import docker_sandbox as ds

        client = ds.engine_client()
        for container in client.containers.list(all=True, filters={"label": f"{ds.RUN_LABEL}={run_id}"}):
            ds.remove_container(container, warn or dg.get_dagster_logger().warning)

    def prune_containers(self, instance: dg.DagsterInstance, client=None, warn=None) -> list[str]:
        """Remove research containers whose Dagster run has ended (e.g. its worker was killed), and the
        work dirs such runs left."""
        warn = warn or dg.get_dagster_logger().warning
        is_alive = functools.partial(run_is_alive, instance)
        work_dirs = remove_ended_runs_work_dirs(is_alive, warn)
        if self.mode != "docker":
            return work_dirs
        from signals_assets.research import docker_sandbox as ds

        return ds.prune_sandbox_containers(client or ds.engine_client(), is_alive, warn) + work_dirs

    def container_limits(self):
        from signals_assets.research.docker_sandbox import ContainerLimits

        if self.network_allowlist and not self.network:
            raise ValueError("sandbox network_allowlist needs a network: the docker network that enforces it")
        return ContainerLimits(
            memory_mb=self.memory_mb,
            cpus=self.cpus,
            pids=self.pids_limit,
            timeout_seconds=self.timeout_seconds,
            inactivity_seconds=self.inactivity_timeout_seconds,
            network=self.network,
            network_allowlist=tuple(self.network_allowlist),
            work_dir_mb=self.work_dir_mb,
            file_size_mb=self.file_size_mb,
            output_mb=self.output_mb,
            open_files=self.open_files,
        )

    def _failure_message(self, error: Exception, elapsed: float, log_lines: list[dict]) -> str:
        if elapsed >= self.timeout_seconds:
            return f"research agent exceeded its {self.timeout_seconds}s limit and was stopped"
        return f"research agent failed ({self.mode}): {error}{last_console_line(log_lines)}"


def _wait_unless_cancelled(process: subprocess.Popen, cancelled: threading.Event | None, limit_seconds: float) -> int:
    """The process's exit code; ResearchCancelled once `cancelled` is set while it still runs, TimeoutError
    once it has run `limit_seconds`."""
    deadline = time.monotonic() + limit_seconds
    while True:
        try:
            return process.wait(timeout=min(CANCEL_POLL_SECONDS, max(0.0, deadline - time.monotonic())))
        except subprocess.TimeoutExpired:
            if cancelled is not None and cancelled.is_set():
                raise ResearchCancelled("the report run was stopped") from None
            if time.monotonic() >= deadline:
                raise TimeoutError(f"the agent ran past {limit_seconds:g}s") from None


def stop_process_group(process: subprocess.Popen, grace_seconds: float = TERMINATION_GRACE_SECONDS) -> None:
    """End the process group led by `process` (started with start_new_session): SIGTERM, then SIGKILL
    to whatever is left after `grace_seconds`. Not SIGINT, which a process may have inherited ignored."""
    group = process.pid
    if not _signal_group(group, signal.SIGTERM):
        process.wait()
        return
    deadline = time.monotonic() + grace_seconds
    while time.monotonic() < deadline:
        if process.poll() is not None and not _signal_group(group, 0):
            return
        time.sleep(0.05)
    _signal_group(group, signal.SIGKILL)
    process.wait()


def _signal_group(group: int, number: int) -> bool:
    """Send signal `number` to process group `group`; False when no process is left in it."""
    try:
        os.killpg(group, number)
    except ProcessLookupError:
        return False
    return True


def checked_folder(path: str) -> tuple[str, dict[str, int]]:
    """`path` resolved, and the `device` and `inode` of the folder it names, both taken from the one
    folder opened (resolving, then looking the resolved path up again, would leave room for a swap in
    between); no identity when it names no folder (the agent then reports it as not found)."""
    try:
        descriptor = os.open(path, os.O_PATH | os.O_DIRECTORY)  # O_PATH: also a folder it may not list
    except OSError:
        return os.path.realpath(path), {}
    try:
        resolved = os.readlink(f"/proc/self/fd/{descriptor}")  # the kernel's path of the opened folder
        status = os.fstat(descriptor)
    finally:
        os.close(descriptor)
    return resolved, {"device": status.st_dev, "inode": status.st_ino}


def _not_utf8_rule(path: str) -> str | None:
    from signals_assets.ingestion.validation import storable_text_rule

    # an undecodable byte of the name is a lone surrogate in the str
    return "is not valid UTF-8, which the Docker engine cannot mount" if storable_text_rule(path) else None


def remove_ended_runs_work_dirs(is_alive: Callable[[str], bool | None], warn) -> list[str]:
    """Remove the research work dirs (the report and its signals) that runs no longer going left in the
    temporary folder: a killed run worker removes nothing, and a container cannot see its runner die."""
    removed = []
    for path in Path(tempfile.gettempdir()).glob(f"{WORK_DIR_PREFIX}*"):
        run_id = path.name[len(WORK_DIR_PREFIX) :][:RUN_ID_CHARS]
        if path.is_dir() and not path.is_symlink() and is_alive(run_id) is False:
            shutil.rmtree(path, ignore_errors=True)
            if path.exists():
                warn(f"could not remove the research work dir {str(path)!r}")
            else:
                removed.append(str(path))
    return removed


def run_is_alive(instance: dg.DagsterInstance, run_id: str) -> bool | None:
    """Whether the Dagster run is still going; None when this instance does not know it."""
    run = instance.get_run_by_id(run_id) if run_id else None
    return None if run is None else not run.is_finished
