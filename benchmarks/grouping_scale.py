"""Grouping one batch against a large store: time, peak memory, and agreement with exact search.

    python benchmarks/grouping_scale.py [--cases 100000x1 1000000x1 1000000x1000] [--batch 500]

A case is `stored signals x teams`. Each gets a fresh chdb store with the project's schema and the
HNSW index (`SIGNALS_CLICKHOUSE_VECTOR_INDEX=hnsw`, 384 dimensions), filled in bulk with synthetic
data, not through the pipeline: seeded clustered unit vectors made with numpy (a member is its
centre plus 0.6 x N(0, 1) noise per dimension, about 200 signals per centre), written to an Npy file
and inserted with `INSERT ... SELECT FROM file(..., Npy)`; the signals, assignments (one report per
team and centre, every tenth one still open and the rest `ready`, all within the window) and report
events are derived from row numbers with `INSERT ... SELECT FROM numbers()`, and the reports' vector
deltas (report_vector_deltas) from the assignments and embeddings, as the grouping derives them.
With many teams, each team draws from 5 centres of a shared set, about ten teams per centre, so
another team's signals are often the nearest ones: what a team filter applied after the index
search would starve on.

In the pipeline, each batch run of a team past the exact-search size derives the cell-search cells of
the batches stored before it (`store._team_cells`: 500 rows a batch, and all of them again when the
team has doubled since its centroids were trained). A bulk-filled store has none, so after the load
(whose background merges are waited for) one fresh process does what those runs would have done, all
at once: it trains the team's centroids and derives its cells (printed apart, with its peak RSS: the
cost of a retraining at this size).

Then a batch of new signals of one team, drawn from that team's centres, is grouped by the real
offline path (`grouping.batch.group_batch`: candidate search, report statistics, one-pass decisions,
consolidation of the open pool), each run in a fresh process whose wall time and peak RSS are
printed: once as the store searches, once with its search of a large team (HNSW index or cell
search) replaced by exact numpy search (the reference). The first grouping on a store also folds the
candidate reports' vector deltas into snapshots (run the case again with `--stores` for the steady
state). Printed as well: recall@10 of the store's candidate search and of the bare index search
(team filter included) against exact search, and the share of the batch whose final report is the
same in both runs.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from signals_assets.grouping import store  # noqa: E402
from signals_assets.grouping.engine import TOP_K  # noqa: E402
from signals_assets.llm.minilm import MODEL_NAME  # noqa: E402
from signals_assets.storage.clickhouse import open_chdb  # noqa: E402

DIMENSIONS = 384
SIGNALS_PER_CENTRE = 200
NOISE = 0.6
MODEL = (
    MODEL_NAME  # the embedder's, so that a real batch run finds the stored vectors as its model's (store_at_scale.py)
)
BATCH = "b20261130T000000000000Z"  # grouped against everything stored, which is from earlier batches
WINDOW_DAYS = 30
STORED_FROM = "2026-11-20 00:00:00"  # stored batches: one second apart from here, 500 signals each


class Layout:
    """Which centre each stored row belongs to, the same in numpy and in SQL."""

    def __init__(self, size: int, teams: int):
        self.size, self.teams = size, teams
        self.per_team = size // teams
        self.centres_per_team = max(1, self.per_team // SIGNALS_PER_CENTRE)
        # one team: centres of its own; many: a shared set, each centre drawn by about ten teams
        self.centres = (
            self.centres_per_team if teams == 1 else max(self.centres_per_team, size // SIGNALS_PER_CENTRE // 10)
        )

    def centre(self, team, local):
        """Works on numpy arrays and on SQL expression strings alike."""
        return f"(({team}) * {self.centres_per_team} + ({local}) % {self.centres_per_team}) % {self.centres}"

    def centre_of_rows(self, rows: np.ndarray, team: int | None = None) -> np.ndarray:
        teams = rows // self.per_team + 1 if team is None else np.full(len(rows), team)
        local = rows % self.per_team
        return (teams * self.centres_per_team + local % self.centres_per_team) % self.centres


def unit(rng: np.random.Generator, centres: np.ndarray, picks: np.ndarray) -> np.ndarray:
    vectors = np.empty((len(picks), centres.shape[1]), dtype=np.float32)
    for start in range(0, len(picks), 100_000):  # bounded temporaries
        part = centres[picks[start : start + 100_000]]
        part = part + NOISE * rng.standard_normal(part.shape, dtype=np.float32)
        vectors[start : start + len(part)] = part / np.linalg.norm(part, axis=1, keepdims=True)
    return vectors


def build_store(folder: Path, layout: Layout, batch_size: int, team: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((layout.centres, DIMENSIONS), dtype=np.float32)
    np.save(folder / "stored.npy", unit(rng, centres, layout.centre_of_rows(np.arange(layout.size))))
    batch_picks = layout.centre_of_rows(rng.integers(0, layout.per_team, batch_size), team)
    np.save(folder / "batch.npy", unit(rng, centres, batch_picks))
    row_team = f"(intDiv(row, {layout.per_team}) + 1)"
    local = f"(row % {layout.per_team})"
    batch_key = (
        f"formatDateTime(toDateTime('{STORED_FROM}', 'UTC') + toIntervalSecond(intDiv({local}, 500)), "
        "'b%Y%m%dT%H%i%S000000Z')"
    )
    assigned_at = f"toDateTime64('{STORED_FROM}', 3, 'UTC') + toIntervalSecond(intDiv({local}, 500))"
    report = f"concat('r', toString({row_team}), '-', lower(leftPad(hex({layout.centre(row_team, local)}), 16, '0')))"
    with open_chdb(folder / "store", "signals") as db:
        db.apply_schema(vector_index_dimensions=DIMENSIONS)
        started = time.perf_counter()
        # rowNumberInAllBlocks() with one thread keeps signal_id = numpy row number
        db.command(
            f"INSERT INTO signal_embeddings SELECT {row_team}, toString(row), {batch_key}, '{MODEL}', {DIMENSIONS}, "
            f"array, {assigned_at} FROM (SELECT rowNumberInAllBlocks() AS row, array "
            f"FROM file('{folder}/stored.npy', Npy)) SETTINGS max_threads = 1"
        )
        index_seconds = time.perf_counter() - started
        db.command(
            f"INSERT INTO signals SELECT {row_team}, toString(row), {batch_key}, 'bench', 'bench', toString(row), "
            f"concat('synthetic signal ', toString(row)), 0.5, '{{}}', toString(row), {assigned_at}, {assigned_at} "
            f"FROM (SELECT number AS row FROM numbers({layout.size}))"
        )
        db.command(
            f"INSERT INTO report_assignments SELECT {row_team}, toString(row), {batch_key}, {local} % 500, {report}, "
            f"'joined', '', 0, 0.5, 0, {assigned_at} FROM (SELECT number AS row FROM numbers({layout.size}))"
        )
        db.command(
            "INSERT INTO report_events SELECT team_id, report_id, min(batch_key), 'grouping', 0, 'created', "
            "if(cityHash64(report_id) % 10 = 0, 'potential', 'ready'), any(report_id), '', 1000000, 1, '', "
            "min(assigned_at), '' FROM report_assignments GROUP BY team_id, report_id"
        )
        # Every stored signal has one assignment, so its report's vector delta in its batch is itself: one
        # row per signal (rows of the same report and batch add up when read) streams without a
        # million-group aggregation; the assignments are the join's hash table, not the embeddings.
        db.command(
            "INSERT INTO report_vector_deltas SELECT a.team_id, a.report_id, e.model, a.batch_key, a.batch_key, 1, "
            "a.weight, arrayMap(x -> toFloat64(x), e.embedding) FROM signal_embeddings AS e "
            "INNER JOIN report_assignments AS a ON a.team_id = e.team_id AND a.signal_id = e.signal_id"
        )
        db.command(
            f"INSERT INTO report_vector_batches SELECT team_id, batch_key, {store.ASSIGNMENTS_HASH} "
            "FROM report_assignments GROUP BY team_id, batch_key"
        )
        db.command(
            f"INSERT INTO signal_embeddings SELECT {team}, concat('n', toString(row)), '{BATCH}', '{MODEL}', "
            f"{DIMENSIONS}, array, now64(3) FROM (SELECT rowNumberInAllBlocks() AS row, array "
            f"FROM file('{folder}/batch.npy', Npy)) SETTINGS max_threads = 1"
        )
        db.command(
            f"INSERT INTO signals SELECT {team}, concat('n', toString(number)), '{BATCH}', 'bench', 'bench', "
            f"toString(number), concat('new signal ', toString(number)), 0.5, '{{}}', concat('n', toString(number)), "
            f"toDateTime64('2026-11-29 23:59:59', 3, 'UTC') + toIntervalMillisecond(number), now64(3) "
            f"FROM numbers({batch_size})"
        )
        load_seconds = time.perf_counter() - started
        # The bulk insert's parts are merged (and their index built) in the background; a store filled
        # batch by batch would have merged them long before, so nothing below is timed against them.
        while int(db.scalar("SELECT count() FROM system.merges")):
            time.sleep(5)
    (folder / "load.json").write_text(json.dumps({"index_s": index_seconds, "load_s": load_seconds}))


def exact_index_search(folder: Path, layout: Layout, team: int):
    """A stand-in for the HNSW index search with its contract: the exact top-k of the team's rows (numpy)."""
    stored = np.load(folder / "stored.npy", mmap_mode="r")
    first = (team - 1) * layout.per_team
    rows = stored[first : first + layout.per_team]

    def search(db, params, probes) -> list[list]:
        probes = np.asarray(probes, dtype=np.float32)
        k = TOP_K * store.INDEX_FETCH_FACTOR
        best_rows = np.zeros((len(probes), 0), dtype=np.int64)
        best_scores = np.zeros((len(probes), 0), dtype=np.float32)
        for start in range(0, len(rows), 100_000):  # a block of rows at a time, keeping the best k
            block = np.asarray(rows[start : start + 100_000])
            scores = np.concatenate([best_scores, probes @ block.T], axis=1)
            numbers = np.concatenate(
                [best_rows, np.broadcast_to(np.arange(start, start + len(block)), (len(probes), len(block)))], axis=1
            )
            keep = np.argpartition(-scores, k, axis=1)[:, :k] if scores.shape[1] > k else np.argsort(-scores, axis=1)
            best_scores = np.take_along_axis(scores, keep, axis=1)
            best_rows = np.take_along_axis(numbers, keep, axis=1)
        found = []
        for probe, candidates in zip(probes.astype(np.float64), best_rows):
            similarity = np.asarray(rows[candidates], dtype=np.float64) @ probe  # in float64, as ClickHouse
            found.append(
                sorted(
                    ((str(first + r), float(x)) for r, x in zip(candidates, similarity)), key=lambda f: (-f[1], f[0])
                )
            )
        return found

    return search


def group(folder: Path, layout: Layout, team: int, search: str) -> dict:
    """One grouping of the batch, as `group_batch` does it in the pipeline (run in its own process)."""
    from signals_assets.grouping.batch import group_batch
    from signals_assets.grouping.decisions import OfflineProvider

    class StoredEmbeddings:  # the batch is embedded already; the offline provider asks for no query probes
        model_name = MODEL

        def embed(self, texts):
            raise AssertionError("no query probes expected")

    if search == "exact":  # both searches of a large team, the index and the cells
        store._index_nearest = store._cell_nearest = exact_index_search(folder, layout, team)
    nearest: list = []
    real_nearest_signals = store.nearest_signals

    def recorded(*args):
        found = real_nearest_signals(*args)
        nearest.extend(found)
        return found

    store.nearest_signals = recorded
    started = time.perf_counter()
    assignments, _, _ = group_batch(
        lambda: open_chdb(folder / "store", "signals"),
        BATCH,
        [team],
        WINDOW_DAYS,
        OfflineProvider(),
        StoredEmbeddings(),
    )
    seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "reports": {a["signal_id"]: a["report_id"] for a in assignments},
        "nearest": [[signal_id for signal_id, _, _ in found] for found in nearest],
    }


def prepare_store(folder: Path, layout: Layout, batch_size: int, team: int, seed: int) -> dict:
    """The case's store filled, or a kept one given the project's newer tables (as `open_store` does)."""
    if not (folder / "load.json").exists():  # a kept store is filled once its load times are written
        build_store(folder, layout, batch_size, team, seed)
    with open_chdb(folder / "store", "signals") as db:
        db.apply_schema()
        models = [r["model"] for r in db.query("SELECT DISTINCT model FROM signal_embeddings")]
    if models != [MODEL]:  # grouped under another model name, the batch would find nothing stored
        raise SystemExit(
            f"{folder}: its vectors are stored under {models}, not {MODEL!r} (stores kept from before "
            "2026-12-02 say 'bench'): build the case again in another folder"
        )
    return json.loads((folder / "load.json").read_text())


def derive_cells(folder: Path, team: int) -> dict:
    """The team's centroids trained and its cells derived, as the batch runs that stored its signals
    would have (run in its own process; nothing for a team searched exactly)."""
    params = {"team": team, "batch": BATCH, "model": MODEL}
    started = time.perf_counter()
    with open_chdb(folder / "store", "signals") as db:
        if store.searched_approximately(db, params):
            store._team_cells(db, params)
    return {
        "cells_s": time.perf_counter() - started,
        "cells_peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def index_recall(folder: Path, layout: Layout, team: int) -> float:
    """recall@10 of the bare HNSW index search for the batch's vectors, against exact search."""
    probes = np.load(folder / "batch.npy").astype(np.float64).tolist()
    params = {"team": team, "batch": BATCH, "model": MODEL}
    with open_chdb(folder / "store", "signals") as db:
        found = store._index_nearest(db, params, probes)
    truth = exact_index_search(folder, layout, team)(None, params, probes)
    return recall([[s for s, _ in f[:TOP_K]] for f in found], [[s for s, _ in t[:TOP_K]] for t in truth])


def recall(found: list[list], truth: list[list]) -> float:
    return sum(len(set(f) & set(t)) for f, t in zip(found, truth)) / max(1, sum(len(t) for t in truth))


def child_result(arguments: list[str]) -> dict:
    """The JSON a fresh process of this script prints last for `arguments`."""
    child = subprocess.run([sys.executable, __file__, *arguments], capture_output=True, text=True)
    if child.returncode:
        raise SystemExit(f"{' '.join(arguments[:1])} failed:\n{child.stderr[-4000:]}")
    return json.loads(child.stdout.splitlines()[-1])


def run_case(size: int, teams: int, batch_size: int, seed: int, stores: Path | None) -> dict:
    layout = Layout(size, teams)
    team = 1 + teams // 2
    with tempfile.TemporaryDirectory(prefix="grouping-scale-") as name:
        folder = stores / f"{size}x{teams}-b{batch_size}-s{seed}" if stores else Path(name)
        folder.mkdir(parents=True, exist_ok=True)
        # in fresh processes, as every timed step: a child started by a process that has grown inherits
        # its peak RSS (the kernel carries it across the exec)
        child_result(["--build", str(folder), str(size), str(teams), str(batch_size), str(team), str(seed)])
        if not (folder / "cells.json").exists():  # a kept store is complete once its cells' times are written
            (folder / "cells.json").write_text(json.dumps(child_result(["--cells", str(folder), str(team)])))
        runs = {}
        for search in ("store", "exact"):
            runs[search] = child_result(["--group", str(folder), str(size), str(teams), str(team), search])
        load = {**json.loads((folder / "load.json").read_text()), **json.loads((folder / "cells.json").read_text())}
        store_run, exact_run = runs["store"], runs["exact"]
        same = sum(store_run["reports"][s] == r for s, r in exact_run["reports"].items())
        return {
            "size": size,
            "teams": teams,
            "team_size": layout.per_team,
            "seconds": store_run["seconds"],
            "peak_rss_mb": store_run["peak_rss_mb"],
            "exact_seconds": exact_run["seconds"],
            "search_recall": recall(store_run["nearest"], exact_run["nearest"]),
            "index_recall": index_recall(folder, layout, team),
            "agreement": same / len(exact_run["reports"]),
            **load,
        }


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--group":
        folder, size, teams, team, search = sys.argv[2:7]
        result = group(Path(folder), Layout(int(size), int(teams)), int(team), search)
        print(json.dumps(result))
        return 0
    if len(sys.argv) > 1 and sys.argv[1] == "--build":
        folder, size, teams, batch_size, team, seed = sys.argv[2:8]
        layout = Layout(int(size), int(teams))
        print(json.dumps(prepare_store(Path(folder), layout, int(batch_size), int(team), int(seed))))
        return 0
    if len(sys.argv) > 1 and sys.argv[1] == "--cells":
        print(json.dumps(derive_cells(Path(sys.argv[2]), int(sys.argv[3]))))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", default=["100000x1", "1000000x1", "1000000x1000"])
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--stores", type=Path, help="keep the filled stores here and reuse them on the next run")
    args = parser.parse_args()
    print(
        f"{DIMENSIONS} dims, batch of {args.batch}, seed {args.seed}, exact search limit {store.EXACT_SEARCH_LIMIT:,}"
    )
    print(
        "| stored | teams | team's signals | grouping s | peak RSS MB | search recall@10 | index recall@10 "
        "| same report as exact | grouping s, exact numpy search | load + index s | cells derived at once: s, peak RSS MB |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for case in args.cases:
        size, teams = (int(x) for x in case.split("x"))
        r = run_case(size, teams, args.batch, args.seed, args.stores)
        print(
            f"| {r['size']:,} | {r['teams']:,} | {r['team_size']:,} | {r['seconds']:.1f} | {r['peak_rss_mb']:.0f} "
            f"| {r['search_recall']:.3f} | {r['index_recall']:.3f} | {r['agreement']:.3f} | {r['exact_seconds']:.1f} "
            f"| {r['load_s']:.0f} | {r['cells_s']:.1f}, {r['cells_peak_rss_mb']:.0f} |",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
