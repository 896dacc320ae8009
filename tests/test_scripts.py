"""scripts/needs-code-image: scripts/test builds the code-location image for a chosen set of tests only
when one of them requests the `code_image` fixture. scripts/split_test_files.py: the two halves scripts/test
runs side by side hold every test file once, balanced by run time."""

import importlib.util
import json
import subprocess
import sys

from conftest import REPO_ROOT


def needs_code_image(*pytest_args: str) -> bool:
    finished = subprocess.run(
        [str(REPO_ROOT / "scripts" / "needs-code-image"), *pytest_args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert finished.returncode in (0, 1), finished.stderr
    return finished.returncode == 0


def test_the_code_image_is_needed_exactly_when_a_selected_test_requests_it():
    # the container tests, by file or by name
    assert needs_code_image("tests/test_docker_run_launcher.py", "-q")
    assert needs_code_image("tests/test_fault_injection.py", "-k", "production_daemon")
    # the same files without them, by name or by marker, and tests that never run a container
    assert not needs_code_image("tests/test_fault_injection.py", "-k", "not production_daemon")
    assert not needs_code_image("tests/test_docker_run_launcher.py", "tests/test_partitions.py", "-m", "not code_image")
    assert not needs_code_image("tests/test_partitions.py", "-k", "no_such_test")  # nothing selected
    # a selection pytest cannot collect builds it: the test run then reports the error
    assert needs_code_image("tests/test_no_such_file.py")


def split_test_files():
    spec = importlib.util.spec_from_file_location("split_test_files", REPO_ROOT / "scripts" / "split_test_files.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def half(name: str) -> list[str]:
    finished = subprocess.run(
        [sys.executable, "scripts/split_test_files.py", name], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    )
    return finished.stdout.splitlines()


def test_the_two_halves_hold_every_test_file_once_and_the_recorded_seconds_name_only_files_that_exist():
    first, second = half("first"), half("second")
    files = sorted(path.relative_to(REPO_ROOT).as_posix() for path in (REPO_ROOT / "tests").glob("test_*.py"))
    assert sorted(first + second) == files
    assert not set(first) & set(second)
    assert first == sorted(first) and second == sorted(second)
    # A renamed or removed file left in the record would count for a half it no longer runs in.
    recorded = json.loads((REPO_ROOT / "tests" / "file_seconds.json").read_text())
    assert set(recorded) <= set(files)
    # Balanced: the halves' recorded seconds differ by no more than the longest file's.
    totals = [sum(recorded.get(name, 0.0) for name in names) for names in (first, second)]
    assert abs(totals[0] - totals[1]) <= max(recorded.values())


def test_files_go_longest_first_to_the_lighter_half_and_an_unrecorded_file_counts_as_the_median():
    split = split_test_files().split
    seconds = {"tests/test_a.py": 100.0, "tests/test_b.py": 60.0, "tests/test_c.py": 50.0, "tests/test_d.py": 10.0}
    # 100 | 60, then 50 joins the 60 (110), then 10 the 100: 110 against 110, not 150 against 70 by name
    assert split(sorted(seconds), seconds) == (
        ["tests/test_a.py", "tests/test_d.py"],
        ["tests/test_b.py", "tests/test_c.py"],
    )
    # tests/test_new.py, not yet recorded, weighs the median (55): after 100 | 60 it goes to the 60 (115 against 100)
    # and then 50 goes to the 100
    with_new = sorted([*seconds, "tests/test_new.py"])
    assert split(with_new, seconds) == (
        ["tests/test_a.py", "tests/test_c.py"],
        ["tests/test_b.py", "tests/test_d.py", "tests/test_new.py"],
    )
    # the same files always give the same halves, whatever their order
    assert split(list(reversed(with_new)), seconds) == split(with_new, seconds)


def test_recorded_seconds_sum_each_files_tests_from_junit_reports(tmp_path):
    report = tmp_path / "first.xml"
    report.write_text(
        '<testsuites><testsuite name="pytest">'
        '<testcase classname="tests.test_store" name="test_one" time="1.25"/>'
        '<testcase classname="tests.test_store" name="test_two[chdb]" time="2.5"/>'
        '<testcase classname="tests.test_cli.TestStatus" name="test_three" time="4.0"/>'
        "</testsuite></testsuites>"
    )
    assert split_test_files().seconds_per_file([report]) == {"tests/test_cli.py": 4.0, "tests/test_store.py": 3.8}
