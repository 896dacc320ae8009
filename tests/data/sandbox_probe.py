"""Runs inside the research container instead of the agent: records what the sandbox allows in
the JSONL log (/work/research.jsonl) and exits without a result."""

import json
import os
import socket


def attempt(action) -> str:
    try:
        action()
        return "allowed"
    except OSError as error:
        return error.strerror or type(error).__name__


def write(path: str) -> None:
    with open(path, "w") as handle:
        handle.write("x")


def first_existing(*paths: str) -> str:
    for path in paths:
        if os.path.exists(path):
            with open(path) as handle:
                return handle.read().strip()
    return ""


status = dict(line.split(":\t", 1) for line in open("/proc/self/status").read().splitlines() if ":\t" in line)
observed = {
    "uid": os.getuid(),
    "write_work": attempt(lambda: write("/work/note.txt")),
    "write_root": attempt(lambda: write("/opt/signals/evil.py")),
    "write_tmp": attempt(lambda: write("/tmp/evil")),
    "write_repository": attempt(lambda: write("/repos/shop/evil.py")),
    "read_repository": sorted(os.listdir("/repos/shop")),
    "network": attempt(lambda: socket.create_connection(("1.1.1.1", 443), timeout=3)),
    "interfaces": sorted(os.listdir("/sys/class/net")),
    "capabilities": status["CapEff"].strip(),
    "no_new_privileges": status.get("NoNewPrivs", "").strip(),
    "memory_limit": first_existing("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory.max"),
    "pids_limit": first_existing("/sys/fs/cgroup/pids/pids.max", "/sys/fs/cgroup/pids.max"),
    "cpu_quota": first_existing("/sys/fs/cgroup/cpu/cpu.cfs_quota_us", "/sys/fs/cgroup/cpu.max"),
}
with open("/work/research.jsonl", "w") as log:
    log.write(json.dumps({"ts": "2026-01-01T00:00:00.000Z", "type": "console", "message": "probe", "data": observed}) + "\n")
