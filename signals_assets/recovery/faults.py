"""Fault-injection hook for the crash-safety suite (tests/test_fault_injection.py and
benchmarks/fault_injection.py): lets a harness SIGKILL a process at an exact stage boundary.

Inert unless `SIGNALS_FAULT_PAUSE_AT` is set: then it is `<stage>` or `<stage>:<n>` (pause at the
n-th time any process reaches that stage, counted in the marker folder; default 1; group and
consolidate are reached once per team of a batch; `write` before every write to the store or the
object store, so `write:<n>` kills between any two writes), and
`SIGNALS_FAULT_MARKER_DIR` names a folder shared with the harness. The process that reaches the
stage writes `<stage>.paused` (its pid) there and sleeps until it is killed. While it is set, every
stage's arrivals are counted there (`<stage>.hits`). Standard library only.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

STAGES = ("claim", "buffer", "embed", "group", "consolidate", "promote", "summarise", "research", "write")
PAUSE_VARIABLE = "SIGNALS_FAULT_PAUSE_AT"
MARKER_DIR_VARIABLE = "SIGNALS_FAULT_MARKER_DIR"


def parse_pause(value: str) -> tuple[str, int]:
    """(stage, occurrence) of a `SIGNALS_FAULT_PAUSE_AT` value."""
    stage, _, occurrence = value.partition(":")
    if stage not in STAGES:
        raise ValueError(f"{PAUSE_VARIABLE}={value!r}: the stage must be one of {', '.join(STAGES)}")
    if occurrence and not (occurrence.isdigit() and int(occurrence) >= 1):
        raise ValueError(f"{PAUSE_VARIABLE}={value!r}: the occurrence after ':' must be a positive integer")
    return stage, int(occurrence or 1)


def marker_path(marker_dir: str | Path, stage: str) -> Path:
    return Path(marker_dir) / f"{stage}.paused"


def arrivals(marker_dir: str | Path, stage: str) -> int:
    """How many times a process reached `stage` while the fault was set with this marker folder."""
    hits = Path(marker_dir) / f"{stage}.hits"
    return len(hits.read_text().splitlines()) if hits.exists() else 0


def pause_point(stage: str) -> None:
    """Called at each stage boundary; pauses forever here when the environment asks for it."""
    wanted = os.environ.get(PAUSE_VARIABLE)
    if not wanted:
        return
    pause_stage, occurrence = parse_pause(wanted)
    marker_dir = os.environ.get(MARKER_DIR_VARIABLE)
    if not marker_dir:
        raise ValueError(f"{MARKER_DIR_VARIABLE} must name a folder when {PAUSE_VARIABLE} is set")
    # One line per arrival at every stage, appended atomically: the count survives restarts and spans
    # processes, and the harness picks later kills from the arrivals it saw come.
    with open(Path(marker_dir) / f"{stage}.hits", "a") as hits:
        hits.write(f"{os.getpid()}\n")
    if pause_stage != stage or arrivals(marker_dir, stage) != occurrence:
        return
    marker_path(marker_dir, stage).write_text(str(os.getpid()))
    while True:
        time.sleep(3600)
