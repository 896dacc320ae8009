"""The ClickHouse store on every engine: the same dbt_like_sql files and queries everywhere.

Engines:
- `chdb`: embedded chdb (`open_chdb`), the default;
- `clickhouse-connect`: the server code path (`open_server`) through clickhouse-connect, on the
  chDB backend clickhouse-connect ships (`chdb:///path`), so it runs everywhere without a server
  (the client API, settings and errors are clickhouse-connect's; only HTTP itself is not exercised);
- `server`: a ClickHouse server over HTTP(S): the one at SIGNALS_TEST_CLICKHOUSE_URL when it is set
  (with SIGNALS_TEST_CLICKHOUSE_USER / _PASSWORD / _SECURE), else tests/clickhouse_http_server.py,
  ClickHouse's HTTP interface around the chdb engine in a separate process, started once for the
  module. Each test gets its own database, dropped afterwards.
"""

import ast
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from datetime import datetime, timezone

import dagster as dg
import numpy as np
import pytest

from signals_assets.definitions import defs
from signals_assets.resources.clickhouse import ClickHouseResource
from signals_assets.resources.environment import build_resources
from signals_assets.sensors.report_promotion import promotions_from_metadata
from signals_assets.settings import load_settings
from signals_assets.storage.clickhouse import SCHEMA_DIR, StoreError, lent_session, open_server, render

from conftest import CARD_DECLINED, PASSWORD_RESET, REPO_ROOT, group_one_batch

# The SQL model tests of test_sql_models, collected again here with this module's `store` fixture.
from test_sql_models import (
    BASE_ROWS,
    test_a_model_switches_between_view_and_table as test_model_switches_between_view_and_table,  # noqa: F401
    test_models_on_chdb as test_models,  # noqa: F401
    test_subset_materializes_only_the_selected_models as test_model_subset,  # noqa: F401
)

ENGINES = ["chdb", "clickhouse-connect", "server"]
T0 = datetime(2026, 11, 24, 9, 30, 15, 123000, tzinfo=timezone.utc)


def start_local_server(root, *launcher: str, options: tuple[str, ...] = ()) -> tuple[subprocess.Popen, str]:
    """tests/clickhouse_http_server.py in its own process with `options` (`--user`, `--password`), run through
    `launcher` if given; once its URL is on stdout."""
    command = [sys.executable, str(REPO_ROOT / "tests" / "clickhouse_http_server.py"), "--data", str(root / "data")]
    process = subprocess.Popen(
        [*launcher, *command, "--log", str(root / "queries.jsonl"), *options], stdout=subprocess.PIPE, text=True
    )
    url = process.stdout.readline().strip()
    assert url.startswith("http://"), f"the ClickHouse HTTP test server did not start (exit {process.poll()})"
    return process, url


def stop_local_server(process: subprocess.Popen) -> float:
    """SIGTERM; the seconds it took to stop. One that outlives SIGTERM by 10 s is killed and fails the caller."""
    started = time.monotonic()
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        raise AssertionError("the ClickHouse HTTP test server outlived SIGTERM by 10 s: killed") from None
    finally:
        process.stdout.close()
    return time.monotonic() - started


@pytest.fixture(scope="module")
def local_server(tmp_path_factory):
    """tests/clickhouse_http_server.py in its own process: its URL and the file it logs queries to."""
    root = tmp_path_factory.mktemp("clickhouse-http")
    process, url = start_local_server(root)
    try:
        yield {"url": url, "log": root / "queries.jsonl"}
    finally:
        print(f"the ClickHouse HTTP test server stopped {stop_local_server(process):.2f} s after SIGTERM")


def test_the_local_server_stops_on_sigterm_even_when_its_parent_ignores_sigterm(tmp_path):
    """A test process started with SIGINT ignored (a background job of a non-interactive shell, as in CI)
    ignores SIGTERM after its first in-process Dagster run (Dagster gives SIGTERM SIGINT's handler), and
    its children inherit that: the server must stop on SIGTERM anyway."""
    ignoring = (
        "import os, signal, sys; signal.signal(signal.SIGTERM, signal.SIG_IGN); os.execv(sys.argv[1], sys.argv[1:])"
    )
    process, _ = start_local_server(tmp_path, sys.executable, "-c", ignoring)
    stop_local_server(process)
    assert process.returncode == -signal.SIGTERM


@pytest.fixture(scope="module")
def server_options(request) -> dict:
    """The server of the `server` cases: SIGNALS_TEST_CLICKHOUSE_URL's if set, else the local one."""
    url = os.environ.get("SIGNALS_TEST_CLICKHOUSE_URL", "").strip()
    return {
        "url": url or request.getfixturevalue("local_server")["url"],
        "username": os.environ.get("SIGNALS_TEST_CLICKHOUSE_USER", "default"),
        "password": os.environ.get("SIGNALS_TEST_CLICKHOUSE_PASSWORD", ""),
        "secure": os.environ.get("SIGNALS_TEST_CLICKHOUSE_SECURE", "").lower() in ("1", "true", "yes"),
    }


@pytest.fixture(params=ENGINES)
def engine(request, tmp_path):
    """Keyword arguments for a ClickHouseResource on the engine; the database is private to the test."""
    if request.param == "chdb":
        yield {"path": str(tmp_path / "chdb")}
    elif request.param == "clickhouse-connect":
        yield {"url": f"chdb://{tmp_path / 'chdb-connect'}"}
    else:
        options = {**request.getfixturevalue("server_options"), "database": f"signals_test_{uuid.uuid4().hex[:12]}"}
        yield options
        with ClickHouseResource(**options).session() as db:
            db.command(f"DROP DATABASE IF EXISTS {options['database']}")


@pytest.fixture
def backend(engine) -> ClickHouseResource:
    return ClickHouseResource(**engine)


@pytest.fixture
def store(backend) -> ClickHouseResource:
    with backend.session() as db:
        for table, rows in BASE_ROWS.items():
            db.insert(table, rows)
    return backend


def test_the_server_cases_go_over_http_through_clickhouse_connect(local_server, monkeypatch):
    """The `server` cases are not chdb in-process under another name: the store's client is
    clickhouse-connect's HTTP client at the server's URL, and the server process ran its statements."""
    import clickhouse_connect
    from clickhouse_connect.driver.httpclient import HttpClient

    clients = []
    connect = clickhouse_connect.get_client

    def recording_get_client(**options):
        clients.append(connect(**options))
        return clients[-1]

    monkeypatch.setattr(clickhouse_connect, "get_client", recording_get_client)
    database = f"signals_test_{uuid.uuid4().hex[:12]}"
    row = {"team_id": 7, "signal_id": "s1", "batch_key": "b1", "model": "m", "dimension": 1, "embedding": [0.5]}
    with ClickHouseResource(url=local_server["url"], database=database).session() as db:
        db.insert("signal_embeddings", [{**row, "embedded_at": T0}])
        stored = db.scalar("SELECT signal_id FROM signal_embeddings WHERE team_id = {team}", {"team": 7})
        with pytest.raises(StoreError, match=r"Code: 60\. DB::Exception: .*UNKNOWN_TABLE"):
            db.query("SELECT * FROM no_such_table")
        db.command(f"DROP DATABASE {database}")

    assert stored == "s1"
    assert clients and all(isinstance(c, HttpClient) and c.url == local_server["url"] for c in clients)
    ran = [json.loads(line) for line in local_server["log"].read_text().splitlines()]
    mine = [q for q in ran if q["database"] == database]
    inserts = [q for q in mine if q["query"].startswith("INSERT INTO signal_embeddings")]
    selects = [q for q in mine if "SELECT signal_id FROM signal_embeddings WHERE team_id = 7" in q["query"]]
    assert [q["insert_format"] for q in inserts + selects] == ["JSONEachRow", ""]
    # The store's session settings travel as URL parameters, in the client's session.
    assert all(q["settings"]["max_query_size"] == str(256 * 1024 * 1024) and q["session_id"] for q in inserts + selects)


def test_schema_creates_every_base_table_in_the_database(backend):
    with backend.session() as db:
        db.apply_schema()  # idempotent
        tables = {r["name"] for r in db.query("SELECT name FROM system.tables WHERE database = currentDatabase()")}
        database = db.scalar("SELECT currentDatabase()")
    assert tables == {path.stem for path in SCHEMA_DIR.glob("*.sql")}
    assert database == backend.database


def test_a_session_restores_a_missing_table_and_a_missing_column(backend):
    """Each session reads the columns present once and creates only what is missing: a dropped table
    comes back, and so does a column an older version of a table lacks."""
    with backend.session() as db:
        db.command("DROP TABLE research_results")
        db.command("ALTER TABLE report_events DROP COLUMN weight_after_batch")
    with backend.session() as db:
        tables = {r["name"] for r in db.query("SELECT name FROM system.tables WHERE database = currentDatabase()")}
        columns = {
            r["name"]
            for r in db.query(
                "SELECT name FROM system.columns WHERE database = currentDatabase() AND table = 'report_events'"
            )
        }
    assert tables == {path.stem for path in SCHEMA_DIR.glob("*.sql")}
    assert "weight_after_batch" in columns


def test_values_round_trip_exactly(backend):
    # U+0085, U+2028 and U+001C are line breaks to str.splitlines: U+0085 reaches a JSON result unescaped
    text = "quote ' double \" backslash \\ newline \n tab \t unicode ✓ {placeholder} \u0085 \u2028 \x1c"
    row = {
        "team_id": 1,
        "signal_id": "s'1",
        "batch_key": "b1",
        "model": "m",
        "dimension": 3,
        "embedding": [0.25, -1.5, 3.0],
        "embedded_at": T0,
    }
    with backend.session() as db:
        db.insert("signal_embeddings", [row])
        db.insert(
            "report_summaries",
            [
                {
                    "team_id": 1,
                    "report_id": "r1",
                    "title": text,
                    "summary": "",
                    "central_signal_ids": ["a", "b'"],
                    "signal_count": 2,
                    "safety": "safe",
                    "actionability": "",
                    "priority": "",
                    "generated_at": T0,
                }
            ],
        )
        stored = db.query("SELECT * FROM signal_embeddings")
        title = db.scalar("SELECT title FROM report_summaries WHERE title = {title}", {"title": text})
        ids = db.scalar("SELECT central_signal_ids FROM report_summaries")
    assert stored == [{**row, "embedded_at": "2026-11-24 09:30:15.123"}]
    assert title == text and ids == ["a", "b'"]


def batch_embedding_rows(batch: str, n: int) -> list[dict]:
    return [
        {
            "team_id": 1,
            "signal_id": f"{batch}-{i}",
            "batch_key": batch,
            "model": "m",
            "dimension": 1,
            "embedding": [float(i)],
            "embedded_at": T0,
        }
        for i in range(n)
    ]


def test_replace_partition_is_idempotent_and_touches_only_its_partition(backend):
    with backend.session() as db:
        db.insert("signal_embeddings", batch_embedding_rows("b1", 3))
        for _ in range(2):
            db.replace_partition(
                "signal_embeddings", "batch_key = {batch}", batch_embedding_rows("b2", 2), {"batch": "b2"}
            )
        counts = db.query("SELECT batch_key, count() AS n FROM signal_embeddings GROUP BY batch_key ORDER BY batch_key")
    assert counts == [{"batch_key": "b1", "n": 3}, {"batch_key": "b2", "n": 2}]


def test_a_lent_session_opens_the_store_once_for_every_use_in_its_block(backend):
    opened = []

    def open_session():
        opened.append(1)
        return backend.session()

    with lent_session(open_session) as session:
        with session() as db:
            db.insert("signal_embeddings", batch_embedding_rows("b1", 2))
        with session() as db:  # the same session: it sees the write, and the store was opened once
            seen = db.scalar("SELECT count() FROM signal_embeddings")
    assert (seen, len(opened)) == (2, 1)
    with lent_session(open_session, hold=False) as session:
        for _ in range(2):
            with session() as db:
                db.scalar("SELECT 1")
    assert len(opened) == 3  # without hold, a session per use
    with backend.session() as db:  # the held session was closed: the store opens again
        assert db.scalar("SELECT count() FROM signal_embeddings") == 2


def test_range_embeddings_replace_their_batches_with_one_write_and_count_per_batch(backend):
    from signals_assets.ingestion.store import range_signals, write_embeddings

    b0, b1, b2, b3 = (f"b2026112{day}T093015123000Z" for day in range(4))
    signals = [
        {"team_id": 1, "signal_id": f"{batch}-{i}", "batch_key": batch, "description": f"text {i}"}
        for batch, n in ((b1, 2), (b2, 1))
        for i in range(n)
    ]
    with backend.session() as db:
        db.insert("signals", signals)
        db.insert("signal_embeddings", batch_embedding_rows(b0, 1) + batch_embedding_rows(b1, 5))  # b1: stale rows
        read = range_signals(db, [b2, b1])
        for _ in range(2):
            written = write_embeddings(db, [b1, b2, b3], "m", read, [[0.5], [0.25], [1.0]])
        stored = db.query("SELECT signal_id, embedding, embedded_at FROM signal_embeddings ORDER BY signal_id")
    assert [(s["batch_key"], s["signal_id"]) for s in read] == [(b1, f"{b1}-0"), (b1, f"{b1}-1"), (b2, f"{b2}-0")]
    assert written == {b1: 2, b2: 1, b3: 0}
    # Each batch's rows are replaced, stamped with its own batch time; the batch outside the range is untouched.
    assert stored == [
        {"signal_id": f"{b0}-0", "embedding": [0.0], "embedded_at": "2026-11-24 09:30:15.123"},
        {"signal_id": f"{b1}-0", "embedding": [0.5], "embedded_at": "2026-11-21 09:30:15.123"},
        {"signal_id": f"{b1}-1", "embedding": [0.25], "embedded_at": "2026-11-21 09:30:15.123"},
        {"signal_id": f"{b2}-0", "embedding": [1.0], "embedded_at": "2026-11-22 09:30:15.123"},
    ]


def test_a_binary_insert_stores_what_the_json_insert_stores_to_the_bit(backend):
    """RowBinary rows (the embeddings' write) against the same rows as JSON: every float32 bit pattern,
    quoted 64-bit integers as JSON results give them, non-ASCII ids, naive and aware times to the millisecond."""
    floats = np.array([0.1, 1 / 3, -0.0, 1e-40, 3.4028235e38, -7.25, 2.0**-20, 0.7071067811865476], np.float32)
    rows = [
        {
            "team_id": team_id,
            "signal_id": f"{prefix}-é’ {i}",
            "batch_key": "b20261121T093015123000Z",
            "model": "all-MiniLM-L6-v2",
            "dimension": len(floats),
            "embedding": np.roll(floats, i),
            "embedded_at": at,
        }
        for prefix, insert in (("json", "insert"), ("binary", "insert_binary"))
        for i, (team_id, at) in enumerate(
            [
                (1, datetime(2026, 11, 21, 9, 30, 15, 123456, tzinfo=timezone.utc)),
                ("18446744073709551615", T0.replace(tzinfo=None)),
            ]
        )
    ]
    with backend.session() as db:
        assert db.insert("signal_embeddings", rows[:2]) == 2
        assert db.insert_binary("signal_embeddings", rows[2:]) == 2
        assert db.insert_binary("signal_embeddings", []) == 0
        stored = db.query(
            "SELECT team_id, replaceOne(signal_id, 'binary', 'json') AS id, model, dimension, embedded_at, "
            "count() AS n FROM signal_embeddings GROUP BY ALL ORDER BY id"
        )
        json_vectors = db.vectors(
            "SELECT embedding FROM signal_embeddings WHERE signal_id LIKE 'json%' ORDER BY signal_id"
        )
        binary_vectors = db.vectors(
            "SELECT embedding FROM signal_embeddings WHERE signal_id LIKE 'binary%' ORDER BY signal_id"
        )
    assert [r.pop("n") for r in stored] == [2, 2]  # each JSON row and its binary twin agree on every column
    assert stored[0]["embedded_at"] == "2026-11-21 09:30:15.123"
    assert binary_vectors.view(np.uint32).tolist() == json_vectors.view(np.uint32).tolist()
    assert binary_vectors.view(np.uint32).tolist() == [np.roll(floats, i).view(np.uint32).tolist() for i in range(2)]


def test_a_binary_insert_takes_its_columns_and_types_from_the_table(backend):
    """The columns come from the table as it stands: one added to it must be in the rows (named when it
    is not), a MATERIALIZED one is computed by the store, and the replaced partition is written as RowBinary."""
    row = batch_embedding_rows("b20261121T093015123000Z", 1)[0]
    with backend.session() as db:
        db.command("ALTER TABLE signal_embeddings ADD COLUMN source String")
        db.command("ALTER TABLE signal_embeddings ADD COLUMN norm Float32 MATERIALIZED L2Norm(embedding)")
        with pytest.raises(
            StoreError, match=r"insert_binary into signal_embeddings: the rows lack the column\(s\) source"
        ):
            db.insert_binary("signal_embeddings", [row])
        assert db.scalar("SELECT count() FROM signal_embeddings") == 0
    with backend.session() as db:  # a new session reads the table again
        where = "batch_key = {batch}"
        for embedding in ([3.0, 4.0], [6.0, 8.0]):
            written = db.replace_partition(
                "signal_embeddings",
                where,
                [{**row, "dimension": 2, "embedding": embedding, "source": "é"}],
                {"batch": row["batch_key"]},
                binary=True,
            )
        stored = db.query("SELECT signal_id, source, embedding, norm FROM signal_embeddings")
    assert written == 1
    assert stored == [{"signal_id": row["signal_id"], "source": "é", "embedding": [6, 8], "norm": 10}]


def test_a_binary_insert_refuses_a_type_it_cannot_encode_and_never_shows_the_rows(backend):
    with backend.session() as db:
        db.command("CREATE TABLE weights (signal_id String, weight Float64) ENGINE = MergeTree ORDER BY signal_id")
        with pytest.raises(StoreError, match=r"no RowBinary encoder for the column type 'Float64'"):
            db.insert_binary("weights", [{"signal_id": "s", "weight": 0.5}])
        with pytest.raises(StoreError) as caught:
            db.insert_binary("no_such_table", [{"description": "another team's text"}])
        assert db.scalar("SELECT count() FROM weights") == 0
    assert "no_such_table" in str(caught.value) and "another team's text" not in str(caught.value)


def test_errors_name_the_sql(backend):
    with backend.session() as db, pytest.raises(StoreError, match="(?s)no_such_table.*--- SQL ---"):
        db.query("SELECT * FROM no_such_table")


def test_a_failed_insert_names_the_statement_but_not_the_rows(backend):
    with backend.session() as db, pytest.raises(StoreError) as caught:
        db.insert("no_such_table", [{"description": "another team's private text"}])
    assert "INSERT INTO no_such_table FORMAT JSONEachRow (rows not shown)" in str(caught.value)
    assert "private text" not in str(caught.value)


def placeholder_names() -> set[str]:
    """Every `{name}` in the code's string constants (f-string parts included) and SQL files: a superset
    of the query placeholders, which is harmless here."""
    texts = [path.read_text() for path in (REPO_ROOT / "dbt_like_sql").rglob("*.sql")]
    for path in (REPO_ROOT / "signals_assets").rglob("*.py"):
        texts += [
            node.value
            for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.Constant) and isinstance(node.value, str)
        ]
    return {name for text in texts for name in re.findall(r"\{(\w+)\}", text)}


def test_render_substitutes_in_one_pass():
    params = {"a": "{batch}", "batch": "{a}", "ids": ["{a}", "{batch}"]}
    assert render("{a} {batch} {ids} {other}", params) == "'{batch}' '{a}' ['{a}', '{batch}'] {other}"


def test_every_placeholder_name_as_a_value_round_trips_unchanged(backend):
    names = sorted(placeholder_names())
    assert {"batch", "team", "ids", "report", "limit", "status", "dimensions", "rounds", "since"} <= set(names)
    every = " ".join(f"{{{name}}}" for name in names)
    params = {name: f"{{{name}}} {every} quote ' backslash \\ nul \x00" for name in names}
    params["ids"] = [f"{{{name}}}" for name in names]
    sql = "SELECT " + ", ".join(f"{{{name}}} AS v{i}" for i, name in enumerate(names))
    with backend.session() as db:
        [row] = db.query(sql, params)
    assert [row[f"v{i}"] for i in range(len(names))] == [params[name] for name in names]


# --- the optional HNSW index ------------------------------------------------------------------------

UNIT = {"x": [1.0, 0.0, 0.0, 0.0], "y": [0.0, 1.0, 0.0, 0.0], "xy": [0.7, 0.7, 0.0, 0.0], "z": [0.0, 0.0, 1.0, 0.0]}
NEAREST = (
    "SELECT signal_id FROM signal_embeddings WHERE team_id = 1 AND model = 'm' "
    "ORDER BY cosineDistance(embedding, [0.9, 0.1, 0.0, 0.0]) LIMIT 2"
)


def embedding_rows(vectors: dict) -> list[dict]:
    return [
        {
            "team_id": 1,
            "signal_id": name,
            "batch_key": "b1",
            "model": "m",
            "dimension": len(v),
            "embedding": v,
            "embedded_at": T0,
        }
        for name, v in vectors.items()
    ]


def test_vector_index_is_added_built_for_existing_rows_and_used(engine):
    with ClickHouseResource(**engine).session() as db:  # rows stored before the index exists
        db.insert("signal_embeddings", embedding_rows({k: UNIT[k] for k in ("x", "y")}))
        assert db.vector_index_type() is None

    indexed = ClickHouseResource(**engine, vector_index_dimensions=4)
    with indexed.session() as db:
        assert db.vector_index_type() == "vector_similarity('hnsw', 'cosineDistance', 4, 'bf16', 16, 64)"
        db.insert("signal_embeddings", embedding_rows({k: UNIT[k] for k in ("xy", "z")}))
        nearest = [r["signal_id"] for r in db.query(NEAREST)]
        plan = "\n".join(str(r) for r in db.query("EXPLAIN indexes = 1 " + NEAREST))
        with pytest.raises(StoreError, match="expects 4 elements"):
            db.insert("signal_embeddings", embedding_rows({"short": [1.0, 0.0]}))
        assert not db.ensure_vector_index(4)  # already there
    assert nearest == ["x", "xy"]
    assert "embedding_hnsw" in plan and "vector_similarity" in plan

    with pytest.raises(StoreError, match="SIGNALS_CLICKHOUSE_VECTOR_DIMENSIONS=8 does not match"):
        with ClickHouseResource(**engine, vector_index_dimensions=8).session():
            pass


def test_vector_index_setting_reaches_the_resource(signals_home, monkeypatch):
    assert build_resources(load_settings())["clickhouse"].vector_index_dimensions == 0
    monkeypatch.setenv("SIGNALS_CLICKHOUSE_VECTOR_INDEX", "hnsw")
    monkeypatch.setenv("SIGNALS_CLICKHOUSE_VECTOR_DIMENSIONS", "1536")
    monkeypatch.setenv("SIGNALS_EMBEDDER", "openai")  # text-embedding-3-small's dimensions
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    assert build_resources(load_settings())["clickhouse"].vector_index_dimensions == 1536
    monkeypatch.setenv("SIGNALS_CLICKHOUSE_VECTOR_INDEX", "ivf")
    with pytest.raises(ValueError, match="SIGNALS_CLICKHOUSE_VECTOR_INDEX='ivf' is not one of none, hnsw"):
        load_settings()


def test_server_settings_reach_the_resource_and_the_password_stays_an_env_var(signals_home, monkeypatch):
    for name, value in {
        "SIGNALS_CLICKHOUSE_URL": "https://ch.example:8443",
        "SIGNALS_CLICKHOUSE_DATABASE": "prod",
        "SIGNALS_CLICKHOUSE_USER": "signals",
        "SIGNALS_CLICKHOUSE_SECURE": "true",
        "SIGNALS_CLICKHOUSE_PASSWORD": "",
    }.items():
        monkeypatch.setenv(name, value)
    resource = build_resources(load_settings())["clickhouse"]
    assert (resource.url, resource.database, resource.username, resource.secure) == (
        "https://ch.example:8443",
        "prod",
        "signals",
        True,
    )
    assert resource.engine == "clickhouse server"
    assert resource.password == dg.EnvVar("SIGNALS_CLICKHOUSE_PASSWORD")  # resolved at run launch, never stored
    assert isinstance(resource.password, dg.EnvVar)
    monkeypatch.setenv("SIGNALS_CLICKHOUSE_SECURE", "maybe")
    with pytest.raises(ValueError, match="SIGNALS_CLICKHOUSE_SECURE='maybe' must be true or false"):
        load_settings()


def first_bytes_sent_to(url: str, secure: bool = False) -> bytes:
    """What the store's client sends first to a listener at `url` (whose port is filled in): a TLS handshake
    starts with 0x16, plain HTTP with its method."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(10)
    url = url.format(port=listener.getsockname()[1])
    received: list[bytes] = []

    def accept() -> None:
        with listener:
            connection, _ = listener.accept()
        with connection:  # a retry finds the port closed
            connection.settimeout(10)
            received.append(connection.recv(16))

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    with pytest.raises(StoreError, match="cannot reach the ClickHouse server"):  # the listener hangs up
        with open_server(url, "signals", "signals", "s3cret", secure):
            pass
    thread.join(10)
    return received[0]


@pytest.mark.parametrize(
    "url, secure, tls",
    [
        ("https://127.0.0.1:{port}", False, True),  # clickhouse-connect alone would send this in clear
        ("http://127.0.0.1:{port}", True, True),
        ("http://127.0.0.1:{port}", False, False),
    ],
)
def test_the_url_scheme_or_the_secure_setting_decides_tls(url, secure, tls):
    sent = first_bytes_sent_to(url, secure)
    assert sent[:1] == b"\x16" if tls else sent.startswith((b"GET ", b"POST "))


@pytest.mark.parametrize(
    "name, value, problem",
    [
        ("SIGNALS_CLICKHOUSE_URL", "notaurl", "must start with http:// or https:// or chdb:// (its scheme is '')"),
        ("SIGNALS_CLICKHOUSE_URL", "ftp://user:pw@host", "must start with http:// or https:// or chdb://"),
        ("SIGNALS_CLICKHOUSE_URL", "https://", "must name a host: http:// or https:// or chdb://host[:port]"),
        ("SIGNALS_CLICKHOUSE_URL", "http://host:99999", "has a port that is not a number from 0 to 65535"),
        # urlsplit's own refusals: not its message, which may quote the password
        ("SIGNALS_CLICKHOUSE_URL", "http://user:pw@[::1/", "is not a URL: its host part is malformed"),
        ("OPENAI_BASE_URL", "https://user:pw@[zz]/", "is not a URL: its host part is malformed"),
        ("SIGNALS_S3_ENDPOINT_URL", "http://[::1", "is not a URL: its host part is malformed"),
        # chDB without a folder keeps a new database in memory per client: the one created is gone
        ("SIGNALS_CLICKHOUSE_URL", "chdb://", "must name a folder: chdb:///path"),
        ("SIGNALS_CLICKHOUSE_URL", "chdb:///", "must name a folder: chdb:///path"),
        ("SIGNALS_S3_ENDPOINT_URL", "minio:9000", "must start with http:// or https://"),
        ("OPENAI_BASE_URL", "localhost/v1", "must start with http:// or https://"),
    ],
)
def test_a_url_setting_that_is_no_url_is_refused_naming_it_and_never_echoing_it(
    signals_home, monkeypatch, name, value, problem
):
    monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match=re.escape(f"{name} {problem}")) as refused:
        load_settings()
    assert "pw" not in str(refused.value)


def test_an_unreachable_server_is_one_error_line_naming_it_without_its_password(signals_home, monkeypatch, capsys):
    from signals_assets.cli.main import main

    with socket.create_server(("127.0.0.1", 0)) as closed:
        port = closed.getsockname()[1]  # nothing listens there once closed
    monkeypatch.setenv("SIGNALS_CLICKHOUSE_URL", f"http://signals:s3cret@127.0.0.1:{port}/signals")
    monkeypatch.setenv("SIGNALS_CLICKHOUSE_PASSWORD", "")
    assert main(["status", "--team-id", "1"]) == 1
    error = capsys.readouterr().err
    assert error.startswith(f"error: cannot reach the ClickHouse server at http://127.0.0.1:{port}: ")
    assert error.count("\n") == 1 and "s3cret" not in error


def test_a_password_in_the_server_url_is_read_at_run_launch_and_never_shown(tmp_path, object_store, team, monkeypatch):
    """A DSN's password (`http://user:password@host:8123`, clickhouse-connect's, used when
    SIGNALS_CLICKHOUSE_PASSWORD is empty) is no value of the resource's config: the Dagster UI shows those,
    and every run keeps them in the job snapshot of the instance."""
    from dagster._core.remote_representation.external_data import RepositorySnap
    from dagster._serdes import serialize_value

    process, url = start_local_server(tmp_path, options=("--user", "signals", "--password", "dsn-s3cret"))
    try:
        # ending in a line break, as a secret mounted from a file often does (the settings strip it)
        monkeypatch.setenv("SIGNALS_CLICKHOUSE_URL", url.replace("http://", "http://signals:dsn-s3cret@") + "\n")
        monkeypatch.setenv("SIGNALS_CLICKHOUSE_USER", "signals")
        monkeypatch.setenv("SIGNALS_CLICKHOUSE_PASSWORD", "")
        definitions = defs()
        shown = serialize_value(RepositorySnap.from_def(definitions.get_repository_def()))
        with dg.instance_for_test() as instance:
            _, result = group_one_batch(object_store, instance, definitions, CARD_DECLINED)
            kept = serialize_value(instance.get_job_snapshot(result.dagster_run.job_snapshot_id))
    finally:
        stop_local_server(process)
    assert "dsn-s3cret" not in shown and "dsn-s3cret" not in kept
    assert f"127.0.0.1:{url.rsplit(':', 1)[1]}" not in shown  # the whole URL is the variable's


def test_a_server_url_without_its_password_variable_is_refused_naming_it(signals_home, monkeypatch, capsys):
    """docs/configuration.md: SIGNALS_CLICKHOUSE_PASSWORD must be set, may be empty, with a server URL. Unset,
    every run failed on Dagster's config error (`signals process`: an internal error) while the CLI's reads
    worked."""
    from signals_assets.cli.main import main

    monkeypatch.setenv("SIGNALS_CLICKHOUSE_URL", "https://ch.example:8443")
    monkeypatch.delenv("SIGNALS_CLICKHOUSE_PASSWORD", raising=False)
    refusal = "SIGNALS_CLICKHOUSE_PASSWORD must be set when SIGNALS_CLICKHOUSE_URL names a server (it may be empty)"
    with pytest.raises(ValueError, match=re.escape(refusal)):
        load_settings()
    assert main(["process"]) == 2
    assert capsys.readouterr().err == f"error: {refusal}\n"
    monkeypatch.setenv("SIGNALS_CLICKHOUSE_PASSWORD", "")
    assert load_settings().clickhouse_server


def test_a_chdb_url_needs_no_password(tmp_path, object_store, team, monkeypatch):
    """chDB's backend of the client (`chdb:///path`) is no server: its runs read no password."""
    monkeypatch.setenv("SIGNALS_CLICKHOUSE_URL", f"chdb://{tmp_path / 'chdb-connect'}")
    monkeypatch.delenv("SIGNALS_CLICKHOUSE_PASSWORD", raising=False)
    with dg.instance_for_test() as instance:
        group_one_batch(object_store, instance, defs(), CARD_DECLINED)


def test_the_url_settings_take_their_servers_forms(signals_home, monkeypatch):
    for name, value in {
        "SIGNALS_CLICKHOUSE_URL": "chdb:///var/lib/signals/chdb",
        "SIGNALS_S3_ENDPOINT_URL": "http://minio:9000",
        "OPENAI_BASE_URL": "http://localhost:11434/v1",
    }.items():
        monkeypatch.setenv(name, value)
    settings = load_settings()
    assert (settings.clickhouse_url, settings.s3_endpoint_url, settings.openai_base_url) == (
        "chdb:///var/lib/signals/chdb",
        "http://minio:9000",
        "http://localhost:11434/v1",
    )


# --- the whole pipeline on the engine ---------------------------------------------------------------


@pytest.mark.parametrize("engine", ["clickhouse-connect", "server"], indirect=True)  # chdb: test_pipeline
def test_pipeline_groups_and_researches_through_clickhouse_connect(engine, object_store, team, monkeypatch):
    """Every SQL statement of the batch and report jobs (semantic search included) on the engine,
    configured through the environment as a deployment would be."""
    monkeypatch.setenv("SIGNALS_CLICKHOUSE_URL", engine["url"])
    monkeypatch.setenv("SIGNALS_CLICKHOUSE_USER", engine.get("username", "default"))
    monkeypatch.setenv("SIGNALS_CLICKHOUSE_PASSWORD", engine.get("password", ""))
    monkeypatch.setenv("SIGNALS_CLICKHOUSE_SECURE", str(engine.get("secure", False)).lower())
    monkeypatch.setenv("SIGNALS_CLICKHOUSE_DATABASE", engine.get("database", "signals"))
    definitions = defs()
    with dg.instance_for_test() as instance:
        _, result = group_one_batch(object_store, instance, definitions, CARD_DECLINED + PASSWORD_RESET)
        promotions = [
            p
            for e in result.asset_materializations_for_node("report_assignments")
            for p in promotions_from_metadata(e.metadata)
        ]
        instance.add_dynamic_partitions("reports", [p["report_id"] for p in promotions])
        for promotion in promotions:
            report = definitions.resolve_job_def("report_job").execute_in_process(
                partition_key=promotion["report_id"], instance=instance
            )
            assert report.success

    with ClickHouseResource(**engine).session() as db:
        groups = db.query("SELECT report_id, groupArray(signal_id) AS ids FROM report_assignments GROUP BY report_id")
        statuses = {r["status"] for r in db.query("SELECT status FROM reports")}
    assert sorted(len(g["ids"]) for g in groups) == [3, 3]
    assert len(promotions) == 2 and statuses == {"ready"}


def test_labelled_vectors_reads_fixed_point_rows_with_their_numbers_and_labels(backend):
    """One binary read: labels of any length up to the fixed width (multi-byte characters, one of the
    full width) and negative components come back as written, in the query's order; a block of rows
    that is not vectors, numbers and fixed-width labels is refused."""
    labels = ["a", "é" * 70, "s" * 200]
    rows = (
        "SELECT v, n, {label} FROM (SELECT arrayJoin(arrayZip({vs}, {ns}, {ls})) AS t, "
        "CAST(t.1, 'Array(Int16)') AS v, toUInt32(t.2) AS n, t.3 AS l) ORDER BY n"
    )
    values = {"vs": [[1, -2, 32767], [-32767, 0, 5], [7, 8, -9]], "ns": [3, 4000000000, 70000], "ls": labels}
    with backend.session() as db:
        vectors, numbers, read = db.labelled_vectors(rows.replace("{label}", "toFixedString(l, 200)"), values)
        empty = db.labelled_vectors("SELECT [toInt16(1)], toUInt32(1), toFixedString('x', 1) WHERE 0")
        with pytest.raises(StoreError, match=r"a column of type String"):
            db.labelled_vectors(rows.replace("{label}", "l"), values)
    assert vectors.dtype == np.int16 and vectors.tolist() == [[1, -2, 32767], [7, 8, -9], [-32767, 0, 5]]
    assert numbers.tolist() == [3, 70000, 4000000000]
    assert [label.decode() for label in read] == [labels[0], labels[2], labels[1]]
    assert empty[0].shape == (0, 0) and empty[1].tolist() == [] and len(empty[2]) == 0


def test_a_session_drops_a_table_that_a_new_one_replaces(backend):
    """signal_embedding_cell_vectors.sql replaces signal_embedding_cells (DROP TABLE IF EXISTS after its
    CREATE): a store that still has the old table loses it when a session opens, and keeps the new."""
    with backend.session() as db:
        db.command("CREATE TABLE signal_embedding_cells (team_id UInt64) ENGINE = MergeTree ORDER BY team_id")
        db.command("INSERT INTO signal_embedding_cell_vectors (team_id, cell) VALUES (1, 2)")
    with backend.session() as db:
        tables = {r["name"] for r in db.query("SELECT name FROM system.tables WHERE database = currentDatabase()")}
        kept = db.scalar("SELECT count() FROM signal_embedding_cell_vectors")
    assert tables == {path.stem for path in SCHEMA_DIR.glob("*.sql")} and int(kept) == 1
