"""Start-up cost of the emit facade (goal: under 50 ms over a bare interpreter) and of loading the
code location (goal: within 1.3x of `import dagster` alone).

    python benchmarks/import_cost.py [--runs 7]

Each figure is the median wall time of fresh interpreters after one warm-up run. Bytecode is
cached in a temporary folder even when PYTHONDONTWRITEBYTECODE is set, as in an installed
package; otherwise every run would time compiling the project's sources.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
FACADE_BUDGET_MS = 50
LOCATION_RATIO_BUDGET = 1.3


def median_seconds(code: str, runs: int, env: dict[str, str]) -> float:
    """Median wall time of `python -c code`; raises CalledProcessError (with stderr) when it fails."""
    subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, env=env, check=True, capture_output=True)  # warm-up
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, env=env, check=True, capture_output=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def verdict(ok: bool) -> str:
    return "ok" if ok else "OVER TARGET"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    runs = parser.parse_args().runs
    with tempfile.TemporaryDirectory(prefix="import-cost-pycache-") as pycache:
        return report(runs, child_env(pycache))


def child_env(pycache: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = pycache
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
    return env


def report(runs: int, env: dict[str, str]) -> int:
    bare = median_seconds("pass", runs, env)
    facade = median_seconds("import signals_assets.facade", runs, env)
    extra_ms = (facade - bare) * 1000
    print(f"bare interpreter          {bare * 1000:7.1f} ms")
    print(
        f"import signals_assets.facade {facade * 1000:7.1f} ms  (+{extra_ms:.1f} ms; target < {FACADE_BUDGET_MS} ms: "
        f"{verdict(extra_ms < FACADE_BUDGET_MS)})"
    )

    dagster = median_seconds("import dagster", runs, env)
    print(f"import dagster            {dagster * 1000:7.1f} ms")
    try:
        location = median_seconds("from signals_assets.definitions import defs; defs()", runs, env)
    except subprocess.CalledProcessError as error:
        last_line = (error.stderr or b"").decode(errors="replace").strip().splitlines()[-1:] or ["(no error output)"]
        print(f"definitions not available: {last_line[0]}")
        return 0
    ratio = location / dagster
    print(
        f"load code location        {location * 1000:7.1f} ms  (x{ratio:.2f} of import dagster; "
        f"target <= {LOCATION_RATIO_BUDGET}: {verdict(ratio <= LOCATION_RATIO_BUDGET)})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
