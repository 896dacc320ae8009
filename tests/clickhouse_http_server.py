"""ClickHouse's HTTP interface served by the chdb engine, for the store's `server` test cases.

No modern ClickHouse server binary can be installed on the test machines (Debian ships 18.16, too old
for the schema; PyPI and npm ship only the in-process chdb engine), so the `server` cases of
tests/test_store.py run the production clickhouse-connect code over real HTTP against this process.
The SQL runs in the ClickHouse engine chdb embeds; this file implements only the HTTP protocol
layer a ClickHouse server puts around it, as clickhouse-connect uses it:

- the query in the `query` URL parameter and/or the POST body; for `INSERT ... FORMAT F` the rest of
  the body (after the statement, or all of it when the statement is in the URL) is the data;
- settings as URL parameters (unknown ones fail as in ClickHouse), `param_<name>` query parameters,
  `database`, `default_format`, `query_id`;
- `session_id` sessions that keep their current database and `SET` settings, expire after
  `session_timeout` seconds, and refuse concurrent use (code 373, as ClickHouse does);
- `Content-Encoding` request bodies and `Accept-Encoding` responses (lz4 frame, gzip, deflate, br)
  when `enable_http_compression=1`;
- `X-ClickHouse-Query-Id`, `-Format`, `-Timezone`, `-Server-Display-Name`, `-Summary` response
  headers; errors as HTTP 500 with ClickHouse's `Code: N. DB::Exception: ...` text and the
  `X-ClickHouse-Exception-Code` header; Basic / `X-ClickHouse-User` authentication (code 516);
- `GET /ping`. Every query it ran is appended to `--log` (one JSON line each), so a test can prove
  the server path was really used.

What it cannot show is a separate ClickHouse server's own behaviour (its own HTTP handler, server
settings, users and quotas, TLS, concurrent queries: queries here run one at a time).

Run: python tests/clickhouse_http_server.py --data DIR [--port 0] [--user U --password P] [--log FILE]; the first line on
stdout is the URL it listens on.
"""

import argparse
import base64
import gzip
import json
import os
import re
import signal
import tempfile
import threading
import time
import uuid
import zlib
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

# URL parameters that are part of the HTTP protocol, not ClickHouse settings.
PROTOCOL_PARAMS = {
    "query",
    "database",
    "default_format",
    "query_id",
    "session_id",
    "session_timeout",
    "session_check",
    "user",
    "password",
    "quota_key",
    "buffer_size",
    "wait_end_of_query",
    "compress",
    "decompress",
    "client_protocol_version",
    "role",
}
INSERT_DATA = re.compile(rb"^\s*INSERT\s.*?\b(FORMAT\s+(\w+))[ \t]*(?:\r?\n)?", re.IGNORECASE | re.DOTALL)
TRAILING_FORMAT = re.compile(r"\bFORMAT\s+(\w+)\s*;?\s*$", re.IGNORECASE)
SET_STATEMENT = re.compile(r"^\s*SET\s+(.*?);?\s*$", re.IGNORECASE | re.DOTALL)
USE_STATEMENT = re.compile(r"^\s*USE\s+`?(\w+)`?\s*;?\s*$", re.IGNORECASE)
DROP_DATABASE = re.compile(r"^\s*DROP\s+DATABASE\b", re.IGNORECASE)
ERROR_CODE = re.compile(r"Code: (\d+)\.")
NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class ClickHouseError(Exception):
    def __init__(self, code: int, name: str, message: str):
        super().__init__(f"Code: {code}. DB::Exception: {message}. ({name})")
        self.code = code


def split_assignments(text: str) -> dict[str, str]:
    """`a = 1, b = 'x, y'` -> {a: "1", b: "'x, y'"}: commas inside quotes do not split."""
    parts, current, quote = [], "", ""
    for char in text:
        if quote:
            quote = "" if char == quote and not current.endswith("\\") else quote
        elif char in "'\"`":
            quote = char
        elif char == ",":
            parts.append(current)
            current = ""
            continue
        current += char
    parts.append(current)
    pairs = {}
    for part in parts:
        name, sep, value = part.partition("=")
        if not sep:
            raise ClickHouseError(
                62, "SYNTAX_ERROR", f"Syntax error: expected `name = value` in SET, got {part.strip()!r}"
            )
        pairs[name.strip()] = value.strip()
    return pairs


def sql_literal(value: str) -> str:
    """A URL setting value as SQL: numbers as they are, anything else as a quoted string."""
    if re.fullmatch(r"-?\d+(\.\d+)?", value):
        return value
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def decompress(body: bytes, encoding: str) -> bytes:
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding == "lz4":
        import lz4.frame

        return lz4.frame.decompress(body)
    if encoding == "gzip":
        return gzip.decompress(body)
    if encoding == "deflate":
        return zlib.decompress(body)
    if encoding == "br":
        import brotli

        return brotli.decompress(body)
    raise ClickHouseError(1, "UNSUPPORTED_METHOD", f"Unknown Content-Encoding of HTTP request: {encoding}")


def compress(body: bytes, accept: str) -> tuple[bytes, str]:
    """The response in the first encoding of Accept-Encoding this server can write."""
    for encoding in (part.split(";")[0].strip().lower() for part in accept.split(",")):
        if encoding == "lz4":
            import lz4.frame

            return lz4.frame.compress(body), encoding
        if encoding == "gzip":
            return gzip.compress(body), encoding
        if encoding == "deflate":
            return zlib.compress(body), encoding
    return body, ""


@dataclass
class Session:
    database: str
    settings: dict[str, str] = field(default_factory=dict)
    timeout: float = 60.0
    last_used: float = field(default_factory=time.monotonic)
    busy: threading.Lock = field(default_factory=threading.Lock)


class Engine:
    """One chdb session serialised by a lock; each request's database and settings are applied first."""

    def __init__(self, data: str, user: str, password: str, log_path: str | None):
        from chdb import session as chdb_session

        self.conn = chdb_session.Session(data)
        self.lock = threading.Lock()
        self.user, self.password = user, password
        self.log_path = log_path
        self.sessions: dict[str, Session] = {}
        self.sessions_lock = threading.Lock()
        self.applied: dict[str, str] = {}  # settings currently SET on the chdb session
        self.current_database = ""  # of the chdb session: USE only when a request needs another
        self.known_settings = set(self.raw("SELECT name FROM system.settings", "TSV").decode().split())
        self.timezone = self.raw("SELECT timezone()", "TSV").decode().strip()
        self.version = self.raw("SELECT version()", "TSV").decode().strip()

    def raw(self, sql: str, fmt: str, params: dict | None = None):
        return self.conn.query(sql, fmt, params=params or {}).bytes()

    def session(self, session_id: str, timeout: float, database: str) -> Session:
        with self.sessions_lock:
            now = time.monotonic()
            for key in [k for k, s in self.sessions.items() if now - s.last_used > s.timeout and not s.busy.locked()]:
                del self.sessions[key]
            found = self.sessions.get(session_id)
            if found is None:
                found = self.sessions[session_id] = Session(database=database, timeout=timeout)
            found.timeout = timeout
            return found

    def apply_settings(self, wanted: dict[str, str]) -> None:
        for name in [n for n in self.applied if n not in wanted]:
            self.conn.query(f"SET {name} = DEFAULT", "TSV")
            del self.applied[name]
        for name, value in wanted.items():
            if self.applied.get(name) != value:
                self.conn.query(f"SET {name} = {value}", "TSV")
                self.applied[name] = value

    def run(self, sql: str, data: tuple[str, bytes] | None, fmt: str, database: str, settings: dict, params: dict):
        """The query's result bytes and read statistics, run with the request's database and settings."""
        with self.lock:
            if database != self.current_database:
                self.raw(f"USE {database}", "TSV")
                self.current_database = database
            self.apply_settings(settings)
            started = time.perf_counter_ns()
            if data is None:
                result = self.conn.query(sql, fmt, params=params)
            else:
                # chdb reads INSERT data from a file, not from the request; the statement's own
                # FORMAT clause names the data's format.
                data_format, payload = data
                with tempfile.NamedTemporaryFile(suffix=".data", delete=False) as handle:
                    handle.write(payload)
                try:
                    infile = f" FROM INFILE '{handle.name}' FORMAT {data_format}"
                    result = self.conn.query(sql + infile, fmt, params=params)
                finally:
                    os.unlink(handle.name)
            elapsed = time.perf_counter_ns() - started
            use = USE_STATEMENT.match(sql)
            if use or DROP_DATABASE.match(sql):
                self.current_database = use.group(1) if use else ""  # a dropped one must fail its next USE
            body = result.bytes()
            summary = {
                "read_rows": str(result.rows_read()),
                "read_bytes": str(result.bytes_read()),
                "elapsed_ns": str(elapsed),
            }
        return body, summary

    def log(self, entry: dict) -> None:
        if self.log_path:
            with self.sessions_lock, open(self.log_path, "a") as log:
                log.write(json.dumps(entry) + "\n")


class Handler(BaseHTTPRequestHandler):
    server_version = "ClickHouse"
    protocol_version = "HTTP/1.1"
    engine: Engine

    def log_message(self, format, *args):  # noqa: A002 - the stdlib's signature
        pass  # quiet: the query log is the record

    def do_GET(self):
        self.handle_request(b"")

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            body = self.read_chunked()
        else:
            body = self.rfile.read(length)
        self.handle_request(body)

    def read_chunked(self) -> bytes:
        chunks = []
        while True:
            size = int(self.rfile.readline().split(b";")[0].strip(), 16)
            if size == 0:
                self.rfile.readline()
                return b"".join(chunks)
            chunks.append(self.rfile.read(size))
            self.rfile.readline()

    def handle_request(self, body: bytes) -> None:
        url = urlsplit(self.path)
        if url.path in ("/ping", "/") and not url.query and not body:
            return self.reply(200, b"Ok.\n", {"Content-Type": "text/html; charset=UTF-8"})
        query_id = ""
        try:
            params = dict(parse_qsl(url.query, keep_blank_values=True))
            query_id = params.get("query_id") or str(uuid.uuid4())
            self.authenticate(params)
            body = decompress(body, self.headers.get("Content-Encoding", ""))
            self.run_query(params, body, query_id)
        except ClickHouseError as error:
            self.fail(error.code, str(error), query_id)
        except Exception as error:  # chdb's own errors carry ClickHouse's code and text
            text = str(error)
            start = text.find("Code: ")
            text = text[start:] if start >= 0 else f"Code: 1001. DB::Exception: {text}. (STD_EXCEPTION)"
            match = ERROR_CODE.search(text)
            self.fail(int(match.group(1)) if match else 1001, text.strip(), query_id)

    def authenticate(self, params: dict) -> None:
        user, password = params.get("user", ""), params.get("password", "")
        header = self.headers.get("Authorization", "")
        if header.startswith("Basic "):
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        user = self.headers.get("X-ClickHouse-User", user) or "default"
        password = self.headers.get("X-ClickHouse-Key", password)
        if (user, password) != (self.engine.user, self.engine.password):
            raise ClickHouseError(
                516,
                "AUTHENTICATION_FAILED",
                f"{user}: Authentication failed: password is incorrect, or there is no user with such name",
            )

    def run_query(self, params: dict, body: bytes, query_id: str) -> None:
        engine = self.engine
        url_query = params.get("query", "").encode()
        text = url_query + (b"\n" + body if url_query and body else body)
        data = None
        insert = INSERT_DATA.match(text)
        if insert and insert.end() < len(text):
            data = (insert.group(2).decode(), text[insert.end() :])
            text = text[: insert.start(1)]  # the statement without its FORMAT: the data comes FROM INFILE
        sql = text.decode().strip()
        if not sql:
            raise ClickHouseError(62, "SYNTAX_ERROR", "Empty query")

        settings = {}
        query_params = {}
        for name, value in params.items():
            if name.startswith("param_"):
                query_params[name[6:]] = value
            elif name not in PROTOCOL_PARAMS:
                if not NAME.match(name) or name not in engine.known_settings:
                    raise ClickHouseError(115, "UNKNOWN_SETTING", f"Unknown setting '{name}'")
                settings[name] = sql_literal(value)

        session = None
        database = params.get("database") or "default"
        if params.get("session_id"):
            timeout = float(params.get("session_timeout") or 60)
            if params.get("session_check") == "1" and params["session_id"] not in engine.sessions:
                raise ClickHouseError(372, "SESSION_NOT_FOUND", f"Session {params['session_id']} not found")
            session = engine.session(params["session_id"], timeout, database)
            if not session.busy.acquire(blocking=False):
                raise ClickHouseError(
                    373, "SESSION_IS_LOCKED", f"Session {params['session_id']} is locked by a concurrent client"
                )
            database = params.get("database") or session.database
            settings = {**session.settings, **settings}
        try:
            fmt = params.get("default_format") or "TabSeparated"
            trailing = TRAILING_FORMAT.search(sql) if data is None else None
            result, summary = engine.run(sql, data, fmt, database, settings, query_params)
            if session is not None:
                self.remember(session, sql)
        finally:
            if session is not None:
                session.last_used = time.monotonic()
                session.busy.release()

        headers = {
            "Content-Type": "application/octet-stream" if trailing else "text/tab-separated-values; charset=UTF-8",
            "X-ClickHouse-Query-Id": query_id,
            "X-ClickHouse-Format": trailing.group(1) if trailing else fmt,
            "X-ClickHouse-Timezone": engine.timezone,
            "X-ClickHouse-Server-Display-Name": "chdb-http-test-server",
            "X-ClickHouse-Summary": json.dumps(summary),
        }
        if params.get("session_id"):
            headers["X-ClickHouse-Session-Id"] = params["session_id"]
        encoding = ""
        if settings.get("enable_http_compression") == "1":
            result, encoding = compress(result, self.headers.get("Accept-Encoding", ""))
            if encoding:
                headers["Content-Encoding"] = encoding
        engine.log(
            {
                "query": sql,
                "database": database,
                "session_id": params.get("session_id", ""),
                "settings": settings,
                "insert_format": data[0] if data else "",
                "response_encoding": encoding,
            }
        )
        self.reply(200, result, headers)

    def remember(self, session: Session, sql: str) -> None:
        """What a session keeps for its next queries: the database of `USE` and the settings of `SET`."""
        use = USE_STATEMENT.match(sql)
        if use:
            session.database = use.group(1)
        assignment = SET_STATEMENT.match(sql)
        if assignment:
            session.settings.update(split_assignments(assignment.group(1)))

    def fail(self, code: int, message: str, query_id: str) -> None:
        if f"(version {self.engine.version})" not in message:
            message = f"{message} (version {self.engine.version})"
        headers = {
            "Content-Type": "text/plain; charset=UTF-8",
            "X-ClickHouse-Exception-Code": str(code),
            "X-ClickHouse-Query-Id": query_id,
        }
        self.reply(500, (message + "\n").encode(), headers)

    def reply(self, status: int, body: bytes, headers: dict) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True, help="directory of the chdb engine's data")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0: any free port")
    parser.add_argument("--user", default="default")
    parser.add_argument("--password", default="")
    parser.add_argument("--log", help="file to append every query it runs to, one JSON line each")
    args = parser.parse_args()
    # SIGTERM stops this server whatever its parent left: an ignored SIGTERM survives exec, and a test
    # process started with SIGINT ignored (a background job of a non-interactive shell, as in CI) has
    # one after any in-process Dagster run, which sets SIGTERM's handler to SIGINT's.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    Handler.engine = Engine(args.data, args.user, args.password, args.log)
    server = ThreadingHTTPServer((args.host, args.port), Handler)
    print(f"http://{args.host}:{server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
