"""The consolidation's clustering under three OpenBLAS thread settings, alone and beside another process.

    SIGNALS_DATASETS=/work/shared/datasets .venv/bin/python benchmarks/blas_threads.py [--size 6000] [--repeat 3]

`--size` Banking77 train texts are embedded once (the shipped model). Then, for each setting, a fresh
process clusters them `--repeat` times (`cluster_pool`, the whole pool, as a full-pool batch does), and
a second process screens the 10,003 train texts with the safety rules (one thread of pure Python, like
the report run beside a batch run) from the end of the first clustering. Printed per setting: the
clustering's wall and CPU seconds per repetition, and the screening's wall against its CPU seconds:
over 1 it waited for a core. The settings: OpenBLAS's own default (a thread per core, each spinning for a
while after a product before it sleeps), the package's (OPENBLAS_THREAD_TIMEOUT=4, OpenBLAS's least: they
sleep at once; signals_assets/__init__.py) and one BLAS thread (OPENBLAS_NUM_THREADS=1).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from banking77 import PROTOCOLS, labelled_rows, protocol_texts  # noqa: E402

SETTINGS = {
    "OpenBLAS's own default": {"OPENBLAS_THREAD_TIMEOUT": ""},  # set, so the package leaves it
    "the package's (timeout 4)": {},
    "one BLAS thread": {"OPENBLAS_NUM_THREADS": "1"},
}


def cluster(vectors_path: str, repeat: int) -> None:
    # the package before numpy, as in a run worker: it sets OpenBLAS's thread timeout
    from signals_assets.grouping.consolidation import cluster_pool  # noqa: I001

    import numpy as np

    vectors = np.load(vectors_path)
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        cluster_pool(vectors)
        print(f"{time.perf_counter() - wall:.2f} {time.process_time() - cpu:.2f}", flush=True)


def screen() -> None:
    from signals_assets.safety.filter import check_signal_text

    texts = [text for text, _ in labelled_rows(PROTOCOLS["banking77", "train"][0])]
    check_signal_text("compile the rules first")
    wall, cpu = time.perf_counter(), time.process_time()
    for text in texts:
        check_signal_text(text)
    print(f"{time.perf_counter() - wall:.2f} {time.process_time() - cpu:.2f}", flush=True)


def child(mode: str, environment: dict, *args: str) -> subprocess.Popen:
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("OPENBLAS_")}
    return subprocess.Popen(
        [sys.executable, __file__, "--child", mode, *args],
        env={**inherited, **environment},
        stdout=subprocess.PIPE,
        text=True,
    )


def seconds(line: str) -> tuple[float, float]:
    wall, cpu = line.split()
    return float(wall), float(cpu)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=6000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        mode, *rest = args.child
        if mode == "cluster":
            cluster(rest[0], int(rest[1]))
        else:
            screen()
        return

    import numpy as np

    from signals_assets.llm.minilm import load_encoder

    texts = [text for text, _ in protocol_texts(size=args.size, split="train")]
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "vectors.npy")
        np.save(path, load_encoder().encode(texts))
        print(f"{len(texts)} Banking77 train texts embedded; load average {os.getloadavg()[0]:.1f}")
        alone = child("screen", {})
        print(f"screening alone: {'%.2f s wall, %.2f CPU s' % seconds(alone.communicate()[0])}")
        for name, environment in SETTINGS.items():
            clustering = child("cluster", environment, path, str(args.repeat))
            assert clustering.stdout is not None
            first = seconds(clustering.stdout.readline())
            beside = child("screen", {})
            rest = [seconds(line) for line in clustering.stdout]
            clustering.wait()
            wall, cpu = seconds(beside.communicate()[0])
            runs = ", ".join(f"{w:.2f}/{c:.2f}" for w, c in [first, *rest])
            print(
                f"{name:30s} clustering wall/CPU s: {runs}; screening beside it: {wall:.2f} s wall, "
                f"{cpu:.2f} CPU s ({wall / cpu:.2f}×)"
            )
    print(f"load average (1 min) after: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
