"""Extractive text helpers shared by grouping (new report titles) and report summaries."""

from __future__ import annotations

import re

TITLE_MAX_CHARS = 70
SUMMARY_MAX_CHARS = 320
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE_END.split(" ".join(text.split())) if s.strip()]


def shorten(text: str, limit: int) -> str:
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[: limit - 1].rsplit(" ", 1)[0] if " " in text[: limit - 1] else text[: limit - 1]
    return cut.rstrip(" ,;:-") + "…"


def title_from(text: str) -> str:
    first = sentences(text)
    return shorten(first[0] if first else text, TITLE_MAX_CHARS) or "(untitled)"


def summary_from(texts: list[str], max_sentences: int = 3) -> str:
    """Up to `max_sentences` distinct leading sentences, taken from the texts in order."""
    chosen: list[str] = []
    seen: set[str] = set()
    for text in texts:
        for sentence in sentences(text)[:1]:
            key = sentence.lower()
            if key not in seen:
                seen.add(key)
                chosen.append(sentence if sentence[-1] in ".!?" else sentence + ".")
        if len(chosen) >= max_sentences:
            break
    return shorten(" ".join(chosen), SUMMARY_MAX_CHARS)
