"""The grouping engine's candidate search on chdb: exact per team, and through the HNSW index for large teams."""

import signal
import subprocess
import sys
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest

from signals_assets.grouping import store
from signals_assets.grouping.batch import group_batch
from signals_assets.grouping.decisions import OfflineProvider
from signals_assets.grouping.engine import TOP_K
from signals_assets.resources.clickhouse import ClickHouseResource
from signals_assets.storage.clickhouse import StoreSession

DIMENSIONS = 16
T0 = datetime(2026, 11, 24, 9, 0, tzinfo=timezone.utc)
BATCH = "b20260124T090000000000Z"  # the batch being grouped: every stored row is from an earlier one
EARLIER = "b20260120T090000000000Z"
SINCE = T0 - timedelta(days=30)


def clustered(rng, centres: np.ndarray, count: int) -> np.ndarray:
    vectors = centres[rng.integers(0, len(centres), count)] + 0.5 * rng.standard_normal((count, DIMENSIONS))
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def stored_rows(team: int, ids: list[str], vectors: np.ndarray, deleted=(), assigned_at=T0):
    embeddings = [
        {
            "team_id": team,
            "signal_id": signal_id,
            "batch_key": EARLIER,
            "model": "m",
            "dimension": DIMENSIONS,
            "embedding": vector.astype(np.float32).tolist(),
            "embedded_at": T0,
        }
        for signal_id, vector in zip(ids, vectors)
    ]
    assignments = [
        {
            "team_id": team,
            "signal_id": signal_id,
            "batch_key": EARLIER,
            "seq": seq,
            "report_id": f"r{team}-{seq % 40:016x}",
            "decision": "created",
            "matched_signal_id": "",
            "similarity": 0.0,
            "weight": 0.5,
            "deleted": int(signal_id in deleted),
            "assigned_at": assigned_at,
        }
        for seq, signal_id in enumerate(ids)
    ]
    return embeddings, assignments


@pytest.fixture(scope="module")
def indexed_store(tmp_path_factory):
    """Team 1: 1,500 clustered signals (the last 40 deleted, 40 more assigned before the window);
    team 2: 1,500 signals from the same clusters, which team 1's search must never return."""
    rng = np.random.default_rng(7)
    centres = rng.standard_normal((30, DIMENSIONS))
    vectors = clustered(rng, centres, 3040)
    ids = [f"s{i:04d}" for i in range(3040)]
    resource = ClickHouseResource(path=str(tmp_path_factory.mktemp("search") / "chdb"), vector_index_dimensions=16)
    with resource.session() as db:
        for rows in (
            stored_rows(1, ids[:1500], vectors[:1500], deleted=set(ids[1460:1500])),
            stored_rows(1, ids[1500:1540], vectors[1500:1540], assigned_at=SINCE - timedelta(days=1)),
            stored_rows(2, ids[1540:], vectors[1540:]),
        ):
            db.insert("signal_embeddings", rows[0])
            db.insert("report_assignments", rows[1])
    probes = clustered(rng, centres, 60)
    searchable = np.arange(1460)
    truth = [set(searchable[np.argsort(-(vectors[:1460] @ p), kind="stable")[:TOP_K]].tolist()) for p in probes]
    return resource, vectors, probes, [{ids[i] for i in found} for found in truth]


def search(resource, probes) -> list[list]:
    with resource.session() as db:
        return store.nearest_signals(db, 1, BATCH, "m", SINCE, [p.tolist() for p in probes])


def test_exact_search_finds_the_true_nearest_searchable_signals_of_the_team(indexed_store):
    resource, vectors, probes, truth = indexed_store
    nearest = search(resource, probes)
    assert [{signal_id for signal_id, _, _ in found} for found in nearest] == truth
    by_id = {f"s{i:04d}": v for i, v in enumerate(vectors)}
    for probe, found in zip(probes, nearest):
        similarities = [similarity for _, _, similarity in found]
        assert similarities == sorted(similarities, reverse=True)
        assert all(abs(s - float(by_id[i] @ probe)) < 1e-5 for i, _, s in found)
        assert all(report.startswith("r1-") for _, report, _ in found)


def spy(monkeypatch, name: str) -> list[int]:
    """Record how many probes each call of store.<name> gets."""
    calls, real = [], getattr(store, name)

    def recorded(db, params, probes):
        calls.append(len(probes))
        return real(db, params, probes)

    monkeypatch.setattr(store, name, recorded)
    return calls


def test_index_search_agrees_with_exact_search_and_keeps_the_filters(indexed_store, monkeypatch):
    resource, _, probes, truth = indexed_store
    monkeypatch.setattr(store, "EXACT_SEARCH_LIMIT", 0)  # every team searched through the index
    monkeypatch.setattr(store, "INDEX_PROBE_LIMIT", len(probes))
    index_calls = spy(monkeypatch, "_index_nearest")
    nearest = search(resource, probes)
    assert index_calls == [len(probes)]
    found = [{signal_id for signal_id, _, _ in rows} for rows in nearest]
    recall = sum(len(f & t) for f, t in zip(found, truth)) / (TOP_K * len(truth))
    assert recall >= 0.95, recall
    assert all(len(rows) == TOP_K for rows in nearest)
    allowed = {f"s{i:04d}" for i in range(1460)}  # team 1, live, within the window
    assert set().union(*found) <= allowed


def test_a_probe_whose_index_neighbours_are_filtered_out_is_searched_again_exactly(indexed_store, monkeypatch):
    """Probes sitting on deleted signals: the index's nearest are filtered out, the exact search refills them."""
    resource, vectors, _, _ = indexed_store
    monkeypatch.setattr(store, "EXACT_SEARCH_LIMIT", 0)
    monkeypatch.setattr(store, "INDEX_FETCH_FACTOR", 1)
    on_deleted = vectors[1460:1470]
    refill_calls = spy(monkeypatch, "_filtered_nearest")
    nearest = search(resource, on_deleted)
    assert refill_calls and refill_calls[0] <= len(on_deleted)  # the short probes only, after the index search
    searchable = np.arange(1460)
    for probe, rows in zip(on_deleted, nearest):
        expected = {f"s{i:04d}" for i in searchable[np.argsort(-(vectors[:1460] @ probe), kind="stable")[:TOP_K]]}
        found = {signal_id for signal_id, _, _ in rows}
        # Full and searchable; a probe the index happened not to leave short keeps the index's
        # approximate answer (HNSW is not exact), so at least 8 of the exact 10, not all of them.
        assert len(found) == TOP_K and all(int(i[1:]) < 1460 for i in found)
        assert len(found & expected) >= TOP_K - 2


def test_without_an_index_large_teams_are_searched_exactly(tmp_path, monkeypatch):
    rng = np.random.default_rng(3)
    vectors = clustered(rng, rng.standard_normal((5, DIMENSIONS)), 200)
    ids = [f"s{i:03d}" for i in range(200)]
    resource = ClickHouseResource(path=str(tmp_path / "chdb"))
    with resource.session() as db:
        embeddings, assignments = stored_rows(1, ids, vectors)
        db.insert("signal_embeddings", embeddings)
        db.insert("report_assignments", assignments)
    monkeypatch.setattr(store, "EXACT_SEARCH_LIMIT", 0)
    nearest = search(resource, vectors[:5])
    for probe, rows in zip(vectors[:5], nearest):
        assert [signal_id for signal_id, _, _ in rows] == [ids[i] for i in np.argsort(-(vectors @ probe))[:TOP_K]]


def store_batches(db, team: int, ids, vectors, per_batch: int, deleted_per_batch: int = 0, first_day: int = 10):
    """Team rows in batches of `per_batch`, one a day from `first_day` (the first `deleted_per_batch` of
    each deleted)."""
    for number, start in enumerate(range(0, len(ids), per_batch)):
        embeddings, assignments = stored_rows(
            team,
            ids[start : start + per_batch],
            vectors[start : start + per_batch],
            deleted=set(ids[start : start + deleted_per_batch]),
        )
        for row in embeddings + assignments:
            row["batch_key"] = f"b202601{first_day + number:02d}T090000000000Z"
        db.insert("signal_embeddings", embeddings)
        db.insert("report_assignments", assignments)


def exact_top(vectors: np.ndarray, live: np.ndarray, probe: np.ndarray, ids: list[str]) -> list[str]:
    return [ids[i] for i in live[np.argsort(-(vectors[live] @ probe), kind="stable")[:TOP_K]]]


def cell_rows(db) -> dict[str, int]:
    return {
        r["signal_id"]: int(r["copies"])
        for r in db.query("SELECT signal_id, count() AS copies FROM signal_embedding_cell_vectors GROUP BY signal_id")
    }


@pytest.fixture
def clustered_team(tmp_path, monkeypatch):
    """Team 1: 1,500 signals around 20 centres in five batches (20 deleted in each); team 2: 200 signals
    of the same centres. Every team is searched by cells of about 50 rows, read 300 rows at a time."""
    rng = np.random.default_rng(5)
    centres = rng.standard_normal((20, DIMENSIONS))
    vectors = clustered(rng, centres, 1700)
    ids = [f"s{i:04d}" for i in range(1700)]
    resource = ClickHouseResource(path=str(tmp_path / "chdb"), vector_index_dimensions=16)
    with resource.session() as db:
        store_batches(db, 1, ids[:1500], vectors[:1500], 300, deleted_per_batch=20)
        embeddings, assignments = stored_rows(2, ids[1500:], vectors[1500:])
        db.insert("signal_embeddings", embeddings)
        db.insert("report_assignments", assignments)
    monkeypatch.setattr(store, "EXACT_SEARCH_LIMIT", 0)
    monkeypatch.setattr(store, "CELL_ROWS", 50)
    monkeypatch.setattr(store, "SCAN_BLOCK_ROWS", 300)
    return resource, rng, centres, vectors, ids


def test_a_large_batch_reads_only_the_cells_near_its_probes_and_finds_the_exact_nearest(clustered_team, monkeypatch):
    """More probes than INDEX_PROBE_LIMIT, all near 3 of the 20 centres: the cell search reads a part of
    the team, in blocks, yet finds each probe's exact nearest searchable signals; the searchable filter
    and the refill of probes it leaves short still apply."""
    resource, rng, centres, vectors, ids = clustered_team
    monkeypatch.setattr(store, "INDEX_FETCH_FACTOR", 1)  # probes on deleted signals come up short and are refilled
    cell_calls, index_calls = spy(monkeypatch, "_cell_nearest"), spy(monkeypatch, "_index_nearest")
    read = []
    real_read = store.StoreSession.labelled_vectors

    def counted(db, sql, params=None):
        rows = real_read(db, sql, params)
        read.append(len(rows[0]))
        return rows

    monkeypatch.setattr(store.StoreSession, "labelled_vectors", counted)
    probes = np.concatenate([clustered(rng, centres[:3], 40), vectors[[0, 1, 300, 301]]])  # the last four deleted
    with resource.session() as db:  # the first search trains the centroids and derives the cells
        store.nearest_signals(db, 1, BATCH, "m", SINCE, [p.tolist() for p in probes])
        assert cell_rows(db) == {ids[i]: 1 for i in range(1500)}  # team 1's rows, each once
    read.clear()
    nearest = search(resource, probes)
    assert cell_calls == [len(probes)] * 2 and index_calls == []
    assert len(read) >= 2 and sum(read) < 0.75 * 1500, read  # a part of the team, in more than one block
    live = np.array([i for i in range(1500) if i % 300 >= 20])
    for probe, rows in zip(probes, nearest):
        assert [signal_id for signal_id, _, _ in rows] == exact_top(vectors, live, probe, ids)
        # scored against the 16-bit fixed-point copies: within 1.6e-5 a component, so 16 x that in all
        assert all(abs(s - float(vectors[int(i[1:])] @ probe)) < 16 * 1.6e-5 for i, _, s in rows)


# The cell tables as the previous layout wrote them (float32 rows in 8,192-row granules), with a
# marker that vouches for a batch: a store with them must not trust it.
OLD_CELL_TABLES = (
    "CREATE TABLE signal_embedding_cells (team_id UInt64, model LowCardinality(String), cell UInt32, "
    "batch_key String, signal_id String, embedding Array(Float32)) ENGINE = MergeTree "
    "ORDER BY (team_id, model, cell, batch_key, signal_id)",
    "CREATE TABLE signal_embedding_cell_batches (team_id UInt64, model LowCardinality(String), batch_key String, "
    "trained_rows UInt64, ids_hash UInt64) ENGINE = MergeTree ORDER BY (team_id, model, batch_key)",
    "INSERT INTO signal_embedding_cells SELECT 1, 'm', 0, 'b20260110T090000000000Z', 's0000', [1.0]",
    "INSERT INTO signal_embedding_cell_batches SELECT 1, 'm', 'b20260110T090000000000Z', 1500, 0",
)


def tables(db) -> set[str]:
    return {r["name"] for r in db.query("SELECT name FROM system.tables WHERE database = currentDatabase()")}


def test_a_store_with_cells_of_the_previous_layout_drops_them_and_derives_its_cells_again(clustered_team):
    resource, rng, centres, vectors, ids = clustered_team
    probes = clustered(rng, centres, 30)
    first = search(resource, probes)
    with resource.session() as db:  # as the store was before: centroids and the old tables only
        for table in ("signal_embedding_cell_vectors", "signal_embedding_cell_vector_batches"):
            db.command(f"DROP TABLE {table}")
        for statement in OLD_CELL_TABLES:
            db.command(statement)
    assert search(resource, probes) == first  # the session applies the schema
    with resource.session() as db:
        assert not {"signal_embedding_cells", "signal_embedding_cell_batches"} & tables(db)
        assert cell_rows(db) == {ids[i]: 1 for i in range(1500)}


_KILLED_DERIVING = """
import os, signal, sys
from signals_assets.grouping import store
from signals_assets.grouping.batch import group_batch
from signals_assets.grouping.decisions import OfflineProvider
from signals_assets.resources.clickhouse import ClickHouseResource
from signals_assets.storage.clickhouse import StoreSession

real_insert = store.StoreSession.insert
def insert(db, table, rows):  # SIGKILL before the second block's markers: its cells are written, unmarked
    if table == "signal_embedding_cell_vector_batches" and insert.marked:
        os.kill(os.getpid(), signal.SIGKILL)
    insert.marked = insert.marked or table == "signal_embedding_cell_vector_batches"
    return real_insert(db, table, rows)
insert.marked = False
store.StoreSession.insert = insert
store.EXACT_SEARCH_LIMIT, store.CELL_ROWS, store.SCAN_BLOCK_ROWS = 0, 50, 300
with ClickHouseResource(path=sys.argv[1]).session() as db:
    store.nearest_signals(db, 1, sys.argv[2], "m", None, [[1.0] * 16] * 20)
"""


def test_a_process_killed_while_deriving_cells_leaves_them_to_be_derived_again(clustered_team):
    """kill -9 after a block of batches has its cells but not its markers: the next search derives that
    block again, with no row twice, and answers as a store that was never interrupted."""
    resource, rng, centres, vectors, ids = clustered_team
    probes = clustered(rng, centres, 30)
    killed = subprocess.run(
        [sys.executable, "-c", _KILLED_DERIVING, resource.path, BATCH], cwd=Path(__file__).parents[1], timeout=600
    )
    assert killed.returncode == -signal.SIGKILL
    with resource.session() as db:
        assert len(db.query("SELECT * FROM signal_embedding_cell_vector_batches")) == 1  # one batch a block
        assert db.scalar("SELECT uniqExact(batch_key) FROM signal_embedding_cell_vectors") == 2
    found = search(resource, probes)
    with resource.session() as db:
        assert cell_rows(db) == {ids[i]: 1 for i in range(1500)}
        db.command("DELETE FROM signal_embedding_cell_vector_batches WHERE team_id = 1")  # derive all afresh
    assert search(resource, probes) == found


def test_the_cells_are_derived_again_when_missing_stale_or_outgrown(clustered_team):
    """A store written before the cells existed gains them on its first large search; a batch whose
    cells were left without their marker (a kill -9) or whose signals changed is derived again with
    no row twice; a team grown past RETRAIN_GROWTH x its trained size gets new centroids; and the
    search answers the same throughout."""
    resource, rng, centres, vectors, ids = clustered_team
    probes = clustered(rng, centres, 30)
    with resource.session() as db:  # the tables as a store from before the cells existed has them: none
        for table in (
            "signal_embedding_cell_vectors",
            "signal_embedding_centroids",
            "signal_embedding_cell_vector_batches",
        ):
            db.command(f"DROP TABLE {table}")
    first = search(resource, probes)  # the session applies the schema
    with resource.session() as db:
        assert cell_rows(db) == {ids[i]: 1 for i in range(1500)}
        assert db.scalar("SELECT DISTINCT trained_rows FROM signal_embedding_centroids") == 1500
        db.command("DELETE FROM signal_embedding_cell_vector_batches WHERE batch_key = 'b20260111T090000000000Z'")
        db.command("DELETE FROM signal_embedding_cell_vectors WHERE signal_id IN ('s0300', 's0301')")  # half-written
    assert search(resource, probes) == first
    with resource.session() as db:
        assert cell_rows(db) == {ids[i]: 1 for i in range(1500)}
        # the first batch's signals change: one of them is replaced by another
        db.command("DELETE FROM signal_embeddings WHERE signal_id = 's0000'")
        store_batches(db, 1, ["s9999"], vectors[:1], 1)
    search(resource, probes)
    with resource.session() as db:
        assert cell_rows(db) == {**{ids[i]: 1 for i in range(1, 1500)}, "s9999": 1}
        more = clustered(rng, centres, 1600)
        store_batches(db, 1, [f"t{i:04d}" for i in range(1600)], more, 1600, first_day=20)  # 3,100: past 2 x 1,500
    grown = search(resource, probes)
    with resource.session() as db:
        assert db.scalar("SELECT DISTINCT trained_rows FROM signal_embedding_centroids") == 3100
        assert sum(cell_rows(db).values()) == len(cell_rows(db)) == 3100
    assert search(resource, probes) == grown  # searching again changes nothing


OTHER_TEAM_ROWS = 40_000  # about five granules of 8,192 rows in every table


def estimated_reads(resource, reads: list[tuple[str, int, str]]):
    """A session factory whose sessions record, for each SELECT, the rows ClickHouse plans to read per table
    (EXPLAIN ESTIMATE: whole granules the primary key could not skip)."""

    @contextmanager
    def session():
        with resource.session() as db:

            def run(sql: str) -> bytes:
                body = sql.partition("\nFORMAT ")[0]
                if body.lstrip().startswith("SELECT"):
                    for line in db._run(f"EXPLAIN ESTIMATE {body}\nFORMAT TSV").decode().splitlines():
                        _, table, _, rows, _ = line.split("\t")
                        reads.append((table, int(rows), " ".join(body.split())[:200]))
                return db._run(sql)

            yield StoreSession(run, db._insert_row_binary)

    return session


def test_grouping_a_small_team_reads_none_of_a_large_other_teams_rows(tmp_path):
    """Team 1 (300 signals in 10 reports) groups a batch of 20 beside team 2's 40,000 signals: every
    statement of the batch's reads, texts and consolidation pool included, is narrowed by the primary
    key to team 1's rows (a read of any table's team 2 rows would plan more than 8,192 rows)."""
    rng = np.random.default_rng(11)
    centres = rng.standard_normal((10, DIMENSIONS))
    vectors = clustered(rng, centres, 320)
    ids = [f"s{i:03d}" for i in range(320)]
    resource = ClickHouseResource(path=str(tmp_path / "chdb"))
    other = f"(SELECT 2 AS team, toString(number) AS id, '{EARLIER}' AS batch FROM numbers({OTHER_TEAM_ROWS}))"
    with resource.session() as db:
        embeddings, assignments = stored_rows(1, ids[:300], vectors[:300])
        for row in assignments:
            row["report_id"] = f"r1-{int(row['signal_id'][1:]) % 10:016x}"
        db.insert("signal_embeddings", embeddings)
        db.insert("report_assignments", assignments)
        db.insert(
            "signal_embeddings",
            [
                {"team_id": 1, "signal_id": ids[i], "batch_key": BATCH, "model": "m", "dimension": DIMENSIONS}
                | {"embedding": vectors[i].astype(np.float32).tolist(), "embedded_at": T0}
                for i in range(300, 320)
            ],
        )
        db.insert(
            "signals",
            [
                {"team_id": 1, "signal_id": s, "batch_key": EARLIER if i < 300 else BATCH, "description": f"about {s}"}
                | {"weight": 0.5, "emitted_at": T0, "ingested_at": T0}
                for i, s in enumerate(ids)
            ],
        )
        db.insert(
            "report_events",
            [
                {"team_id": 1, "report_id": f"r1-{r:016x}", "source": EARLIER, "stage": "grouping", "event": "created"}
                | {"status": "potential", "title": f"report {r}", "at": T0}
                for r in range(10)
            ],
        )
        db.command(f"INSERT INTO signals (team_id, signal_id, batch_key, description) SELECT * , id FROM {other}")
        db.command(
            "INSERT INTO signal_embeddings (team_id, signal_id, batch_key, model, dimension, embedding) "
            f"SELECT *, 'm', {DIMENSIONS}, arrayMap(i -> toFloat32(sin(i + toUInt64(id))), range({DIMENSIONS})) "
            f"FROM {other}"
        )
        db.command(
            "INSERT INTO report_assignments (team_id, signal_id, batch_key, seq, report_id, decision, assigned_at) "
            f"SELECT *, toUInt32(id), concat('r2-', toString(toUInt64(id) % 200)), 'created', '{T0:%Y-%m-%d %H:%M:%S}' "
            f"FROM {other}"
        )
        db.command(
            "INSERT INTO report_events (team_id, report_id, source, stage, event, status, at) "
            f"SELECT DISTINCT 2, concat('r2-', toString(toUInt64(id) % 200)), batch, 'grouping', 'created', "
            f"'potential', '{T0:%Y-%m-%d %H:%M:%S}' FROM {other}"
        )
    reads: list[tuple[str, int, str]] = []

    class WithTexts(OfflineProvider):
        needs_texts = True

    class Embedded:
        model_name = "m"

        def embed(self, texts):
            raise AssertionError("no query probes expected")

    assignments, _, _ = group_batch(estimated_reads(resource, reads), BATCH, [1], 30, WithTexts(), Embedded())
    assert set(ids[300:]) <= {a["signal_id"] for a in assignments}  # the batch is grouped
    assert {"signals", "signal_embeddings", "report_assignments", "report_events"} <= {t for t, _, _ in reads}
    assert [(table, rows, sql) for table, rows, sql in reads if rows > 8192] == []


def test_the_cell_search_returns_ids_of_any_length_and_script_as_exact_search_does(tmp_path, monkeypatch):
    """The cell search reads ids as fixed-width values padded to the longest id of a block's cells:
    ids of one to 150 characters, multi-byte ones, and ids that are prefixes of others come back whole
    and in exact search's order when every cell is searched (blocks of different widths included)."""
    rng = np.random.default_rng(11)
    centres = rng.standard_normal((12, DIMENSIONS))
    vectors = clustered(rng, centres, 600)
    ids = [("é" * (i % 4) + "ü" * (i % 3 == 0) + f"s{i}")[: 1 + i % 9] for i in range(600)]
    ids = [f"{signal_id}-{i}" for i, signal_id in enumerate(ids)]  # unique; "és-1" is a prefix of "és-109"…
    ids[7] = "x" * 150  # one long id: its block is wider than the others
    resource = ClickHouseResource(path=str(tmp_path / "chdb"), vector_index_dimensions=16)
    with resource.session() as db:
        embeddings, assignments = stored_rows(1, ids, vectors)
        db.insert("signal_embeddings", embeddings)
        db.insert("report_assignments", assignments)
    probes = np.concatenate([clustered(rng, centres, 30), vectors[[7, 8]]])
    monkeypatch.setattr(store, "CELL_ROWS", 50)
    monkeypatch.setattr(store, "SCAN_BLOCK_ROWS", 150)
    monkeypatch.setattr(store, "CELL_PROBES", 12)  # every cell: the search is exhaustive
    cell_calls = spy(monkeypatch, "_cell_nearest")
    exact = search(resource, probes)
    monkeypatch.setattr(store, "EXACT_SEARCH_LIMIT", 0)
    cells = search(resource, probes)
    assert cell_calls == [len(probes)]
    assert [[s for s, _, _ in rows] for rows in cells] == [[s for s, _, _ in rows] for rows in exact]
    assert cells[-2][0][0] == "x" * 150 and cells[-1][0][0] == ids[8]
    assert any(len(s.encode()) > len(s) for rows in cells for s, _, _ in rows)  # multi-byte ids were found
