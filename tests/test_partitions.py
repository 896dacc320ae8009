import subprocess
import sys
from datetime import datetime, timedelta, timezone

import pytest

from signals_assets.partition_keys import (
    PartitionKeyError,
    batch_key,
    batch_time,
    key_ordered_ranges,
    next_batch_key,
    report_team_id,
    validate_report_key,
)

from conftest import REPO_ROOT

NOW = datetime(2026, 11, 22, 7, 45, 12, 123456, tzinfo=timezone.utc)


def test_batch_key_round_trips_and_is_safe_for_dagster():
    key = batch_key(NOW)
    assert key == "b20261122T074512123456Z"
    assert batch_time(key) == NOW
    assert not any(bad in key for bad in (",", "|", "[", "]", "...", " "))


def test_batch_keys_sort_in_claim_order():
    keys = [batch_key(NOW + timedelta(microseconds=i * 7919)) for i in range(50)]
    assert keys == sorted(keys)


def test_next_batch_key_never_goes_back_when_the_clock_does():
    last = batch_key(NOW)
    assert next_batch_key(NOW - timedelta(hours=1), last) > last
    assert next_batch_key(NOW, last) > last
    assert next_batch_key(NOW + timedelta(seconds=1), last) == batch_key(NOW + timedelta(seconds=1))


@pytest.mark.parametrize(
    "key", ["", "b2026", "batch-1", "b20261122T074512123456Z,x", "b20261131T000000000000Z", "b20261122T250000000000Z"]
)
def test_invalid_batch_key_is_named(key):
    with pytest.raises(PartitionKeyError, match="batch key"):
        batch_time(key)


def test_report_keys():
    assert report_team_id("r12-0123456789abcdef") == 12
    for bad in ("r1-xyz", "12-0123456789abcdef", "r1-0123456789abcdef0"):
        with pytest.raises(PartitionKeyError, match="report key"):
            validate_report_key(bad)


@pytest.mark.parametrize(
    "team, valid",
    [
        ("18446744073709551615", True),
        ("1", True),
        ("18446744073709551616", False),
        ("18446744073709551617", False),
        ("0", False),
        ("01", False),
        ("-1", False),
    ],
)
def test_report_keys_hold_only_valid_team_ids(team, valid):
    key = f"r{team}-0123456789abcdef"
    if valid:
        assert report_team_id(key) == int(team)
    else:
        with pytest.raises(PartitionKeyError, match="report key"):
            report_team_id(key)


def test_the_stage_modules_that_parse_keys_load_no_dagster():
    """Claiming (`signals emit-file`, `signals process` before its first run) and the stage packages
    parse keys without importing Dagster (over a second of a command's start)."""
    code = (
        "import sys\n"
        "import signals_assets.cli.main, signals_assets.ingestion.inbox, signals_assets.ingestion.store\n"
        "import signals_assets.grouping.batch, signals_assets.housekeeping.retirement, signals_assets.reports.quotas\n"
        "print(sorted(n for n in sys.modules if n == 'dagster' or n.startswith('dagster.')))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_key_ordered_ranges_never_span_a_key_added_back_out_of_turn():
    # b1 and b2 retired and added back after b3 and b4; x is another team's batch
    order = ["b3", "x", "b4", "b1", "b2"]
    assert key_ordered_ranges(["b1", "b2", "b3", "b4"], order) == [("b1", "b2"), ("b3", "b4")]
    assert key_ordered_ranges(["b1", "b3", "b4"], order) == [("b1", "b1"), ("b3", "b4")]
    # b2 alone added back after b3: it runs alone, between b1 and b3
    assert key_ordered_ranges(["b1", "b2", "b3"], ["b1", "b3", "b2"]) == [("b1", "b1"), ("b2", "b2"), ("b3", "b3")]
    assert key_ordered_ranges(["b1", "b2"], ["b1", "x", "b2"]) == [("b1", "b2")]


def test_a_run_over_many_partitions_reads_the_partition_set_once_for_their_metadata(tmp_path, monkeypatch):
    """Each key gets its own metadata on its own materialisation; Dagster's check of each key against
    the run's range reads the set once for all of them, and the instance is left as it was."""
    import dagster as dg

    from signals_assets.jobs import RANGE_END_TAG, RANGE_START_TAG
    from signals_assets.partitions import add_partition_metadata, reports

    reads = []
    read_set = dg.DagsterInstance.get_dynamic_partitions
    monkeypatch.setattr(
        dg.DagsterInstance,
        "get_dynamic_partitions",
        lambda self, partitions_def_name: reads.append(partitions_def_name) or read_set(self, partitions_def_name),
    )
    keys = [f"t1-r{i:03d}" for i in range(40)]
    reads_in_metadata = []

    @dg.asset(partitions_def=reports, backfill_policy=dg.BackfillPolicy.single_run())
    def per_report(context: dg.AssetExecutionContext) -> None:
        by_key = {key: {"position": keys.index(key)} for key in context.partition_keys}
        before = len(reads)
        add_partition_metadata(context, by_key)
        reads_in_metadata.append(len(reads) - before)
        # A key outside the run's range is still refused, and the failure leaves the instance's own reads.
        with pytest.raises(dg.DagsterInvariantViolationError, match="not being targeted"):
            add_partition_metadata(context, {"t2-r000": {"position": -1}})
        assert "get_dynamic_partitions" not in vars(context.instance)
        assert "has_dynamic_partition" not in vars(context.instance)

    with dg.DagsterInstance.local_temp(str(tmp_path)) as instance:
        instance.add_dynamic_partitions(reports.name, [*keys, "t2-r000"])
        result = dg.materialize(
            [per_report],
            instance=instance,
            tags={RANGE_START_TAG: keys[0], RANGE_END_TAG: keys[-1]},
        )
        assert result.success
        assert reads_in_metadata == [1]
        materialized = {
            m.partition: m.metadata["position"].value for m in result.asset_materializations_for_node("per_report")
        }
        assert materialized == {key: position for position, key in enumerate(keys)}
