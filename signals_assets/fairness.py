"""Fair interleaving of per-team queues, shared by batch claims and report rounds."""

from __future__ import annotations

from typing import Sequence, TypeVar

T = TypeVar("T")


def round_robin(queues: Sequence[Sequence[T]], capacity: int | None = None) -> list[T]:
    """Items taken one per queue in turn (queues in the given order, each in its own order), up to
    `capacity`: a team with few items gets all of them in early however long another team's queue is."""
    taken: list[T] = []
    for depth in range(max(map(len, queues), default=0)):
        for queue in queues:
            if depth < len(queue) and (capacity is None or len(taken) < capacity):
                taken.append(queue[depth])
    return taken
