"""ClickHouse access with one interface over two engines: embedded chdb and a server.

chdb lets one process open a data folder at a time, so the embedded store is opened under an
exclusive file lock and only for as long as a `with store.session()` block lasts: callers keep
LLM calls and sandbox runs outside that block. Heavy clients are imported when a session opens.
"""

from __future__ import annotations

import calendar
import fcntl
import json
import os
import re
import struct
import tempfile
import time
from contextlib import AbstractContextManager, ExitStack, contextmanager
from datetime import date, datetime
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence
from urllib.parse import urlsplit

from signals_assets.recovery.faults import pause_point

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "dbt_like_sql" / "tables"
VECTOR_INDEX_SQL = SCHEMA_DIR.parent / "indexes" / "signal_embeddings_vector_index.sql"
VECTOR_INDEX_NAME = "embedding_hnsw"
# Semantic search sends a batch's probe vectors inline: far past the default 256 KiB query size.
SESSION_SETTINGS = {"max_query_size": 256 * 1024 * 1024}


_CREATE_TABLE = re.compile(r"^\s*CREATE\s+TABLE\s+IF\s+NOT\s+EXISTS\s+(?P<table>\w+)", re.I | re.M)
_ADD_COLUMN = re.compile(r"ALTER\s+TABLE\s+(?P<table>\w+)\s+ADD\s+COLUMN\s+IF\s+NOT\s+EXISTS\s+(?P<column>\w+)\s", re.I)
_DROP_TABLE = re.compile(r"^\s*DROP\s+TABLE\s+IF\s+EXISTS\s+(?P<table>\w+)\s*$", re.I)


class StoreError(Exception):
    pass


def sql_literal(value: Any) -> str:
    """Render a Python value as a ClickHouse literal (strings escaped, lists as arrays)."""
    if type(value) is str:  # checked first: a batch's statements render tens of thousands of ids
        return _string_literal(value)
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, datetime):
        return sql_literal(value.strftime("%Y-%m-%d %H:%M:%S.%f"))
    if isinstance(value, date):
        return sql_literal(value.isoformat())
    if isinstance(value, (list, tuple, set, frozenset)):
        return "[" + ", ".join(map(sql_literal, value)) + "]"
    return _string_literal(str(value))


def _string_literal(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'").replace("\x00", "\\0") + "'"


_PLACEHOLDER = re.compile(r"\{(\w+)\}")
_FIXED_STRING = re.compile(r"FixedString\((\d+)\)")


def render(sql: str, params: dict[str, Any] | None = None) -> str:
    """Substitute `{name}` placeholders with literals in one pass over the template, so a value that
    contains a placeholder name is never substituted again; other braces are left alone."""
    if not params:
        return sql
    return _PLACEHOLDER.sub(lambda m: sql_literal(params[m[1]]) if m[1] in params else m[0], sql)


def statement_for_error(sql: str) -> str:
    """The statement as an error shows it: an insert without its rows (other signals' text), cut short."""
    head, data_follows, _ = sql.partition("FORMAT JSONEachRow\n")
    return (head + "FORMAT JSONEachRow (rows not shown)" if data_follows else sql)[:2000]


def _varint(data: bytes, at: int) -> tuple[int, int]:
    """The unsigned LEB128 integer at `at` and the offset after it."""
    value, shift = 0, 0
    while True:
        byte = data[at]
        value |= (byte & 0x7F) << shift
        at, shift = at + 1, shift + 7
        if byte < 0x80:
            return value, at


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S.%f")
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"cannot store {type(value).__name__} in ClickHouse")


def json_each_row(rows: Iterable[dict]) -> str:
    return "\n".join(json.dumps(row, default=_json_default, ensure_ascii=False) for row in rows)


def _leb128(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    return bytes(out + bytes([value]))


def _binary_string(value: Any) -> bytes:
    data = str(value).encode()
    return _leb128(len(data)) + data


def _binary_array(dtype: str) -> Callable[[Any], bytes]:
    def encode(value: Any) -> bytes:
        import numpy as np

        values = np.asarray(value, dtype=dtype)
        return _leb128(len(values)) + values.tobytes()

    return encode


def _binary_datetime64_3(value: datetime) -> bytes:
    # a naive time is UTC, as in the text formats
    utc = value.utctimetuple() if value.tzinfo else value.timetuple()
    return struct.pack("<q", calendar.timegm(utc) * 1000 + value.microsecond // 1000)


# RowBinary encoders of the column types written in binary (LowCardinality is transparent in RowBinary).
_BINARY_ENCODERS: dict[str, Callable[[Any], bytes]] = {
    "UInt16": lambda value: struct.pack("<H", int(value)),
    "UInt32": lambda value: struct.pack("<I", int(value)),
    "UInt64": lambda value: struct.pack("<Q", int(value)),  # JSON results quote 64-bit integers
    "String": _binary_string,
    "LowCardinality(String)": _binary_string,
    "Array(Float32)": _binary_array("<f4"),
    "Array(Int16)": _binary_array("<i2"),
    "DateTime64(3, 'UTC')": _binary_datetime64_3,
}


def row_binary(columns: Sequence[tuple[str, str]], rows: Iterable[dict]) -> bytes:
    """`rows` in ClickHouse's RowBinary format for `columns` (name, type): float vectors travel as their
    bytes, where JSON would write each float32 as a 17-digit double for the server to parse back."""
    try:
        encoders = [(name, _BINARY_ENCODERS[kind]) for name, kind in columns]
    except KeyError as missing:
        raise StoreError(f"row_binary: no RowBinary encoder for the column type {missing}") from None
    return b"".join(encode(row[name]) for row in rows for name, encode in encoders)


class StoreSession:
    """An open connection: `query` returns dict rows, `vectors` a float32 matrix, `command` runs DDL/DML,
    `insert` appends."""

    def __init__(self, run_query: Callable[[str], bytes], insert_row_binary: Callable[[str, list[str], bytes], None]):
        self._run = run_query
        self._insert_row_binary = insert_row_binary
        self._insert_columns: dict[str, list[tuple[str, str]]] = {}

    def command(self, sql: str, params: dict[str, Any] | None = None) -> None:
        pause_point("write")
        self._run(render(sql, params))

    def query(self, sql: str, params: dict[str, Any] | None = None) -> list[dict]:
        # one object a line, joined into one array: one parse, and only "\n" splits rows (JSON escapes
        # it inside strings, not every character `str.splitlines` breaks at, e.g. U+0085)
        text = self._run(render(sql, params) + "\nFORMAT JSONEachRow").decode().strip()
        return json.loads("[" + text.replace("\n", ",") + "]")

    def vectors(self, sql: str, params: dict[str, Any] | None = None):
        """The rows of a query of one Array(Float32) column, of one length, as a (rows, length) numpy matrix,
        read as RowBinary (no text round trip: a row is a length prefix and its little-endian floats)."""
        import numpy as np

        data = self._run(render(sql, params) + "\nFORMAT RowBinary")
        if not data:
            return np.zeros((0, 0), dtype=np.float32)
        dimensions, prefix = _varint(data, 0)  # the first row's length
        rows = np.frombuffer(data, dtype=np.uint8)
        stride = prefix + 4 * dimensions
        if len(rows) % stride or (rows.reshape(-1, stride)[:, :prefix] != rows[:prefix]).any():
            raise StoreError(f"the vectors of a query differ in length (the first has {dimensions}):\n{sql}")
        return rows.reshape(-1, stride)[:, prefix:].copy().view("<f4")

    def labelled_vectors(self, sql: str, params: dict[str, Any] | None = None):
        """The rows of a query of three columns, an Array(Int16) of one length, a UInt32 and a FixedString,
        as (rows, length) int16 matrix, uint32 numbers and a numpy bytes array of the labels (their
        zero padding dropped: a label must not end in a zero byte), read as one result in the Native
        format: per block of rows, each column's values together (the arrays as their end offsets and
        all their values in one run, the labels as one run of fixed-width values, which numpy takes as
        they are). Columnar, the result costs ClickHouse about half the time of the same rows as
        RowBinary; fixed-width labels spare a Python pass over every row (a String column is each
        value's length, then its bytes)."""
        import numpy as np

        data = self._run(render(sql, params) + "\nFORMAT Native")
        vectors, numbers, labels, at = [], [], [], 0
        while at < len(data):
            columns, at = _varint(data, at)
            rows, at = _varint(data, at)
            types = []
            for _ in range(columns):
                for _ in range(2):  # the column's name, then its type
                    length, at = _varint(data, at)
                    types.append(data[at : at + length].decode())
                    at += length
                width = _FIXED_STRING.fullmatch(types[-1])
                if types[-1] == "Array(Int16)":
                    ends = np.frombuffer(data, "<u8", rows, at)
                    at += 8 * rows
                    values = np.frombuffer(data, "<i2", int(ends[-1]) if rows else 0, at)
                    at += values.nbytes
                    if rows and (np.diff(ends, prepend=0) != ends[0]).any():
                        raise StoreError(f"the vectors of a query differ in length:\n{sql}")
                    vectors.append(values.reshape(rows, -1) if rows else values.reshape(0, 0))
                elif types[-1] == "UInt32":
                    numbers.append(np.frombuffer(data, "<u4", rows, at))
                    at += 4 * rows
                elif width is not None:
                    labels.append(np.frombuffer(data, f"S{width[1]}", rows, at))
                    at += int(width[1]) * rows
                else:
                    raise StoreError(f"labelled vectors: a column of type {types[-1]}:\n{sql}")
            kinds = types[1::2]
            if len(kinds) != 3 or kinds[:2] != ["Array(Int16)", "UInt32"] or not _FIXED_STRING.fullmatch(kinds[2]):
                raise StoreError(
                    f"labelled vectors: columns {types[1::2]}, not Array(Int16), UInt32, FixedString(N):\n{sql}"
                )
        vectors = [block for block in vectors if len(block)]
        if not vectors:
            return np.zeros((0, 0), dtype=np.int16), np.zeros(0, dtype=np.uint32), np.zeros(0, dtype="S1")
        if len({block.shape[1] for block in vectors}) > 1:
            raise StoreError(f"the vectors of a query differ in length:\n{sql}")
        return np.concatenate(vectors), np.concatenate(numbers), np.concatenate(labels)

    def scalar(self, sql: str, params: dict[str, Any] | None = None) -> Any:
        rows = self.query(sql, params)
        return next(iter(rows[0].values())) if rows else None

    def insert(self, table: str, rows: Sequence[dict]) -> int:
        if rows:
            pause_point("write")
            self._run(f"INSERT INTO {table} FORMAT JSONEachRow\n{json_each_row(rows)}")
        return len(rows)

    def insert_binary(self, table: str, rows: Sequence[dict]) -> int:
        """`insert` for rows with float vectors, sent as RowBinary: each row holds every column `table`
        takes on insert, encoded by the type the table declares (so the types live in the schema only)."""
        if rows:
            columns = self.insert_columns(table)
            missing = sorted({name for name, _ in columns} - rows[0].keys())
            if missing:
                raise StoreError(f"insert_binary into {table}: the rows lack the column(s) {', '.join(missing)}")
            pause_point("write")
            self._insert_row_binary(table, [name for name, _ in columns], row_binary(columns, rows))
        return len(rows)

    def insert_columns(self, table: str) -> list[tuple[str, str]]:
        """The (name, type) of the columns `table` takes on insert, in its order: read once per session."""
        if table not in self._insert_columns:
            rows = self.query(
                "SELECT name, type FROM system.columns WHERE database = currentDatabase() AND table = {table} "
                "AND default_kind NOT IN ('MATERIALIZED', 'ALIAS', 'EPHEMERAL') ORDER BY position",
                {"table": table},
            )
            if not rows:
                raise StoreError(f"insert_binary: no table {table} in the store")
            self._insert_columns[table] = [(row["name"], row["type"]) for row in rows]
        return self._insert_columns[table]

    def delete_where(self, table: str, where: str, params: dict | None = None) -> None:
        """Delete the rows matching `where`. A DELETE is a mutation that costs far more than a count
        even when nothing matches (0.4 s against 0.01-0.05 s on report_events), and first writes
        usually match nothing, so it runs only when a row matches."""
        if int(self.scalar(f"SELECT count() FROM {table} WHERE {where}", params)):
            self.command(f"DELETE FROM {table} WHERE {where}", params)

    def replace_partition(
        self, table: str, where: str, rows: Sequence[dict], params: dict | None = None, binary: bool = False
    ) -> int:
        """Idempotent partition write: delete the rows matching `where`, then insert `rows` (as RowBinary
        with `binary`, see `insert_binary`)."""
        self.delete_where(table, where, params)
        return self.insert_binary(table, rows) if binary else self.insert(table, rows)

    def apply_schema(self, vector_index_dimensions: int = 0) -> None:
        """Create the base tables, then add the columns that tables created by an older version lack
        (each `ALTER TABLE t ADD COLUMN IF NOT EXISTS c …` statement runs only when `c` is missing) and
        drop the tables a new one replaces (`DROP TABLE IF EXISTS old`, run only while `old` exists);
        with `vector_index_dimensions`, also the embeddings' HNSW index."""
        # Every session starts here: one read of the columns present, and a statement only for what is missing.
        present = self._columns()
        tables = {table for table, _ in present}
        additions, created = [], False
        for path in sorted(SCHEMA_DIR.glob("*.sql")):
            create, *alters = [s for s in path.read_text().split(";\n") if s.strip()]
            table = _CREATE_TABLE.search(create)
            if table is None:
                raise StoreError(f"schema: {path.name} must start with CREATE TABLE IF NOT EXISTS <table>")
            if table["table"] not in tables:
                self.command(create)
                created = True
            for sql in alters:
                dropped = _DROP_TABLE.match(sql)
                if dropped is None:
                    additions.append(sql)
                elif dropped["table"] in tables:  # after its replacement exists: a kill in between drops it next time
                    self.command(sql)
        wanted = [(_ADD_COLUMN.search(sql), sql) for sql in additions]
        if vector_index_dimensions:
            self.ensure_vector_index(vector_index_dimensions)
        if not wanted:
            return
        if created:
            present = self._columns()
        for match, sql in wanted:
            if match is None:
                raise StoreError(
                    "schema: only ALTER TABLE … ADD COLUMN IF NOT EXISTS or DROP TABLE IF EXISTS may follow a "
                    f"CREATE TABLE:\n{sql}"
                )
            if (match["table"], match["column"]) not in present:
                self.command(sql)

    def _columns(self) -> set[tuple[str, str]]:
        rows = self.query("SELECT table, name FROM system.columns WHERE database = currentDatabase()")
        return {(r["table"], r["name"]) for r in rows}

    def vector_index_type(self) -> str | None:
        """The HNSW index definition on `signal_embeddings`, or None when there is none."""
        return self.scalar(
            "SELECT type_full FROM system.data_skipping_indices "
            "WHERE database = currentDatabase() AND table = 'signal_embeddings' AND name = {name}",
            {"name": VECTOR_INDEX_NAME},
        )

    def ensure_vector_index(self, dimensions: int) -> bool:
        """Add the index once and build it for the rows already stored; True when it was added now.

        The build of existing parts is a mutation that runs in the background (new parts are
        indexed as they are written), so this never holds the store for long."""
        existing = self.vector_index_type()
        if existing is not None:
            if not re.search(rf"'cosineDistance', {dimensions}\b", existing):
                raise StoreError(
                    f"SIGNALS_CLICKHOUSE_VECTOR_DIMENSIONS={dimensions} does not match the existing index "
                    f"{VECTOR_INDEX_NAME} ({existing}); drop it with ALTER TABLE signal_embeddings DROP INDEX "
                    f"{VECTOR_INDEX_NAME} to rebuild it"
                )
            return False
        self.command(VECTOR_INDEX_SQL.read_text(), {"dimensions": dimensions})
        self.command(f"ALTER TABLE signal_embeddings MATERIALIZE INDEX {VECTOR_INDEX_NAME}")
        return True


@contextmanager
def lent_session(
    open_session: Callable[[], AbstractContextManager[StoreSession]], hold: bool = True
) -> Iterator[Callable[[], AbstractContextManager[StoreSession]]]:
    """With `hold`, a stand-in for `open_session` that opens one session on first use and lends it to
    every `with session()` in the block, closing it at the end: for a step that calls no model between
    its store work, so opening the store (chdb's start, the schema check) is paid once, not per use.
    Without `hold`, `open_session` itself: a session per use, released in between."""
    if not hold:
        yield open_session
        return
    held: list[StoreSession] = []
    with ExitStack() as stack:

        @contextmanager
        def session() -> Iterator[StoreSession]:
            if not held:
                held.append(stack.enter_context(open_session()))
            yield held[0]

        yield session


class FileLock:
    """Exclusive cross-process lock; says who holds it while waiting."""

    def __init__(
        self,
        path: Path,
        timeout_seconds: float,
        log: Callable[[str], None] | None = None,
        what: str = "the ClickHouse store",
    ):
        self.path = path
        self.what = what  # what the lock guards, for the messages
        self.timeout_seconds = timeout_seconds
        self.log = log or (lambda message: None)
        self._handle = None

    def __enter__(self) -> "FileLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+")
        deadline = time.monotonic() + self.timeout_seconds
        announced = False
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not announced:
                    handle.seek(0)
                    holder = handle.read().strip() or "another process"
                    self.log(f"waiting for {self.what} at {self.path.parent} (held by {holder})")
                    announced = True
                if time.monotonic() > deadline:
                    handle.close()
                    raise StoreError(
                        f"timed out after {self.timeout_seconds:.0f}s waiting for the lock of {self.what} {self.path}"
                    ) from None
                time.sleep(0.05)
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}")
        handle.flush()
        self._handle = handle
        return self

    def __exit__(self, *exc) -> None:
        handle, self._handle = self._handle, None
        if handle is not None:
            handle.truncate(0)
            fcntl.flock(handle, fcntl.LOCK_UN)
            handle.close()


@contextmanager
def open_chdb(path: Path, database: str, lock_timeout_seconds: float = 600, log=None) -> Iterator[StoreSession]:
    path.mkdir(parents=True, exist_ok=True)
    with FileLock(path / ".store.lock", lock_timeout_seconds, log):
        from chdb import session as chdb_session

        conn = chdb_session.Session(str(path / "data"))
        try:
            conn.query(f"CREATE DATABASE IF NOT EXISTS {database}")
            conn.query(f"USE {database}")
            for name, value in SESSION_SETTINGS.items():
                conn.query(f"SET {name} = {value}")

            def run(sql: str) -> bytes:
                try:
                    return conn.query(sql).bytes()
                except Exception as error:  # chdb raises its own error type
                    raise StoreError(f"{error}\n--- SQL ---\n{statement_for_error(sql)}") from error

            def insert_row_binary(table: str, columns: list[str], data: bytes) -> None:
                # chdb takes a query as text only: the rows go through a file, with the table's column types
                with tempfile.NamedTemporaryFile(suffix=".rowbinary") as rows:
                    rows.write(data)
                    rows.flush()
                    run(
                        f"INSERT INTO {table} ({', '.join(columns)}) SELECT * FROM file({sql_literal(rows.name)}, 'RowBinary')"
                    )

            yield StoreSession(run, insert_row_binary)
        finally:
            conn.close()


def server_name(url: str) -> str:
    """`url` without its user, password, path and query: safe to show."""
    parsed = urlsplit(url)
    return f"{parsed.scheme}://{parsed.hostname or ''}" + (f":{parsed.port}" if parsed.port else "")


@contextmanager
def open_server(url: str, database: str, username: str, password: str, secure: bool) -> Iterator[StoreSession]:
    """A ClickHouse server through clickhouse-connect (`url` is its DSN, e.g. https://host:8443), or chDB's
    own backend of that client (`chdb:///path`), which the tests use.

    `secure` forces TLS; otherwise the URL's scheme decides (clickhouse-connect itself would go by the port:
    TLS on 443 and 8443 only, so https://host would send the password in clear)."""
    import clickhouse_connect
    from clickhouse_connect.driver.exceptions import OperationalError

    options = {"dsn": url, "username": username or None, "password": password}
    if not url.lower().startswith("chdb:"):
        options["interface"] = "https" if secure or url.lower().startswith("https:") else "http"
    try:
        with clickhouse_connect.get_client(**options) as bootstrap:
            bootstrap.command(f"CREATE DATABASE IF NOT EXISTS {database}")
    except OperationalError as error:  # unreachable, refused, TLS failed
        raise StoreError(f"cannot reach the ClickHouse server at {server_name(url)}: {error}") from error
    client = clickhouse_connect.get_client(**options, database=database, settings=SESSION_SETTINGS)
    try:

        def run(sql: str) -> bytes:
            try:
                result = client.raw_query(sql)
            except Exception as error:
                raise StoreError(f"{error}\n--- SQL ---\n{statement_for_error(sql)}") from error
            return result if isinstance(result, bytes) else str(result).encode()

        def insert_row_binary(table: str, columns: list[str], data: bytes) -> None:
            try:
                client.raw_insert(table, columns, insert_block=data, fmt="RowBinary")
            except Exception as error:
                raise StoreError(f"{error}\n--- INSERT INTO {table} ({', '.join(columns)}) FORMAT RowBinary") from error

        yield StoreSession(run, insert_row_binary)
    finally:
        client.close()


@contextmanager
def open_store(
    url: str,
    path: Path | str,
    database: str,
    username: str = "",
    password: str = "",
    secure: bool = False,
    vector_index_dimensions: int = 0,
    lock_timeout_seconds: float = 600,
    log: Callable[[str], None] | None = None,
) -> Iterator[StoreSession]:
    """The store with its schema applied: the server at `url` when set, else embedded chdb under `path`.

    The one way the Dagster resource and the CLI open it; hold it only for quick reads and writes."""
    opener = (
        open_server(url, database, username, password, secure)
        if url
        else open_chdb(Path(path), database, lock_timeout_seconds, log)
    )
    with opener as store:
        store.apply_schema(vector_index_dimensions)
        yield store
