"""A team's similarity scale: where its cosines sit, so grouping thresholds mean the same on any data.

How close two signals of one problem are depends on the data, not only on the problem: short
home-assistant commands (HWU64) have a mean pairwise cosine of 0.09 and a spread of 0.10 under
all-MiniLM-L6-v2, banking questions (Banking77) 0.22 and 0.15, and the best fixed join threshold is
0.45 on the first and 0.675 on the second. A fixed cosine tuned on one set over-splits the other.

So every cosine a grouping decision compares with a tuned number is first moved onto the scale the
numbers were tuned at: c ↦ reference.centre + reference.spread · (c − pool.centre) / pool.spread,
where `pool` is the mean (`centre`) and standard deviation (`spread`) of the cosine over all pairs of
the team's pool. Almost all pairs of a pool are signals of different problems (1 in 77 on
Banking77), so these numbers describe the background — how far apart unrelated signals are — and
they hardly move when a pool holds no duplicates at all: a pool of unrelated signals is measured like
any other. A pool whose cosines are all scaled or shifted gets the same decisions.

A burst of near-copies breaks that belief: 20 copies of one ticket beside 28 other signals are a
sixth of the pairs, and 2,000 copies alone are all of them. Counted as they come, they lift the centre
and the spread until a copy's cosine of 1 reads as ordinary, and every copy (and then the team's
other signals) ends in a report of its own. So each signal weighs one over the number of its near-copies
in the pool (cosine at least `NEAR_COPY_COSINE`, itself included): a burst counts as one signal, and a
pool without copies is measured as before.

Both statistics are exact for those weights w_i and need no pairwise matrix: with unit rows v_i,
Σ_{i≠j} w_i w_j v_i·v_j = |Σ w_i v_i|² − Σ w_i² and Σ_{i≠j} w_i w_j (v_i·v_j)² = ‖Vᵀ diag(w) V‖²_F − Σ w_i²
(a dimensions × dimensions Gram matrix), so the cost is linear in the pool and the memory does not grow
with it; the near-copies are counted among at most `COPY_PROBES` rows of the pool (a sample, fixed by
the pool's size, of a larger one). A small pool, whose pairs may be mostly signals of one problem, is
pulled towards the reference with `PRIOR_PAIRS` pseudo-pairs.

Beside the scale, the pool's neighbour structure (`neighbourhoods`, `shared_neighbours`): which
signals are each signal's nearest, and how much two signals' neighbourhoods overlap. It depends only
on the order of the cosines, so it needs no scale at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

if TYPE_CHECKING:
    import numpy

PRIOR_PAIRS = 2000  # a pool of 64 signals (2,016 pairs) is believed half, one of 300 signals 96%
# Two signals this close are copies of one text (a repeated ticket, text past the model's 256 tokens),
# not merely two reports of one problem: of the 2,000 Banking77 dev texts' pairs this close (170), 98 %
# share an intent (at 0.9 a third of those texts has one), and the grouping of both labelled sets stays
# as it was (2026-12-07: ARI 0.552 → 0.550 on those texts, 0.523 on 4,500 HWU64 texts).
NEAR_COPY_COSINE = 0.95
COPY_PROBES = 512  # rows a signal's near-copies are counted among: a burst's share shows in a sample


@dataclass(frozen=True)
class SimilarityScale:
    """Mean and standard deviation of the cosine between two signals of one pool."""

    centre: float
    spread: float

    def affine_to(self, reference: "SimilarityScale") -> tuple[float, float]:
        """(gain, offset): a cosine c of this scale is c · gain + offset on `reference`'s."""
        gain = reference.spread / self.spread
        return gain, reference.centre - self.centre * gain

    def to(self, reference: "SimilarityScale", cosine: float) -> float:
        gain, offset = self.affine_to(reference)
        return cosine * gain + offset


# The Banking77 train sample (2,000 texts, all-MiniLM-L6-v2): the scale the grouping parameters were
# tuned at (benchmarks/offline_matching_sim.py --scale prints it).
REFERENCE = SimilarityScale(centre=0.2173, spread=0.1548)


def pool_scale(
    vectors: Sequence[Sequence[float]] | numpy.ndarray,
    reference: SimilarityScale = REFERENCE,
    prior_pairs: int = PRIOR_PAIRS,
) -> SimilarityScale:
    """The scale of a pool of embeddings (rows; normalised here), shrunk towards `reference` when small."""
    import numpy as np

    matrix = np.asarray(vectors, dtype=np.float64)
    n = len(matrix)
    pairs = n * (n - 1) // 2
    if pairs + prior_pairs == 0:
        return reference
    matrix = matrix / np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)
    weights = copy_weights(matrix) if n else np.zeros(0)
    total = weights @ matrix
    gram = (matrix * weights[:, None]).T @ matrix
    own = float(weights @ weights)  # each row's pair with itself, left out
    # over unordered pairs of different rows
    pair_weight = (float(weights.sum()) ** 2 - own) / 2
    cosine_sum = (float(total @ total) - own) / 2
    square_sum = (float(np.sum(gram * gram)) - own) / 2
    weight = pair_weight + prior_pairs
    centre = (cosine_sum + prior_pairs * reference.centre) / weight
    second = (square_sum + prior_pairs * (reference.spread**2 + reference.centre**2)) / weight
    return SimilarityScale(centre, float(np.sqrt(max(second - centre**2, 1e-12))))


def copy_weights(matrix: numpy.ndarray, probes: int = COPY_PROBES) -> numpy.ndarray:
    """Each unit row's weight, one over its number of near-copies in `matrix` (itself included): its
    copies among the other rows counted among all of them when there are at most `probes` rows, else
    among `probes` rows drawn with a seed of the row count (the same pool, the same weights) and scaled
    up to the pool."""
    import numpy as np

    n = len(matrix)
    drawn = np.arange(n) if n <= probes else np.random.default_rng(n).choice(n, probes, replace=False)
    in_sample = np.zeros(n)
    in_sample[drawn] = 1.0
    others = (matrix @ matrix[drawn].T >= NEAR_COPY_COSINE).sum(axis=1) - in_sample  # not itself
    sampled_others = np.maximum(len(drawn) - in_sample, 1.0)
    return 1.0 / (1.0 + others * (n - 1) / sampled_others)


class Neighbourhoods:
    """Each row's neighbourhood (`members[i]`: row i itself, then its nearest rows, nearest first) and,
    for the shared counts, the other way round: the rows whose neighbourhood holds row k
    (`holders[starts[k]:starts[k + 1]]`, ascending; `keys` the same holdings as k · n + holder, sorted,
    n the number of rows). The members are ids of a pool of `universe` rows (default: these rows); when
    only a part of a pool is clustered, its rows' neighbourhoods reach into the whole pool."""

    def __init__(self, members: numpy.ndarray, universe: int | None = None) -> None:
        import numpy as np

        self.members = members
        self.size = members.shape[1]
        flat = members.ravel()
        order = np.argsort(flat, kind="stable")
        self.holders = order // self.size
        self.keys = flat[order] * len(members) + self.holders
        minlength = len(members) if universe is None else universe
        self.starts = np.concatenate(([0], np.cumsum(np.bincount(flat, minlength=minlength))))


def narrowed(nearest: tuple[numpy.ndarray, numpy.ndarray], size: int, universe: int | None = None):
    """(neighbourhoods, density): each unit row's neighbourhood — itself and its `size` − 1 most similar
    other rows (`Neighbourhoods`, of a pool of `universe` rows) — and each row's density, its mean cosine
    to those others, from `nearest_rows` or `nearest_in_pool` of that size or wider: the `size` nearest
    rows are the first `size` of any wider list (the order is total), so a narrower neighbourhood needs
    no cosine again."""
    import numpy as np

    members, cosines = nearest
    density = np.ascontiguousarray(cosines[:, 1:size]).mean(axis=1) if size > 1 else np.zeros(len(members))
    return Neighbourhoods(np.ascontiguousarray(members[:, :size]), universe), density


def nearest_rows(matrix: numpy.ndarray, size: int, block_rows: int = 256, square: numpy.ndarray | None = None):
    """(members, cosines): each unit row's `size` most similar rows, itself first, nearest first, and
    their cosines rounded to 1e-9 (its own: 2.0). Also leaves every pair's cosine in `square` (n × n,
    allocated here when not given): each is computed once, a block of rows against the later rows
    (`pair_cosines`), and copied into the earlier rows' columns, so the pool costs half a matrix
    product. Row i holds, at j > i, the cosine of i's block and, at j < i, that of the earlier row's
    block: within a block, the product's own (i, j) for j < i.

    Ties are broken by row order (cosines rounded to 1e-9), so the result does not depend on the block
    size or on floating-point noise between identical signals."""
    import numpy as np

    n = len(matrix)
    if square is None:
        square = np.empty((n, n))
    size = min(size, n)
    members = np.empty((n, size), dtype=np.int64)
    cosines = np.empty((n, size))
    columns = np.arange(n, dtype=np.float64)
    cosine = np.empty((min(block_rows, n), n))
    for start in range(0, n, block_rows):
        stop = min(start + block_rows, n)
        cosine = cosine[: stop - start]
        _cosine_block(matrix, start, stop, square)
        square[stop:, start:stop] = square[start:stop, stop:].T
        np.round(square[start:stop], 9, out=cosine)
        _select_nearest(cosine, np.arange(start, stop), size, columns, members[start:stop], cosines[start:stop])
    return members, cosines


def nearest_in_pool(matrix: numpy.ndarray, rows: numpy.ndarray, size: int, block_rows: int = 256):
    """`nearest_rows` for some of the unit rows only, among all of them: (members, cosines), a row of
    each for each of `rows`, the members being rows of `matrix`. A part of a pool clustered alone still
    sees its neighbours in the whole pool, at the cost of its rows' products, not the pool's square."""
    import numpy as np

    n = len(matrix)
    size = min(size, n)
    members = np.empty((len(rows), size), dtype=np.int64)
    cosines = np.empty((len(rows), size))
    columns = np.arange(n, dtype=np.float64)
    for start in range(0, len(rows), block_rows):
        block = rows[start : start + block_rows]
        cosine = np.round(matrix[block] @ matrix.T, 9)
        _select_nearest(
            cosine, block, size, columns, members[start : start + len(block)], cosines[start : start + len(block)]
        )
    return members, cosines


def _select_nearest(cosine, own, size: int, columns, members, cosines) -> None:
    """Each row's `size` nearest columns of a block of rounded cosines (overwritten), itself (column
    `own`) first, into `members` and `cosines`.

    The order is that of a key unique per row: the cosine in units of 1e-9, then the column. Selecting
    the `size` smallest keys and sorting only those costs a fifth of sorting the whole row (a pool of
    6,500: 12 s of a 60 s grouping at 1M stored signals)."""
    import numpy as np

    n = cosine.shape[1]
    cosine[np.arange(len(cosine)), own] = 2.0  # above any cosine: a row is the first member of its own neighbourhood
    # in place: a fresh temporary of the block's size costs its page faults on every pass; float64
    # holds these integers exactly (below 2⁵³ for any pool of fewer than 4 million rows)
    key = cosine * 1e9
    np.rint(key, out=key)
    key *= -(n + 1)
    key += columns
    nearest = np.argpartition(key, size - 1, axis=1)[:, :size]
    nearest = np.take_along_axis(nearest, np.argsort(np.take_along_axis(key, nearest, axis=1), axis=1), axis=1)
    members[:] = nearest
    cosines[:] = np.take_along_axis(cosine, nearest, axis=1)


def pair_cosines(matrix: numpy.ndarray, block_rows: int, square: numpy.ndarray) -> None:
    """The cosines of each block of `block_rows` unit rows against the rows from the block's first on,
    into `square` (n × n), bit for bit as `nearest_rows` computes them (the blocks' shape decides the
    last bits); the rest of `square` is left as it was. That is all of it the consolidation's distances
    read (`consolidation.pair_distances`), so a narrowing pass needs no copy into the earlier rows'
    columns."""
    for start in range(0, len(matrix), block_rows):
        _cosine_block(matrix, start, min(start + block_rows, len(matrix)), square)


def _cosine_block(matrix: numpy.ndarray, start: int, stop: int, square: numpy.ndarray) -> None:
    import numpy as np

    np.matmul(matrix[start:stop], matrix[start:].T, out=square[start:stop, start:])


def shared_neighbours(neighbourhoods: Neighbourhoods, rows, start: int = 0) -> numpy.ndarray:
    """The share of their neighbourhoods (from `neighbourhoods`) that `rows` and the rows `start`..n − 1
    have in common, a dense block. It depends only on the order of the cosines, so no similarity
    constant is in it: two signals of a dense, well-separated problem share most neighbours whatever
    the problem's cosines.

    Counted from the holders' lists, without scipy.sparse (its import costs more than the counting): a
    row's neighbours k, and for each k its holders from `start` on, are the row's pairs with a neighbour
    in common (at most len(rows) · size² of them), counted with one bincount."""
    import numpy as np

    n = len(neighbourhoods.members)
    width = n - start
    neighbours = neighbourhoods.members[rows].ravel()
    first = np.searchsorted(neighbourhoods.keys, neighbours * n + start)  # each k's first holder ≥ start
    counts = neighbourhoods.starts[neighbours + 1] - first
    ends = np.cumsum(counts)
    holders = np.arange(ends[-1] if len(ends) else 0) + np.repeat(first - ends + counts, counts)
    places = neighbourhoods.holders[holders]  # each pair's place in the flattened block
    places += np.repeat(np.repeat(np.arange(len(rows)) * width - start, neighbourhoods.size), counts)
    counted = np.bincount(places, minlength=len(rows) * width)
    return counted.reshape(len(rows), width) / neighbourhoods.size
