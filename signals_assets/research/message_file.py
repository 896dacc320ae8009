"""Reads the Pipes messages a subprocess agent appends to a file, one JSON message per line.

Dagster's `PipesTempFileMessageReader` parses whatever `readline` returns. The kernel makes an
appended write visible page by page, so a reader that catches a message while it is being written
gets part of a line, fails to parse it, and its thread stops: every later message, the agent's
result among them, is lost, and the report fails for want of a result although the agent succeeded.
Measured here with 1-5 KB messages and a reader that keeps up: about one message in 10,000 read
in part. This reader hands only whole lines on, and a line it cannot handle costs that line alone.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import dagster as dg
from dagster_pipes import PipesDefaultMessageWriter

POLL_SECONDS = 0.01


class WholeLineFileMessageReader(dg.PipesMessageReader):
    """A Pipes message reader over a temporary file that handles each message once its line is whole.

    The file lies in `folder` when given: the research work dir, which the agent removes when its run
    worker is killed (the worker then removes nothing), as does `prune_containers` for ended runs."""

    def __init__(self, folder: str | os.PathLike | None = None):
        self.folder = folder

    @contextmanager
    def read_messages(self, handler) -> Iterator[dict]:
        with tempfile.TemporaryDirectory(prefix="signals-pipes-", dir=self.folder) as folder:
            path = os.path.join(folder, "messages")
            open(path, "wb").close()
            closed = threading.Event()
            thread = threading.Thread(target=read_whole_lines, args=(path, handler, closed), daemon=True)
            thread.start()
            try:
                yield {
                    PipesDefaultMessageWriter.FILE_PATH_KEY: path,
                    PipesDefaultMessageWriter.INCLUDE_STDIO_IN_MESSAGES_KEY: False,
                }
            finally:
                closed.set()
                thread.join()

    def no_messages_debug_text(self) -> str:
        return "Attempted to read messages from a temporary file, a whole line at a time."


def read_whole_lines(path: str, handler, closed: threading.Event) -> None:
    """Hand each whole line appended to `path` to `handler` until `closed` is set, then what is left
    (the writer has ended by then: a trailing part line is a message cut short, reported as such)."""
    for line in whole_lines(appended_chunks(path, closed)):
        handle_line(line, handler)


def appended_chunks(path: str, closed: threading.Event) -> Iterator[bytes]:
    """The bytes appended to `path` as they come, until `closed` is set and all are read."""
    with open(path, "rb") as file:
        while True:
            # Checked before the read: a read after the session closed sees every byte written.
            finished = closed.is_set()
            chunk = file.read()
            if chunk:
                yield chunk
            elif finished:
                return
            else:
                time.sleep(POLL_SECONDS)


def whole_lines(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """The lines of a byte stream that arrives in arbitrary chunks, each whole and without its line
    break, then the unterminated rest if any; a line's pieces are joined once, at its end, so the time
    is linear in the output however many chunks a line spans (a character may straddle two)."""
    pending: list[bytes] = []
    for chunk in chunks:
        *line_ends, rest = chunk.split(b"\n")
        for line_end in line_ends:
            pending.append(line_end)
            yield b"".join(pending)
            pending.clear()
        pending.append(rest)
    if any(pending):
        yield b"".join(pending)


def handle_line(line: bytes, handler) -> None:
    """Pass one message line on; a line that is no message is reported to the run, and reading goes on."""
    if not line.strip():
        return
    try:
        message = json.loads(line)
        if not isinstance(message, dict):
            raise ValueError(f"a Pipes message is a JSON object, got {type(message).__name__}: {line[:200]!r}")
        handler.handle_message(message)
    except Exception:
        handler.report_pipes_framework_exception(WholeLineFileMessageReader.__name__, sys.exc_info())
