"""Peak memory and time of the consolidation's clustering (`cluster_pool`) by pool size.

    .venv/bin/python benchmarks/consolidation_memory.py [--sizes 3000 6000 10000]

Each size runs in a fresh process: a seeded synthetic pool (384 dimensions; problems of every
tightness from near-duplicates to loose, plus repeated vectors, like the tests' `varied_pool`) is
built, then clustered. Prints the process's peak RSS before and after clustering, the clustering's
own share (the difference), the seconds it took and the load average beside them. The pool is at most
`ConsolidationParameters.pool_limit` signals, so the default's row is the consolidation's bound.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def synthetic_pool(count: int, seed: int = 0):
    import numpy as np

    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((max(count // 12, 1), 384))
    picks = rng.integers(0, len(centres), count)
    spread = rng.uniform(0.2, 1.4, len(centres))[picks, None]
    vectors = centres[picks] + spread * rng.standard_normal((count, 384))
    vectors[rng.random(count) < 0.1] = rng.standard_normal((384,))
    return vectors


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def measure(size: int) -> None:
    """One size, in this process: prints one line."""
    from signals_assets.grouping.consolidation import cluster_pool

    pool = synthetic_pool(size)
    before = peak_mb()
    started = time.perf_counter()
    labels = cluster_pool(pool)
    seconds = time.perf_counter() - started
    after = peak_mb()
    print(
        f"{size:>6} signals: peak RSS {after:7.1f} MB (before clustering {before:6.1f} MB, clustering "
        f"+{after - before:6.1f} MB), {seconds:6.1f} s, {len(set(labels))} clusters, "
        f"load average {os.getloadavg()[0]:.1f}",
        flush=True,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[3000, 6000, 10000])
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # the child process of one size
    args = parser.parse_args()
    if args.one:
        measure(args.one)
        return 0
    from signals_assets.grouping.consolidation import ConsolidationParameters

    print(f"pool_limit (default): {ConsolidationParameters().pool_limit}")
    for size in args.sizes:
        subprocess.run([sys.executable, __file__, "--one", str(size)], check=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
