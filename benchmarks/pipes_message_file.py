"""Pipes messages read from a file while another process appends them: how many each reader loses.

    python benchmarks/pipes_message_file.py [--messages 60000] [--min-kb 1] [--max-kb 5] [--seed 7]

A writer process appends `--messages` custom messages of random size, the way `dagster_pipes` does
(open, append one JSON line, close), pausing 50 µs between them so the reader keeps catching up.
Two readers tail the same kind of file: Dagster's own (`tail_file` + `json.loads`, what
`PipesTempFileMessageReader` runs; counted here line by line instead of stopping at the first bad
one) and `WholeLineFileMessageReader`'s. Prints the lines each could not parse (a message read in
part shows as two) and the messages each received; exits 1 when the whole-line reader lost any.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import random
import sys
import tempfile
import threading
import time


def write_messages(path: str, count: int, min_kb: float, max_kb: float, seed: int) -> None:
    rng = random.Random(seed)
    for index in range(count):
        text = "x" * int(rng.uniform(min_kb, max_kb) * 1024)
        message = {"method": "report_custom_message", "params": {"payload": {"index": index, "text": text}}}
        with open(path, "a", encoding="utf-8") as file:
            file.write(json.dumps(message) + "\n")
        time.sleep(0.00005)


class CountingHandler:
    def __init__(self):
        self.received: list[int] = []
        self.failures = 0

    def handle_message(self, message: dict) -> None:
        self.received.append(message["params"]["payload"]["index"])

    def report_pipes_framework_exception(self, origin, exc_info) -> None:
        self.failures += 1


def dagster_reader(path: str, handler: CountingHandler, closed: threading.Event) -> None:
    from dagster._utils import tail_file

    for line in tail_file(path, closed.is_set):
        try:
            handler.handle_message(json.loads(line))
        except ValueError:
            handler.report_pipes_framework_exception("tail_file", sys.exc_info())


def measure(reader, args) -> tuple[CountingHandler, float]:
    folder = tempfile.mkdtemp(prefix="pipes-bench-")
    path = os.path.join(folder, "messages")
    open(path, "w").close()
    handler, closed = CountingHandler(), threading.Event()
    thread = threading.Thread(target=reader, args=(path, handler, closed))
    started = time.monotonic()
    thread.start()
    writer = multiprocessing.Process(
        target=write_messages, args=(path, args.messages, args.min_kb, args.max_kb, args.seed)
    )
    writer.start()
    writer.join()
    closed.set()
    thread.join()
    os.remove(path)
    os.rmdir(folder)
    return handler, time.monotonic() - started


def main() -> int:
    from signals_assets.research.message_file import read_whole_lines

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=60000)
    parser.add_argument("--min-kb", type=float, default=1)
    parser.add_argument("--max-kb", type=float, default=5)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    print(f"{args.messages} messages of {args.min_kb:g}-{args.max_kb:g} KB, load {os.getloadavg()[0]:.1f}")
    print("| reader | unreadable lines | messages received | seconds |")
    print("|---|---|---|---|")
    lost = 0
    for name, reader in (("dagster tail_file", dagster_reader), ("whole lines", read_whole_lines)):
        handler, seconds = measure(reader, args)
        print(f"| {name} | {handler.failures} | {len(handler.received)} of {args.messages} | {seconds:.1f} |")
        if reader is read_whole_lines:
            lost = handler.failures + (handler.received != list(range(args.messages)))
    return 1 if lost else 0


if __name__ == "__main__":
    sys.exit(main())
