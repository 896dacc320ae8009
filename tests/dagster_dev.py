"""`dagster dev` (webserver, daemon, code server) and `dagster-daemon` as the tests and benchmarks run
them: in their own process group, so the whole group can be killed afterwards."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
LOADED_QUERY = "{ repositoriesOrError { ... on RepositoryConnection { nodes { name } } } }"


def start_daemon(env: dict, log_path: Path) -> subprocess.Popen:
    """`dagster-daemon run -w workspace.yaml` with `env`, its output appended to `log_path`."""
    return subprocess.Popen(
        [str(BIN / "dagster-daemon"), "run", "-w", "workspace.yaml"],
        cwd=REPO_ROOT,
        env=env,
        stdout=open(log_path, "ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def graphql(base_url: str, query: str, variables: dict | None = None) -> dict:
    request = urllib.request.Request(
        f"{base_url}/graphql",
        data=json.dumps({"query": query, "variables": variables or {}}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=120) as response:
        body = json.loads(response.read())
    assert "errors" not in body, body["errors"]
    return body["data"]


def wait_until_loaded(base_url: str, server: subprocess.Popen | None, log: Path, timeout: float) -> None:
    """Until the webserver answers and the code location has loaded (and `server`, when given, runs on)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert server is None or server.poll() is None, f"dagster dev exited: {log.read_text()[-3000:]}"
        try:
            if graphql(base_url, LOADED_QUERY)["repositoriesOrError"].get("nodes"):
                return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(2)
    raise AssertionError(f"dagster dev did not come up in {timeout:.0f}s: {log.read_text()[-3000:]}")


@contextmanager
def running_dagster_dev(
    env: dict, log: Path, timeout: float = 300, script_from: Path | None = None, port: int | None = None
):
    """`dagster dev -w workspace.yaml` with `env` (its SIGNALS_HOME and DAGSTER_HOME); yields the base URL.
    `script_from`: started by `scripts/dev`, as a user does, from that folder. `port`: a free one unless given."""
    port = port or free_port()
    base_url = f"http://127.0.0.1:{port}"
    dev = [str(BIN / "dagster"), "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)]
    server = subprocess.Popen(
        [str(REPO_ROOT / "scripts" / "dev")] if script_from else dev,
        cwd=script_from or REPO_ROOT,
        env={**env, "HOST": "127.0.0.1", "PORT": str(port)} if script_from else env,
        stdout=open(log, "ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_until_loaded(base_url, server, log, timeout)
        yield base_url
    finally:
        try:
            os.killpg(server.pid, signal.SIGTERM)
        except ProcessLookupError:  # it exited with its whole group: wait_until_loaded says why
            pass
        # Its code server waits up to 60 s for calls still open (the UI's streaming queries) before it
        # stops; the test is over, so the group is killed after a short wait instead.
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=30)
