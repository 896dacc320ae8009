"""scripts/needs-code-image: scripts/test builds the code-location image for a chosen set of tests only
when one of them requests the `code_image` fixture."""

import subprocess

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
