"""A learned second opinion for the offline safety filter: logistic regression over character n-grams.

The rules find attacks by the words and shapes their author listed; attacks by other authors use other
words (an override in Czech, a fake developer block in a new bracket). Character n-grams carry across
wordings and languages (the stem of "istruzioni" and "instrukce", the bracket of a role label), so a
linear model over them, trained on the labelled corpus against its benign look-alikes and real customer
messages, scores how much a text reads like an attack. It never decides alone: `check_signal_text` flags a
text on the score only when it also holds a cue an attack needs (see `filter._SCORER_CUE`).

The weights ship in `scorer_weights.json`, written by `benchmarks/safety_scorer.py train` (deterministic,
no download); scoring is pure Python dictionary look-ups.
"""

from __future__ import annotations

import functools
import json
import math
import re
import unicodedata
from pathlib import Path

WEIGHTS = Path(__file__).with_name("scorer_weights.json")
CHAR_NGRAMS = (3, 4, 5)

_TOKEN = re.compile(r"[^\W_]+|[^\w\s]", re.UNICODE)
_SPACES = re.compile(r"\s+")


def normalise(text: str) -> str:
    """NFKC, lower case, format characters dropped, runs of white space as one space."""
    text = unicodedata.normalize("NFKC", text).casefold()
    text = "".join(c for c in text if unicodedata.category(c) != "Cf")
    return _SPACES.sub(" ", text).strip()


def features(text: str) -> set[str]:
    """The text's features: character 3- to 5-grams within words (padded by spaces, so a word's start
    and end count), word unigrams and bigrams (punctuation kept as tokens: brackets, pipes and colons are
    part of an attack's shape)."""
    normal = normalise(text)
    found: set[str] = set()
    tokens = _TOKEN.findall(normal)
    for token in tokens:
        padded = f" {token} "
        for size in CHAR_NGRAMS:
            for start in range(len(padded) - size + 1):
                found.add("c:" + padded[start : start + size])
    found.update("w:" + token for token in tokens)
    found.update(f"b:{first} {second}" for first, second in zip(tokens, tokens[1:]))
    return found


@functools.cache
def _model() -> tuple[float, dict[str, float]]:
    stored = json.loads(WEIGHTS.read_text())
    return stored["bias"], stored["weights"]


def score(text: str) -> float:
    """Probability-like score in [0, 1] that the text is an attack (of any kind)."""
    bias, weights = _model()
    total = bias + sum(weights.get(feature, 0.0) for feature in features(text))
    return 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, total))))
