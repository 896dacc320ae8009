"""`build_resources` is the one place where the environment chooses the backends."""

from urllib.parse import urlsplit

import dagster as dg

from signals_assets.resources.clickhouse import ClickHouseResource
from signals_assets.resources.embedder import EmbedderResource
from signals_assets.resources.limits import SignalLimitsResource
from signals_assets.resources.llm import LLMResource
from signals_assets.resources.object_store import ObjectStoreResource
from signals_assets.resources.sandbox import SandboxResource
from signals_assets.settings import Settings


def url_field(variable: str, url: str) -> str:
    """`url` (the setting `variable`) as a resource field: one that carries a user or password (a ClickHouse
    DSN's, a proxy's basic auth) is read at run launch through `EnvVar`, as a field's value is shown by the
    Dagster UI and kept in every run's snapshot; any other as it is, so the UI names the server."""
    return dg.EnvVar(variable) if "@" in urlsplit(url).netloc else url


def build_resources(settings: Settings) -> dict[str, dg.ConfigurableResource]:
    openai = {
        "base_url": url_field("OPENAI_BASE_URL", settings.openai_base_url),
        "api_key": dg.EnvVar("OPENAI_API_KEY") if settings.uses_openai else "",
    }
    return {
        "object_store": ObjectStoreResource(
            kind=settings.object_store,
            root=str(settings.objects_root),
            bucket=settings.s3_bucket,
            prefix=settings.s3_prefix,
            endpoint_url=settings.s3_endpoint_url,
        ),
        "clickhouse": ClickHouseResource(
            url=url_field("SIGNALS_CLICKHOUSE_URL", settings.clickhouse_url),
            path=str(settings.clickhouse_path),
            database=settings.clickhouse_database,
            username=settings.clickhouse_user if settings.clickhouse_url else "",
            password=dg.EnvVar("SIGNALS_CLICKHOUSE_PASSWORD") if settings.clickhouse_server else "",
            secure=settings.clickhouse_secure,
            vector_index_dimensions=settings.vector_index_dimensions,
        ),
        "embedder": EmbedderResource(provider=settings.embedder, model=settings.embedding_model, **openai),
        "llm": LLMResource(
            provider=settings.llm_provider,
            model=settings.llm_model,
            merge_proposals=settings.llm_merge_proposals,
            consolidation_pool=settings.consolidation_pool,
            **openai,
        ),
        "signal_limits": SignalLimitsResource(**settings.signal_limits.__dict__),
        "sandbox": SandboxResource(
            mode=settings.sandbox,
            timeout_seconds=settings.sandbox_timeout_seconds,
            image=settings.sandbox_image,
            memory_mb=settings.sandbox_memory_mb,
            cpus=settings.sandbox_cpus,
            pids_limit=settings.sandbox_pids,
            inactivity_timeout_seconds=settings.sandbox_inactivity_seconds,
            network=settings.sandbox_network,
            network_allowlist=list(settings.sandbox_network_allowlist),
            concurrency=settings.research_concurrency,
            data_folder=str(settings.signals_home),
        ),
    }
