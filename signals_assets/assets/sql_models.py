"""One asset per SQL model in `dbt_like_sql/models`, all run by a single subsettable multi-asset."""

from pathlib import Path

import dagster as dg

from signals_assets.resources.clickhouse import ClickHouseResource
from signals_assets.storage.sql_models import MODELS_DIR, SqlModel, built_views, load_models, refresh

DEFAULT_DIR = MODELS_DIR
REPO_ROOT = Path(__file__).resolve().parents[2]


def _display_path(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(REPO_ROOT))
    except ValueError:
        return str(path)


def _spec(model: SqlModel) -> dg.AssetSpec:
    return dg.AssetSpec(
        key=model.name,
        deps=[*model.refs, *model.producers],
        group_name="sql_models",
        kinds={"sql", "clickhouse"},
        code_version=model.code_version,
        description=model.description or None,
        metadata={
            "path": _display_path(model.path),
            "materialized": model.materialized,
            "sql": dg.MetadataValue.md(f"```sql\n{model.sql.strip()}\n```"),
            # The UI links the model to its .sql file (definitions.py adds the Python that runs it).
            "dagster/code_references": dg.CodeReferencesMetadataValue(
                code_references=[dg.LocalFileCodeReference(file_path=str(model.path.resolve()))]
            ),
        },
    )


def build_sql_model_assets(directory: Path = DEFAULT_DIR) -> dg.AssetsDefinition:
    """Reads the model files only; the database is touched when the asset runs."""
    models = load_models(directory)

    @dg.multi_asset(specs=[_spec(model) for model in models], can_subset=True, name="sql_models")
    def sql_models(context: dg.AssetExecutionContext, clickhouse: ClickHouseResource):
        selected = [model for model in models if dg.AssetKey(model.name) in context.selected_asset_keys]
        # Handed on: in a batch run the `reports` check follows, on the store only.
        with clickhouse.session(log=context.log.info, hand_on=True) as db:
            views = built_views(db)
            for model in selected:
                rows = refresh(db, model, views)
                yield dg.MaterializeResult(
                    asset_key=model.name,
                    metadata={"materialized": model.materialized, **({"rows": rows} if rows is not None else {})},
                )

    return sql_models
