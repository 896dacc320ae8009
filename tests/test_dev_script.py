"""scripts/dev, the README's first command, as a user starts it."""

import os
import signal
import subprocess
import time
from pathlib import Path

from dagster_dev import REPO_ROOT, free_port, running_dagster_dev, wait_until_loaded

from conftest import SETTINGS_VARIABLES


def user_env(signals_home: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in SETTINGS_VARIABLES and k != "DAGSTER_HOME"}
    env["SIGNALS_HOME"] = signals_home
    return env


def test_a_relative_signals_home_is_the_callers_folders(tmp_path):
    """Dagster takes only an absolute DAGSTER_HOME: a relative SIGNALS_HOME (and the DAGSTER_HOME beside it)
    is made absolute from the folder the script is started in, as the CLI reads it."""
    with running_dagster_dev(user_env("relative_home"), tmp_path / "dev.log", script_from=tmp_path):
        home = tmp_path / "relative_home"
        assert (home / "objects" / "teams" / "1.json").is_file()
        assert (home / "dagster_home" / "dagster.yaml").is_file()


def dagster_processes(dagster_home: Path) -> dict[int, str]:
    """The running Dagster processes (by pid, their command line) whose environment names `dagster_home`."""
    found = {}
    for proc in Path("/proc").iterdir():
        try:
            if not proc.name.isdigit() or proc.joinpath("stat").read_text().rsplit(") ", 1)[1].startswith("Z"):
                continue
            environ = proc.joinpath("environ").read_bytes().split(b"\0")
            command = proc.joinpath("cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:  # gone meanwhile, or another user's
            continue
        if f"DAGSTER_HOME={dagster_home}".encode() in environ and "dagster" in command:
            found[int(proc.name)] = command
    return found


def test_a_restart_after_the_dev_server_was_killed_stops_what_it_left_running(tmp_path):
    """`kill -9` of `dagster dev` leaves its webserver, daemon and code server running: Dagster's children stop
    on their parent's shutdown message, not on its death. Started again on the same home and port, the
    script stops them first, so the new server is the home's only daemon and serves the port itself."""
    home = tmp_path / "home"
    port = free_port()
    env = user_env(str(home))
    log = tmp_path / "first.log"
    first = subprocess.Popen(
        [str(REPO_ROOT / "scripts" / "dev")],
        cwd=tmp_path,
        env={**env, "HOST": "127.0.0.1", "PORT": str(port)},
        stdout=open(log, "ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_until_loaded(f"http://127.0.0.1:{port}", first, log, 300)
        os.kill(first.pid, signal.SIGKILL)  # the script's process is `dagster dev` (the script execs it)
        first.wait(timeout=30)
        time.sleep(3)
        left = dagster_processes(home / "dagster_home")
        assert any("dagster._daemon run" in command for command in left.values()), left
        assert any("dagster_webserver" in command for command in left.values()), left

        with running_dagster_dev(env, tmp_path / "second.log", script_from=tmp_path, port=port) as base_url:
            # The first check of the port may be answered by the old webserver before the script stops it.
            deadline = time.monotonic() + 90
            while set(left) & set(dagster_processes(home / "dagster_home")) and time.monotonic() < deadline:
                time.sleep(1)
            assert not set(left) & set(dagster_processes(home / "dagster_home")), "the killed server's processes run on"
            assert "Stopping the Dagster servers still running on" in (tmp_path / "second.log").read_text()
            wait_until_loaded(base_url, None, tmp_path / "second.log", 120)  # the new webserver, the port's only one
            servers = dagster_processes(home / "dagster_home").values()
            assert sum("dagster._daemon run" in command for command in servers) == 1, servers
            assert sum("dagster_webserver" in command for command in servers) == 1, servers
    finally:
        try:
            os.killpg(first.pid, signal.SIGKILL)  # whatever of the first server still runs in its group
        except ProcessLookupError:
            pass
