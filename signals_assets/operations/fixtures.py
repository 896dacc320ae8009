"""Named signal sets that ship with the repository, to emit for a demo or a test (`signals emit-fixture`).

Each set is a list of signal payloads without a team (the caller adds it), each with an idempotency
key, so emitting a set twice is harmless: the repeats are dropped as duplicates at ingestion.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

from signals_assets.ingestion.validation import shown

REPO_ROOT = Path(__file__).resolve().parents[2]
DEMO_SIGNALS = REPO_ROOT / "scripts" / "demo" / "signals.jsonl"
SAFETY_CORPUS = REPO_ROOT / "tests" / "data" / "safety_corpus.jsonl"


def _json_lines(path: Path) -> list[dict]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise FileNotFoundError(
            f"fixture file {path} cannot be read ({error.strerror or error}); the fixtures ship with the "
            "repository checkout"
        ) from None
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def demo_signals() -> list[dict]:
    return _json_lines(DEMO_SIGNALS)


def safety_corpus_signals() -> list[dict]:
    """The labelled safety corpus (manipulation attempts and ordinary feedback) as support tickets."""
    return [
        {
            "source_product": "zendesk",
            "source_type": "ticket",
            "source_id": row["id"],
            "description": row["text"],
            "extra": {
                "url": f"https://support.example/tickets/{row['id']}",
                "type": "problem",
                "tags": [row["label"]],
                "created_at": "2026-11-20T10:00:00Z",
                "priority": "normal",
                "status": "open",
            },
            "idempotency_key": f"safety-corpus-{row['id']}",
        }
        for row in _json_lines(SAFETY_CORPUS)
    ]


FIXTURES: dict[str, tuple[Callable[[], list[dict]], str]] = {
    "demo": (demo_signals, "the 28 demo signals of scripts/demo/signals.jsonl (checkout, login, search…)"),
    "safety-corpus": (safety_corpus_signals, "the labelled safety corpus of tests/data/safety_corpus.jsonl"),
}


def fixture_payloads(name: str) -> list[dict]:
    """The named set's payloads; ValueError listing the known names for an unknown one."""
    if name not in FIXTURES:
        known = ", ".join(f"{n} ({description})" for n, (_, description) in FIXTURES.items())
        raise ValueError(f"fixture: unknown set {shown(name)}; known sets: {known}")
    return FIXTURES[name][0]()
