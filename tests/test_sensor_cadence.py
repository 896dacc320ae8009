"""The pipeline sensors tick on every loop of dagster-daemon, not every other one.

Judged by the daemon's own check (dagster._daemon.sensor.is_under_min_interval) on the sensors as the
daemon sees them (RemoteSensor snapshots of the code location's definitions)."""

import time

import pytest
from dagster._core.remote_representation.external import RemoteRepository
from dagster._core.remote_representation.external_data import RepositorySnap
from dagster._core.remote_representation.handle import RepositoryHandle
from dagster._core.scheduler.instigation import (
    InstigatorState,
    InstigatorStatus,
    InstigatorType,
    SensorInstigatorData,
)
from dagster._daemon.sensor import MIN_INTERVAL_LOOP_TIME, is_under_min_interval

from signals_assets.definitions import defs
from signals_assets.sensors.cadence import DAEMON_SENSOR_LOOP_SECONDS

PIPELINE_SENSORS = ("signal_inbox_sensor", "report_promotion_sensor")


def remote_sensor(name: str):
    repository = defs().get_repository_def()
    handle = RepositoryHandle.for_test(location_name="signals_assets", repository_name=repository.name)
    snapshot = RemoteRepository(RepositorySnap.from_def(repository), handle, auto_materialize_use_sensors=True)
    return snapshot.get_sensor(name)


def ticked_ago(sensor, seconds: float) -> InstigatorState:
    data = SensorInstigatorData(
        min_interval=sensor.min_interval_seconds, last_tick_start_timestamp=time.time() - seconds
    )
    return InstigatorState(sensor.get_remote_origin(), InstigatorType.SENSOR, InstigatorStatus.RUNNING, data)


def test_our_loop_length_is_the_daemons():
    assert DAEMON_SENSOR_LOOP_SECONDS == MIN_INTERVAL_LOOP_TIME


@pytest.mark.parametrize("name", PIPELINE_SENSORS)
def test_a_sensor_stamped_late_in_the_previous_loop_still_ticks_on_the_next(name):
    """The daemon stamps a tick after its check, in a worker thread: up to ~2 s into the loop on a
    loaded machine, so the next loop's check sees 3-5 s since the tick (default interval: 5 s)."""
    sensor = remote_sensor(name)
    for since_previous_tick in (5.0, 4.0, 3.1):
        assert not is_under_min_interval(ticked_ago(sensor, since_previous_tick), sensor), since_previous_tick


@pytest.mark.parametrize("name", PIPELINE_SENSORS)
def test_a_longer_interval_still_spaces_the_ticks(name, monkeypatch):
    monkeypatch.setenv("SIGNALS_SENSOR_INTERVAL_SECONDS", "15")
    sensor = remote_sensor(name)
    assert is_under_min_interval(ticked_ago(sensor, 10.0), sensor)  # two loops later: not yet
    assert not is_under_min_interval(ticked_ago(sensor, 14.0), sensor)  # the third loop, stamped 1 s late


@pytest.mark.parametrize("name", PIPELINE_SENSORS)
@pytest.mark.parametrize("interval, loops", [(6, 2), (11, 3)])
def test_an_interval_just_past_whole_loops_is_rounded_up_to_the_next_loop(name, interval, loops, monkeypatch):
    """configuration.md: the interval is rounded up to whole loops, so 6 s ticks every 10 s, not every 5."""
    monkeypatch.setenv("SIGNALS_SENSOR_INTERVAL_SECONDS", str(interval))
    sensor = remote_sensor(name)
    loop = DAEMON_SENSOR_LOOP_SECONDS
    assert is_under_min_interval(ticked_ago(sensor, (loops - 1) * loop - 1.0), sensor)  # a loop early: not yet
    assert not is_under_min_interval(ticked_ago(sensor, loops * loop - 1.0), sensor)  # stamped 1 s late
