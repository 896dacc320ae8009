"""What an ASCII text must contain for a regular expression to match anywhere in it.

The safety rules are long alternations that Python's `re` tries at every position of a text, although
nearly every branch starts from a word that most texts lack. `required_literals(pattern)` reads the
pattern's parse tree and returns strings, case-folded, of which every match contains at least one
(None: no such set was found); `literal_search` looks for them all at once. A text whose case-folded
form holds none of them cannot match, so the rule's search is skipped with the same result. The fold is
the one `re` compares by under IGNORECASE, character by character (`case_folded`): a character's simple
lower case, or the least of the characters `re` counts as the same ("K" U+212A and "k", "ſ" and "s", "ı"
and "İ" and "i"), never `str.lower()` of a whole text, which turns "İ" into two characters.

Reading a parse tree costs as much as compiling the pattern (0.3–0.7 s for the safety rules, in every
process that screens), so the literals are kept on disk the way Python keeps bytecode: in `__pycache__`
beside this module, under a key of the pattern's source and flags, this module's source and the Python
version, written once per batch of patterns derived together (`required_literals_of`), and derived
again when that file is missing, damaged or cannot be written. Neither the key nor the parse needs a
compiled pattern: the rules are `LazyPattern`s, and with the file in place a process compiles only the
rules some text holds the literals of.
"""

from __future__ import annotations

import _sre  # type: ignore[import-not-found]
import functools
import hashlib
import json
import os
import re
import sys
import tempfile
import threading
from pathlib import Path
from re import (
    _casefix,  # type: ignore[attr-defined]
    _constants as sre,  # type: ignore[attr-defined]
    _parser as sre_parse,  # type: ignore[attr-defined]
)
from typing import Sequence

from signals_assets.safety.lazy_pattern import LazyPattern

Literals = frozenset[str]  # any of these strings; the empty set: the pattern cannot match
MAX_STRINGS = 256  # a branch or a run of literals with more spellings than this is not expanded
MAX_CLASS = 8  # a character class of at most this many literal characters is expanded


def _fold_code(code: int) -> int:
    """The code point `re` compares a character by under IGNORECASE: its simple lower case, or the least of
    the characters `re` counts as the same as that."""
    lower = _sre.unicode_tolower(code)
    return min((lower, *_casefix._EXTRA_CASES.get(lower, ())))


class _FoldTable(dict[int, int]):
    """`str.translate`'s table for `case_folded`, each character folded on its first use."""

    def __missing__(self, code: int) -> int:
        self[code] = folded = _fold_code(code)
        return folded


_FOLD = _FoldTable()


def _expand(parts: list[Literals]) -> Literals | None:
    """Every concatenation of one string from each part, or None when there are too many."""
    size = 1
    for part in parts:
        size *= len(part)
        if size > MAX_STRINGS:
            return None
    return _concatenations(frozenset({""}), parts)


def _concatenations(prefixes: Literals, parts: list[Literals]) -> Literals:
    for part in parts:
        prefixes = frozenset(prefix + string for prefix in prefixes for string in part)
    return prefixes


def _node(op, av) -> tuple[Literals | None, Literals | None]:
    """(exact, required) of one parse node: `exact` is every string it can consume (None: unknown or
    too many), `required` strings of which what it consumes contains one (None: no constraint)."""
    if op is sre.LITERAL:
        # every character a literal matches, with or without IGNORECASE, folds to the literal's own fold
        spelling = frozenset({chr(_fold_code(av))})
        return spelling, spelling
    if op is sre.IN and len(av) <= MAX_CLASS and all(item is sre.LITERAL for item, _ in av):
        # a class of a few characters ("[üu]", "[вb]") is spelled like a branch of them: as an unknown, the
        # rules that spell letters so (accents, homoglyphs) kept only the short runs around it as their literals
        spelling = frozenset(chr(_fold_code(code)) for _, code in av)
        return spelling, spelling
    if op in (sre.AT, sre.ASSERT, sre.ASSERT_NOT):
        return frozenset({""}), None  # zero width: consumes nothing
    if op is sre.SUBPATTERN:
        return _sequence(av[-1])  # (group, added flags, removed flags, pattern): flags change no fold
    if op is sre.ATOMIC_GROUP:
        return _sequence(av)
    if op is sre.BRANCH:
        branches = [_sequence(branch) for branch in av[1]]
        exacts = [e for e, _ in branches if e is not None]
        union = frozenset().union(*exacts)
        exact = union if len(exacts) == len(branches) and len(union) <= MAX_STRINGS else None
        requirements = [r for _, r in branches if r is not None]
        required = frozenset().union(*requirements) if len(requirements) == len(branches) else None
        return exact, required
    if op in (sre.MAX_REPEAT, sre.MIN_REPEAT, sre.POSSESSIVE_REPEAT):
        low, high, pattern = av
        exact, required = _sequence(pattern)
        if low == 0:
            optional = exact | {""} if exact is not None and (low, high) == (0, 1) else None
            return optional, None
        return (exact if (low, high) == (1, 1) else None), required
    return None, None  # classes, any character, categories, back references: no literal to require


def _sequence(pattern) -> tuple[Literals | None, Literals | None]:
    """(exact, required) of a sequence: runs of exact nodes are expanded into their spellings, and the
    most selective requirement (longest shortest string, then fewest strings) is kept."""
    nodes = [_node(op, av) for op, av in pattern]
    # An exact node's own requirement is part of its run's spellings: only the others are candidates.
    candidates: list[Literals] = [required for exact, required in nodes if exact is None and required is not None]
    run: Literals = frozenset({""})  # the spellings of the current run of exact nodes
    for exact, _ in [*nodes, (None, None)]:
        if exact is not None and len(run) * len(exact) <= MAX_STRINGS:
            if len(exact) == 1:  # a literal character, the common case
                (tail,) = exact
                run = frozenset(prefix + tail for prefix in run)
            else:
                run = _concatenations(run, [exact])
            continue
        if "" not in run:
            candidates.append(run)
        run = frozenset({""}) if exact is None else exact
    exacts = [exact for exact, _ in nodes if exact is not None]
    whole = _expand(exacts) if len(exacts) == len(nodes) else None
    best = max(candidates, key=lambda c: (min(map(len, c)), -len(c)), default=None)
    return whole, best


def required_literals(pattern: re.Pattern[str] | LazyPattern) -> Literals | None:
    """Case-folded strings of which every match of `pattern` contains one, or None (from the disk cache when
    it holds them)."""
    return required_literals_of([pattern])[0]


def required_literals_of(patterns: Sequence[re.Pattern[str] | LazyPattern]) -> list[Literals | None]:
    """`required_literals` of each pattern, with one write of the disk cache for all those it lacked:
    rewriting the whole file once per pattern made a cold fill quadratic in the patterns."""
    keys = [
        hashlib.blake2b(f"{pattern.flags}:{pattern.pattern}".encode("utf-8", "surrogatepass")).hexdigest()
        for pattern in patterns
    ]
    with _cache_lock:
        cache = _cached()
        missing = {key: pattern for key, pattern in zip(keys, patterns) if key not in cache}
    if missing:
        derived = {key: derived_literals(pattern) for key, pattern in missing.items()}
        with _cache_lock:
            cache.update({key: None if found is None else sorted(found) for key, found in derived.items()})
            _write_cache(cache)
    return [None if (stored := cache[key]) is None else frozenset(stored) for key in keys]


def derived_literals(pattern: re.Pattern[str] | LazyPattern) -> Literals | None:
    """`required_literals` read from the parse tree of the pattern's source (a `LazyPattern` stays uncompiled)."""
    parsed = sre_parse.parse(pattern.pattern, pattern.flags)
    return _sequence(parsed)[1]


CACHE_DIR = Path(__file__).with_name("__pycache__")
_cache_lock = threading.Lock()
# One file per version of this module and of Python: a change to either starts a fresh one. Read on import,
# so a process never files what its own code derived under a newer version's name.
_VERSION = hashlib.blake2b(Path(__file__).read_bytes() + sys.version.encode(), digest_size=8).hexdigest()


def _cache_path() -> Path:
    return CACHE_DIR / f"literals.{_VERSION}.json"


@functools.cache
def _cached() -> dict[str, list[str] | None]:
    """The disk cache as read once per process (empty when missing or not a cache), then kept up to date."""
    return _read_cache(_cache_path())


def _read_cache(path: Path) -> dict[str, list[str] | None]:
    try:
        stored = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    valid = isinstance(stored, dict) and all(
        value is None or (isinstance(value, list) and all(isinstance(s, str) for s in value))
        for value in stored.values()
    )
    return stored if valid else {}


def _write_cache(cache: dict[str, list[str] | None]) -> None:
    """Merged with what other processes wrote meanwhile, then replaced atomically; a cache that cannot be
    written is only slower."""
    path = _cache_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        cache.update({key: value for key, value in _read_cache(path).items() if key not in cache})
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
        try:
            os.fchmod(handle, 0o644)  # readable by every user, as bytecode is
            with os.fdopen(handle, "w") as out:
                json.dump(cache, out)
            os.replace(temporary, path)
        except BaseException:
            os.unlink(temporary)
            raise
    except OSError:
        pass


def literal_search(required: Literals | None) -> re.Pattern | None:
    """One search for any of `required` (None stays None): a string that holds another member adds
    nothing, and one alternation of literals is far cheaper than a Python loop over them."""
    if required is None:
        return None
    shortest_first = sorted(required, key=len)
    kept: list[str] = []
    for literal in shortest_first:
        if not any(other in literal for other in kept):
            kept.append(literal)
    return re.compile(_trie(kept) if kept else "(?!)")  # (?!): never matches


def _trie(literals: list[str]) -> str:
    """An alternation of `literals` with shared prefixes factored out ("dans|dann" → "dan(?:s|n)"): `re` tries
    a flat alternation's branches one by one at every position of a text, a factored one only those that
    share the characters read so far, and a rule's literals run to hundreds."""
    root: dict[str, dict] = {}
    for literal in literals:
        node = root
        for char in literal:
            node = node.setdefault(char, {})
        node[""] = {}

    def alternation(node: dict[str, dict]) -> str:
        branches = [re.escape(char) + alternation(child) for char, child in sorted(node.items()) if char]
        if not branches:
            return ""
        group = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
        # a literal that ends where longer ones go on (kept only when none holds another: at most the root)
        return f"(?:{group})?" if "" in node else group

    return alternation(root)


def case_folded(text: str) -> str:
    """The form the literals are looked for in: each character folded as `re` compares it under IGNORECASE
    (for ASCII, its lower case)."""
    return text.lower() if text.isascii() else text.translate(_FOLD)


def may_match(search: re.Pattern | None, folded: str) -> bool:
    """False only when `folded` (`case_folded` of a text, made once for all the rules) holds none of the
    search's literals."""
    return search is None or search.search(folded) is not None
