"""Speed and fidelity of the offline all-MiniLM-L6-v2 encoder (signals_assets.llm.minilm).

    python benchmarks/embedding_speed.py [--runs 3] [--threads N]

Import time is measured in a fresh interpreter; model load covers importing numpy, ONNX Runtime and
tokenizers, checking the model files and building the session. Throughput is the median of --runs
passes over the 2,000 Banking77 protocol texts at batch 64, after one warm-up batch. Fidelity is the
minimum cosine against the sentence-transformers vectors in tests/data/minilm_reference.json.
Exits 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from banking77 import protocol_texts  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
REFERENCE = REPO_ROOT / "tests" / "data" / "minilm_reference.json"
IMPORT_BUDGET_S, SPEED_TARGET, COSINE_TARGET = 1.0, 200, 0.999


def import_seconds() -> float:
    """Wall time of `import signals_assets.llm.minilm` in a fresh interpreter."""
    code = "import time; t = time.perf_counter(); import signals_assets.llm.minilm; print(time.perf_counter() - t)"
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    return float(result.stdout)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="ONNX Runtime intra-op threads (default: all CPUs)")
    args = parser.parse_args()

    imported = import_seconds()
    import signals_assets.llm.minilm as minilm

    started = time.perf_counter()
    encoder = minilm.MiniLMEncoder(batch_size=64, threads=args.threads)
    load_seconds = time.perf_counter() - started

    import numpy as np

    texts = [text for text, _ in protocol_texts()]
    encoder.encode(texts[:64])
    speeds = []
    for _ in range(args.runs):
        started = time.perf_counter()
        encoder.encode(texts)
        speeds.append(len(texts) / (time.perf_counter() - started))
    speed = statistics.median(speeds)

    reference = json.loads(REFERENCE.read_text())
    expected = np.asarray(reference["embeddings"], dtype=np.float64)
    cosines = np.sum(encoder.encode(reference["texts"]) * expected, axis=1) / np.linalg.norm(expected, axis=1)
    worst = float(cosines.min())

    rows = [
        (
            "import signals_assets.llm.minilm",
            f"{imported:.3f} s",
            f"<= {IMPORT_BUDGET_S:g} s",
            imported <= IMPORT_BUDGET_S,
        ),
        ("model load", f"{load_seconds:.3f} s", "", True),
        (
            f"texts/s, batch 64, {len(texts)} Banking77 texts",
            f"{speed:.0f} (runs: {', '.join(f'{s:.0f}' for s in speeds)})",
            f">= {SPEED_TARGET}",
            speed >= SPEED_TARGET,
        ),
        (
            f"min cosine vs sentence-transformers, {len(cosines)} texts",
            f"{worst:.6f} (1 - {1 - worst:.1e})",
            f">= {COSINE_TARGET}",
            worst >= COSINE_TARGET,
        ),
    ]
    width = max(len(name) for name, *_ in rows)
    value_width = max(len(value) for _, value, *_ in rows)
    print(f"{'measure':<{width}}  {'value':<{value_width}}  target")
    for name, value, target, ok in rows:
        verdict = f"{target} {'ok' if ok else 'MISSED'}" if target else ""
        print(f"{name:<{width}}  {value:<{value_width}}  {verdict}")
    return 0 if all(ok for *_, ok in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
