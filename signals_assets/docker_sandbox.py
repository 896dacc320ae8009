"""The hardened research container: its settings, a watchdog for the limits PipesDockerClient
lacks (wall clock, inactivity), the reason a container ended, and the clean-up of left-over containers.

Imports dagster_docker (and so the docker client): import this module only where Docker is used.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from dagster_docker import PipesDockerLogsMessageReader
from dagster._core.pipes.utils import extract_message_or_forward_to_stdout

SANDBOX_LABEL = "signals_assets.sandbox"
REPORT_LABEL = "signals_assets.report_id"
RUN_LABEL = "signals_assets.run_id"
INVOCATION_LABEL = "signals_assets.invocation"
SANDBOX_USER = "10001:10001"  # matches USER in sandbox/Dockerfile
WORK_DIR = "/work"
REPOSITORIES_DIR = "/repos"
OUTPUT_LINES_KEPT = 5


@dataclass(frozen=True)
class ContainerLimits:
    memory_mb: int = 512
    cpus: float = 1.0
    pids: int = 128
    timeout_seconds: int = 600  # wall clock
    inactivity_seconds: int = 120  # no output line for this long
    network: str = ""  # docker network joined when an allowlist is configured
    network_allowlist: tuple[str, ...] = ()


def repository_mounts(repositories: list[dict]) -> tuple[list[dict], dict[str, dict]]:
    """Container paths for the candidate repositories and the read-only bind mounts that back them.

    A repository folder that does not exist is not mounted; the agent then reports it as not found.
    """
    from pathlib import Path

    inside, volumes, used = [], {}, set()
    for index, repository in enumerate(repositories):
        safe = re.sub(r"[^A-Za-z0-9._-]", "_", repository["name"]) or "repository"
        target = f"{REPOSITORIES_DIR}/{safe}"
        if target in used:
            target = f"{REPOSITORIES_DIR}/{index}-{safe}"
        used.add(target)
        source = Path(repository["path"]).resolve()
        if source.is_dir():
            volumes[str(source)] = {"bind": target, "mode": "ro"}
        inside.append({"name": repository["name"], "path": target})
    return inside, volumes


def container_kwargs(limits: ContainerLimits, labels: dict[str, str], volumes: dict[str, dict]) -> dict:
    """`containers.create` arguments: no network (unless allowlisted), read-only root, non-root,
    no capabilities, bounded memory, CPU and processes."""
    network = {"network_mode": limits.network} if limits.network_allowlist else {"network_mode": "none"}
    environment = {"SIGNALS_NETWORK_ALLOWLIST": ",".join(limits.network_allowlist)} if limits.network_allowlist else {}
    return {
        **network,
        "labels": {SANDBOX_LABEL: "1", **labels},
        "user": SANDBOX_USER,
        "working_dir": WORK_DIR,
        "read_only": True,
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges"],
        "mem_limit": f"{limits.memory_mb}m",
        "memswap_limit": f"{limits.memory_mb}m",  # no swap on top of the memory limit
        "nano_cpus": int(limits.cpus * 1e9),
        "pids_limit": limits.pids,
        "volumes": volumes,
        "environment": environment,
    }


class ActivityTrackingLogsReader(PipesDockerLogsMessageReader):
    """Reads Pipes messages from the container's log stream like its parent, and notes when the
    container last wrote a line and what its last plain (non-Pipes) output lines were."""

    def __init__(self) -> None:
        super().__init__()
        self.last_activity: float | None = None  # set once the container runs: creating it can be slow
        self.last_output: deque[str] = deque(maxlen=OUTPUT_LINES_KEPT)

    def consume_docker_logs(self, container) -> None:
        handler = self._handler
        if handler is None:
            raise RuntimeError("container logs can only be read inside the Pipes session")
        self.last_activity = time.monotonic()  # the container has just started
        partial = ""  # Docker splits lines longer than 16 KiB over several chunks
        for chunk in container.logs(stdout=True, stderr=True, stream=True, follow=True):
            self.last_activity = time.monotonic()
            text = partial + (chunk.decode("utf-8", errors="replace") if isinstance(chunk, bytes) else str(chunk))
            *lines, partial = text.split("\n")
            for line in lines:
                self._handle_line(handler, line)
        self._handle_line(handler, partial)

    def _handle_line(self, handler, line: str) -> None:
        if not line.strip():
            return
        if not _is_pipes_message(line):
            self.last_output.append(line.strip())
        extract_message_or_forward_to_stdout(handler, line)


def _is_pipes_message(line: str) -> bool:
    try:
        message = json.loads(line)
    except ValueError:
        return False
    return isinstance(message, dict) and "__dagster_pipes_version" in message


@dataclass
class ContainerWatchdog:
    """Kills the containers labelled with `invocation` when they run past the wall-clock limit or
    write nothing for `inactivity_seconds`; `reason` then says which limit it was."""

    docker_client: object
    invocation: str
    last_activity: Callable[[], float | None]  # None until the container runs
    timeout_seconds: float
    inactivity_seconds: float
    poll_seconds: float = 0.25
    reason: str = ""
    _done: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> ContainerWatchdog:
        self._thread = threading.Thread(target=self._watch, name=f"sandbox-watchdog-{self.invocation}", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._done.set()
        if self._thread:
            self._thread.join()

    def _watch(self) -> None:
        started = time.monotonic()
        while not self._done.wait(self.poll_seconds):
            now = time.monotonic()
            if not self.reason:
                if now - started > self.timeout_seconds:
                    self.reason = f"exceeded its {self.timeout_seconds:g}s wall-clock limit and was stopped"
                elif (last := self.last_activity()) is not None and now - last > self.inactivity_seconds:
                    self.reason = (f"wrote no output for {self.inactivity_seconds:g}s (inactivity timeout) "
                                   "and was stopped")
            if self.reason:
                for container in invocation_containers(self.docker_client, self.invocation):
                    if container.status in ("created", "running", "restarting"):
                        _ignore_gone(container.kill)


def invocation_containers(docker_client, invocation: str) -> list:
    return docker_client.containers.list(all=True, filters={"label": f"{INVOCATION_LABEL}={invocation}"})


def describe_exit(docker_client, invocation: str, limits: ContainerLimits, last_output: list[str]) -> str:
    """Why the invocation's container ended badly, from its state and its last output lines."""
    states = [container.attrs.get("State", {}) for container in invocation_containers(docker_client, invocation)]
    if not states:
        return "research container was not created"
    state = states[0]
    if state.get("OOMKilled"):
        return f"research container ran out of memory: killed at its {limits.memory_mb} MB limit"
    output = f": {' | '.join(last_output)}" if last_output else ""
    return f"research container exited with code {state.get('ExitCode')}{output}"


def remove_invocation_containers(docker_client, invocation: str) -> None:
    for container in invocation_containers(docker_client, invocation):
        _ignore_gone(container.remove, force=True)


def prune_sandbox_containers(docker_client, run_is_alive: Callable[[str], bool | None]) -> list[str]:
    """Remove research containers whose Dagster run has ended; ids removed.

    `run_is_alive(run_id)` answers None for a run this instance does not know: such a container
    (another instance's, or a test's) is removed only once it no longer runs.
    """
    removed = []
    for container in docker_client.containers.list(all=True, filters={"label": f"{SANDBOX_LABEL}=1"}):
        alive = run_is_alive(container.labels.get(RUN_LABEL, ""))
        if alive is False or (alive is None and container.status not in ("created", "running", "restarting")):
            _ignore_gone(container.remove, force=True)
            removed.append(container.id)
    return removed


def _ignore_gone(action: Callable, **kwargs) -> None:
    """Run a container action that may race with the container's own end or removal."""
    import docker.errors

    try:
        action(**kwargs)
    except docker.errors.NotFound:
        pass
    except docker.errors.APIError as error:
        # 409: already stopped, or removal already in progress.
        if error.status_code != 409:
            raise
