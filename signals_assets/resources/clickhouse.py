from contextlib import AbstractContextManager
from typing import Callable

import dagster as dg

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

    def session(self, log: Callable[[str], None] | None = None) -> AbstractContextManager[StoreSession]:
        """Open the store with the schema applied; hold it only for quick reads and writes."""
        return open_store(
            self.url,
            self.path,
            self.database,
            self.username,
            self.password,
            self.secure,
            self.vector_index_dimensions,
            self.lock_timeout_seconds,
            log,
        )

    @property
    def engine(self) -> str:
        return "clickhouse server" if self.url else "chdb"
