"""Phases: the exclusive wall time of each phase of a step (its `seconds` metadata)."""

import time
from contextlib import contextmanager

from signals_assets.timing import Phases


def test_a_nested_phase_counts_only_for_itself():
    phases = Phases()
    started = time.perf_counter()
    with phases("outer"):
        time.sleep(0.02)
        with phases("inner"):
            time.sleep(0.05)
    with phases("inner"):
        time.sleep(0.01)
    wall = time.perf_counter() - started
    assert phases.seconds["inner"] >= 0.06
    assert 0.02 <= phases.seconds["outer"] < wall - 0.06
    assert sum(phases.seconds.values()) <= wall


def test_sessions_count_opening_use_and_closing_as_one_phase():
    events = []

    @contextmanager
    def open_session():
        time.sleep(0.01)
        events.append("open")
        yield "session"
        time.sleep(0.01)
        events.append("close")

    phases = Phases()
    with phases("work"):
        with phases.sessions(open_session)() as session:
            assert session == "session"
            time.sleep(0.01)
    assert events == ["open", "close"]
    assert phases.seconds["store"] >= 0.03
    assert set(phases.rounded()) == {"work", "store"}
