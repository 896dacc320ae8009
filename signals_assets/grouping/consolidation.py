"""Consolidation of the pool: the offline provider's second look at the team's recent reports.

One signal at a time, a grouping decision sees only the signals before it, and it is final: an
intent whose first signals were phrased unusually ends up split over several reports, and no
later evidence can join them (on Banking77 every one-pass rule we measured stays at ARI ≈ 0.44).
So after each batch the offline provider re-clusters the team's *pool* — the live signals of
reports still `potential` or `candidate` (research not started) and of reports `ready` or
`pending_input` (research finished), within the recent window, at most `pool_limit` of the newest —
and maps the clusters back onto the existing report ids. A researched report is re-clustered like
an open one and keeps its id on the cluster holding most of its signals (`anchor_researched`): it
gains signals, absorbs or is absorbed by another report of its problem, and loses the signals the
clustering puts elsewhere. A report with research in flight (`in_progress`) is not in the pool:
nothing is reshaped under it.

Only what the batch reaches changes (`reached_by_batch`): the clusters holding its signals, the
reports of the earlier signals in them, the clusters holding those reports' signals, and so on. On a
pool of thousands, a few new signals shift a few neighbourhood ranks, and average linkage turns that
into signals of unrelated reports changing hands; everything the batch does not reach stays as it was.
A small batch at a large pool (at least `region_from` signals) reaches little of it, so only its
*region* is clustered when that is at most `region_share` of the pool (`cluster_around_batch`): the
batch and the reports of its signals' nearest neighbours, each signal still seeing its neighbourhood
in the whole pool; the batch's signals go with their clusters, and a report joins a cluster of theirs
only whole (`joined_by_batch`). A wave of 3 at a full pool of 6,000 then costs 0.1–0.4 s, not 5–7 s.

Cosines are first moved onto the scale the parameters were tuned at (`similarity_scale`: the pool's
own mean and spread of pairwise cosines against Banking77 train's), so every threshold below is
relative to how far apart the team's unrelated signals are. The clustering is then average linkage
over the pool's shared nearest neighbours: a signal's neighbourhood is itself and its nearest pool
signals (1% of the pool, at least 8, so it means the same in a pool of 1,000 as in one of 3,000
while problems grow with the pool; never wider than 0.8 of the problems the clustering finds, see
`cluster_pool`), and two signals are linked by the share of their neighbourhoods they have in common
(`similarity_scale.shared_neighbours`). That share depends only on the order of the cosines, so
this criterion has no similarity constant in it: the signals of a dense, well-separated problem
share most of their neighbours whether the problem's cosines are 0.4 or 0.8, while where problems
blur into one another the neighbourhoods overlap little. A merge passes when the mean share reaches
`shared_neighbour_floor`, or when the mean cosine stands out from the two signals' densities (a
signal's density: its mean cosine to the rest of its neighbourhood) by `link_margin`: the signals of
a problem much larger than a neighbourhood share few neighbours pair by pair, yet sit far closer to
one another than to the rest of the pool. In a pool of strangers every signal still has nearest
neighbours, so three guards keep unrelated signals apart. The mean (rescaled) cosine of a merge must
reach `link_floor`. A report of at most `small_size` signals must have a mean pairwise (rescaled)
cosine of at least `small_floor` (few signals are weak evidence), or of `apart_floor` when it stands
apart from the rest of the pool by `apart_margin` (`_small_report_stands`), else its signals stay apart. A
report of up to `separation_size` signals must stand apart from the rest of the pool
(`_separation`): its members must be closer to one another, by `separation_margin` on average, than
to as many of their nearest signals outside it, else it is split into the two subtrees it was
merged from, each judged again (`guarded_clusters` cuts the linkage tree from the root down). That
guard is relative, not a cosine floor: at a floor low enough to join a problem's unusual phrasings,
average linkage chains 8 or 9 strangers of neighbouring topics into one blob (one train text per
Banking77 intent), and such a blob is as cohesive as a real small problem (the demo team's password
reset, mean rescaled cosine 0.62) — but each stranger in it has outside signals about as close as
the blob (separation 0.06–0.10), while the real problem stands apart (0.25). The less cohesive such a
report, the further apart it must stand (cohesion + separation ≥ `separation_total`,
`_mid_report_stands`): strangers that share a topic word ("transfer", "card") stand apart by
0.10–0.21 but at a cohesion of only 0.53–0.68; and further still (`loose_kin_penalty`) when its
members lack close kin (`_kinship`, below).
Larger reports are not judged by separation: a real problem of dozens of signals borders on its
neighbouring problems just as closely, and splitting it costs more recall than the precision it
gains (benchmarks/README.md). They are judged by their members' kin instead (`_kinship`): a real
problem of ten or more signals is phrased alike again and again, so each member's `kin_nearest`
nearest fellow members are close (`kinship_floor`), while ten strangers about cards, chained into one
report, each have only loose kin in it.

After the cut, fragments join their problem (`attached_clusters`): a cluster whose members'
neighbourhoods (their own members aside) lie for at least `attach_share` in one larger cluster of
more than `small_size` signals moves into it, if its members' `attach_nearest` nearest signals there
are on average at a (rescaled) cosine of `link_floor` and of `density_weight` times the target's
mean density (next to a tight problem, a stranger has it among its nearest signals while being far
less close to it than its members are to one another). The linkage leaves a problem's unusual
phrasings, and small reports the guards dissolved, apart because their *mean* link to the problem's
bulk is weak, yet most of their nearest signals are in it. This is repeated until nothing moves,
each round's votes counted on the labels the last one left, so a fragment whose neighbours lay in
another fragment joins once that fragment has joined its problem; but a cluster that moved or
received never votes again, so nothing grown by an attachment is carried on into a third cluster (no
chains), and a pool of strangers has no such larger cluster, so the one-text-per-intent check is
untouched. With one round (and `link_margin` 0.10, was 0.08) the Banking77 train samples have 9–14%
fewer clusters at 0.007–0.020 more ARI, pair precision within ±0.012; the later rounds (at most 4
more on every train sample) take 1–6% fewer clusters at up to 0.012 more ARI, most where intents are
told apart well, at −0.001 ARI and −0.018 precision where groups are 10 signals (benchmarks/README.md).
A lower share (0.4) gained more ARI on large samples but lost precision where groups are small.
What stays split on samples of well-separated intents is a problem in 2–3 *large* pieces. Merging
large clusters that are each other's nearest and stand out from their third-nearest by a margin, or
by HDBSCAN's dense regions, was measured and dropped: two neighbouring problems are often closer than
two pieces of one, and the first lost 0.024 ARI and 0.10 pair precision on HWU64 (benchmarks/README.md).

Memory and CPU: each pair's cosine is computed once, a block of rows against the later rows, into
one n × n matrix (copied to the earlier rows' columns), and the neighbourhoods are found from those
blocks (each row's nearest, as an n × neighbourhood array); then the pair distances are written over
the cosines a block at a time, and the average linkage runs on them in place (`_average_linkage`:
scipy's algorithm and tree, without importing scipy.cluster or copying the distances). So the pool
costs one n × n matrix plus a few blocks, not several, and half a matrix product; the clusters are
the same. A narrowing pass reuses the first pass's neighbourhoods (a narrower one is the start of
the wider one) and computes only the cosines again, which the distances overwrote. Peak about 8n²
bytes (benchmarks/consolidation_memory.py). `pool_limit`
(`SIGNALS_CONSOLIDATION_POOL`) caps n, and with it the memory, whatever the team's volume.

Pool size: 6,000 covers a team's pool of several thousand short texts whole. With 3,000, on
4,500-text Banking77 train samples in batches of 500 with research between them
(`offline_matching_sim.py --pool-limits`), the oldest signals left re-clustering with their
one-pass reports and stayed split: ARI 0.500 → 0.514 (a random 4,500) and 0.522 → 0.542 (58 texts
of every intent) at 3,000 → 6,000 (the same as an unbounded pool), pair precision unchanged.

Parameters were chosen on Banking77 *train* texts (benchmarks/offline_matching_sim.py), never on
the dev protocol. numpy is imported inside the functions; scipy is not needed.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Sequence

from signals_assets.grouping.limits import POOL_LIMIT
from signals_assets.grouping.similarity_scale import (
    REFERENCE,
    narrowed,
    nearest_in_pool,
    nearest_rows,
    pair_cosines,
    pool_scale,
    shared_neighbours,
)


@dataclass(frozen=True)
class ConsolidationParameters:
    # a signal's neighbourhood: itself and its nearest pool signals, as many as this share of the pool
    # (at least min_neighbours) so that it means the same in a small pool as in a large one; the floor
    # decides below 800 signals (8, not 10: pair precision 0.432 -> 0.492 on 10 train texts per intent)
    neighbour_share: float = 0.01
    min_neighbours: int = 8
    # ... and never more than this share of the typical problem the clustering finds (`cluster_pool`)
    problem_share: float = 0.8
    # average linkage merges when the mean share of common neighbourhood reaches shared_neighbour_floor,
    # or when the mean cosine stands out from the pair's densities (density_weight of their mean) by
    # link_margin: a problem much larger than a neighbourhood shares few neighbours pair by pair
    shared_neighbour_floor: float = 0.30
    density_weight: float = 0.75
    link_margin: float = 0.10
    link_floor: float = 0.50  # ... and the mean rescaled cosine this
    small_size: int = 5  # reports up to this size need ...
    small_floor: float = 0.75  # ... a mean pairwise cosine of at least this, or
    # at least apart_floor when they stand apart from the rest of the pool by apart_margin (`_separation`)
    apart_floor: float = 0.70
    apart_margin: float = 0.36
    # reports of small_size + 1 .. separation_size signals need their members closer to one another than
    # to their nearest signals outside, by separation_margin on average and by separation_total minus
    # their cohesion (the less cohesive, the further apart: `_mid_report_stands`), plus loose_kin_penalty
    # when their members lack close kin (under kinship_floor), else they are split
    separation_size: int = 9
    separation_margin: float = 0.10
    separation_total: float = 0.76
    loose_kin_penalty: float = 0.04
    # larger reports need each member close to its kin_nearest nearest fellow members: a mean rescaled
    # cosine of kinship_floor over the members (`_kinship`), else they are split
    kin_nearest: int = 3
    kinship_floor: float = 0.69
    # after the cut, a cluster joins a larger one (of more than small_size signals) that holds at least
    # this share of its members' neighbourhoods, if the mean rescaled cosine of its members to their
    # attach_nearest nearest signals there reaches link_floor and density_weight of the target's density
    attach_share: float = 0.5
    attach_nearest: int = 5
    pool_limit: int = POOL_LIMIT
    # a batch at a pool of at least region_from signals clusters only the region it can reach
    # (`cluster_around_batch`) when that is at most region_share of the pool; below, the whole pool costs
    # a fraction of a second (0 turns it off)
    region_from: int = 1000
    region_share: float = 0.25


def cluster_pool(
    vectors: Sequence[Sequence[float]], params: ConsolidationParameters = ConsolidationParameters()
) -> list[int]:
    """A cluster label per vector (labels are 0..k-1 in order of first appearance)."""
    import numpy as np

    matrix, rescaled = _unit_rows(vectors)
    n = len(matrix)
    if n < 2:
        return [0] * n
    size = _first_width(n, params)
    square = np.empty((n, n))  # every pair's cosine, then their distances, in place
    nearest = nearest_rows(matrix, size, BLOCK_ROWS, square)
    # a narrower neighbourhood is the start of the first one: only the cosines, which the last pass's
    # distances overwrote, are computed again
    labels = _narrowing_clusters(
        matrix, np.arange(n), size, params, rescaled, square, nearest, lambda: pair_cosines(matrix, BLOCK_ROWS, square)
    )
    first: dict[int, int] = {}
    return [first.setdefault(label, len(first)) for label in labels]


def cluster_around_batch(
    vectors: Sequence[Sequence[float]],
    reports: Sequence[str],
    stored: int,
    params: ConsolidationParameters = ConsolidationParameters(),
) -> list[int] | None:
    """A cluster label per vector where only what a batch can reach is clustered; None when that is
    too much of the pool to be worth it (`cluster_pool` then clusters all of it).

    The pool's first `stored` vectors come from earlier batches (`reports`: the report of each), the
    rest from this one. A small batch reaches little of a large pool: the reports of its signals'
    nearest earlier signals. So those reports' signals and the batch's are clustered alone (the
    *region*), each still seeing its neighbourhood, density and scale in the whole pool, so their links
    are those the whole pool's clustering computes and a cluster in the region only stands apart if it
    does from the whole pool. A wave of 3 at a team of 6,000 signals clusters a few hundred, not 6,000
    four times (seconds per batch, benchmarks/README.md).

    A subset's average linkage differs from the whole pool's (a region report's signals cannot merge
    first with the neighbouring reports left out), so the region's clusters are read only for what the
    batch brings (`joined_by_batch`): where its signals go and which reports they join whole, never a
    report split or moved in part."""
    import numpy as np

    n = len(vectors)
    if n < params.region_from or not stored or n - stored > params.region_share * n:
        return None
    matrix, rescaled = _unit_rows(vectors)
    size = _first_width(n, params)
    batch = np.arange(stored, n)
    touched = {reports[i] for i in nearest_in_pool(matrix, batch, size, BLOCK_ROWS)[0].ravel().tolist() if i < stored}
    rows = np.array([i for i in range(stored) if reports[i] in touched] + batch.tolist())
    if len(rows) > params.region_share * n:
        return None
    region = np.ascontiguousarray(matrix[rows])
    square = np.empty((len(rows), len(rows)))
    pair_cosines(region, BLOCK_ROWS, square)
    nearest = nearest_in_pool(matrix, rows, size, BLOCK_ROWS)
    clusters = _narrowing_clusters(
        matrix, rows, size, params, rescaled, square, nearest, lambda: pair_cosines(region, BLOCK_ROWS, square)
    )
    return joined_by_batch(reports, stored, dict(zip(rows.tolist(), clusters)))


def joined_by_batch(reports: Sequence[str], stored: int, cluster_of: dict[int, int]) -> list[int]:
    """A label per pool signal from the clusters of the region (`cluster_of`: a cluster per row clustered,
    the batch's rows from `stored` on among them), as far as the batch brings evidence: an earlier
    report whose signals are mostly in a cluster with a signal of the batch joins that cluster whole;
    a batch signal goes with its cluster (into the report holding most of the cluster's earlier
    signals when no report joined it); every other earlier signal stays in its report."""
    n = len(reports)
    batch_clusters = {cluster_of[row] for row in range(stored, n)}
    report_size = Counter(reports[:stored])
    held = Counter((reports[row], cluster) for row, cluster in cluster_of.items() if row < stored)
    joined = {
        report: cluster
        for (report, cluster), count in held.items()
        if cluster in batch_clusters and 2 * count > report_size[report]
    }
    report_label: dict[str, tuple[str, str | int]] = {report: ("report", report) for report in report_size}
    for report, cluster in joined.items():
        report_label[report] = ("cluster", cluster)
    most_held: dict[int, str] = {}
    for report, cluster in sorted(held, key=lambda pair: -held[pair]):  # stable: ties to the first held
        most_held.setdefault(cluster, report)
    labels = [report_label[reports[row]] for row in range(stored)]
    for row in range(stored, n):
        cluster = cluster_of[row]
        if cluster in joined.values() or cluster not in most_held:
            labels.append(("cluster", cluster))
        else:
            labels.append(report_label[most_held[cluster]])
    first: dict[tuple[str, str | int], int] = {}
    return [first.setdefault(label, len(first)) for label in labels]


def _unit_rows(vectors):
    """(unit rows as float64, rescaled): the pool's rows normalised, and the map of their cosines onto
    the scale the parameters were tuned at (`similarity_scale`: an increasing affine map)."""
    import numpy as np

    matrix = np.asarray(vectors, dtype=np.float64)
    matrix = matrix / np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)
    gain, offset = pool_scale(matrix).affine_to(REFERENCE)

    def rescaled(cosine):
        return gain * cosine + offset

    return matrix, rescaled


def _first_width(n: int, params: ConsolidationParameters) -> int:
    """The first neighbourhood of a pool of n signals: `neighbour_share` of it, at least `min_neighbours`."""
    return min(max(params.min_neighbours, round(n * params.neighbour_share)), n)


def _narrowing_clusters(matrix, rows, size: int, params: ConsolidationParameters, rescaled, square, nearest, refill):
    """The clusters of the pool's `rows` (`_clusters`), clustered again with narrower neighbourhoods
    while they were wider than the problems found; `refill()` puts the cosines back into `square`.

    A share of the pool stands for a problem's size only while problems grow with the pool; a pool of
    many small problems (150 intents of 30 texts in 4,500) would have neighbourhoods wider than its
    problems, and neighbouring problems would share them. So a neighbourhood is never wider than
    `problem_share` of the problems the clustering found (a neighbourhood as wide as a problem takes in
    the neighbouring problem's edge): when it was, the rows are clustered again with that narrower one,
    whose problems may be narrower still (at most NARROWINGS times). A pool whose problems are smaller
    than the floor (a long tail of pairs) is left to the guards: the floor would not narrow to them,
    and another pass of a 6,000-signal pool costs seconds."""
    labels = _clusters(matrix, size, params, rescaled, square, nearest, rows)
    for _ in range(NARROWINGS):
        narrower = round(typical_problem_size(labels) * params.problem_share)
        if not params.min_neighbours <= narrower < size:
            break
        size = narrower
        refill()
        labels = _clusters(matrix, size, params, rescaled, square, nearest, rows)
    return labels


def _clusters(matrix, size: int, params: ConsolidationParameters, rescaled, square, nearest, rows=None) -> list[int]:
    """The clusters (a label per row of `rows`, default all) of the pool's unit rows `matrix` with
    neighbourhoods of `size` signals, from every pair's cosine among `rows` in `square` (`pair_cosines`;
    overwritten) and each row's nearest rows in the pool (`nearest_rows` or `nearest_in_pool`, of `size`
    or wider)."""
    import numpy as np

    if rows is None:
        rows = np.arange(len(matrix))
    neighbourhood, density = narrowed(nearest, size, len(matrix))
    density = rescaled(density)

    def pair_similarity(cosine, block, columns):
        """A merge needs the floor term and one of the other two to be ≥ 0 on average."""
        cosine = rescaled(cosine)
        shared = shared_neighbours(neighbourhood, block, int(columns[0]))  # columns: the later rows
        shared -= params.shared_neighbour_floor
        # cosine − density_weight · mean density − link_margin, the same operations in place
        stands_out = np.add(density[block][:, None], density[columns][None, :])
        stands_out /= 2
        stands_out *= params.density_weight
        np.subtract(cosine, stands_out, out=stands_out)
        stands_out -= params.link_margin
        np.maximum(shared, stands_out, out=shared)
        cosine -= params.link_floor
        return np.minimum(shared, cosine, out=shared)

    tree = _average_linkage(pair_distances(square, pair_similarity))
    labels = guarded_clusters(tree, matrix, params, rescaled, rows)
    # each neighbour's place among the rows; one outside them votes for no cluster here
    place = np.full(len(matrix), len(rows))
    place[rows] = np.arange(len(rows))
    return attached_clusters(labels, place[neighbourhood.members], density, matrix[rows], params, rescaled)


def typical_problem_size(labels: Sequence[int]) -> int:
    """The size of the cluster its median signal is in, among the signals of clusters of two or more
    (a long tail of one-signal reports says nothing about how large the problems are); 0 when none."""
    sizes = Counter(labels)
    in_problems = sorted(sizes[label] for label in labels if sizes[label] > 1)
    return in_problems[len(in_problems) // 2] if in_problems else 0


# Banking77 train samples whose first neighbourhood is 1.5 problems (45 for 30 per intent, as with 150
# intents in 4,500 texts) reach the width the same texts get by themselves on the third pass (45 -> 26 ->
# 23 -> 22) and its clusters; a fourth changes nothing (benchmarks/README.md)
NARROWINGS = 3

# Rows of the cosine matrix computed at once (`nearest_rows`, `pair_cosines`: the product's blocks; their shape
# decides the cosines' last bits, so it stays), and of the pair similarities: each a few temporaries of
# this many rows × n beside the n × n cosines, then distances (288 MB at 6,000 signals).
BLOCK_ROWS = 256
DISTANCE_ROWS = 64


def pair_distances(square, pair_similarity):
    """The pair cosines `square` (n × n, as `pair_cosines` leaves them) turned in place into the
    distances 1 − pair_similarity, clipped at 0, of every pair: a pair's distance is that of its cosine
    at (i, j), i < j, copied to (j, i).

    `pair_similarity(cosine, rows, columns)` turns a block of cosines between unit rows `rows` and
    `columns` into similarities; blocks of rows are computed in turn, each against the later rows only."""
    import numpy as np

    n = len(square)
    for start in range(0, n - 1, DISTANCE_ROWS):
        stop = min(start + DISTANCE_ROWS, n - 1)
        distance = pair_similarity(square[start:stop, start:], np.arange(start, stop), np.arange(start, n))
        np.subtract(1.0, distance, out=distance)
        np.maximum(distance, 0.0, out=distance)
        square[start:stop, start:] = distance
        square[stop:, start:stop] = distance[:, stop - start :].T
        within = square[start:stop, start:stop]
        lower = np.tril_indices(stop - start, -1)
        within[lower] = within.T[lower]
    return square


def _average_linkage(square):
    """The average-linkage tree over the n × n distances `square`, which it overwrites: scipy's
    `linkage(distances, "average")` — the same merges, heights and row of the tree for each, ties broken
    alike — without importing scipy.cluster (with scipy.sparse, about 0.45 s of CPU per process) or
    copying the distances.

    scipy's nearest-neighbour chain, a row at a time in numpy: from the chain's last cluster x, its
    nearest live cluster y (the lowest index on a tie, the chain's previous link if that ties); two
    mutual nearest merge into the higher index, whose distances become the size-weighted mean of the
    two (scipy's operations in scipy's order: the same floats), and the lower index is masked out of
    every later scan (its distances are left as they were: writing infinity down its column, a cache
    miss per row, was a third of the time); once half the rows are merged, the live ones are moved into
    a corner, in order, so the later scans are shorter. Then the merges are sorted stably by height and
    each node named as scipy's union-find names it."""
    import numpy as np

    n = len(square)
    np.fill_diagonal(square, np.inf)
    live = square  # the live clusters' distances: a corner of `square`, compacted as clusters merge
    ids = np.arange(n)  # the cluster (scipy's index) of each row of `live`
    size = np.ones(n)
    merged_away = np.zeros(n)  # infinity at the rows of `live` merged into another: added to each scan
    tree = np.empty((n - 1, 4))
    chain: list[int] = []  # rows of `live`
    for k in range(n - 1):
        if 2 * (n - k) < len(live):  # half the rows live: scans and writes cost half
            survivors = np.flatnonzero(size)  # in order: ties still go to the lowest index
            chain = [int(np.searchsorted(survivors, x)) for x in chain]
            live = square[: len(survivors), : len(survivors)]
            for row, survivor in enumerate(survivors):  # upwards, row by row: no copy of the corner
                live[row] = square[survivor, survivors]
            ids, size = ids[survivors], size[survivors]
            merged_away = np.zeros(len(survivors))
        if not chain:
            chain = [int(np.argmax(size > 0))]  # the first live cluster
        while True:
            x = chain[-1]
            y = int(np.argmin(live[x] + merged_away))
            if len(chain) > 1 and live[x, chain[-2]] == live[x, y]:
                y = chain[-2]
                break
            chain.append(y)
        del chain[-2:]
        height = live[x, y]
        x, y = min(x, y), max(x, y)
        nx, ny = size[x], size[y]
        tree[k] = ids[x], ids[y], height, nx + ny
        kept = (nx * live[x] + ny * live[y]) / (nx + ny)  # infinite at x and y; stale at merged-away rows
        live[y], live[:, y] = kept, kept
        merged_away[x] = np.inf
        size[x], size[y] = 0.0, nx + ny
    tree = tree[np.argsort(tree[:, 2], kind="mergesort")]
    parent = list(range(2 * n - 1))

    def root(node: int) -> int:
        while parent[node] != node:
            parent[node] = node = parent[parent[node]]
        return node

    for k in range(n - 1):
        x, y = sorted((root(int(tree[k, 0])), root(int(tree[k, 1]))))
        parent[x] = parent[y] = n + k
        tree[k, 0], tree[k, 1] = x, y
    return tree


def guarded_clusters(tree, matrix, params: ConsolidationParameters, rescaled, rows=None) -> list[int]:
    """A label per leaf of the linkage `tree` (leaf i: the pool's row `rows[i]`, default row i): the
    largest subtrees whose mean pairwise similarity is ≥ 0 (distance ≤ 1) and that pass the guards,
    found from the root down. A subtree of at most `small_size` rows that is not cohesive enough is
    dissolved into single rows; one of at most `separation_size` rows that does not stand apart from
    the rest of the pool (`_mid_report_stands`), or a larger one whose members lack close kin within
    it (`_kinship`), is split into its two subtrees, each judged in turn."""
    n = len(matrix) if rows is None else len(rows)
    labels = [0] * n
    clusters = 0
    stack = [2 * n - 2]  # the root; nodes below n are leaves, node n + i is merge i of the tree
    while stack:
        node = stack.pop()
        if node < n or tree[node - n, 2] <= 1.0:
            leaves = _leaves(tree, node, n)
            members = leaves if rows is None else [int(rows[leaf]) for leaf in leaves]
            if len(members) <= params.small_size:
                stands = _small_report_stands(members, matrix, params, rescaled)
                parts = [leaves] if stands else [[leaf] for leaf in leaves]
            elif len(members) <= params.separation_size:
                parts = [leaves] if _mid_report_stands(members, matrix, params, rescaled) else []
            else:
                stands = _kinship(members, matrix, params.kin_nearest, rescaled) >= params.kinship_floor
                parts = [leaves] if stands else []
            for part in parts:
                for index in part:
                    labels[index] = clusters
                clusters += 1
            if parts:
                continue
        stack += [int(tree[node - n, 1]), int(tree[node - n, 0])]
    return labels


def attached_clusters(
    cut: list[int], neighbours, density, matrix, params: ConsolidationParameters, rescaled
) -> list[int]:
    """The labels with each cluster whose members' neighbourhoods point mostly into one larger cluster
    moved into it. A fragment of a problem (its unusual phrasings, or a small report the guards
    dissolved) is rarely linked strongly enough to the problem's bulk on average, yet most of its
    members' nearest signals are there. The vote counts every neighbour slot but the members' own
    (`neighbours`: each row's neighbourhood, itself included, as `Neighbourhoods.members`), so a
    cluster whose neighbours are mostly its own stays; the target must be larger than the voter and
    than `small_size`, so strangers, who have no such cluster, are never gathered. Rounds repeat on
    the new labels until nothing moves, but a cluster that moved or received in any round never votes
    again: a grown cluster is never carried into a third one (no chains).
    Closeness is judged against the target's own tightness too (`density_weight` of its members' mean
    `density`, rescaled): next to a tight problem a stranger has it among its nearest signals without
    being anywhere near as close to it as its members are to one another. A neighbour outside the rows
    clustered (`len(cut)` in `neighbours`, `cluster_around_batch`) votes for no cluster."""
    import numpy as np

    labels = np.asarray(cut)
    neighbours = np.asarray(neighbours)
    outside = len(labels)  # a label no row has
    size = neighbours.shape[1]
    touched: set[int] = set()  # clusters that moved or received: they never vote again (no chains)
    voters = np.flatnonzero(np.bincount(labels))
    while len(voters):
        sizes = np.bincount(labels)
        moved = labels.copy()
        votable = np.append(labels, outside)
        for label in voters:
            members = np.flatnonzero(labels == label)
            votes = votable[neighbours[members].ravel()]
            votes = votes[(votes != label) & (votes != outside)]
            if not len(votes):
                continue
            counts = np.bincount(votes)
            target = int(np.argmax(counts))  # ties to the lower label
            if counts[target] < params.attach_share * len(members) * (size - 1):
                continue
            if sizes[target] <= max(len(members), params.small_size):
                continue
            inside = labels == target
            cosine = rescaled(matrix[members] @ matrix[inside].T)
            nearest = min(params.attach_nearest, cosine.shape[1])
            closeness = -np.partition(-cosine, nearest - 1, axis=1)[:, :nearest].mean()
            if closeness >= max(params.link_floor, params.density_weight * density[inside].mean()):
                moved[members] = target
                touched |= {int(label), target}
        if np.array_equal(moved, labels):
            break
        labels = moved
        voters = np.array([label for label in np.flatnonzero(np.bincount(labels)) if label not in touched])
    return labels.tolist()


def _leaves(tree, node: int, n: int) -> list[int]:
    """The rows under a node of the linkage tree."""
    rows, stack = [], [node]
    while stack:
        node = stack.pop()
        if node < n:
            rows.append(node)
        else:
            stack += [int(tree[node - n, 1]), int(tree[node - n, 0])]
    return rows


def _small_report_stands(members: list[int], matrix, params: ConsolidationParameters, rescaled) -> bool:
    """Whether a report of at most `small_size` members is evidence enough: its members close (`small_floor`),
    or nearly as close (`apart_floor`) and far closer to one another than to anything else in the pool
    (`apart_margin`). Three paraphrases of one complaint in a small pool (a team's first waves) can sit just
    under the floor while nothing else is near them; strangers that happen to be close (one train text
    per Banking77 intent, 80 samples) stand apart from their next-nearest by at most 0.351."""
    cohesion = _cohesion(members, matrix, rescaled)
    if cohesion >= params.small_floor:
        return True
    return cohesion >= params.apart_floor and _separation(members, matrix, rescaled) >= params.apart_margin


def _mid_report_stands(members: list[int], matrix, params: ConsolidationParameters, rescaled) -> bool:
    """Whether a report of `small_size` + 1 .. `separation_size` members stands apart from the pool: by
    `separation_margin`, and by more the less cohesive it is (cohesion + separation ≥ `separation_total`).
    In 80 samples of one train text per Banking77 intent, strangers of one topic (six texts about
    transfers) were chained into 18 reports of this size standing apart by 0.10–0.21 at a cohesion of
    0.53–0.68, 16 of them at 0.64–0.78 together; no real report of this size in the train samples
    scored under 0.769 together. Those that scored about 0.78 also lacked close kin (`_kinship` 0.67–0.68,
    real reports of this size ≥ 0.70), so without it a report must reach `loose_kin_penalty` more; the
    demo team's password reset, six signals from diverse sources (kin 0.67), stands apart by 0.22 and
    scores 0.84."""
    total = params.separation_total
    if _kinship(members, matrix, params.kin_nearest, rescaled) < params.kinship_floor:
        total += params.loose_kin_penalty
    separation = _separation(members, matrix, rescaled)
    return separation >= max(params.separation_margin, total - _cohesion(members, matrix, rescaled))


def _kinship(members: list[int], matrix, nearest: int, rescaled) -> float:
    """The mean over the members of their mean rescaled cosine to their `nearest` nearest fellow members.
    A real problem of ten or more signals is phrased alike again and again, so each member has close kin
    (no real report of that size in the Banking77 train samples under 0.714); ten strangers that share a
    topic word ("card"), chained by average linkage, have their nearest fellows at 0.65-0.66. Computed
    BLOCK_ROWS members at a time: a report may be most of a 6,000-signal pool."""
    import numpy as np

    rows = matrix[members]
    nearest = min(nearest, len(members) - 1)
    total = 0.0
    for start in range(0, len(rows), BLOCK_ROWS):
        block = rescaled(rows[start : start + BLOCK_ROWS] @ rows.T)
        block[np.arange(len(block)), np.arange(start, start + len(block))] = -np.inf  # not its own kin
        total += float(-np.partition(-block, nearest - 1, axis=1)[:, :nearest].sum())
    return total / (len(rows) * nearest)


def _cohesion(members: list[int], matrix, rescaled) -> float:
    """The mean pairwise rescaled cosine of the members (1 for a single row)."""
    import numpy as np

    if len(members) < 2:
        return 1.0
    block = rescaled(matrix[members] @ matrix[members].T)
    return float(block[~np.eye(len(members), dtype=bool)].mean())


def _separation(members: list[int], matrix, rescaled) -> float:
    """How much closer the members are to one another than to the pool outside: over the members, the
    mean of (mean rescaled cosine to the other members − mean rescaled cosine to as many nearest signals
    outside). Strangers chained by average linkage each have outside signals about as close as the chain
    (≈ 0.06–0.10 in one train text per Banking77 intent); a real problem stands apart."""
    import numpy as np

    cosine = rescaled(matrix[members] @ matrix.T)
    size = len(members)
    outside = np.ones(len(matrix), dtype=bool)
    outside[members] = False
    nearest = min(size - 1, int(outside.sum()))
    if nearest == 0:
        return float("inf")  # the whole pool: nothing to stand apart from
    within = (cosine[:, members].sum(axis=1) - cosine[np.arange(size), members]) / (size - 1)
    beyond = -np.partition(-cosine[:, outside], nearest - 1, axis=1)[:, :nearest]
    return float((within - beyond.mean(axis=1)).mean())


@dataclass(frozen=True)
class PoolSignal:
    signal_id: str
    report_id: str  # before consolidation
    embedding: Sequence[float]
    weight: float
    description: str


def regroup_offline(pool: Sequence[PoolSignal], stored: int, params: ConsolidationParameters) -> list[int]:
    """The offline consolidation's labels for the pool: its clusters (`cluster_pool`, or only the region a
    small batch reaches, `cluster_around_batch`), confined to what this batch's signals reach
    (`reached_by_batch`). A batch with no signal in the pool (each joined a report with research in
    flight) reaches nothing, so the pool is not clustered at all (seconds for a full pool)."""
    if stored == len(pool):
        return reached_by_batch(pool, stored, [0] * len(pool))
    vectors = [p.embedding for p in pool]
    labels = cluster_around_batch(vectors, [p.report_id for p in pool], stored, params)
    return reached_by_batch(pool, stored, cluster_pool(vectors, params) if labels is None else labels)


def reached_by_batch(pool: Sequence[PoolSignal], stored: int, labels: Sequence[int]) -> list[int]:
    """The labels, with every earlier signal that the batch's signals do not reach back in its report.

    The pool's first `stored` signals come from earlier batches, the rest from this one. The batch
    reaches the clusters holding its signals, the reports of the earlier signals in those clusters,
    the clusters holding those reports' signals, and so on. Whatever else the clustering moved, the
    batch gave no evidence for (a wave of 3 unrelated signals at a team of 6,000 Banking77 texts moved
    34 signals of 5 reports, benchmarks/README.md), so each unreached report's signals get one label of
    their own: the report stays as it was."""
    reached_labels = {labels[i] for i in range(stored, len(pool))}
    by_label: dict[int, list[int]] = {}
    by_report: dict[str, list[int]] = {}
    for index in range(stored):
        by_label.setdefault(labels[index], []).append(index)
        by_report.setdefault(pool[index].report_id, []).append(index)
    reached_reports: set[str] = set()
    todo = list(reached_labels)
    while todo:
        for index in by_label.get(todo.pop(), ()):
            report_id = pool[index].report_id
            if report_id in reached_reports:
                continue
            reached_reports.add(report_id)
            for other in by_report[report_id]:
                if labels[other] not in reached_labels:
                    reached_labels.add(labels[other])
                    todo.append(labels[other])
    kept_label: dict[str, int] = {}
    next_label = max(labels, default=-1) + 1
    confined = list(labels)
    for index in range(stored):
        report_id = pool[index].report_id
        if report_id not in reached_reports:
            if report_id not in kept_label:
                kept_label[report_id], next_label = next_label, next_label + 1
            confined[index] = kept_label[report_id]
    return confined


def anchor_researched(
    pool: Sequence[PoolSignal], stored: int, labels: Sequence[int], researched: Sequence[str], complete: set[str]
) -> tuple[list[int], dict[int, str]]:
    """The labels with each researched report anchored to a cluster, and the report of each anchored cluster.

    `researched` lists the reports whose research has finished (ready or waiting for input), in the
    order in which they survive a merge; their members are their signals among the first `stored`
    of the pool (those of earlier batches: this batch's one-pass joins are free to move). Such a
    report is re-clustered like an open one, so what the one-pass decision wrongly put in it before
    its research leaves it, and it keeps its id on its home cluster (the one holding most of its
    members, ties to the lower label): it gains the open signals clustered there, and a later one
    whose home is taken is merged into the earlier one. Only a report some of whose live signals are
    outside the pool (not in `complete`) is never merged away, since those signals would be left
    behind: when its home is taken, its pool members stay together under a label of their own."""
    labels = list(labels)
    next_label = max(labels, default=-1) + 1
    members: dict[str, list[int]] = {}
    for index, signal in enumerate(pool[:stored]):
        members.setdefault(signal.report_id, []).append(index)
    owner: dict[int, str] = {}
    for report_id in researched:
        if report_id not in members:
            continue
        counts = Counter(labels[i] for i in members[report_id])
        home = min(counts, key=lambda label: (-counts[label], label))
        if home in owner and report_id not in complete:
            home, next_label = next_label, next_label + 1
            for index in members[report_id]:
                labels[index] = home
        owner.setdefault(home, report_id)
    return labels, owner


def map_clusters(
    pool: Sequence[PoolSignal],
    labels: Sequence[int],
    existing: dict[str, int],
    new_report_id,
    anchored: dict[int, str] | None = None,
) -> list[str]:
    """The report id of each pool signal after consolidation.

    The clusters of `anchored` keep the report given there (the researched reports' homes, from
    `anchor_researched`). Any other cluster keeps the id of an
    existing report that holds most of its signals (largest overlaps first, ties to the lower
    `existing` rank — older reports — then the id; each id used once), so reports change as little as
    possible; any other cluster gets `new_report_id(first signal of the cluster, ids in use)`."""
    overlap = Counter((label, signal.report_id) for label, signal in zip(labels, pool) if signal.report_id in existing)
    report_of: dict[int, str] = dict(anchored or {})
    ranked = sorted(overlap.items(), key=lambda item: (-item[1], existing[item[0][1]], item[0][1], item[0][0]))
    for (label, report_id), _ in ranked:
        if label not in report_of and report_id not in report_of.values():
            report_of[label] = report_id
    used = set(existing)
    for label, signal in zip(labels, pool):
        if label not in report_of:
            report_of[label] = new_report_id(signal.signal_id, used)
            used.add(report_of[label])
    return [report_of[label] for label in labels]
