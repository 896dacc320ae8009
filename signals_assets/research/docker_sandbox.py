"""The hardened research container run through Dagster Pipes: its settings, the report context
as a read-only mounted file, a log reader with an output cap, a watchdog for the wall-clock and
inactivity limits, the reason a container ended, and the clean-up of left-over containers.

Imports dagster_docker (and so the docker client): import this module only where Docker is used.
"""

from __future__ import annotations

import json
import os
import re
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
from dagster_docker import PipesDockerLogsMessageReader

from signals_assets.research.message_file import whole_lines

SANDBOX_LABEL = "signals_assets.sandbox"
REPORT_LABEL = "signals_assets.report_id"
RUN_LABEL = "signals_assets.run_id"
INVOCATION_LABEL = "signals_assets.invocation"
SANDBOX_USER = "10001:10001"  # matches USER in sandbox/Dockerfile
WORK_DIR = "/work"
REPOSITORIES_DIR = "/repos"
CONTEXT_DIR = "/pipes"
CONTEXT_HOST_DIR_NAME = "context"  # in the run's temporary folder
CONTEXT_FILE_NAME = "context.json"
AGENT_TIMEOUT_VARIABLE = "SIGNALS_AGENT_TIMEOUT_SECONDS"  # read by sandbox/agent.py
AGENT_PROGRESS_VARIABLE = "SIGNALS_AGENT_PROGRESS_SECONDS"  # read by sandbox/agent.py
# The agent writes a progress line this many times per inactivity limit while it indexes, so a slow
# log stream does not make a working agent look silent.
PROGRESS_LINES_PER_INACTIVITY_LIMIT = 4
OUTPUT_LINES_KEPT = 5
OUTPUT_LINE_CHARS = 300  # of each kept line: they end up in the report's error
# A loaded engine on the vfs storage driver can take minutes to create or remove a container;
# docker-py's 60 s default turned that slowness into failed runs.
DOCKER_API_TIMEOUT_SECONDS = 300
REMOVE_ATTEMPTS = 3
# The last output line explains these errors best by the limit that caused them.
LIMIT_ERRORS = {
    "No space left on device": "filled its {work_dir_mb} MB work dir",
    "File too large": "wrote a file past its {file_size_mb} MB size limit",
    "Too many open files": "opened more than its {open_files} files",
}


@dataclass(frozen=True)
class ContainerLimits:
    memory_mb: int = 512
    cpus: float = 1.0
    pids: int = 128
    timeout_seconds: int = 600  # wall clock
    inactivity_seconds: int = 120  # no output line for this long
    network: str = ""  # docker network joined when an allowlist is configured
    network_allowlist: tuple[str, ...] = ()
    work_dir_mb: int = 64  # tmpfs at /work; its pages count against memory_mb
    file_size_mb: int = 16  # any one file written, the JSONL log on the host included
    output_mb: int = 16  # stdout + stderr read before the container is stopped
    open_files: int = 256


class ContainerFailed(Exception):
    """The research container ended badly; the message says why ("ran out of memory: ...")."""


def engine_client():
    import docker

    return docker.from_env(timeout=DOCKER_API_TIMEOUT_SECONDS)


def repository_mounts(repositories: list[dict]) -> tuple[list[dict], list]:
    """Container paths for the candidate repositories, each its own, and the read-only bind mounts that
    back them.

    Only a folder checked before research (its `device` and `inode` recorded) that exists now is
    mounted, and the agent inside verifies it is that folder; one that was not is reported as not found.
    """
    inside, mounts, used = [], [], set()
    for index, repository in enumerate(repositories):
        safe = re.sub(r"[^A-Za-z0-9._-]", "_", repository["name"]) or "repository"
        target, number = f"{REPOSITORIES_DIR}/{safe}", index
        # Another name may already hold the numbered one ("2-a_b" beside "a b" and "a_b"): the engine
        # refuses a container with two mounts at one path.
        while target in used:
            target, number = f"{REPOSITORIES_DIR}/{number}-{safe}", number + 1
        used.add(target)
        identity = {key: repository[key] for key in ("device", "inode") if key in repository}
        source = Path(repository["path"]).resolve()
        if identity and source.is_dir():
            mounts.append(bind_mount(source, target, read_only=True))
        inside.append({"name": repository["name"], "path": target, **identity})
    return inside, mounts


def bind_mount(source: Path, target: str, read_only: bool):
    """A bind mount as a structured mount, not a "source:target:mode" volume string, which the engine
    splits at every ':' and so refuses a folder with one in its name (a valid name on Linux)."""
    from docker.types import Mount

    return Mount(target, str(source), type="bind", read_only=read_only)


def container_kwargs(
    limits: ContainerLimits, labels: dict[str, str], mounts: list, environment: dict[str, str] | None = None
) -> dict:
    """`containers.create` arguments: no network (unless allowlisted), read-only root, non-root,
    no capabilities, an init process, bounded memory, CPU, processes and open files, a sized
    `noexec` tmpfs as the only writable folder (no `/dev/shm`, no POSIX message queues), and a capped
    container log."""
    network = {"network_mode": limits.network} if limits.network_allowlist else {"network_mode": "none"}
    allowlist = {"SIGNALS_NETWORK_ALLOWLIST": ",".join(limits.network_allowlist)} if limits.network_allowlist else {}
    uid, gid = SANDBOX_USER.split(":")
    return {
        **network,
        "labels": {SANDBOX_LABEL: "1", **labels},
        "user": SANDBOX_USER,
        "working_dir": WORK_DIR,
        "read_only": True,
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges"],
        "init": True,  # reaps orphans, and the whole container ends when the agent does
        # Docker's default IPC namespace mounts a writable 64 MB /dev/shm beside the sized work dir.
        "ipc_mode": "none",
        "mem_limit": f"{limits.memory_mb}m",
        "memswap_limit": f"{limits.memory_mb}m",  # no swap on top of the memory limit
        "nano_cpus": int(limits.cpus * 1e9),
        "pids_limit": limits.pids,
        "ulimits": [
            {"name": "nofile", "soft": limits.open_files, "hard": limits.open_files},
            {"name": "fsize", "soft": limits.file_size_mb << 20, "hard": limits.file_size_mb << 20},
            {"name": "msgqueue", "soft": 0, "hard": 0},  # /dev/mqueue stays mounted and writable otherwise
        ],
        "tmpfs": {WORK_DIR: f"size={limits.work_dir_mb}m,mode=0700,uid={uid},gid={gid},noexec,nosuid,nodev"},
        # The reader stops the container past output_mb; this bounds what the engine keeps meanwhile.
        "log_config": {"type": "json-file", "config": {"max-size": f"{limits.output_mb}m", "max-file": "2"}},
        "mounts": mounts,
        "environment": {**(environment or {}), **allowlist},
    }


class MountedFileContextInjector(dg.PipesContextInjector):
    """Writes the Pipes context (the report and its signals, too big for an environment variable:
    Linux caps one at 128 KiB) to `host_dir`, which the container mounts read-only at CONTEXT_DIR."""

    def __init__(self, host_dir: Path):
        self.host_dir = host_dir

    @contextmanager
    def inject_context(self, context_data) -> Iterator[dict]:
        self.host_dir.mkdir(mode=0o755, exist_ok=True)
        path = self.host_dir / CONTEXT_FILE_NAME
        path.write_text(json.dumps(context_data), encoding="utf-8")
        path.chmod(0o644)  # readable by the container's unprivileged user
        try:
            yield {"path": f"{CONTEXT_DIR}/{CONTEXT_FILE_NAME}"}
        finally:
            path.unlink(missing_ok=True)

    def no_messages_debug_text(self) -> str:
        return "Attempted to inject context as a file mounted read-only into the container."


def agent_mounts(host_dir: Path, log_file_name: str) -> list:
    """The read-only context folder, and the one host file the container may write: its JSONL log
    (bounded by the file-size limit), mounted over the tmpfs work dir."""
    log_path = host_dir / log_file_name
    log_path.touch()
    if os.geteuid() == 0:
        uid, gid = (int(part) for part in SANDBOX_USER.split(":"))
        os.chown(log_path, uid, gid)
    else:
        log_path.chmod(0o666)
    return [
        bind_mount(host_dir / CONTEXT_HOST_DIR_NAME, CONTEXT_DIR, read_only=True),
        bind_mount(log_path, f"{WORK_DIR}/{log_file_name}", read_only=False),
    ]


def run_agent_container(
    context,
    docker_client,
    *,
    image: str,
    command: list[str] | None,
    extras: dict,
    limits: ContainerLimits,
    labels: dict[str, str],
    mounted_repositories: list,
    host_dir: Path,
    log_file_name: str,
) -> list:
    """Runs the agent's container in a Pipes session; the custom messages it reported.

    `host_dir` (the run's temporary folder) holds the context file and the agent's log. Raises
    ContainerFailed with the reason when the container exits non-zero or is stopped at a limit.
    The container is always removed.
    """
    invocation = labels[INVOCATION_LABEL]
    mounts = [*mounted_repositories, *agent_mounts(host_dir, log_file_name)]
    reader = ActivityTrackingLogsReader(limits.output_mb << 20)
    watchdog = ContainerWatchdog(
        docker_client, invocation, lambda: reader.last_activity, limits.timeout_seconds, limits.inactivity_seconds
    )
    injector = MountedFileContextInjector(host_dir / CONTEXT_HOST_DIR_NAME)
    try:
        with (
            watchdog,
            dg.open_pipes_session(
                context=context, context_injector=injector, message_reader=reader, extras=extras
            ) as session,
        ):
            container = docker_client.containers.create(
                image=image,
                command=command or None,
                detach=True,
                **container_kwargs(
                    limits,
                    labels,
                    mounts,
                    {
                        **session.get_bootstrap_env_vars(),
                        # The agent's own alarm: the watchdog is a thread of this process, which may be killed.
                        AGENT_TIMEOUT_VARIABLE: str(limits.timeout_seconds),
                        AGENT_PROGRESS_VARIABLE: f"{limits.inactivity_seconds / PROGRESS_LINES_PER_INACTIVITY_LIMIT:g}",
                    },
                ),
            )
            container.start()
            reader.consume_docker_logs(container)
            exit_code = container.wait()["StatusCode"]
        if reader.stopped_reason:
            raise ContainerFailed(reader.stopped_reason)
        if watchdog.reason:
            raise ContainerFailed(watchdog.reason + _output_suffix(reader.last_output))
        if exit_code != 0:
            raise ContainerFailed(describe_exit(container, limits, list(reader.last_output)))
        return list(session.get_custom_messages())
    finally:
        # This also runs when the run is terminated (Dagster raises an interrupt in the step).
        remove_invocation_containers(docker_client, invocation, context.log.warning)


class ActivityTrackingLogsReader(PipesDockerLogsMessageReader):
    """Reads Pipes messages from the container's log stream like its parent, in time linear in the
    output; notes when the container last wrote and its last plain (non-Pipes) output lines, and
    stops the container once it has written more than `output_limit_bytes`."""

    def __init__(self, output_limit_bytes: int) -> None:
        super().__init__()
        self.output_limit_bytes = output_limit_bytes
        self.last_activity: float | None = None  # set once the container runs: creating it can be slow
        self.last_output: deque[str] = deque(maxlen=OUTPUT_LINES_KEPT)
        self.stopped_reason = ""

    def consume_docker_logs(self, container) -> None:
        handler = self._handler
        if handler is None:
            raise RuntimeError("container logs can only be read inside the Pipes session")
        self.last_activity = time.monotonic()  # the container has just started
        # Docker splits lines longer than 16 KiB over several chunks: each line is decoded whole.
        for line in whole_lines(self._tracked_chunks(container)):
            if self.stopped_reason:  # over the output limit: the line it cut is not handled
                return
            self._handle_line(handler, line.decode("utf-8", errors="replace"))

    def _tracked_chunks(self, container) -> Iterator[bytes]:
        """The container's output chunks, noting each as activity, until it exceeds the output limit
        (then the container is killed and `stopped_reason` says so)."""
        received = 0
        for chunk in container.logs(stdout=True, stderr=True, stream=True, follow=True):
            self.last_activity = time.monotonic()
            received += len(chunk)
            if received > self.output_limit_bytes:
                self.stopped_reason = f"wrote more than {self.output_limit_bytes >> 20} MB of output and was stopped"
                _ignore_gone(container.kill)
                return
            yield chunk

    def _handle_line(self, handler, line: str) -> None:
        if not line.strip():
            return
        message = _pipes_message(line)
        if message is None:
            self.last_output.append(line.strip()[:OUTPUT_LINE_CHARS])
            sys.stdout.write(line + "\n")  # forwarded like PipesDockerLogsMessageReader does
        else:
            handler.handle_message(message)


def _pipes_message(line: str) -> dict | None:
    try:
        message = json.loads(line)
    except ValueError:
        return None
    return message if isinstance(message, dict) and "__dagster_pipes_version" in message else None


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
                    self.reason = (
                        f"wrote no output for {self.inactivity_seconds:g}s (inactivity timeout) and was stopped"
                    )
            if self.reason:
                for container in invocation_containers(self.docker_client, self.invocation):
                    if container.status in ("created", "running", "restarting"):
                        _ignore_gone(container.kill)


def invocation_containers(docker_client, invocation: str) -> list:
    return docker_client.containers.list(all=True, filters={"label": f"{INVOCATION_LABEL}={invocation}"})


def describe_exit(container, limits: ContainerLimits, last_output: list[str]) -> str:
    """Why the container ended badly, from its state and its last output lines."""
    container.reload()
    state = container.attrs.get("State", {})
    if state.get("OOMKilled"):
        return f"ran out of memory: killed at its {limits.memory_mb} MB limit"
    limit = next(
        (reason for line in reversed(last_output) for error, reason in LIMIT_ERRORS.items() if error in line), None
    )
    exited = f"exited with code {state.get('ExitCode')}"
    return (f"{limit.format(**vars(limits))} ({exited})" if limit else exited) + _output_suffix(last_output)


def _output_suffix(last_output) -> str:
    return f": {' | '.join(last_output)}" if last_output else ""


def remove_invocation_containers(docker_client, invocation: str, warn: Callable[[str], None]) -> None:
    for container in invocation_containers(docker_client, invocation):
        remove_container(container, warn)


def remove_container(container, warn: Callable[[str], None]) -> bool:
    """Force-remove a container, retrying when a slow engine times out; whether it is gone or going.

    One that still will not go is left to prune_sandbox_containers (before the next docker research
    run, and research_reconciliation_job): a slow clean-up must not fail the research it follows.
    """
    import docker.errors
    import requests

    for attempt in range(1, REMOVE_ATTEMPTS + 1):
        try:
            container.remove(force=True)
            return True
        except docker.errors.NotFound:
            return True
        except docker.errors.APIError as error:
            if error.status_code == 409:  # a removal (perhaps our timed-out one) is in progress
                return True
            problem = str(error)
        except requests.exceptions.RequestException as error:  # timed out, or the engine restarted
            problem = f"{type(error).__name__}: {error}"
        warn(
            f"removing research container {container.short_id} failed (attempt {attempt} of "
            f"{REMOVE_ATTEMPTS}): {problem}"
        )
    return False


def prune_sandbox_containers(
    docker_client, run_is_alive: Callable[[str], bool | None], warn: Callable[[str], None]
) -> list[str]:
    """Remove research containers whose Dagster run has ended; ids removed.

    `run_is_alive(run_id)` answers None for a run this instance does not know: such a container
    (another instance's, or a test's) is removed only once it no longer runs.
    """
    removed = []
    for container in docker_client.containers.list(all=True, filters={"label": f"{SANDBOX_LABEL}=1"}):
        alive = run_is_alive(container.labels.get(RUN_LABEL, ""))
        if alive is False or (alive is None and container.status not in ("created", "running", "restarting")):
            if remove_container(container, warn):
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
