"""Extractive report summary: the report's most central signals give its title and summary."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from signals_assets.safety import check_signal_text
from signals_assets.text import summary_from, title_from

CENTRAL_SIGNALS = 3


@dataclass(frozen=True)
class ReportSummary:
    title: str
    summary: str
    central_signal_ids: list[str]
    safety: str  # "safe" or "<kind>: <quote>" of the first unsafe signal


def central_order(embeddings: Sequence[Sequence[float]]) -> list[int]:
    """Indices sorted by similarity to the centroid, most central first (stable for ties)."""
    import numpy as np

    matrix = np.asarray(embeddings, dtype=np.float32)
    centroid = matrix.mean(axis=0)
    scores = matrix @ centroid
    return sorted(range(len(matrix)), key=lambda i: (-float(scores[i]), i))


def summarize_report(signal_ids: Sequence[str], descriptions: Sequence[str], embeddings) -> ReportSummary:
    if not signal_ids:
        raise ValueError("a report summary needs at least one signal")
    order = central_order(embeddings)[:CENTRAL_SIGNALS]
    central = [descriptions[i] for i in order]
    unsafe = next((v for v in map(check_signal_text, descriptions) if not v.safe), None)
    return ReportSummary(
        title=title_from(central[0]),
        summary=summary_from(central),
        central_signal_ids=[signal_ids[i] for i in order],
        safety=unsafe.reason if unsafe else "safe",
    )
