"""A regular expression compiled on its first search instead of at import.

The safety rules are long alternations: compiling them all took about 0.6 s at every import of the code
location (the code server, each run worker, each CLI command), although most of those processes screen
no text, and a rule runs only on texts holding one of its literals (`literals.py`, which reads a
pattern's source and flags and so needs no compiled pattern when its disk cache is warm). A process that
screens a batch of ordinary text still compiles every rule (all of them by the 37th Banking77 text).
"""

from __future__ import annotations

import re
from typing import Any

# What the callers use of a compiled pattern.
METHODS = ("search", "match", "fullmatch", "finditer", "findall", "sub", "split")


class LazyPattern:
    """`re.compile(pattern, flags)` with its search methods, compiled when one of them is first looked up.

    `flags` are the flags given (a compiled pattern's also hold `re.UNICODE` and inline flags). After the
    compile the compiled pattern's bound methods sit in the instance, where lookup finds them first: a
    later call costs what a compiled pattern's does. Threads that race only compile twice: each method is
    set whole, so none ever sees part of a pattern."""

    def __init__(self, pattern: str, flags: int = 0) -> None:
        self.pattern = pattern
        self.flags = int(flags)

    def __getattr__(self, name: str) -> Any:  # called only for a name the instance lacks
        if name not in METHODS:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        compiled = re.compile(self.pattern, self.flags)
        self.__dict__.update({method: getattr(compiled, method) for method in METHODS})
        return getattr(compiled, name)

    @property
    def is_compiled(self) -> bool:
        """Whether the pattern has been compiled."""
        return METHODS[0] in self.__dict__

    def __repr__(self) -> str:
        return f"LazyPattern({self.pattern[:60]!r}, {self.flags})"
