"""Each report's size, weight and vector sum kept as per-batch deltas (report_vector_deltas), folded
into per-report snapshots when read (report_vector_snapshots): after joins, moves, merges, deletions,
a changed re-grouping, a fold and a write killed half-way, the sums read as of any batch equal a
recomputation from the members' embeddings."""

from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from signals_assets.grouping import store
from signals_assets.grouping.engine import BatchSignal
from signals_assets.resources.clickhouse import ClickHouseResource

DIMENSIONS = 8
AT = datetime(2026, 11, 24, 9, 0, tzinfo=timezone.utc)
B1, B2, B3, LATER = "b20261124T090000000000Z", "b20261124T091000000000Z", "b20261124T092000000000Z", "b2099"
_VECTORS = {f"s{i}": np.random.default_rng(i).standard_normal(DIMENSIONS).astype(np.float32) for i in range(12)}


def assignment(team, signal_id, batch, seq, report_id, weight=0.5, deleted=False, decision="joined") -> dict:
    return {
        "team_id": team,
        "signal_id": signal_id,
        "batch_key": batch,
        "seq": seq,
        "report_id": report_id,
        "decision": decision,
        "matched_signal_id": "",
        "similarity": 0.0,
        "weight": weight,
        "deleted": int(deleted),
        "assigned_at": AT,
    }


def embed(db, team: int, batch: str, signal_ids: list[str]) -> None:
    db.insert(
        "signal_embeddings",
        [
            {
                "team_id": team,
                "signal_id": s,
                "batch_key": batch,
                "model": "m",
                "dimension": DIMENSIONS,
                "embedding": _VECTORS[s].tolist(),
                "embedded_at": AT,
            }
            for s in signal_ids
        ],
    )


def members_recomputed(db, team: int, before: str) -> dict[str, tuple[int, float, np.ndarray]]:
    """(size, weight, vector sum) of every report with live members, from the assignment rows of
    batches before `before` (latest row per signal wins) and the members' embeddings, in numpy."""
    rows = db.query(
        "SELECT signal_id, batch_key, seq, report_id, weight, deleted FROM report_assignments "
        "WHERE team_id = {team} AND batch_key < {before} ORDER BY batch_key, seq",
        {"team": team, "before": before},
    )
    latest = {r["signal_id"]: r for r in rows}
    sums: dict[str, tuple[int, float, np.ndarray]] = {}
    for signal_id, row in latest.items():
        if row["deleted"]:
            continue
        count, weight, total = sums.get(row["report_id"], (0, 0.0, np.zeros(DIMENSIONS)))
        sums[row["report_id"]] = (count + 1, weight + row["weight"], total + _VECTORS[signal_id].astype(np.float64))
    return sums


def sums_from_deltas(db, team: int, before: str) -> dict[str, tuple[int, float, np.ndarray]]:
    rows = db.query(
        "SELECT report_id, sum(signal_count) AS n, sum(weight) AS w, sumForEach(vector_sum) AS v "
        "FROM report_vector_deltas WHERE team_id = {team} AND model = 'm' AND batch_key < {before} "
        "GROUP BY report_id HAVING n != 0",
        {"team": team, "before": before},
    )
    return {r["report_id"]: (int(r["n"]), float(r["w"]), np.asarray(r["v"])) for r in rows}


def assert_match(db, team: int, before: str = LATER) -> None:
    expected, found = members_recomputed(db, team, before), sums_from_deltas(db, team, before)
    assert sorted(found) == sorted(expected)
    for report_id, (count, weight, total) in expected.items():
        assert found[report_id][0] == count, report_id
        assert found[report_id][1] == pytest.approx(weight), report_id
        np.testing.assert_allclose(found[report_id][2], total, atol=1e-9, err_msg=report_id)


def batch_3_assignments() -> list[dict]:
    """Batch 3 of `three_batches`: s5 opens r4, s1 moves there."""
    return [assignment(1, "s5", B3, 0, "r4"), assignment(1, "s1", B3, 1, "r4", weight=2.0, decision="consolidated")]


@pytest.fixture
def three_batches(tmp_path):
    """Team 1: batch 1 opens r1 (s0, s1) and r2 (s2); batch 2 adds s3 to r1, merges r2 into r1
    (s2 moved) and puts s4 in r3 as deleted; batch 3 moves s1 to a new r4 and adds s5 to r4.
    Team 2 has the same report ids, which team 1's sums must never include."""
    resource = ClickHouseResource(path=str(tmp_path / "chdb"))
    with resource.session() as db:
        embed(db, 1, B1, ["s0", "s1", "s2"])
        embed(db, 2, B1, ["s9"])
        embed(db, 1, B2, ["s3", "s4"])
        embed(db, 1, B3, ["s5"])
        store.write_batch(
            db,
            B1,
            [],
            [
                assignment(1, "s0", B1, 0, "r1", weight=1.0),
                assignment(1, "s1", B1, 1, "r1"),
                assignment(1, "s2", B1, 2, "r2"),
                assignment(2, "s9", B1, 3, "r1"),
            ],
            [],
            B1,
        )
        store.write_batch(
            db,
            B2,
            [1],
            [
                assignment(1, "s3", B2, 0, "r1"),
                assignment(1, "s4", B2, 1, "r3", deleted=True, decision="deleted_report"),
                assignment(1, "s2", B2, 2, "r1", decision="consolidated"),
            ],
            [],
            B2,
        )
        store.write_batch(db, B3, [1], batch_3_assignments(), [], B3)
    return resource


def test_the_sums_match_the_members_after_joins_moves_merges_and_deletions(three_batches):
    with three_batches.session() as db:
        for before in (B1, B2, B3, LATER):  # as of before every batch, as a re-grouping reads them
            assert_match(db, 1, before)
        assert_match(db, 2)
        final = sums_from_deltas(db, 1, LATER)
        assert {r: n for r, (n, _, _) in final.items()} == {"r1": 3, "r4": 2}  # r2 merged away, r3 only deleted
        assert final["r4"][1] == pytest.approx(2.5)  # s1's weight as its latest assignment says
        assert store.repair_vector_deltas(db, 1, LATER) == 0  # all derived: nothing to repair


def test_a_changed_regrouping_of_an_earlier_batch_rederives_the_later_ones(three_batches):
    with three_batches.session() as db:
        # batch 2 grouped again differently within a run that regroups up to batch 3
        store.write_batch(db, B2, [1], [assignment(1, "s3", B2, 0, "r2"), assignment(1, "s4", B2, 1, "r5")], [], B3)
        assert store.repair_vector_deltas(db, 1, LATER) == 1  # batch 3 was derived from the old batch 2
        assert_match(db, 1)
        assert sums_from_deltas(db, 1, LATER)["r2"][0] == 2  # s2 stays, s3 joins


def test_a_write_killed_between_assignments_and_deltas_is_repaired(three_batches):
    with three_batches.session() as db:
        # what a kill -9 inside write_batch leaves: batch 3's assignments replaced, its deltas the old ones
        db.replace_partition(
            "report_assignments",
            "team_id = 1 AND batch_key = {batch}",
            [assignment(1, "s5", B3, 0, "r1"), assignment(1, "s0", B3, 1, "r4", decision="consolidated")],
            {"batch": B3},
        )
        with pytest.raises(AssertionError):
            assert_match(db, 1)
        assert store.repair_vector_deltas(db, 1, LATER) == 1
        assert_match(db, 1)


def test_half_written_deltas_and_a_store_from_before_them_are_derived_again(three_batches):
    with three_batches.session() as db:
        db.command("DELETE FROM report_vector_batches WHERE batch_key = {b}", {"b": B2})  # killed before the marker
        assert store.repair_vector_deltas(db, 1, LATER) == 2  # batch 2 and the batch after it
        assert_match(db, 1)
        db.command("TRUNCATE TABLE report_vector_deltas")
        db.command("TRUNCATE TABLE report_vector_batches")
        assert store.repair_vector_deltas(db, 1, LATER) == 3
        assert_match(db, 1)
        assert store.repair_vector_deltas(db, 2, LATER) == 1
        assert_match(db, 2)


def statistics(db, before: str) -> dict[str, tuple[int, float, np.ndarray]]:
    """(size, weight, vector sum) of team 1's candidate reports as the grouping of batch `before` reads
    them (`read_team`: snapshots and deltas), every report of the team being a candidate."""
    probe = BatchSignal("probe", 1, "probe", 0.5, _VECTORS["s0"].tolist())
    context = store.read_team(db, 1, before, "m", AT - timedelta(days=1), [probe], False)
    return {
        r: (context.states[r].signal_count, context.states[r].total_weight, context.stats[r].total)
        for r in context.stats
    }


def assert_same(found: dict, expected: dict) -> None:
    """Equal sums: exactly, for the vector sums of float32 embeddings in any order."""
    assert sorted(found) == sorted(expected)
    for report_id, (count, weight, total) in expected.items():
        assert found[report_id][0] == count, report_id
        assert found[report_id][1] == pytest.approx(weight), report_id
        np.testing.assert_array_equal(found[report_id][2], total, err_msg=report_id)


def snapshot_keys(db) -> dict[str, list[str]]:
    rows = db.query("SELECT report_id, batch_key FROM report_vector_snapshots WHERE team_id = 1 ORDER BY ALL")
    keys: dict[str, list[str]] = {}
    for row in rows:
        keys.setdefault(row["report_id"], []).append(row["batch_key"])
    return keys


@pytest.fixture
def with_events(three_batches):
    """The three batches with a creation event for every report, as the grouping writes them."""
    with three_batches.session() as db:
        db.insert(
            "report_events",
            [
                {
                    "team_id": team,
                    "report_id": report_id,
                    "source": B1,
                    "stage": "grouping",
                    "seq": seq,
                    "event": "created",
                    "status": "potential",
                    "at": AT,
                }
                for seq, (team, report_id) in enumerate(
                    [(1, "r1"), (1, "r2"), (1, "r3"), (1, "r4"), (1, "r5"), (2, "r1")]
                )
            ],
        )
    return three_batches


def test_folded_statistics_equal_the_unfolded_sums(with_events, monkeypatch):
    monkeypatch.setattr(store, "FOLD_PARTS", 1)  # fold every report read with two parts or more
    with with_events.session() as db:
        unfolded = {before: statistics(db, before) for before in (B2, B3, LATER)}
        # each report at its latest delta before the read; r1 again at batch 3 (its snapshot and a delta)
        assert snapshot_keys(db) == {"r1": [B2, B3], "r4": [B3]}
        for before in (B2, B3, LATER):
            folded = statistics(db, before)
            assert_same(folded, unfolded[before])
            assert_same(folded, members_recomputed(db, 1, before))
        assert statistics(db, LATER)["r1"][0] == 3


def test_regrouping_an_earlier_batch_after_folding_reads_what_it_read(with_events, monkeypatch):
    monkeypatch.setattr(store, "FOLD_PARTS", 1)
    with with_events.session() as db:
        first = statistics(db, B3)  # batch 3 as first grouped: nothing folded yet
        statistics(db, LATER)  # a later batch folds r1 and r4 at batch 3
        assert snapshot_keys(db) == {"r1": [B2, B3], "r4": [B3]}
        assert_same(statistics(db, B3), first)  # the snapshots at batch 3 are not read for batch 3
        # re-grouping batch 3 the same way keeps its deltas and the snapshot before it
        store.write_batch(db, B3, [1], batch_3_assignments(), [], B3)
        assert snapshot_keys(db) == {"r1": [B2]}
        assert_same(statistics(db, B3), first)
        assert_same(statistics(db, LATER), members_recomputed(db, 1, LATER))


def test_a_changed_regrouping_drops_the_snapshots_that_summed_the_old_deltas(with_events, monkeypatch):
    monkeypatch.setattr(store, "FOLD_PARTS", 1)
    with with_events.session() as db:
        statistics(db, LATER)
        store.write_batch(db, B2, [1], [assignment(1, "s3", B2, 0, "r2"), assignment(1, "s4", B2, 1, "r5")], [], B3)
        assert snapshot_keys(db) == {}
        assert store.repair_vector_deltas(db, 1, LATER) == 1
        assert_same(statistics(db, LATER), members_recomputed(db, 1, LATER))


def test_kills_while_folding_or_rederiving_leave_the_statistics_readable(with_events, monkeypatch):
    monkeypatch.setattr(store, "FOLD_PARTS", 1)
    with with_events.session() as db:
        expected = members_recomputed(db, 1, LATER)
        statistics(db, LATER)
        # a fold killed part-way: some reports have their snapshot, others not
        db.command("DELETE FROM report_vector_snapshots WHERE report_id = 'r4'")
        assert_same(statistics(db, LATER), expected)
        # a write killed after batch 3's assignments were replaced: its deltas and the snapshots that
        # summed them are the old ones until the repair derives them again
        db.replace_partition(
            "report_assignments",
            "team_id = 1 AND batch_key = {batch}",
            [assignment(1, "s5", B3, 0, "r1"), assignment(1, "s0", B3, 1, "r4", decision="consolidated")],
            {"batch": B3},
        )
        assert store.repair_vector_deltas(db, 1, LATER) == 1
        assert_same(statistics(db, LATER), members_recomputed(db, 1, LATER))
        # a derivation killed after it dropped the snapshots (before its deltas): read as the deltas say
        statistics(db, LATER)
        db.command("DELETE FROM report_vector_snapshots WHERE team_id = 1 AND batch_key >= {b}", {"b": B3})
        db.command("DELETE FROM report_vector_batches WHERE team_id = 1 AND batch_key = {b}", {"b": B3})
        assert store.repair_vector_deltas(db, 1, LATER) == 1
        assert_same(statistics(db, LATER), members_recomputed(db, 1, LATER))


def deletes_of_pruning(db, floor: str) -> int:
    """Prune the snapshots at `floor`; the number of DELETE statements that ran."""
    run, deletes = db._run, []

    def recording(sql: str) -> bytes:
        if sql.startswith("DELETE"):
            deletes.append(sql)
        return run(sql)

    db._run = recording
    try:
        store.prune_vector_snapshots(db, floor)
    finally:
        db._run = run
    return len(deletes)


def test_pruning_removes_only_snapshots_no_later_read_takes(with_events, monkeypatch):
    """Pruned at the earliest batch that may still be grouped, the snapshots superseded before it go
    and every read from that batch on is what it was; pruning again removes nothing more. A DELETE
    (a mutation of the whole table, even when it matches nothing) runs only when a snapshot goes."""
    monkeypatch.setattr(store, "FOLD_PARTS", 1)
    with with_events.session() as db:
        statistics(db, B3)  # r1 folded at batch 2
        statistics(db, LATER)  # r1 and r4 at batch 3
        assert snapshot_keys(db) == {"r1": [B2, B3], "r4": [B3]}
        expected = {before: statistics(db, before) for before in (B3, LATER)}
        assert deletes_of_pruning(db, B3) == 0  # batch 3 may be grouped again: it reads r1's snapshot at batch 2
        assert snapshot_keys(db) == {"r1": [B2, B3], "r4": [B3]}
        for deletes in (1, 0):  # idempotent
            assert deletes_of_pruning(db, LATER) == deletes
            assert snapshot_keys(db) == {"r1": [B3], "r4": [B3]}
            assert_same(statistics(db, LATER), expected[LATER])
        # a re-grouping of batch 3 all the same (the operator re-added its retired partition): an earlier
        # snapshot and more deltas, the same statistics
        assert_same(statistics(db, B3), expected[B3])
        assert_same(statistics(db, LATER), members_recomputed(db, 1, LATER))


def test_a_store_from_before_the_snapshots_gains_them(with_events, monkeypatch):
    monkeypatch.setattr(store, "FOLD_PARTS", 1)
    with with_events.session() as db:
        db.command("DROP TABLE report_vector_snapshots")
    with with_events.session() as db:  # the schema is applied when a session opens
        assert_same(statistics(db, LATER), members_recomputed(db, 1, LATER))
        assert snapshot_keys(db) == {"r1": [B3], "r4": [B3]}
        assert_same(statistics(db, LATER), members_recomputed(db, 1, LATER))


def test_the_pool_read_from_the_latest_batches_is_the_pool_read_from_all(with_events):
    """The consolidation pool (`_pool_rows`) reads back only as many batches as its limit needs, and its
    rows are those of a read of every batch, for every limit, also when the latest batches' signals are
    outside the pooled reports and it must read further back."""
    with with_events.session() as db:
        for before in (B2, B3, LATER):
            for pooled in (["r1", "r2", "r3", "r4", "r5"], ["r1", "r2", "r3", "r5"]):
                for limit in range(1, 8):
                    params = {
                        "team": 1,
                        "batch": before,
                        "since": AT - timedelta(days=1),
                        "ids": pooled,
                        "limit": limit,
                    }
                    every_batch = db.query(store._POOL, {**params, "first": ""})
                    assert store._pool_rows(db, params) == every_batch, (before, pooled, limit)
        assert [r["signal_id"] for r in every_batch] == ["s3", "s2", "s0"]  # newest first; s5 and s1 are in r4
