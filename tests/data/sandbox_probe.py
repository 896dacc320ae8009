"""Runs inside the research container instead of the agent: records what the sandbox allows in
the JSONL log (/work/research.jsonl) and exits without a result."""

import json
import os
import resource
import socket
import stat
import subprocess


def attempt(action) -> str:
    try:
        action()
        return "allowed"
    except OSError as error:
        return error.strerror or type(error).__name__


def write(path: str, size: int = 1) -> None:
    with open(path, "wb") as handle:
        handle.write(b"x" * size)


def execute_from_work_dir() -> None:
    script = "/work/run.sh"
    with open(script, "w") as handle:
        handle.write("#!/bin/sh\necho ran\n")
    os.chmod(script, stat.S_IRWXU)
    subprocess.run([script], check=True)


def first_existing(*paths: str) -> str:
    for path in paths:
        if os.path.exists(path):
            with open(path) as handle:
                return handle.read().strip()
    return ""


def pipes_context() -> dict:
    from dagster_pipes import PipesDefaultContextLoader, decode_env_var

    params = decode_env_var(os.environ["DAGSTER_PIPES_CONTEXT"])
    with open(params[PipesDefaultContextLoader.FILE_PATH_KEY]) as handle:
        return {"params": params, "report_id": json.load(handle)["extras"]["report"]["report_id"]}


mounts = {fields[1]: fields for fields in (line.split() for line in open("/proc/self/mounts"))}
status = dict(line.split(":\t", 1) for line in open("/proc/self/status").read().splitlines() if ":\t" in line)
observed = {
    "uid": os.getuid(),
    "write_work": attempt(lambda: write("/work/note.txt")),
    "write_root": attempt(lambda: write("/opt/signals/evil.py")),
    "write_tmp": attempt(lambda: write("/tmp/evil")),
    "write_repository": attempt(lambda: write("/repos/shop/evil.py")),
    "write_context": attempt(lambda: write("/pipes/context.json")),
    "write_shared_memory": attempt(lambda: write("/dev/shm/evil")),
    "write_message_queue": attempt(lambda: write("/dev/mqueue/evil")),
    "write_past_file_size_limit": attempt(lambda: write("/work/big", (1 << 20) + 1)),
    "execute_from_work_dir": attempt(execute_from_work_dir),
    "work_mount": [mounts["/work"][2], sorted(mounts["/work"][3].split(","))],
    "read_repository": sorted(os.listdir("/repos/shop")),
    "pipes_context": pipes_context(),
    "environment": sorted(os.environ),
    "network": attempt(lambda: socket.create_connection(("1.1.1.1", 443), timeout=3)),
    "interfaces": sorted(os.listdir("/sys/class/net")),
    "capabilities": status["CapEff"].strip(),
    "no_new_privileges": status.get("NoNewPrivs", "").strip(),
    "init": first_existing("/proc/1/comm"),
    "open_files_limit": resource.getrlimit(resource.RLIMIT_NOFILE),
    "memory_limit": first_existing("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory.max"),
    "pids_limit": first_existing("/sys/fs/cgroup/pids/pids.max", "/sys/fs/cgroup/pids.max"),
    "cpu_quota": first_existing("/sys/fs/cgroup/cpu/cpu.cfs_quota_us", "/sys/fs/cgroup/cpu.max"),
}
with open("/work/research.jsonl", "w") as log:
    log.write(
        json.dumps({"ts": "2026-01-01T00:00:00.000Z", "type": "console", "message": "probe", "data": observed}) + "\n"
    )
