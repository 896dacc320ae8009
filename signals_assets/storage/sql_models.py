"""The dbt-like SQL layer: discover, check, order and render the models in `dbt_like_sql/models`.

One model per `.sql` file, named by the file stem. A model refers to another model with
`{{ ref('name') }}`, to a base table (written by a Python asset) with `{{ source('table') }}`, and
embeds a shared fact of the store (storage/facts.py) as a subquery with `{{ fact('name') }}`.
Standard library only, so the code location loads it without touching a database.
"""

from __future__ import annotations

import functools
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from signals_assets.storage.facts import FACTS

if TYPE_CHECKING:
    from signals_assets.storage.clickhouse import StoreSession

MODELS_DIR = Path(__file__).resolve().parents[2] / "dbt_like_sql" / "models"
TABLES_DIR = MODELS_DIR.parent / "tables"

# Base table -> the Python asset(s) that write it: a model reading a source depends on these assets.
SOURCE_PRODUCERS: dict[str, list[str]] = {
    # signal_embeddings moves a signal whose text the embedding server refuses from one to the other
    "signals": ["buffered_signals", "signal_embeddings"],
    "rejected_signals": ["buffered_signals", "signal_embeddings"],
    "signal_embeddings": ["signal_embeddings"],
    "report_assignments": ["report_assignments"],
    "report_vector_deltas": ["report_assignments"],
    "report_vector_batches": ["report_assignments"],
    "report_vector_snapshots": ["report_assignments"],
    "signal_embedding_cell_vectors": ["report_assignments"],
    "signal_embedding_centroids": ["report_assignments"],
    "signal_embedding_cell_vector_batches": ["report_assignments"],
    "report_events": ["report_assignments", "report_summaries", "report_research"],
    "report_summaries": ["report_summaries"],
    "research_results": ["report_research"],
}

MATERIALIZATIONS = ("view", "table")
DEFAULT_MATERIALIZATION = "view"

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_TEMPLATE = re.compile(r"\{\{.*?\}\}", re.DOTALL)
_REFERENCE = re.compile(r"\{\{\s*(ref|source|fact)\s*\(\s*(['\"])\s*([^'\"]*?)\s*\2\s*\)\s*\}\}")
_MATERIALIZED_HEADER = re.compile(r"materialized\s*:\s*(\S*)", re.IGNORECASE)


class SqlModelError(ValueError):
    """A model file that cannot be built; the message names the file."""


@dataclass(frozen=True)
class SqlModel:
    name: str
    path: Path
    sql: str
    refs: tuple[str, ...]
    sources: tuple[str, ...]  # those of its facts included
    facts: tuple[str, ...]
    materialized: str
    description: str
    code_version: str

    @property
    def producers(self) -> list[str]:
        """The Python assets that write this model's sources."""
        return sorted({asset for source in self.sources for asset in SOURCE_PRODUCERS[source]})


def _references(path: Path, sql: str) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    refs: set[str] = set()
    sources: set[str] = set()
    facts: set[str] = set()
    for template in _TEMPLATE.finditer(sql):
        match = _REFERENCE.fullmatch(template.group())
        if match is None:
            raise SqlModelError(
                f"{path}: unsupported template {template.group()!r}; "
                "use {{ ref('model') }}, {{ source('table') }} or {{ fact('name') }}"
            )
        kind, name = match.group(1), match.group(3)
        if not _NAME.fullmatch(name):
            raise SqlModelError(f"{path}: {kind}({name!r}) is not a valid name")
        if kind == "fact":
            if name not in FACTS:
                raise SqlModelError(f"{path}: unknown fact {name!r}; facts: {', '.join(sorted(FACTS))}")
            facts.add(name)
            sources.update(FACTS[name].sources)
        else:
            (refs if kind == "ref" else sources).add(name)
    return tuple(sorted(refs)), tuple(sorted(sources)), tuple(sorted(facts))


def _header(path: Path, sql: str) -> tuple[str, str]:
    """The materialisation and description from the file's leading `--` comment lines."""
    materialized = DEFAULT_MATERIALIZATION
    description: list[str] = []
    for line in sql.strip().splitlines():
        line = line.strip()
        if not line.startswith("--"):
            break
        text = line[2:].strip()
        header = _MATERIALIZED_HEADER.fullmatch(text)
        if header is None:
            description.append(text)
        elif header.group(1).lower() in MATERIALIZATIONS:
            materialized = header.group(1).lower()
        else:
            raise SqlModelError(
                f"{path}: materialized must be one of {', '.join(MATERIALIZATIONS)}, got {header.group(1)!r}"
            )
    return materialized, "\n".join(description).strip()


def _has_statement(sql: str) -> bool:
    return any(line.strip() and not line.strip().startswith("--") for line in sql.splitlines())


def parse_model(path: Path) -> SqlModel:
    """Read one model file and check everything that does not depend on the other models."""
    name = path.stem
    if not _NAME.fullmatch(name):
        raise SqlModelError(f"{path}: model name {name!r} is not a valid identifier")
    if name in SOURCE_PRODUCERS:
        raise SqlModelError(f"{path}: model name {name!r} is a base table; a model would replace it")
    sql = path.read_text()
    if not _has_statement(sql):
        raise SqlModelError(f"{path}: no SQL statement")
    refs, sources, facts = _references(path, sql)
    if name in refs:
        raise SqlModelError(f"{path}: model {name!r} refs itself")
    unknown = [source for source in sources if source not in SOURCE_PRODUCERS]
    if unknown:
        raise SqlModelError(
            f"{path}: unknown source {', '.join(map(repr, unknown))}; base tables: {', '.join(sorted(SOURCE_PRODUCERS))}"
        )
    materialized, description = _header(path, sql)
    return SqlModel(
        name=name,
        path=path,
        sql=sql,
        refs=refs,
        sources=sources,
        facts=facts,
        materialized=materialized,
        description=description,
        # A changed fact changes the version of every model that embeds it.
        code_version=hashlib.sha256("".join([sql, *(FACTS[name].sql() for name in facts)]).encode()).hexdigest()[:12],
    )


def topological_order(models: list[SqlModel]) -> list[SqlModel]:
    """Every model after the models it refs; ties broken by name so the order is deterministic."""
    by_name = {model.name: model for model in models}
    for model in models:
        unknown = [ref for ref in model.refs if ref not in by_name]
        if unknown:
            raise SqlModelError(
                f"{model.path}: unknown ref {', '.join(map(repr, unknown))}; models: {', '.join(sorted(by_name))}"
            )
    ordered: list[SqlModel] = []
    done: set[str] = set()
    path: list[str] = []

    def visit(name: str) -> None:
        if name in done:
            return
        if name in path:
            cycle = path[path.index(name) :] + [name]
            raise SqlModelError(f"{by_name[name].path}: models form a cycle: {' -> '.join(cycle)}")
        path.append(name)
        for ref in by_name[name].refs:
            visit(ref)
        path.pop()
        done.add(name)
        ordered.append(by_name[name])

    for name in sorted(by_name):
        visit(name)
    return ordered


def load_models(directory: Path = MODELS_DIR) -> list[SqlModel]:
    """All models of `directory`, checked and in topological order."""
    return topological_order([parse_model(path) for path in sorted(Path(directory).glob("*.sql"))])


def render(sql: str) -> str:
    """Replace ref/source templates with the plain table or view names (the session's database), and
    fact templates with the fact's subquery."""
    return _REFERENCE.sub(
        lambda match: f"(\n{FACTS[match.group(3)].sql()}\n)" if match.group(1) == "fact" else match.group(3), sql
    )


def render_narrowed(model: SqlModel, models: dict[str, SqlModel], filters: dict[str, str]) -> str:
    """The model's SELECT over only some rows of its inputs: a fact or source named in `filters` keeps
    the rows of its base table that match the filter (a fact filters before it aggregates), and a ref to
    a view is that model's SELECT, narrowed alike (a ref to a table reads the table, as the view does).
    The caller chooses filters that keep every row the output rows it reads depend on; the result for
    those rows is then the view's."""

    def reference(match: re.Match) -> str:
        kind, name = match.group(1), match.group(3)
        if kind == "fact":
            return f"(\n{FACTS[name].sql(filters.get(name, ''))}\n)"
        if kind == "source":
            return f"(SELECT * FROM {name} WHERE {filters[name]})" if name in filters else name
        if models[name].materialized == "view":
            return f"(\n{render_narrowed(models[name], models, filters).strip().rstrip(';')}\n)"
        return name

    return _REFERENCE.sub(reference, model.sql)


@functools.cache
def _tables_version() -> str:
    """A digest of the base tables' definitions: a view's columns are fixed when it is created (a
    `SELECT *` does not see a column added later), so a changed table rebuilds every view."""
    return hashlib.sha256(b"".join(path.read_bytes() for path in sorted(TABLES_DIR.glob("*.sql")))).hexdigest()[:12]


def version_comment(model: SqlModel) -> str:
    """The comment a model's table or view is created with: its code version and the tables', so an
    unchanged view need not be rebuilt."""
    return f"signals model {model.code_version} tables {_tables_version()}"


def materialize_sql(model: SqlModel) -> list[str]:
    """Statements that (re)build the model in place; each replaces the old object atomically."""
    select = render(model.sql).strip().rstrip(";")
    comment = f"'{version_comment(model)}'"  # a hex digest: nothing to escape
    if model.materialized == "table":
        # Atomic database engine: the table is built under a temporary name and then exchanged.
        return [
            f"CREATE OR REPLACE TABLE {model.name} ENGINE = MergeTree ORDER BY tuple() COMMENT {comment} AS\n{select}"
        ]
    return [f"CREATE OR REPLACE VIEW {model.name} AS\n{select}\nCOMMENT {comment}"]


def built_views(db: StoreSession) -> dict[str, str]:
    """The views of the session's database, by name, with their comments."""
    rows = db.query("SELECT name, comment FROM system.tables WHERE database = currentDatabase() AND engine = 'View'")
    return {row["name"]: row["comment"] for row in rows}


def build_model(db: StoreSession, model: SqlModel, views: dict[str, str] | None = None) -> None:
    """(Re)build `model` in the session's database. A view is a stored query, so one already built
    from the same code version (its comment in `views`, from `built_views`) is left as it is; a table
    is a snapshot of the data, rebuilt every time."""
    if model.materialized == "view" and views is not None and views.get(model.name) == version_comment(model):
        return
    for statement in materialize_sql(model):
        db.command(statement)


def build_models(db: StoreSession, directory: Path = MODELS_DIR) -> None:
    """Build every model of `directory` that is missing or changed, each after the models it refs (the CLI's session)."""
    views = built_views(db)
    for model in load_models(directory):
        build_model(db, model, views)


def refresh(db: StoreSession, model: SqlModel, views: dict[str, str] | None = None) -> int | None:
    """Build the model in the store session `db` (`views`: see build_model); a table's number of rows
    (the asset's metadata), None for a view: counting a view runs its whole query, which grows with the
    store (seconds at a million signals, in every batch run)."""
    build_model(db, model, views)
    if model.materialized == "view":
        return None
    return int(db.scalar(f"SELECT count() FROM {model.name}"))
