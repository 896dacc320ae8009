"""Untrusted text (signals, titles, model and server answers) shown to people: the characters that
would hide or reorder what is around it, in one place for the terminal, the report's Markdown page
and Dagster's metadata and logs.

Control characters (but tab and newline) can move a terminal's cursor or recolour it; bidirectional
marks, embeddings, overrides and isolates reorder the text after them (`\\u202egnp.exe` shows as
`exe.png`); a lone surrogate cannot be encoded for output. Zero-width spaces and joiners hide nothing
on their own and join emoji, so only the Markdown page, which flattens text to one line, drops them.
"""

from __future__ import annotations

import re

DISPLAY_UNSAFE = "\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff"
_DISPLAY_UNSAFE = re.compile(f"[{DISPLAY_UNSAFE}]")


def visible_escapes(text: str) -> str:
    """`text` with those characters written as escapes (`\\x1b`, `\\u202e`); newlines and tabs stay."""
    return _DISPLAY_UNSAFE.sub(lambda match: match[0].encode("unicode_escape").decode("ascii"), text)


def visible_one_line(text: str) -> str:
    """`visible_escapes(text)` with newlines and tabs escaped too: one line no text can fake another beside."""
    return visible_escapes(text).replace("\n", "\\n").replace("\t", "\\t")
