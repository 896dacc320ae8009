"""Speed of the research container's log reader on long lines (an earlier reader was quadratic in
the line's length: an 8 MB line took seconds).

    python benchmarks/sandbox_log_reader.py [--sizes 1 2 4 8 16] [--runs 3]

Feeds the reader what docker-py yields for one line of N MB (16 KiB pieces), once as plain output
and once as a Pipes message of that size, and prints the median seconds and MB/s of each (plain
output forwarded to /dev/null). Time linear in the length shows as a flat MB/s column.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import time

from signals_assets.research.docker_sandbox import ActivityTrackingLogsReader

DOCKER_CHUNK_BYTES = 16384


class LogStream:
    def __init__(self, data: bytes):
        self.data = data

    def logs(self, **kwargs):
        return (self.data[start : start + DOCKER_CHUNK_BYTES] for start in range(0, len(self.data), DOCKER_CHUNK_BYTES))

    def kill(self):
        raise AssertionError("the output cap is above every size measured")


class CountingHandler:
    def __init__(self):
        self.messages = 0

    def handle_message(self, message):
        self.messages += 1


def read_seconds(data: bytes, runs: int) -> float:
    times = []
    for _ in range(runs):
        reader, handler = ActivityTrackingLogsReader(len(data) + 1), CountingHandler()
        reader._handler = handler
        # Plain lines are forwarded to stdout, as in a run; here they would flood the table.
        with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
            started = time.perf_counter()
            reader.consume_docker_logs(LogStream(data))
            times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 2, 4, 8, 16], help="line lengths in MB")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    print(f"{'line':>6} {'plain s':>9} {'plain MB/s':>11} {'pipes s':>9} {'pipes MB/s':>11}")
    for size in args.sizes:
        plain = b"x" * (size << 20) + b"\n"
        message = (
            json.dumps(
                {
                    "__dagster_pipes_version": "0.1",
                    "method": "report_custom_message",
                    "params": {"payload": "x" * (size << 20)},
                }
            ).encode()
            + b"\n"
        )
        plain_seconds, message_seconds = read_seconds(plain, args.runs), read_seconds(message, args.runs)
        print(
            f"{size:>4}MB {plain_seconds:>9.3f} {size / plain_seconds:>11.0f} "
            f"{message_seconds:>9.3f} {size / message_seconds:>11.0f}"
        )


if __name__ == "__main__":
    main()
