"""The two halves of the test files that scripts/test runs side by side, balanced by their run time.

    .venv/bin/python scripts/split_test_files.py first     # the first half's files, one per line
    .venv/bin/python scripts/split_test_files.py second    # the second half's
    .venv/bin/python scripts/split_test_files.py record JUNIT_XML...   # rewrites tests/file_seconds.json

    SIGNALS_TEST_JUNIT_DIR=/tmp/junit ./scripts/test && .venv/bin/python scripts/split_test_files.py record /tmp/junit/*.xml

The halves run at once, so the suite takes as long as the longer one. Files go longest first to the half with
the fewer seconds so far, by tests/file_seconds.json (each file's seconds in a full run, from the JUnit reports
of `pytest --junitxml`); a file it does not list counts as the median of those it does. Each half's files are
listed in name order, as pytest would run them alone.
"""

from __future__ import annotations

import json
import statistics
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FILE_SECONDS = ROOT / "tests" / "file_seconds.json"


def test_files() -> list[str]:
    return sorted(path.relative_to(ROOT).as_posix() for path in (ROOT / "tests").glob("test_*.py"))


def split(files: list[str], seconds: dict[str, float]) -> tuple[list[str], list[str]]:
    default = statistics.median(seconds.values()) if seconds else 1.0
    halves: tuple[list[str], list[str]] = ([], [])
    totals = [0.0, 0.0]
    # Longest first, ties by name: the same files always give the same halves.
    for name in sorted(files, key=lambda name: (-seconds.get(name, default), name)):
        lighter = 0 if totals[0] <= totals[1] else 1
        halves[lighter].append(name)
        totals[lighter] += seconds.get(name, default)
    return sorted(halves[0]), sorted(halves[1])


def seconds_per_file(junit_reports: list[Path]) -> dict[str, float]:
    """Each test file's seconds (setup, call and teardown of all its tests) in pytest's JUnit reports."""
    seconds: dict[str, float] = {}
    for report in junit_reports:
        for case in ElementTree.parse(report).iter("testcase"):
            # classname is the test's module path, dotted ("tests.test_store"), then any class names.
            name = "/".join(case.attrib["classname"].split(".")[:2]) + ".py"
            seconds[name] = seconds.get(name, 0.0) + float(case.attrib.get("time", 0.0))
    return {name: round(total, 1) for name, total in sorted(seconds.items())}


def main(arguments: list[str]) -> None:
    if arguments[:1] == ["record"] and len(arguments) > 1:
        seconds = seconds_per_file([Path(report) for report in arguments[1:]])
        FILE_SECONDS.write_text(json.dumps(seconds, indent=1) + "\n")
        print(f"wrote {FILE_SECONDS.relative_to(ROOT)}: {len(seconds)} files, {sum(seconds.values()):.0f} s in all")
    elif arguments in (["first"], ["second"]):
        seconds = json.loads(FILE_SECONDS.read_text()) if FILE_SECONDS.exists() else {}
        half = split(test_files(), seconds)[0 if arguments == ["first"] else 1]
        if half:
            print("\n".join(half))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
