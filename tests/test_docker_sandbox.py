"""The research sandbox in a real Docker engine: `scripts/test` starts the engine and builds the
image (scripts/start-docker, scripts/build-sandbox-image) before pytest, so nothing here is skipped."""

import json
import os
import random
import re
import shutil
import signal
import string
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import dagster as dg
import pytest

from signals_assets.cli.read_models import list_reports
from signals_assets.definitions import defs
from signals_assets.research.context import repository_candidates
from signals_assets.research.docker_sandbox import OUTPUT_LINE_CHARS, ContainerLimits, container_kwargs, engine_client
from signals_assets.research.outcome import SandboxResearchError
from signals_assets.resources.sandbox import SandboxResource
from signals_assets.sensors.report_promotion import promotions_from_metadata
from signals_assets.sensors.research_reconciler import research_reconciler
from signals_assets.settings import load_settings

from conftest import CARD_DECLINED, REPO_ROOT, group_one_batch, read_json_lines
from sandbox_runs import definitions_with_sandbox, run_report
from test_research_agent import card_report, docs_site, materialize_research, repo, shop  # noqa: F401 (fixtures)

SANDBOX_FILTER = {"label": "signals_assets.sandbox=1"}
PROBE = (Path(__file__).parent / "data" / "sandbox_probe.py").read_text()
SILENT = "print('thinking', flush=True); import time; time.sleep(600)"
ONE_GB_OF_OUTPUT = "import sys\nfor _ in range(1024): sys.stdout.buffer.write(b'x' * (1 << 20))"
WORK_DIR_FLOOD = "for i in range(300): open(f'/work/flood-{i}', 'wb').write(b'x' * (1 << 20))"
MALFORMED_RESULT = """
from dagster_pipes import open_dagster_pipes
with open_dagster_pipes() as pipes:
    pipes.report_custom_message({"status": "ready", "repository": None, "findings": "AB", "confidence": "high"})
"""
# Every process forks forever; each says once that the kernel refused it (the pids limit).
FORK_BOMB = """
import os, time
refused = False
while True:
    try:
        os.fork()
    except OSError as error:
        if not refused:
            refused = True
            print(f"fork refused: {error}", flush=True)
        time.sleep(0.05)
"""


@pytest.fixture(scope="module")
def docker_client():
    client = engine_client()
    client.ping()  # an error, not a skip, without an engine: scripts/test starts one
    client.images.get(SandboxResource().image)  # built by scripts/build-sandbox-image
    return client


# Report ids the tests research; every research container is labelled with its report's id.
TEST_REPORT_IDS = {card_report()["report_id"]}


@pytest.fixture(autouse=True)
def no_container_left_behind(docker_client):
    yield
    # Only this suite's reports count, so that other users of a shared engine do not fail it.
    left = [
        c
        for c in docker_client.containers.list(all=True, filters=SANDBOX_FILTER)
        if c.labels.get("signals_assets.report_id") in TEST_REPORT_IDS
    ]
    assert left == [], f"research containers left behind: {[(c.short_id, c.status, c.labels) for c in left]}"


def docker(**fields) -> SandboxResource:
    return SandboxResource(mode="docker", **fields)


def test_the_container_settings_are_hardened():
    limits = ContainerLimits(
        memory_mb=256, cpus=0.5, pids=64, work_dir_mb=32, file_size_mb=8, output_mb=4, open_files=100
    )
    kwargs = container_kwargs(limits, {"signals_assets.report_id": "1-x"}, [], {"DAGSTER_PIPES_CONTEXT": "c"})
    assert kwargs["network_mode"] == "none" and kwargs["environment"] == {"DAGSTER_PIPES_CONTEXT": "c"}
    assert kwargs["read_only"] is True and kwargs["user"] == "10001:10001" and kwargs["init"] is True
    assert kwargs["cap_drop"] == ["ALL"] and kwargs["security_opt"] == ["no-new-privileges"]
    assert (kwargs["mem_limit"], kwargs["memswap_limit"], kwargs["nano_cpus"], kwargs["pids_limit"]) == (
        "256m",
        "256m",
        500_000_000,
        64,
    )
    assert kwargs["tmpfs"] == {"/work": "size=32m,mode=0700,uid=10001,gid=10001,noexec,nosuid,nodev"}
    assert kwargs["ulimits"] == [
        {"name": "nofile", "soft": 100, "hard": 100},
        {"name": "fsize", "soft": 8 << 20, "hard": 8 << 20},
        {"name": "msgqueue", "soft": 0, "hard": 0},
    ]
    assert kwargs["ipc_mode"] == "none"
    assert kwargs["log_config"] == {"type": "json-file", "config": {"max-size": "4m", "max-file": "2"}}
    assert kwargs["labels"] == {"signals_assets.sandbox": "1", "signals_assets.report_id": "1-x"}

    allowlisted = container_kwargs(ContainerLimits(network="egress", network_allowlist=("api.openai.com",)), {}, [])
    assert allowlisted["network_mode"] == "egress"
    assert allowlisted["environment"] == {"SIGNALS_NETWORK_ALLOWLIST": "api.openai.com"}
    with pytest.raises(ValueError, match="network_allowlist needs a network"):
        docker(network_allowlist=["api.openai.com"]).container_limits()


class LogStream:
    """A container whose log stream yields `chunks` (as docker-py does: bytes of at most 16 KiB per
    line piece); records how many were read and whether it was killed."""

    def __init__(self, chunks):
        self.chunks, self.read, self.killed = chunks, 0, False

    def logs(self, **kwargs):
        for chunk in self.chunks:
            self.read += 1
            yield chunk

    def kill(self):
        self.killed = True


class Handler:
    def __init__(self):
        self.messages = []

    def handle_message(self, message):
        self.messages.append(message)


def read_logs(chunks, output_limit_bytes=16 << 20):
    from signals_assets.research.docker_sandbox import ActivityTrackingLogsReader

    reader, handler, container = ActivityTrackingLogsReader(output_limit_bytes), Handler(), LogStream(chunks)
    reader._handler = handler
    reader.consume_docker_logs(container)
    return reader, handler.messages, container


def pieces(data: bytes, size: int = 16384) -> list[bytes]:
    return [data[start : start + size] for start in range(0, len(data), size)]


def pipes_message(payload) -> bytes:
    return json.dumps(
        {"__dagster_pipes_version": "0.1", "method": "report_custom_message", "params": {"payload": payload}},
        ensure_ascii=False,
    ).encode()


def test_log_lines_split_by_docker_are_joined_before_parsing():
    message = pipes_message("x" * 40_000)
    # "é" is two bytes in UTF-8: the second chunk boundary falls between them.
    plain = "plain output é".encode()
    chunks = [message[:16384], message[16384:32768], message[32768:] + b"\n" + plain[:-1], plain[-1:] + b"\nlast words"]

    reader, messages, _ = read_logs(chunks)
    assert [m["params"]["payload"] for m in messages] == ["x" * 40_000]
    assert list(reader.last_output) == ["plain output é", "last words"]
    assert reader.last_activity is not None and reader.stopped_reason == ""


def test_lines_of_many_megabytes_are_read_whole():
    # Timing lives in benchmarks/sandbox_log_reader.py; this checks the result at that size.
    payload = "é" * (4 << 20)  # 8 MB of UTF-8
    line = "y" * (8 << 20)
    reader, messages, _ = read_logs(
        pieces(pipes_message(payload) + b"\n" + line.encode() + b"\nend\n"), output_limit_bytes=32 << 20
    )
    assert len(messages) == 1 and messages[0]["params"]["payload"] == payload
    assert list(reader.last_output) == ["y" * OUTPUT_LINE_CHARS, "end"] and reader.stopped_reason == ""


def test_the_reader_stops_a_container_past_its_output_cap():
    endless_line = (b"z" * 16384 for _ in range(1 << 20))  # 16 GB if it were all read
    reader, messages, container = read_logs(endless_line, output_limit_bytes=1 << 20)
    assert container.killed and container.read == 65  # stopped at the first chunk past 1 MB
    assert reader.stopped_reason == "wrote more than 1 MB of output and was stopped"
    assert messages == [] and list(reader.last_output) == []


def test_the_sandbox_settings_reach_the_resource_and_bad_values_are_named(signals_home, monkeypatch):
    from signals_assets.resources.environment import build_resources

    for name, value in {
        "SIGNALS_SANDBOX": "docker",
        "SIGNALS_SANDBOX_MEMORY_MB": "256",
        "SIGNALS_SANDBOX_CPUS": "0.5",
        "SIGNALS_SANDBOX_PIDS": "64",
        "SIGNALS_SANDBOX_INACTIVITY_SECONDS": "30",
        "SIGNALS_SANDBOX_TIMEOUT_SECONDS": "90",
        "SIGNALS_SANDBOX_NETWORK": "egress",
        "SIGNALS_SANDBOX_NETWORK_ALLOWLIST": "api.openai.com, example.com",
    }.items():
        monkeypatch.setenv(name, value)
    sandbox = build_resources(load_settings())["sandbox"]
    assert (sandbox.mode, sandbox.memory_mb, sandbox.cpus, sandbox.pids_limit) == ("docker", 256, 0.5, 64)
    assert (sandbox.inactivity_timeout_seconds, sandbox.timeout_seconds) == (30, 90)
    assert sandbox.network == "egress" and sandbox.network_allowlist == ["api.openai.com", "example.com"]

    for name, value, message in [
        ("SIGNALS_SANDBOX_CPUS", "lots", "SIGNALS_SANDBOX_CPUS='lots' must be a number from 0.01 to 9223372036"),
        ("SIGNALS_SANDBOX_MEMORY_MB", "0", "SIGNALS_SANDBOX_MEMORY_MB='0' must be a positive integer"),
        ("SIGNALS_SANDBOX", "vm", "SIGNALS_SANDBOX='vm' is not one of subprocess, docker"),
        ("SIGNALS_SANDBOX_NETWORK", "", "SIGNALS_SANDBOX_NETWORK must name the docker network"),
    ]:
        with monkeypatch.context() as patch:
            patch.setenv(name, value)
            with pytest.raises(ValueError, match=re.escape(message)):
                load_settings()


def test_inside_the_container_only_the_work_dir_is_writable_and_there_is_no_network(shop):
    with pytest.raises(SandboxResearchError, match="exited without reporting a result") as failure:
        materialize_research(
            card_report(),
            [repo("shop", shop)],
            docker(
                container_command=["python3", "-c", PROBE],
                memory_mb=128,
                pids_limit=64,
                cpus=0.5,
                work_dir_mb=8,
                file_size_mb=1,
                open_files=64,
            ),
        )
    [observed] = [line["data"] for line in failure.value.log_lines if line["message"] == "probe"]
    assert observed["uid"] == 10001
    assert observed["write_work"] == "allowed"
    assert observed["write_root"] == observed["write_tmp"] == observed["write_repository"] == "Read-only file system"
    assert observed["write_context"] == "Read-only file system"
    # Docker would otherwise give the container a 64 MB tmpfs beside the sized work dir.
    assert observed["write_shared_memory"] == "No such file or directory"
    assert observed["write_message_queue"] == "Too many open files"
    assert observed["write_past_file_size_limit"] == "File too large"
    assert observed["execute_from_work_dir"] == "Permission denied"
    assert observed["work_mount"][0] == "tmpfs"
    assert {"noexec", "nosuid", "nodev", "size=8192k"} <= set(observed["work_mount"][1])
    assert "billing" in observed["read_repository"]
    # The report reaches the agent as a mounted file; the environment only says where it is.
    assert observed["pipes_context"] == {"params": {"path": "/pipes/context.json"}, "report_id": "1-card"}
    assert "DAGSTER_PIPES_CONTEXT" in observed["environment"]
    assert observed["network"] == "Network is unreachable" and observed["interfaces"] == ["lo"]
    assert int(observed["capabilities"], 16) == 0 and observed["no_new_privileges"] == "1"
    assert observed["init"] == "docker-init" and observed["open_files_limit"] == [64, 64]
    assert observed["memory_limit"] == str(128 << 20)
    assert observed["pids_limit"] == "64"
    assert observed["cpu_quota"] in ("50000", "50000 100000")


def test_a_report_of_eight_32000_character_signals_is_ranked_inside_the_container(shop, docs_site):
    # Once "argument list too long": the whole report travelled, compressed, in one environment
    # variable. A pasted log or dump does not compress away like repeated words would.
    pasted = random.Random(10)
    report = card_report(8)
    for record in report["signals"]:
        log = " ".join("".join(pasted.choices(string.ascii_lowercase, k=pasted.randint(3, 9))) for _ in range(6000))
        record["description"] = f"{record['description']} Log: {log}"[:32_000]
    started = time.monotonic()
    _, outcome = materialize_research(report, [repo("docs_site", docs_site), repo("shop", shop)], docker())
    assert outcome.sandbox == "docker" and outcome.status == "ready" and outcome.repository == "shop"
    assert [r["name"] for r in outcome.repository_ranking] == ["shop", "docs_site"]
    assert outcome.findings[0]["file"] == "billing/card_payments.py"
    assert outcome.log_lines[0]["data"]["signals"] == 8 and outcome.log_lines[-1]["type"] == "result"
    print(f"one research container run: {time.monotonic() - started:.1f}s")


def test_every_repository_is_mounted_whatever_its_folder_is_called(tmp_path, shop, docs_site):
    """A ':' in a folder's name (valid on Linux) once made the engine refuse the container: a volume is a
    "source:target:mode" string. And "a b", "a_b" and "2-a_b" once got one mount path for two. Either
    failed the research of every report of the team."""
    folders = []
    for name, origin in (("2-a_b", docs_site), ("a b", docs_site), ("a_b", docs_site), ("shop:v2", shop)):
        shutil.copytree(origin, tmp_path / name, symlinks=True)
        folders.append(str(tmp_path / name))
    _, outcome = materialize_research(card_report(), repository_candidates(folders), docker())
    assert outcome.status == "ready" and outcome.repository == "shop:v2"
    assert outcome.findings[0]["file"] == "billing/card_payments.py"
    assert sorted(r["name"] for r in outcome.repository_ranking) == ["2-a_b", "a b", "a_b", "shop:v2"]
    assert all("not found" not in r["reason"] for r in outcome.repository_ranking)


def test_a_missing_image_is_a_clear_error(shop):
    with pytest.raises(
        SandboxResearchError, match="sandbox image signals-no-such-image:1 not found.*build-sandbox-image"
    ):
        materialize_research(card_report(), [repo("shop", shop)], docker(image="signals-no-such-image:1"))


def test_a_removal_slower_than_the_docker_client_timeout_does_not_fail(docker_client):
    import docker

    from signals_assets.research.docker_sandbox import remove_container

    container = docker_client.containers.create(
        SandboxResource().image,
        command=["true"],
        labels={"signals_assets.sandbox": "1", "signals_assets.report_id": card_report()["report_id"]},
    )
    # An engine slower than the client's patience, as a loaded vfs engine was for the 60 s default.
    impatient = docker.from_env(timeout=0.001, version=docker_client.api.api_version)
    warnings = []
    remove_container(impatient.containers.prepare_model(container.attrs), warnings.append)

    assert "Timeout" in warnings[0] and container.short_id in warnings[0]
    # sparse: no inspect of each listed container, which races with the removal in flight (404)
    deadline = time.monotonic() + 120
    while docker_client.containers.list(all=True, filters={"id": container.id}, sparse=True):
        assert time.monotonic() < deadline, "the container was never removed"
        time.sleep(0.5)


# The agent of the image, each file it reads taking 0.5 s (a large repository) and a file named
# stuck.py never (an agent stuck while indexing).
SLOW_READS = """
import sys, time
sys.path.insert(0, "/opt/signals")
import agent
read_text = agent.read_text
def slow_read_text(path):
    time.sleep(600 if path.name == "stuck.py" else 0.5)
    return read_text(path)
agent.read_text = slow_read_text
agent.main()
"""


def test_an_agent_indexing_past_the_inactivity_limit_goes_on_but_one_stuck_while_indexing_is_stopped(tmp_path):
    large = tmp_path / "large"
    large.mkdir()
    for number in range(12):  # 6 s of indexing, twice the inactivity limit
        (large / f"payments_{number:02}.py").write_text(f"def charge_card_{number}(card): raise CardDeclined(card)\n")
    slow = docker(container_command=["python3", "-c", SLOW_READS], inactivity_timeout_seconds=3)

    _, outcome = materialize_research(card_report(), [repo("large", large)], slow)
    assert outcome.status == "ready" and outcome.repository == "large"
    assert len([line for line in outcome.log_lines if line["message"] == "indexing repository large"]) >= 2

    (large / "stuck.py").write_text("def stuck(): pass\n")
    with pytest.raises(SandboxResearchError, match=r"wrote no output for 3s \(inactivity timeout\) and was stopped"):
        materialize_research(card_report(), [repo("large", large)], slow)


def test_a_repository_swapped_after_its_check_is_refused_inside_the_container(tmp_path, monkeypatch, shop):
    """The repository's folder is checked on the host (not SIGNALS_HOME, not a system tree) but the engine
    resolves the bind mount's source only when it starts the container: a symlink swapped in between
    would mount the platform's data. Swapped here deterministically in that window, where research
    prunes old containers (audit-docker F4)."""
    home = tmp_path / "signals_home"
    shutil.copytree(shop, home / "objects" / "shop")
    team_folder = tmp_path / "team"
    team_folder.mkdir()
    (team_folder / "readme.txt").write_text("unrelated\n")
    prune_containers = SandboxResource.prune_containers

    def swap_then_prune(self, *args, **kwargs):
        team_folder.rename(tmp_path / "team.real")
        team_folder.symlink_to(home, target_is_directory=True)
        return prune_containers(self, *args, **kwargs)

    monkeypatch.setattr(SandboxResource, "prune_containers", swap_then_prune)
    with pytest.raises(SandboxResearchError, match="repository team: .* is not the folder checked") as failure:
        materialize_research(card_report(), [repo("team", team_folder)], docker(data_folder=str(home)))
    assert not [line for line in failure.value.log_lines if line["message"].startswith("indexed repository")]


# ---------------------------------------------------------------------------------------------
# Through the report_research asset


@pytest.fixture
def candidate_report(object_store, team):
    """A promoted report of the card-declined signals, waiting for research; and the instance."""
    with dg.DagsterInstance.get() as instance:
        _, result = group_one_batch(object_store, instance, defs(), CARD_DECLINED)
        [promotion] = [
            p
            for e in result.asset_materializations_for_node("report_assignments")
            for p in promotions_from_metadata(e.metadata)
        ]
        instance.add_dynamic_partitions("reports", [promotion["report_id"]])
        TEST_REPORT_IDS.add(promotion["report_id"])
        yield instance, promotion["report_id"]


def report_view(report_id: str) -> dict:
    reports = list_reports(load_settings(), 1)["reports"]
    return next(r for r in reports if r["id"] == report_id)


def report_error(report_id: str) -> str:
    from signals_assets.storage.clickhouse import open_chdb

    settings = load_settings()
    with open_chdb(settings.clickhouse_path, settings.clickhouse_database) as db:
        return db.scalar("SELECT error FROM reports WHERE report_id = {r}", {"r": report_id})


def test_a_report_is_researched_in_a_container_end_to_end(candidate_report, object_store, demo_repository, monkeypatch):
    instance, report_id = candidate_report
    monkeypatch.setenv("SIGNALS_SANDBOX", "docker")
    result = defs().resolve_job_def("report_job").execute_in_process(partition_key=report_id, instance=instance)
    assert result.success

    research = report_view(report_id)["research"]
    assert report_view(report_id)["status"] == "ready"
    assert research["status"] == "ready" and research["sandbox"] == "docker"
    assert research["repository"] == demo_repository.name
    assert research["findings"][0]["file"] == "checkout/card_payments.py"
    log = read_json_lines(object_store.get(research["log_key"]))
    assert {line["type"] for line in log} <= {"progress", "console", "result"} and log[-1]["type"] == "result"
    assert all(datetime.fromisoformat(line["ts"]) for line in log)

    listed = subprocess.run(
        [str(Path(sys.executable).parent / "signals"), "list-reports", "--team-id", "1", "--json"],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO_ROOT,
    ).stdout
    [shown] = [r for r in json.loads(listed)["reports"] if r["id"] == report_id]
    assert set(shown["research"]) == {"status", "sandbox", "repository", "findings", "log_key"}
    assert shown["research"]["sandbox"] == "docker" and shown["research"]["log_key"] == research["log_key"]


MISBEHAVIOUR = {
    "network": (
        dict(
            container_command=["python3", "-c", "import socket; socket.create_connection(('1.1.1.1', 443), timeout=5)"]
        ),
        "research container exited with code 1: .*Network is unreachable",
    ),
    "write outside the work dir": (
        dict(container_command=["python3", "-c", "open('/opt/signals/agent.py', 'w').write('pwned')"]),
        "research container exited with code 1: .*Read-only file system: '/opt/signals/agent.py'",
    ),
    "memory": (
        dict(container_command=["python3", "-c", "chunks = [b'x' * (16 << 20) for _ in range(64)]"], memory_mb=64),
        "research container ran out of memory: killed at its 64 MB limit",
    ),
    "silence": (
        dict(container_command=["python3", "-c", SILENT], inactivity_timeout_seconds=3),
        r"research container wrote no output for 3s \(inactivity timeout\) and was stopped",
    ),
    "wall clock": (
        dict(
            container_command=["python3", "-c", "import time\nwhile True: print('busy', flush=True); time.sleep(0.5)"],
            timeout_seconds=4,
        ),
        "research container exceeded its 4s wall-clock limit and was stopped",
    ),
    "1 GB of output": (  # in one line: the reader must not hold it all
        dict(container_command=["python3", "-c", ONE_GB_OF_OUTPUT], output_mb=4),
        r"^research container wrote more than 4 MB of output and was stopped$",
    ),
    "work dir flood": (
        dict(container_command=["python3", "-c", WORK_DIR_FLOOD], work_dir_mb=16),
        r"research container filled its 16 MB work dir \(exited with code 1\): .*No space left on device",
    ),
    "malformed result": (  # what a compromised agent could send: the report page would fail to render it
        dict(container_command=["python3", "-c", MALFORMED_RESULT]),
        r"^research agent reported a malformed result: findings must be a list, not str$",
    ),
    "fork bomb": (
        dict(container_command=["python3", "-c", FORK_BOMB], pids_limit=32, inactivity_timeout_seconds=8),
        r"research container wrote no output for 8s \(inactivity timeout\) and was stopped: "
        r"fork refused: \[Errno 11\] Resource temporarily unavailable",
    ),
}


@pytest.mark.parametrize("behaviour", list(MISBEHAVIOUR))
def test_a_misbehaving_container_is_stopped_and_the_report_fails_with_the_reason(
    candidate_report, behaviour, tmp_path, monkeypatch
):
    instance, report_id = candidate_report
    fields, reason = MISBEHAVIOUR[behaviour]
    temp_dir = tmp_path / "temp"
    temp_dir.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp_dir))  # where the research's work dir goes
    started = time.monotonic()
    result = run_report(instance, report_id, mode="docker", **fields)

    assert result.success  # the report fails, not the run: other reports of a run go on
    assert list(temp_dir.iterdir()) == []  # containers left behind: the autouse fixture
    assert time.monotonic() - started < 120
    view = report_view(report_id)
    assert view["status"] == "failed" and view["research"]["status"] == "failed"
    assert view["research"]["sandbox"] == "docker"
    assert re.search(reason, report_error(report_id)), report_error(report_id)


def wait_for_container(docker_client, report_id: str, timeout: float = 120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        running = docker_client.containers.list(filters={**SANDBOX_FILTER, "status": "running"})
        mine = [c for c in running if c.labels.get("signals_assets.report_id") == report_id]
        if mine:
            return mine[0]
        time.sleep(0.5)
    raise AssertionError(f"no research container started for {report_id}")


def start_report_run(report_id: str, **fields) -> subprocess.Popen:
    script = str(Path(__file__).parent / "sandbox_runs.py")
    return subprocess.Popen(
        [sys.executable, script, report_id, json.dumps({"mode": "docker", **fields})],
        cwd=Path(__file__).parent,
        env=os.environ.copy(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def test_a_terminated_run_removes_its_container_and_fails_the_report(candidate_report, docker_client):
    _, report_id = candidate_report
    process = start_report_run(report_id, container_command=["python3", "-c", SILENT])
    wait_for_container(docker_client, report_id)
    process.send_signal(signal.SIGINT)  # interrupts the step, as terminating a Dagster run does
    process.wait(timeout=120)

    assert report_view(report_id)["status"] == "failed"
    assert "research run was interrupted" in report_error(report_id)


def test_a_terminated_run_stops_its_subprocess_agent_and_fails_the_report(candidate_report, tmp_path):
    _, report_id = candidate_report
    pid_file = tmp_path / "agent.pid"
    slow_agent = tmp_path / "slow_agent"
    slow_agent.write_text(f"#!/bin/sh\necho $$ > {pid_file}\nexec sleep 600\n")
    slow_agent.chmod(0o755)
    process = start_report_run(report_id, mode="subprocess", python_executable=str(slow_agent))
    deadline = time.monotonic() + 120
    while not (pid_file.exists() and pid_file.read_text().strip()) and time.monotonic() < deadline:
        time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    process.wait(timeout=120)

    assert report_view(report_id)["status"] == "failed"
    assert "research run was interrupted" in report_error(report_id)
    assert not Path(f"/proc/{pid_file.read_text().strip()}").exists()  # the agent was stopped too


def test_the_reconciler_fails_research_whose_run_died_and_removes_its_container(candidate_report, docker_client):
    instance, report_id = candidate_report
    process = start_report_run(report_id, container_command=["python3", "-c", SILENT])
    container = wait_for_container(docker_client, report_id)
    process.kill()  # no clean-up can run: the container and the in_progress report stay behind
    process.wait(timeout=30)
    run_id = container.labels["signals_assets.run_id"]
    assert container.labels["signals_assets.sandbox"] == "1"
    assert report_view(report_id)["status"] == "in_progress"

    # What dead_run_reconciler does for a run whose worker process is gone.
    instance.report_run_failed(instance.get_run_by_id(run_id), "run worker process is gone")
    with dg.build_sensor_context(instance=instance, cursor=None) as context:
        request = research_reconciler(context)
    assert isinstance(request, dg.RunRequest)
    job = definitions_with_sandbox(mode="docker").resolve_job_def("research_reconciliation_job")
    assert job.execute_in_process(instance=instance).success

    assert report_view(report_id)["status"] == "failed"
    assert f"research run {run_id} ended (FAILURE)" in report_error(report_id)
    assert docker_client.containers.list(all=True, filters={"id": container.id}) == []
