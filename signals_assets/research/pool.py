"""A bounded pool for the research sandboxes of one report run.

Each task is one sandbox run (a subprocess or a container, with its own limits, log and clean-up);
the pool only bounds how many run at once. Results come back in completion order on the calling
thread, grouped by what finished together, so the store is written from one thread only and once
per group. When the calling thread is interrupted (the run is terminated), `cancelled` is set,
`stop_all` stops what is running, and nothing new starts.
"""

from __future__ import annotations

import threading
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any, Callable, Iterator

Task = Callable[[threading.Event], Any]


def run_bounded(
    tasks: list[Task], concurrency: int, stop_all: Callable[[], None] = lambda: None
) -> Iterator[list[tuple[int, Any, BaseException | None]]]:
    """The tasks that finished since the last yield, in index order: (index, result, None) or
    (index, None, error) each; at most `concurrency` run at once. While the caller handles one
    list, the next finish, so it can record them together. A task gets the pool's `cancelled`
    event and should stop soon once it is set."""
    if concurrency < 1:
        raise ValueError(f"research concurrency must be at least 1, got {concurrency}")
    cancelled = threading.Event()
    executor = ThreadPoolExecutor(max_workers=min(concurrency, max(1, len(tasks))), thread_name_prefix="research")
    futures: dict[Future, int] = {executor.submit(task, cancelled): index for index, task in enumerate(tasks)}
    try:
        pending = set(futures)
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            finished = []
            for future in sorted(done, key=futures.__getitem__):
                error = future.exception()
                finished.append((futures[future], None if error else future.result(), error))
            yield finished
    except BaseException:
        cancelled.set()
        stop_all()
        raise
    finally:
        executor.shutdown(wait=True, cancel_futures=True)
