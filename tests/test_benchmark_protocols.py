"""The grouping benchmarks take any labelled CSV as a dataset, sampled like the shipped protocols."""

import csv
import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def protocols():
    spec = importlib.util.spec_from_file_location("benchmark_protocols", BENCHMARKS / "banking77.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def test_a_labelled_csv_is_sampled_with_seed_zero_and_reordered_per_order(protocols, tmp_path):
    rows = [[f"text number {n}", f"intent{n % 3}"] for n in range(10)]
    path = write_csv(tmp_path / "set.csv", ["text", "label"], rows)

    order0 = protocols.protocol_texts(0, 6, str(path))
    order1 = protocols.protocol_texts(1, 6, str(path))

    expected = [tuple(rows[i]) for i in np.random.default_rng(0).permutation(10)[:6]]
    assert order0 == expected
    assert sorted(order1) == sorted(order0) and order1 != order0
    assert len(protocols.protocol_texts(0, 4500, str(path))) == 10  # a size above the file takes every row


def test_a_csv_without_a_label_column_is_refused_with_its_header(protocols, tmp_path):
    path = write_csv(tmp_path / "set.csv", ["text", "topic"], [["a", "b"]])
    with pytest.raises(
        ValueError, match=r"label column named one of category, label, intent; its header is \['text', 'topic'\]"
    ):
        protocols.protocol_texts(0, 10, str(path))


def test_a_row_without_a_label_is_refused_with_its_line(protocols, tmp_path):
    path = write_csv(tmp_path / "set.csv", ["text", "intent"], [["a", "x"], ["b", ""]])
    with pytest.raises(ValueError, match=r"line 3: 'text' and 'intent' must both be non-empty"):
        protocols.protocol_texts(0, 10, str(path))


def test_grouping_quality_refuses_a_dataset_that_is_neither_shipped_nor_a_csv():
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / "grouping_quality.py"), "--dataset", "clinc"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert "--dataset 'clinc': give banking77, hwu64 or the path of a labelled .csv file" in result.stderr
