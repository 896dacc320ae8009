from contextlib import ExitStack, contextmanager
from typing import Callable, Iterator

import dagster as dg
from pydantic import PrivateAttr

from signals_assets.storage.clickhouse import StoreSession, open_store


class ClickHouseResource(dg.ConfigurableResource):
    """The signals store: embedded chdb under `path` unless a server `url` is set."""

    url: str = ""
    path: str = ""
    database: str = "signals"
    username: str = ""
    password: str = ""
    secure: bool = False
    vector_index_dimensions: int = 0  # > 0: keep an HNSW index of that many dimensions on the embeddings
    lock_timeout_seconds: float = 600
    # A session handed on by the run's previous store use (`session(hand_on=True)`), with what closes it.
    _handed_on: tuple[ExitStack, StoreSession] | None = PrivateAttr(default=None)

    @contextmanager
    def session(self, log: Callable[[str], None] | None = None, hand_on: bool = False) -> Iterator[StoreSession]:
        """Open the store with the schema applied; hold it only for quick reads and writes.

        With `hand_on`, the session stays open after the block for the next `session()` of the run
        (the in-process executor keeps one resource for all of a run's steps), which closes it unless
        it hands it on too: a run's consecutive store-only steps open the store once (chdb's start and
        the schema check, 0.1-0.2 s each) instead of once per step. Only for a use after which the
        step and the next store use call no model: the store must not stay locked while one runs."""
        if self._handed_on is None:
            stack = ExitStack()
            db = stack.enter_context(self._open(log))
        else:
            (stack, db), self._handed_on = self._handed_on, None
        with ExitStack() as closing:
            closing.push(stack)
            yield db
            if hand_on:
                closing.pop_all()
                self._handed_on = (stack, db)

    def _open(self, log: Callable[[str], None] | None):
        return open_store(
            self.url.strip(),  # as set when read through EnvVar (a URL with a password); the settings strip it
            self.path,
            self.database,
            self.username,
            self.password,
            self.secure,
            self.vector_index_dimensions,
            self.lock_timeout_seconds,
            log,
        )

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        """At the run's end: close a session the last store use handed on."""
        if self._handed_on is not None:
            (stack, _), self._handed_on = self._handed_on, None
            stack.close()

    @property
    def engine(self) -> str:
        return "clickhouse server" if self.url else "chdb"
