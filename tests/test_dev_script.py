"""scripts/dev, the README's first command, as a user starts it."""

import json
import os
import signal
import subprocess
import time
from pathlib import Path

from dagster_dev import BIN, REPO_ROOT, free_port, running_dagster_dev, wait_until_loaded

from conftest import SETTINGS_VARIABLES
from test_daemon_e2e import signals_cli


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
    with running_dagster_dev(env, tmp_path / "first.log", script_from=tmp_path, port=port):
        [dev] = [
            pid for pid, command in dagster_processes(home / "dagster_home").items() if "bin/dagster dev " in command
        ]
        os.kill(dev, signal.SIGKILL)
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


def settled_status(env: dict, expected_signals: int) -> dict:
    status = signals_cli(
        env,
        "status",
        "--team-id",
        "1",
        "--wait",
        "--expected-signals",
        str(expected_signals),
        "--timeout",
        "240",
        timeout=300,
    )
    assert status["settled"], status
    return status


def test_the_daemon_goes_on_after_its_code_server_was_killed(tmp_path):
    """The daemon and the webserver each run their own code server: killed, the daemon starts another, and the
    signals emitted meanwhile are grouped unattended. (With the one code server a plain `dagster dev` shares,
    every sensor and run stops until someone reloads the code location in the UI.)"""
    home = tmp_path / "home"
    env = user_env(str(home))
    demo_lines = (REPO_ROOT / "scripts" / "demo" / "signals.jsonl").read_text().splitlines()
    with running_dagster_dev(env, tmp_path / "dev.log", script_from=tmp_path):
        settled_status(env, len(demo_lines))  # the daemon has loaded the code and run the demo batch
        code_servers = [
            pid for pid, command in dagster_processes(home / "dagster_home").items() if "api grpc" in command
        ]
        assert code_servers
        for pid in code_servers:
            os.kill(pid, signal.SIGKILL)
        demo = json.loads(demo_lines[0])
        signals = tmp_path / "after_the_kill.jsonl"
        signals.write_text(
            "".join(
                json.dumps(
                    {
                        **demo,
                        "source_id": f"after-kill-{n}",
                        "idempotency_key": f"after-kill-{n}",
                        "description": f"The export to CSV button does nothing on the orders page ({n})",
                        "extra": {**demo["extra"], "url": f"https://example.zendesk.com/tickets/{n}"},
                    }
                )
                + "\n"
                for n in range(3)
            )
        )
        subprocess.run([str(BIN / "signals"), "emit-file", str(signals), "--team-id", "1"], env=env, check=True)
        settled = settled_status(env, len(demo_lines) + 3)
        assert (settled["accepted"], settled["assigned"], settled["inbox_pending"]) == (len(demo_lines) + 3,) * 2 + (0,)
        assert not set(code_servers) & set(dagster_processes(home / "dagster_home"))
