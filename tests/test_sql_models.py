"""The dbt-like SQL layer: model discovery and checks, the multi-asset, and the models on real chdb."""

import re
import textwrap
from datetime import datetime, timedelta, timezone
from pathlib import Path

import dagster as dg
import pytest

from signals_assets.assets.grouping import report_assignments
from signals_assets.assets.ingestion import buffered_signals, signal_embeddings
from signals_assets.assets.reports import report_research, report_summaries
from signals_assets.assets.sql_models import build_sql_model_assets
from signals_assets.resources.clickhouse import ClickHouseResource
from signals_assets.storage.clickhouse import SCHEMA_DIR, StoreSession, open_store
from signals_assets.storage.facts import current_assignments
from signals_assets.storage.sql_models import (
    SOURCE_PRODUCERS,
    SqlModelError,
    build_models,
    load_models,
    materialize_sql,
    parse_model,
    render,
    render_narrowed,
    version_comment,
)


def write_models(directory: Path, models: dict[str, str]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, sql in models.items():
        (directory / f"{name}.sql").write_text(textwrap.dedent(sql).lstrip())
    return directory


def names(models) -> list[str]:
    return [model.name for model in models]


# --- discovery, parsing and checks -------------------------------------------------------------


def test_discovers_one_model_per_file_with_header(tmp_path):
    write_models(
        tmp_path,
        {
            "report_titles": """
            -- Titles of the reports,
            -- one row per report.
            -- materialized: table
            SELECT report_id, title FROM {{ source('report_summaries') }}
            """,
            "plain": "SELECT 1 AS one\n",
        },
    )
    (tmp_path / "notes.txt").write_text("not a model")

    models = {model.name: model for model in load_models(tmp_path)}

    assert set(models) == {"report_titles", "plain"}
    titles = models["report_titles"]
    assert titles.path == tmp_path / "report_titles.sql"
    assert titles.materialized == "table"
    assert titles.description == "Titles of the reports,\none row per report."
    assert titles.sources == ("report_summaries",)
    assert titles.producers == ["report_summaries"]
    assert models["plain"].materialized == "view"
    assert models["plain"].description == ""


@pytest.mark.parametrize(
    "template",
    [
        "{{ ref('base') }}",
        '{{ref("base")}}',
        "{{  ref (  'base'  )  }}",
        "{{\n  ref('base')\n}}",
    ],
)
def test_ref_templates_tolerate_spaces_and_quotes(tmp_path, template):
    write_models(tmp_path, {"base": "SELECT 1 AS x", "top": f"SELECT x FROM {template}"})

    top = load_models(tmp_path)[-1]

    assert top.refs == ("base",)
    assert render(top.sql) == "SELECT x FROM base"


def test_sources_and_refs_are_deduplicated_and_map_to_producing_assets(tmp_path):
    write_models(
        tmp_path,
        {
            "base": "SELECT 1 AS x",
            "top": """
            SELECT * FROM {{ source("report_events") }}, {{ source('signals') }}, {{ ref('base') }}
            WHERE 1 IN (SELECT x FROM {{ ref("base") }})
            """,
        },
    )

    top = load_models(tmp_path)[-1]

    assert top.refs == ("base",)
    assert top.sources == ("report_events", "signals")
    assert top.producers == [
        "buffered_signals",
        "report_assignments",
        "report_research",
        "report_summaries",
        "signal_embeddings",
    ]


def test_a_fact_renders_to_its_subquery_and_brings_its_sources(tmp_path):
    write_models(tmp_path, {"live": "SELECT * FROM {{ fact('current_assignments') }} AS a WHERE a.deleted = 0"})

    [live] = load_models(tmp_path)

    assert live.facts == ("current_assignments",) and live.sources == ("report_assignments",)
    assert live.producers == ["report_assignments"]
    assert render(live.sql) == f"SELECT * FROM (\n{current_assignments()}\n) AS a WHERE a.deleted = 0"


@pytest.mark.parametrize(
    "models, message",
    [
        ({"a": "SELECT * FROM {{ ref('missing') }}"}, "a.sql: unknown ref 'missing'"),
        ({"a": "SELECT * FROM {{ fact('nope') }}"}, "a.sql: unknown fact 'nope'; facts: current_assignments"),
        ({"a": "SELECT * FROM {{ source('nope') }}"}, "a.sql: unknown source 'nope'"),
        ({"a": "SELECT * FROM {{ ref('a') }}"}, "a.sql: model 'a' refs itself"),
        ({"a": "SELECT * FROM {{ config(x=1) }}"}, "a.sql: unsupported template"),
        ({"a": "SELECT * FROM {{ ref('a\") }}"}, "a.sql: unsupported template"),
        ({"a": "SELECT * FROM {{ ref('not valid') }}"}, "a.sql: ref('not valid') is not a valid name"),
        ({"a": "-- materialized: incremental\nSELECT 1"}, "a.sql: materialized must be one of view, table"),
        ({"a": "-- only a comment\n"}, "a.sql: no SQL statement"),
        ({"my-model": "SELECT 1"}, "my-model.sql: model name 'my-model' is not a valid identifier"),
        ({"signals": "SELECT 1"}, "signals.sql: model name 'signals' is a base table"),
    ],
)
def test_invalid_models_are_reported_with_their_file(tmp_path, models, message):
    write_models(tmp_path, models)

    with pytest.raises(SqlModelError, match=re.escape(message)):
        load_models(tmp_path)


def test_cycle_is_reported_with_its_path(tmp_path):
    write_models(
        tmp_path,
        {
            "a": "SELECT * FROM {{ ref('b') }}",
            "b": "SELECT * FROM {{ ref('c') }}",
            "c": "SELECT * FROM {{ ref('a') }}",
            "d": "SELECT * FROM {{ ref('a') }}",
        },
    )

    with pytest.raises(SqlModelError, match=r"a\.sql: models form a cycle: a -> b -> c -> a"):
        load_models(tmp_path)


def test_topological_order_puts_refs_first_and_is_deterministic(tmp_path):
    write_models(
        tmp_path,
        {
            "z_base": "SELECT 1 AS x",
            "m_middle": "SELECT x FROM {{ ref('z_base') }}",
            "a_top": "SELECT * FROM {{ ref('m_middle') }}, {{ ref('b_other') }}",
            "b_other": "SELECT x FROM {{ ref('z_base') }}",
            "c_alone": "SELECT 2 AS y",
        },
    )

    order = names(load_models(tmp_path))

    assert order == ["z_base", "b_other", "m_middle", "a_top", "c_alone"]
    assert names(load_models(tmp_path)) == order


def test_code_version_follows_the_sql_text(tmp_path):
    path = write_models(tmp_path, {"a": "SELECT 1 AS x"}) / "a.sql"
    first = parse_model(path).code_version

    assert parse_model(path).code_version == first
    assert re.fullmatch("[0-9a-f]{12}", first)
    path.write_text("SELECT 2 AS x")
    assert parse_model(path).code_version != first


def test_materialize_sql_replaces_views_and_tables(tmp_path):
    write_models(
        tmp_path,
        {
            "base": "-- a view\nSELECT * FROM {{ source('signals') }};\n",
            "top": "-- materialized: table\nSELECT count() AS n FROM {{ ref('base') }}\n",
        },
    )
    base, top = load_models(tmp_path)

    assert materialize_sql(base) == [
        f"CREATE OR REPLACE VIEW base AS\n-- a view\nSELECT * FROM signals\nCOMMENT '{version_comment(base)}'"
    ]
    assert materialize_sql(top) == [
        f"CREATE OR REPLACE TABLE top ENGINE = MergeTree ORDER BY tuple() COMMENT '{version_comment(top)}' AS\n"
        "-- materialized: table\nSELECT count() AS n FROM base"
    ]
    assert version_comment(base) != version_comment(top)


def test_an_unchanged_view_is_not_rebuilt_and_a_changed_view_or_a_table_is(tmp_path):
    """A view is a stored query: the sql_models asset and the CLI rebuild it only when its code version
    (or the base tables' definitions) changed; a table is a snapshot, rebuilt every time."""
    models = write_models(
        tmp_path / "models",
        {
            "teams": "SELECT DISTINCT team_id FROM {{ source('signals') }}\n",
            "team_count": "-- materialized: table\nSELECT count() AS n FROM {{ ref('teams') }}\n",
        },
    )
    with open_store("", tmp_path / "store", "signals") as db:
        statements = []

        def run(sql: str) -> bytes:
            statements.append(sql)
            return db._run(sql)

        recording = StoreSession(run, db._insert_row_binary)

        def created() -> list[str]:
            built = [re.match(r"CREATE OR REPLACE (?:VIEW|TABLE) (\w+)", sql) for sql in statements]
            statements.clear()
            return [match[1] for match in built if match]

        build_models(recording, models)
        assert created() == ["teams", "team_count"]
        build_models(recording, models)
        assert created() == ["team_count"]
        write_models(models, {"teams": "SELECT DISTINCT team_id, source_product FROM {{ source('signals') }}\n"})
        build_models(recording, models)
        assert created() == ["teams", "team_count"]
        assert db.query("SELECT name FROM system.columns WHERE database = currentDatabase() AND table = 'teams'") == [
            {"name": "team_id"},
            {"name": "source_product"},
        ]


def test_source_producers_cover_the_base_tables():
    assert set(SOURCE_PRODUCERS) == {path.stem for path in SCHEMA_DIR.glob("*.sql")}


def test_source_producers_are_python_assets():
    python_assets = [buffered_signals, signal_embeddings, report_assignments, report_summaries, report_research]
    asset_names = {key.to_user_string() for asset in python_assets for key in asset.keys}

    assert {name for producers in SOURCE_PRODUCERS.values() for name in producers} <= asset_names


def test_project_models_load():
    models = load_models()

    assert names(models) == ["current_assignments", "reports", "inbox", "report_signals", "team_signal_stats"]
    assert all(model.description for model in models)


# --- the multi-asset -----------------------------------------------------------------------------


def test_multi_asset_has_one_asset_per_model_with_deps():
    assets = build_sql_model_assets()
    deps = {key.to_user_string(): {d.to_user_string() for d in keys} for key, keys in assets.asset_deps.items()}

    assert assets.can_subset
    assert set(deps) == {"current_assignments", "reports", "inbox", "report_signals", "team_signal_stats"}
    assert {"report_assignments", "report_summaries", "report_research"} <= deps["reports"]
    assert deps["inbox"] == {"reports"}
    assert deps["current_assignments"] == {"report_assignments"}
    assert deps["report_signals"] == {"buffered_signals", "signal_embeddings", "current_assignments"}
    assert {"reports", "buffered_signals"} <= deps["team_signal_stats"]
    for spec in assets.specs:
        assert spec.group_name == "sql_models"
        assert spec.kinds == {"sql", "clickhouse"}
        assert spec.code_version and spec.description
        assert spec.metadata["path"] == f"dbt_like_sql/models/{spec.key.to_user_string()}.sql"


def test_invalid_model_folder_fails_when_building_the_definition(tmp_path):
    write_models(tmp_path, {"a": "SELECT * FROM {{ ref('b') }}", "b": "SELECT * FROM {{ ref('a') }}"})

    with pytest.raises(SqlModelError, match="a -> b -> a"):
        build_sql_model_assets(tmp_path)


# --- the models on real chdb ---------------------------------------------------------------------

T0 = datetime(2026, 11, 20, 10, 0, tzinfo=timezone.utc)


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


def signal(team: int, signal_id: str, text: str) -> dict:
    return {
        "team_id": team,
        "signal_id": signal_id,
        "batch_key": "b1",
        "source_product": "zendesk",
        "source_type": "ticket",
        "source_id": signal_id,
        "description": text,
        "weight": 0.5,
        "extra": "{}",
        "idempotency_key": signal_id,
        "emitted_at": T0,
        "ingested_at": T0,
    }


def rejected(team: int, signal_id: str) -> dict:
    return {
        "team_id": team,
        "signal_id": signal_id,
        "batch_key": "b1",
        "source_product": "zendesk",
        "source_type": "ticket",
        "source_id": signal_id,
        "description": "spam",
        "reason": "safety",
        "detail": "",
        "quote": "",
        "rejected_at": T0,
    }


def assignment(signal_id: str, report: str, seq: int, deleted: bool = False) -> dict:
    return {
        "team_id": 1,
        "signal_id": signal_id,
        "batch_key": "b1",
        "seq": seq,
        "report_id": report,
        "decision": "deleted_report" if deleted else "joined",
        "matched_signal_id": "",
        "similarity": 0.9,
        "weight": 0.5,
        "deleted": int(deleted),
        "assigned_at": T0,
    }


def event(report: str, minute: int, event_name: str, status: str, seq: int = 0, **fields) -> dict:
    return {
        "team_id": 1,
        "report_id": report,
        "source": "b1",
        "stage": "grouping",
        "seq": seq,
        "event": event_name,
        "status": status,
        "title": "",
        "summary": "",
        "signals_at_run": 0,
        "research_round": 0,
        "detail": "",
        "at": at(minute),
        **fields,
    }


BASE_ROWS = {
    "signals": [
        signal(1, "s1", "Card declined at checkout"),
        signal(1, "s2", "My card keeps being declined"),
        signal(1, "s3", "Password reset email missing"),
    ],
    "rejected_signals": [rejected(1, "x1"), rejected(2, "x2"), rejected(2, "x3")],
    "report_assignments": [
        assignment("s1", "r1", 0),
        assignment("s2", "r1", 1),
        assignment("s3", "r2", 2, deleted=True),
    ],
    "report_events": [
        # r1: created then promoted; its title only exists on an event.
        event("r1", 0, "created", "potential", title="Card payments declined", summary="Cards fail."),
        event("r1", 5, "promoted", "candidate", signals_at_run=2),
        # r2: researched and ready; the two last events share a timestamp and differ by seq.
        event("r2", 0, "created", "potential", title="Old title"),
        event("r2", 5, "promoted", "candidate", research_round=1),
        event("r2", 6, "research_started", "in_progress", research_round=1, signals_at_run=3),
        event("r2", 9, "researched", "ready", seq=1, research_round=1, signals_at_run=3),
        event("r2", 9, "research_started", "in_progress", seq=0, research_round=1),
        # r3: failed without being promoted.
        event("r3", 0, "created", "potential"),
        event("r3", 2, "failed", "failed", detail="sandbox crashed"),
    ],
    "report_summaries": [
        {
            "team_id": 1,
            "report_id": "r2",
            "title": "Password reset emails never arrive",
            "summary": "No email.",
            "central_signal_ids": ["s3"],
            "signal_count": 1,
            "safety": "safe",
            "actionability": "immediately_actionable",
            "priority": "P3",
            "generated_at": at(4),
        }
    ],
    "research_results": [
        {
            "team_id": 1,
            "report_id": "r2",
            "research_round": round_,
            "status": status,
            "sandbox": "subprocess",
            "repository": repository,
            "repository_ranking": "[]",
            "findings": "[]",
            "confidence": confidence,
            "reason": "",
            "log_key": f"research_logs/r2/round-{round_}.jsonl",
            "dagster_run_id": "run",
            "finished_at": at(minute),
        }
        for round_, status, repository, confidence, minute in [
            (0, "failed", "", "", 3),
            (1, "ready", "shop", "high", 9),
        ]
    ],
}


def materialize(resource: ClickHouseResource, selection=None) -> dict[str, dict]:
    result = dg.materialize([build_sql_model_assets()], resources={"clickhouse": resource}, selection=selection)
    assert result.success
    return {
        materialization.asset_key.to_user_string(): {k: v.value for k, v in materialization.metadata.items()}
        for materialization in result.asset_materializations_for_node("sql_models")
    }


def read_models(resource: ClickHouseResource) -> dict[str, list[dict]]:
    with resource.session() as db:
        return {
            "reports": db.query("SELECT * FROM reports ORDER BY team_id, report_id"),
            "report_signals": db.query("SELECT * FROM report_signals ORDER BY report_id, signal_id"),
            "inbox": db.query("SELECT * FROM inbox"),
            "team_signal_stats": db.query("SELECT * FROM team_signal_stats"),
        }


@pytest.fixture
def store(tmp_path) -> ClickHouseResource:
    resource = ClickHouseResource(path=str(tmp_path / "ch"))
    with resource.session() as db:
        for table, rows in BASE_ROWS.items():
            db.insert(table, rows)
    return resource


def test_models_on_chdb(store):
    metadata = materialize(store)

    assert metadata == {
        "current_assignments": {"materialized": "view"},
        "reports": {"materialized": "view"},
        "inbox": {"materialized": "view"},
        "report_signals": {"materialized": "view"},
        "team_signal_stats": {"materialized": "view"},
    }
    views = read_models(store)
    r1, r2, r3 = views["reports"]

    assert (r1["report_id"], r1["status"], r1["signal_count"], r1["total_weight"]) == ("r1", "candidate", 2, 1.0)
    assert (r1["title"], r1["summary"]) == ("Card payments declined", "Cards fail.")
    assert r1["created_at"].startswith("2026-11-20 10:00:00") and r1["promoted_at"].startswith("2026-11-20 10:05:00")
    assert (r1["signals_at_run"], r1["error"], r1["research_status"], r1["priority"]) == (2, "", "", "")

    assert (r2["status"], r2["signal_count"], r2["total_weight"]) == ("ready", 0, 0.0)
    assert (r2["title"], r2["summary"]) == ("Password reset emails never arrive", "No email.")
    assert (r2["research_status"], r2["repository"], r2["log_key"]) == (
        "ready",
        "shop",
        "research_logs/r2/round-1.jsonl",
    )
    # Priority and actionability stay the report judgement's when research finishes.
    assert (r2["priority"], r2["actionability"], r2["research_confidence"]) == ("P3", "immediately_actionable", "high")
    assert (r2["signals_at_run"], r2["research_rounds"]) == (3, 1)
    assert r2["updated_at"].startswith("2026-11-20 10:09:00")

    assert (r3["status"], r3["error"], r3["promoted_at"], r3["title"]) == ("failed", "sandbox crashed", None, "")

    assert [(row["report_id"], row["signal_id"], row["weight"]) for row in views["report_signals"]] == [
        ("r1", "s1", 0.5),
        ("r1", "s2", 0.5),
    ]
    assert views["report_signals"][0]["description"] == "Card declined at checkout"
    assert [(row["report_id"], row["status"], row["priority"]) for row in views["inbox"]] == [("r2", "ready", "P3")]

    team_1, team_2 = views["team_signal_stats"]
    assert team_1 == {
        "team_id": 1,
        "accepted_signals": 3,
        "rejected_signals": 1,
        "assigned_signals": 2,
        "reports": 3,
        "potential": 0,
        "candidate": 1,
        "in_progress": 0,
        "pending_input": 0,
        "ready": 1,
        "failed": 1,
    }
    assert team_2 == {
        "team_id": 2,
        "accepted_signals": 0,
        "rejected_signals": 2,
        "assigned_signals": 0,
        "reports": 0,
        "potential": 0,
        "candidate": 0,
        "in_progress": 0,
        "pending_input": 0,
        "ready": 0,
        "failed": 0,
    }

    assert materialize(store) == metadata
    assert read_models(store) == views


def test_a_narrowed_model_reads_as_its_view_for_the_rows_its_filters_keep(store):
    materialize(store)
    with store.session() as db:
        # s2 moves from r1 to r2: r1's count depends on a row of another report
        db.insert("report_assignments", [assignment("s2", "r2", 3)])
        models = {model.name: model for model in load_models()}
        in_r1 = "report_id IN ('r1')"
        narrowed = render_narrowed(
            models["reports"],
            models,
            {
                "current_assignments": f"signal_id IN (SELECT signal_id FROM report_assignments WHERE {in_r1})",
                "latest_report_states": in_r1,
                "report_summaries": in_r1,
                "research_results": in_r1,
            },
        )
        rows = db.query(f"SELECT * FROM ({narrowed})")
        view = db.query("SELECT * FROM reports WHERE report_id = 'r1'")

    assert rows == view
    assert (rows[0]["report_id"], rows[0]["signal_count"], rows[0]["total_weight"]) == ("r1", 1, 0.5)
    # the ref to `current_assignments` (a view) is inlined with the fact narrowed before it aggregates
    assert "FROM current_assignments" not in narrowed
    assert "FROM report_summaries WHERE report_id IN ('r1')" in narrowed


def test_subset_materializes_only_the_selected_models(store):
    assert set(materialize(store, selection=["current_assignments", "reports"])) == {"current_assignments", "reports"}

    with store.session() as db:
        tables = {row["name"] for row in db.query("SELECT name FROM system.tables WHERE database = currentDatabase()")}
    assert "reports" in tables and not tables & {"inbox", "report_signals", "team_signal_stats"}


def test_a_model_switches_between_view_and_table(tmp_path, store):
    body = "SELECT sum(weight) AS w FROM {{ source('signals') }}"

    # A table's rows are counted; a view's are not (that would run its whole query in every batch run).
    for header, engine, metadata in [
        ("", "View", {"materialized": "view"}),
        ("-- materialized: table\n", "MergeTree", {"materialized": "table", "rows": 1}),
        ("", "View", {"materialized": "view"}),
    ]:
        directory = write_models(tmp_path / "models", {"weights": header + body})
        result = dg.materialize([build_sql_model_assets(directory)], resources={"clickhouse": store})
        assert result.success
        (materialization,) = result.asset_materializations_for_node("sql_models")
        assert {k: v.value for k, v in materialization.metadata.items()} == metadata
        with store.session() as db:
            assert db.query("SELECT w FROM weights") == [{"w": 1.5}]
            assert (
                db.scalar("SELECT engine FROM system.tables WHERE database = currentDatabase() AND name = 'weights'")
                == engine
            )


MODEL_DEFINITIONS = (
    "SELECT name, engine, create_table_query FROM system.tables "
    "WHERE database = currentDatabase() AND name IN {names} ORDER BY name"
)


@pytest.mark.parametrize("server", [False, True], ids=["chdb", "clickhouse-connect"])
def test_the_cli_store_session_builds_the_models_as_the_asset_does(signals_home, monkeypatch, server):
    """`signals status` may run before any job: its session applies the schema and builds every model
    through the same code as the resource and the sql_models asset, so both leave the same definitions."""
    from signals_assets.cli.read_models import store_session
    from signals_assets.settings import load_settings

    if server:
        monkeypatch.setenv("SIGNALS_CLICKHOUSE_URL", f"chdb://{signals_home / 'chdb-connect'}")
    settings = load_settings()
    models = names(load_models())
    with store_session(settings) as db:
        from_cli = db.query(MODEL_DEFINITIONS, {"names": models})
        for table, rows in BASE_ROWS.items():
            db.insert(table, rows)
        assert db.scalar("SELECT count() FROM reports") == 3
    resource = ClickHouseResource(url=settings.clickhouse_url, path=str(settings.clickhouse_path))
    materialize(resource)
    with resource.session() as db:
        from_asset = db.query(MODEL_DEFINITIONS, {"names": models})
    assert [row["name"] for row in from_cli] == sorted(models)
    assert from_cli == from_asset


def test_schema_adds_columns_missing_from_tables_of_an_older_version(tmp_path):
    from signals_assets.storage.clickhouse import open_chdb

    with open_chdb(tmp_path / "store", "signals") as db:
        db.command(
            "CREATE TABLE report_events (team_id UInt64, report_id String, at DateTime64(6, 'UTC')) "
            "ENGINE = MergeTree ORDER BY (team_id, report_id)"
        )
        db.insert("report_events", [{"team_id": 1, "report_id": "r1", "at": "2026-11-20 10:00:00"}])
        db.apply_schema()
        db.apply_schema()  # idempotent
        columns = {
            r["name"]
            for r in db.query(
                "SELECT name FROM system.columns WHERE database = currentDatabase() AND table = 'report_events'"
            )
        }
        rows = db.query("SELECT report_id, weight_after_batch FROM report_events")
    assert "weight_after_batch" in columns and rows == [{"report_id": "r1", "weight_after_batch": ""}]
