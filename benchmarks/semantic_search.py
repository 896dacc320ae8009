"""Semantic search on chdb: top-10 latency and recall@10, brute force vs the HNSW vector index.

    python benchmarks/semantic_search.py [--sizes 100000 1000000] [--queries 50] [--dimensions 384]

For each size, seeded synthetic clustered vectors (unit length, float32) are stored in the
project's `signal_embeddings` table (its DDL from dbt_like_sql/tables) in a fresh chdb folder,
merged into one part, and searched with the shape the index serves:

    SELECT signal_id FROM signal_embeddings WHERE team_id = 1 AND model = 'bench'
    ORDER BY cosineDistance(embedding, <probe>) LIMIT 10

first without an index (a full scan: exact), then after `StoreSession.ensure_vector_index` (the
same DDL SIGNALS_CLICKHOUSE_VECTOR_INDEX=hnsw applies) has been built. Recall@10 is measured
against exact numpy top-10s; latency is per query, in-process, after two warm-up queries.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from signals_assets.storage.clickhouse import open_chdb  # noqa: E402

TOP_K = 10
CLUSTERS_PER_MILLION = 5000
NOISE = 0.6  # per-dimension spread around a centre, relative to the centre's own spread


def clustered_vectors(rng: np.random.Generator, centres: np.ndarray, count: int) -> np.ndarray:
    picks = rng.integers(0, len(centres), count)
    vectors = centres[picks] + NOISE * rng.standard_normal((count, centres.shape[1]), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors.astype(np.float32)


def exact_top_k(vectors: np.ndarray, probes: np.ndarray) -> list[set[int]]:
    scores = probes @ vectors.T  # unit vectors: cosine similarity
    return [set(np.argpartition(-row, TOP_K)[:TOP_K].tolist()) for row in scores]


def search(db, probes: np.ndarray) -> tuple[list[float], list[set[int]]]:
    latencies, found = [], []
    for i, probe in enumerate(np.concatenate([probes[:2], probes])):
        vector = "[" + ",".join(f"{x:.7g}" for x in probe) + "]"
        started = time.perf_counter()
        rows = db.query(
            "SELECT signal_id FROM signal_embeddings WHERE team_id = 1 AND model = 'bench' "
            f"ORDER BY cosineDistance(embedding, {vector}) LIMIT {TOP_K}"
        )
        elapsed = time.perf_counter() - started
        if i >= 2:  # the first two are warm-up
            latencies.append(elapsed)
            found.append({int(row["signal_id"]) for row in rows})
    return latencies, found


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def recall(found: list[set[int]], truth: list[set[int]]) -> float:
    return sum(len(f & t) for f, t in zip(found, truth)) / (TOP_K * len(truth))


def run_size(size: int, queries: int, dimensions: int, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((max(10, size * CLUSTERS_PER_MILLION // 1_000_000), dimensions), dtype=np.float32)
    vectors = clustered_vectors(rng, centres, size)
    probes = clustered_vectors(rng, centres, queries)
    truth = exact_top_k(vectors, probes)
    rows = []
    with tempfile.TemporaryDirectory(prefix="semantic-search-") as folder:
        np.save(f"{folder}/vectors.npy", vectors)
        with open_chdb(Path(folder) / "store", "signals") as db:
            db.apply_schema()
            started = time.perf_counter()
            # rowNumberInAllBlocks() with one thread keeps signal_id = numpy row number
            db.command(
                "INSERT INTO signal_embeddings SELECT 1, toString(rowNumberInAllBlocks()), "
                "concat('b', leftPad(toString(intDiv(rowNumberInAllBlocks(), 500)), 6, '0')), 'bench', "
                f"{dimensions}, array, now64(3) FROM file('{folder}/vectors.npy', Npy) SETTINGS max_threads = 1"
            )
            db.command("OPTIMIZE TABLE signal_embeddings FINAL")
            load_seconds = time.perf_counter() - started
            latencies, found = search(db, probes)
            rows.append(row(size, "none (brute force)", latencies, found, truth, None, load_seconds))
            db.command("SET mutations_sync = 2")
            started = time.perf_counter()
            db.ensure_vector_index(dimensions)
            build_seconds = time.perf_counter() - started
            latencies, found = search(db, probes)
            rows.append(row(size, "hnsw", latencies, found, truth, build_seconds, load_seconds))
    return rows


def row(size, index, latencies, found, truth, build_seconds, load_seconds) -> dict:
    return {
        "size": size,
        "index": index,
        "p50_ms": 1000 * percentile(latencies, 50),
        "p95_ms": 1000 * percentile(latencies, 95),
        "recall": recall(found, truth),
        "build_s": build_seconds,
        "load_s": load_seconds,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--queries", type=int, default=50)
    parser.add_argument("--dimensions", type=int, default=384)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(f"{args.dimensions} dims, {args.queries} queries per case, top-{TOP_K}, seed {args.seed}")
    print("| stored embeddings | index | p50 ms | p95 ms | recall@10 | index build s | load + merge s |")
    print("|---|---|---|---|---|---|---|")
    for size in args.sizes:
        for r in run_size(size, args.queries, args.dimensions, args.seed):
            build = f"{r['build_s']:.1f}" if r["build_s"] is not None else "—"
            print(
                f"| {r['size']:,} | {r['index']} | {r['p50_ms']:.1f} | {r['p95_ms']:.1f} | {r['recall']:.3f} "
                f"| {build} | {r['load_s']:.1f} |",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
