from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

import dagster as dg

from signals_assets.storage.clickhouse import StoreSession, open_chdb, open_server


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

    @contextmanager
    def session(self, log: Callable[[str], None] | None = None) -> Iterator[StoreSession]:
        """Open the store with the schema applied; hold it only for quick reads and writes."""
        opener = (
            open_server(self.url, self.database, self.username, self.password, self.secure)
            if self.url
            else open_chdb(Path(self.path), self.database, self.lock_timeout_seconds, log)
        )
        with opener as store:
            store.apply_schema(self.vector_index_dimensions)
            yield store

    @property
    def engine(self) -> str:
        return "clickhouse server" if self.url else "chdb"
