"""How the sensor interval setting becomes a Dagster minimum interval."""

import math

# dagster-daemon evaluates sensors once per loop of this many seconds (MIN_INTERVAL_LOOP_TIME in
# dagster/_daemon/sensor.py; not configurable), whatever a sensor's minimum interval.
DAEMON_SENSOR_LOOP_SECONDS = 5


def minimum_interval_seconds(interval_seconds: int) -> int:
    """The `minimum_interval_seconds` that makes a sensor tick every `interval_seconds` rounded up to
    whole daemon loops.

    At the start of each loop the daemon skips a sensor whose previous tick is younger than its minimum
    interval, but it stamps a tick a moment after that check (in a worker thread, after reading the
    sensor's state). Exactly 5 s therefore misses the very next loop about half the time: the inbox
    sensor ticked 10 s apart on 17 of 39 occasions (mean gap 7.2 s), the wait after an emit 5 s on
    average instead of 2.5 s. Half a loop of slack absorbs that jitter even on a loaded machine; it is
    taken off the whole loops, not the interval itself (6 s less the slack would pass after one loop)."""
    loops = max(1, math.ceil(interval_seconds / DAEMON_SENSOR_LOOP_SECONDS))
    return loops * DAEMON_SENSOR_LOOP_SECONDS - DAEMON_SENSOR_LOOP_SECONDS // 2
