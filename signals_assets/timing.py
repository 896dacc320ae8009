"""Wall seconds per phase of a step, recorded in its materialisation metadata (`seconds`) so the
instance shows where a batch run's time goes (benchmarks/pipeline_throughput.py prints them)."""

from __future__ import annotations

import time
from contextlib import AbstractContextManager, contextmanager
from typing import Callable, Iterator, TypeVar

T = TypeVar("T")


class Phases:
    """Exclusive times: a phase entered inside another counts for itself only, not for the outer one."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._inner: list[float] = []  # per open phase, the seconds of the phases nested in it

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        self._inner.append(0.0)
        try:
            yield
        finally:
            elapsed = time.perf_counter() - started
            inner = self._inner.pop()
            self.seconds[name] = self.seconds.get(name, 0.0) + elapsed - inner
            if self._inner:
                self._inner[-1] += elapsed

    def sessions(
        self, open_session: Callable[[], AbstractContextManager[T]], name: str = "store"
    ) -> Callable[[], AbstractContextManager[T]]:
        """`open_session` whose sessions (opening, queries, closing) count as phase `name`."""

        @contextmanager
        def timed() -> Iterator[T]:
            with self(name), open_session() as session:
                yield session

        return timed

    def rounded(self) -> dict[str, float]:
        return {name: round(seconds, 3) for name, seconds in self.seconds.items()}
