"""The grouping engine's candidate search on chdb: exact per team, and through the HNSW index for large teams."""

from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from signals_assets.grouping import store
from signals_assets.grouping.engine import TOP_K
from signals_assets.resources.clickhouse import ClickHouseResource

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


def test_a_large_batch_scans_the_team_blockwise_and_finds_the_exact_nearest(tmp_path, monkeypatch):
    """More probes than INDEX_PROBE_LIMIT: the team's embeddings are scanned a block of batches at a time
    (here three blocks), the nearest are exact, and the searchable filter and the refill still apply."""
    rng = np.random.default_rng(5)
    centres = rng.standard_normal((20, DIMENSIONS))
    vectors = clustered(rng, centres, 1700)
    ids = [f"s{i:04d}" for i in range(1700)]
    resource = ClickHouseResource(path=str(tmp_path / "chdb"), vector_index_dimensions=16)
    with resource.session() as db:
        for number, start in enumerate(range(0, 1500, 300)):  # five batches of team 1, 20 deleted in each
            embeddings, assignments = stored_rows(
                1, ids[start : start + 300], vectors[start : start + 300], deleted=set(ids[start : start + 20])
            )
            for row in embeddings + assignments:
                row["batch_key"] = f"b2026011{number}T090000000000Z"
            db.insert("signal_embeddings", embeddings)
            db.insert("report_assignments", assignments)
        embeddings, assignments = stored_rows(2, ids[1500:], vectors[1500:])  # the same clusters, another team
        db.insert("signal_embeddings", embeddings)
        db.insert("report_assignments", assignments)
    monkeypatch.setattr(store, "EXACT_SEARCH_LIMIT", 0)
    monkeypatch.setattr(store, "SCAN_BLOCK_ROWS", 600)
    monkeypatch.setattr(store, "INDEX_FETCH_FACTOR", 1)  # probes on deleted signals come up short and are refilled
    scan_calls, index_calls = spy(monkeypatch, "_scanned_nearest"), spy(monkeypatch, "_index_nearest")
    reads = []
    real_vectors = store.StoreSession.vectors
    monkeypatch.setattr(store.StoreSession, "vectors", lambda db, *a: reads.append(1) or real_vectors(db, *a))
    probes = np.concatenate([clustered(rng, centres, 40), vectors[[0, 1, 300, 301]]])  # the last four deleted
    nearest = search(resource, probes)
    assert scan_calls == [len(probes)] and index_calls == []
    assert len(reads) >= 3  # 2 + 2 + 1 batches; the refill's scans read through `query`
    live = np.array([i for i in range(1500) if i % 300 >= 20])
    for probe, rows in zip(probes, nearest):
        expected = [ids[i] for i in live[np.argsort(-(vectors[live] @ probe), kind="stable")[:TOP_K]]]
        assert [signal_id for signal_id, _, _ in rows] == expected
        assert all(abs(s - float(vectors[int(i[1:])] @ probe)) < 1e-5 for i, _, s in rows)
