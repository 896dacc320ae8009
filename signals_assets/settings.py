"""Every environment difference lives here: one frozen view of the environment variables.

Pure standard library, so the emit facade and the CLI can read settings without importing
Dagster or any heavy client.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from signals_assets.grouping.limits import POOL_LIMIT
from signals_assets.ingestion.validation import DEFAULT_LIMITS, RECORD_ENVELOPE_BYTES, SignalLimits
from signals_assets.llm.minilm import DIMENSION as MINILM_DIMENSION


def _env(name: str, default: str = "") -> str:
    return os.environ.get(name, "").strip() or default


def _choice(name: str, default: str, allowed: tuple[str, ...]) -> str:
    value = _env(name, default).lower()
    if value not in allowed:
        raise ValueError(f"{name}={value!r} is not one of {', '.join(allowed)}")
    return value


def _flag(name: str) -> bool:
    value = _env(name, "false").lower()
    if value not in ("true", "false", "1", "0", "yes", "no"):
        raise ValueError(f"{name}={value!r} must be true or false")
    return value in ("true", "1", "yes")


# An age cut-off must stay a date Python and Dagster can hold (year 1 is 739,000 days back).
MAX_RETIRE_DAYS = 36_500
# The sandbox's limits go to setrlimit (subprocess) and the Docker API as signed 64-bit integers: memory in
# bytes, CPUs in billionths (of which Docker takes at least 10 million); past them every research run fails.
MAX_SANDBOX_MEMORY_MB = (2**63 - 1) // 2**20
SANDBOX_CPUS_RANGE = (0.01, (2**63 - 1) // 10**9)


def _positive_int(name: str, default: int, minimum: int = 1, maximum: int | None = None) -> int:
    value = _env(name, str(default))
    # ASCII digits, and few enough that int() stays cheap and below Python's digit limit
    if not (value.isascii() and value.isdigit()) or len(value) > 18 or int(value) < minimum:
        rule = "a positive integer" if minimum == 1 else f"an integer of at least {minimum}"
        raise ValueError(f"{name}={value!r} must be {rule} (below 10^18)")
    if maximum is not None and int(value) > maximum:
        raise ValueError(f"{name}={value!r} must be at most {maximum}")
    return int(value)


def _number(name: str, default: float, minimum: float, maximum: float) -> float:
    value = _env(name, str(default))
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not minimum <= number <= maximum:  # also refuses nan
        raise ValueError(f"{name}={value!r} must be a number from {minimum:g} to {maximum}")
    return number


# ClickHouse keeps a database's and a table's name together in one file name (255 bytes): past about 180
# characters the longest table's name no longer fits, past 247 not even the database's metadata file.
MAX_DATABASE_NAME_CHARS = 128


def _identifier(name: str, default: str, max_chars: int) -> str:
    """A name the SQL takes unquoted."""
    value = _env(name, default)
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", value):
        raise ValueError(
            f"{name}={value[:40]!r} must be a ClickHouse identifier: letters, digits and underscores, not a digit first"
        )
    if len(value) > max_chars:
        raise ValueError(f"{name}={value[:40]!r}… must be at most {max_chars} characters, got {len(value)}")
    return value


def _url(name: str, schemes: tuple[str, ...], hostless: tuple[str, ...] = ()) -> str:
    """A URL of one of `schemes` with a host (but for the `hostless` schemes), or empty. The value itself
    is not echoed: a URL may carry a password."""
    value = _env(name)
    if not value:
        return value
    form = " or ".join(f"{scheme}://" for scheme in schemes)
    try:
        parsed = urlsplit(value)
    except ValueError:  # its message may quote the user and password
        raise ValueError(f"{name} is not a URL: its host part is malformed (an unclosed [ or a bad IP)") from None
    if parsed.scheme.lower() not in schemes:
        raise ValueError(f"{name} must start with {form} (its scheme is {parsed.scheme.lower()[:20]!r})")
    try:
        port_ok = parsed.port is None or parsed.port >= 0
    except ValueError:  # not a number, or past 65535
        port_ok = False
    if not port_ok:
        raise ValueError(f"{name} has a port that is not a number from 0 to 65535")
    if parsed.scheme.lower() in hostless:
        # chDB keeps a URL without a folder in memory, a new one for each client
        if not parsed.path.strip("/"):
            raise ValueError(f"{name} must name a folder: {parsed.scheme.lower()}:///path")
    elif not parsed.hostname:
        raise ValueError(f"{name} must name a host: {form}host[:port]")
    return value


def _list(name: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in _env(name).split(",") if item.strip())


def names_server(clickhouse_url: str) -> bool:
    """A ClickHouse server's URL: not empty (embedded chdb) nor chDB's backend of the client (`chdb:///path`)."""
    return bool(clickhouse_url) and urlsplit(clickhouse_url).scheme.lower() != "chdb"


def default_signals_home() -> Path:
    return Path.home() / ".signals_assets"


@dataclass(frozen=True)
class Settings:
    """Resolved configuration; secrets are *not* held here (they stay in the environment)."""

    signals_home: Path
    object_store: str = "local"  # local | s3
    s3_bucket: str = ""
    s3_prefix: str = ""
    s3_endpoint_url: str = ""
    clickhouse_url: str = ""  # empty = embedded chdb under signals_home
    clickhouse_database: str = "signals"
    clickhouse_user: str = "default"
    clickhouse_secure: bool = False  # TLS even when the URL does not say https
    clickhouse_vector_index: str = "none"  # none | hnsw
    clickhouse_vector_dimensions: int = 384
    embedder: str = "minilm"  # minilm | openai
    embedding_model: str = ""  # openai embedder only
    llm_provider: str = "offline"  # offline | openai
    llm_model: str = "gpt-4.1-mini"
    llm_merge_proposals: int = 10  # openai provider: report merges asked per batch and team
    consolidation_pool: int = POOL_LIMIT  # newest pooled signals re-clustered per batch and team
    openai_base_url: str = ""  # any OpenAI-compatible server (vLLM, Ollama…); empty = api.openai.com
    sandbox: str = "subprocess"  # subprocess | docker
    sandbox_image: str = "signals-research-agent:latest"
    sandbox_timeout_seconds: int = 600
    sandbox_inactivity_seconds: int = 120
    sandbox_memory_mb: int = 512
    sandbox_cpus: float = 1.0
    sandbox_pids: int = 128
    sandbox_network: str = ""  # docker network for allowlisted egress; empty = no network
    sandbox_network_allowlist: tuple[str, ...] = ()
    batch_max_signals: int = 500
    # The daemon evaluates sensors every 5 s at most, so a shorter interval gains nothing.
    sensor_interval_seconds: int = 5
    signal_limits: SignalLimits = DEFAULT_LIMITS
    # A batch or report round whose runs keep failing is retried after 1, 2, 4… × the back-off,
    # then parked with its reason after this many failed attempts (`signals unpark` resumes it).
    max_attempts: int = 3
    retry_backoff_seconds: int = 60
    # Report rounds one report run summarises and researches (one run per team and tick at most
    # this big), and how many of its research sandboxes run at once.
    reports_per_run: int = 50
    research_concurrency: int = 2
    # Fairness: a batch takes round-robin from every team's inbox queue, at most this many per team
    # (team config may override); a new batch is claimed only while fewer batches are unfinished,
    # so a later signal is never queued behind more than that many batches of another team's burst.
    max_signals_per_team_batch: int = 500
    max_open_batches: int = 1
    # Consecutive batches one batch run buffers, embeds and groups (a partition range): the run's fixed
    # costs (launch, SQL models, checks) are paid once per range. `signals process` runs its backlog in
    # ranges this big; under the daemon a range is at most `max_open_batches` batches.
    max_batches_per_run: int = 20
    # Report rounds (judgement and research) a team may start per UTC day; more wait for the next day.
    max_reports_per_team_day: int = 2000
    # Bounded partition sets: finished batches and closed reports older than these are retired from
    # their dynamic partition set (data kept), and at most `max_retained_partitions` of them are kept.
    retire_batches_after_days: int = 30
    retire_reports_after_days: int = 30
    max_retained_partitions: int = 20000

    @property
    def objects_root(self) -> Path:
        return self.signals_home / "objects"

    @property
    def clickhouse_path(self) -> Path:
        return self.signals_home / "clickhouse"

    @property
    def clickhouse_server(self) -> bool:
        """A ClickHouse server stores the signals (its password is read at run launch), not chDB (`chdb://`)."""
        return names_server(self.clickhouse_url)

    @property
    def uses_openai(self) -> bool:
        """An OpenAI-compatible server embeds or judges: `OPENAI_API_KEY` is needed."""
        return "openai" in (self.embedder, self.llm_provider)

    @property
    def vector_index_dimensions(self) -> int:
        """Dimensions of the HNSW index on the embeddings; 0 = no index."""
        return self.clickhouse_vector_dimensions if self.clickhouse_vector_index == "hnsw" else 0


def home_folder(variable: str, text: str) -> Path:
    """The folder the environment variable `variable` names, `~` expanded and made absolute; refused, naming
    the variable, when it names the home of a user that does not exist or when it or a parent is a file."""
    try:
        folder = Path(text).expanduser().absolute()
    except RuntimeError:  # `~user/…` of no such user: "Could not determine home directory."
        raise ValueError(f"{variable}={text[:80]!r} names the home folder of a user that does not exist") from None
    if not next(path for path in (folder, *folder.parents) if path.exists()).is_dir():
        raise ValueError(f"{variable}={str(folder)!r} must be a folder (or not exist yet), not a file")
    return folder


def load_settings() -> Settings:
    home = home_folder("SIGNALS_HOME", _env("SIGNALS_HOME", str(default_signals_home()))).resolve()
    object_store = _choice("SIGNALS_OBJECT_STORE", "local", ("local", "s3"))
    bucket = _env("SIGNALS_S3_BUCKET")
    if object_store == "s3" and not bucket:
        raise ValueError("SIGNALS_S3_BUCKET must be set when SIGNALS_OBJECT_STORE=s3")
    # boto3's own check of a bucket name (an access point ARN aside) fails every object-store call with
    # "Parameter validation failed:" on its first line
    if bucket and not bucket.startswith("arn:") and not re.fullmatch(r"[A-Za-z0-9._-]{1,255}", bucket):
        raise ValueError(
            f"SIGNALS_S3_BUCKET={bucket[:40]!r} must be a bucket name: letters, digits, '.', '-' and '_' "
            "(not a URL such as s3://bucket/prefix: the prefix is SIGNALS_S3_PREFIX)"
        )
    embedder = _choice("SIGNALS_EMBEDDER", "minilm", ("minilm", "openai"))
    llm_provider = _choice("SIGNALS_LLM_PROVIDER", "offline", ("offline", "openai"))
    # The key itself is read at run launch (a secret, not held here): without it every run would fail
    # on a Dagster config error instead.
    for name, value in (("SIGNALS_LLM_PROVIDER", llm_provider), ("SIGNALS_EMBEDDER", embedder)):
        if value == "openai" and not _env("OPENAI_API_KEY"):
            raise ValueError(f"OPENAI_API_KEY must be set when {name}=openai")
    vector_index = _choice("SIGNALS_CLICKHOUSE_VECTOR_INDEX", "none", ("none", "hnsw"))
    vector_dimensions = _positive_int("SIGNALS_CLICKHOUSE_VECTOR_DIMENSIONS", 384)
    # The index refuses every embedding of other dimensions: each batch would fail until parked.
    if vector_index == "hnsw" and embedder == "minilm" and vector_dimensions != MINILM_DIMENSION:
        raise ValueError(
            f"SIGNALS_CLICKHOUSE_VECTOR_DIMENSIONS={vector_dimensions} must be {MINILM_DIMENSION}, the dimensions "
            "of SIGNALS_EMBEDDER=minilm, with SIGNALS_CLICKHOUSE_VECTOR_INDEX=hnsw"
        )
    clickhouse_url = _url("SIGNALS_CLICKHOUSE_URL", ("http", "https", "chdb"), hostless=("chdb",))
    # Read at run launch too (a secret, not held here), where an unset one fails every run on a Dagster
    # config error; empty is a password (none, or the URL's own).
    if names_server(clickhouse_url) and "SIGNALS_CLICKHOUSE_PASSWORD" not in os.environ:
        raise ValueError(
            "SIGNALS_CLICKHOUSE_PASSWORD must be set when SIGNALS_CLICKHOUSE_URL names a server (it may be empty)"
        )
    allowlist = _list("SIGNALS_SANDBOX_NETWORK_ALLOWLIST")
    sandbox_network = _env("SIGNALS_SANDBOX_NETWORK")
    if allowlist and not sandbox_network:
        raise ValueError(
            "SIGNALS_SANDBOX_NETWORK must name the docker network that enforces SIGNALS_SANDBOX_NETWORK_ALLOWLIST"
        )
    return Settings(
        signals_home=home,
        object_store=object_store,
        s3_bucket=bucket,
        s3_prefix=_env("SIGNALS_S3_PREFIX").strip("/"),
        s3_endpoint_url=_url("SIGNALS_S3_ENDPOINT_URL", ("http", "https")),
        clickhouse_url=clickhouse_url,
        clickhouse_database=_identifier("SIGNALS_CLICKHOUSE_DATABASE", "signals", MAX_DATABASE_NAME_CHARS),
        clickhouse_user=_env("SIGNALS_CLICKHOUSE_USER", "default"),
        clickhouse_secure=_flag("SIGNALS_CLICKHOUSE_SECURE"),
        clickhouse_vector_index=vector_index,
        clickhouse_vector_dimensions=vector_dimensions,
        embedder=embedder,
        embedding_model=_env("SIGNALS_EMBEDDING_MODEL", "text-embedding-3-small"),
        llm_provider=llm_provider,
        llm_model=_env("SIGNALS_LLM_MODEL", "gpt-4.1-mini"),
        llm_merge_proposals=_positive_int("SIGNALS_LLM_MERGE_PROPOSALS", 10, minimum=0),
        consolidation_pool=_positive_int("SIGNALS_CONSOLIDATION_POOL", POOL_LIMIT, minimum=2),
        openai_base_url=_url("OPENAI_BASE_URL", ("http", "https")),
        sandbox=_choice("SIGNALS_SANDBOX", "subprocess", ("subprocess", "docker")),
        sandbox_image=_env("SIGNALS_SANDBOX_IMAGE", "signals-research-agent:latest"),
        sandbox_timeout_seconds=_positive_int("SIGNALS_SANDBOX_TIMEOUT_SECONDS", 600),
        sandbox_inactivity_seconds=_positive_int("SIGNALS_SANDBOX_INACTIVITY_SECONDS", 120),
        sandbox_memory_mb=_positive_int("SIGNALS_SANDBOX_MEMORY_MB", 512, maximum=MAX_SANDBOX_MEMORY_MB),
        sandbox_cpus=_number("SIGNALS_SANDBOX_CPUS", 1.0, *SANDBOX_CPUS_RANGE),
        sandbox_pids=_positive_int("SIGNALS_SANDBOX_PIDS", 128),
        sandbox_network=sandbox_network,
        sandbox_network_allowlist=allowlist,
        batch_max_signals=_positive_int("SIGNALS_BATCH_MAX_SIGNALS", 500),
        sensor_interval_seconds=_positive_int("SIGNALS_SENSOR_INTERVAL_SECONDS", 5),
        signal_limits=SignalLimits(
            # room for the envelope and a minimal signal
            max_signal_bytes=_positive_int(
                "SIGNALS_MAX_SIGNAL_BYTES", DEFAULT_LIMITS.max_signal_bytes, minimum=2 * RECORD_ENVELOPE_BYTES
            ),
            max_extra_bytes=_positive_int("SIGNALS_MAX_EXTRA_BYTES", DEFAULT_LIMITS.max_extra_bytes),
            max_extra_depth=_positive_int("SIGNALS_MAX_EXTRA_DEPTH", DEFAULT_LIMITS.max_extra_depth),
            max_extra_keys=_positive_int("SIGNALS_MAX_EXTRA_KEYS", DEFAULT_LIMITS.max_extra_keys),
        ),
        max_attempts=_positive_int("SIGNALS_MAX_ATTEMPTS", 3),
        retry_backoff_seconds=_positive_int("SIGNALS_RETRY_BACKOFF_SECONDS", 60),
        reports_per_run=_positive_int("SIGNALS_REPORTS_PER_RUN", 50),
        research_concurrency=_positive_int("SIGNALS_RESEARCH_CONCURRENCY", os.cpu_count() or 1),
        max_signals_per_team_batch=_positive_int(
            "SIGNALS_MAX_SIGNALS_PER_TEAM_BATCH", _positive_int("SIGNALS_BATCH_MAX_SIGNALS", 500)
        ),
        max_open_batches=_positive_int("SIGNALS_MAX_OPEN_BATCHES", 1),
        max_batches_per_run=_positive_int("SIGNALS_MAX_BATCHES_PER_RUN", 20),
        max_reports_per_team_day=_positive_int("SIGNALS_MAX_REPORTS_PER_TEAM_DAY", 2000),
        retire_batches_after_days=_positive_int("SIGNALS_RETIRE_BATCHES_AFTER_DAYS", 30, maximum=MAX_RETIRE_DAYS),
        retire_reports_after_days=_positive_int("SIGNALS_RETIRE_REPORTS_AFTER_DAYS", 30, maximum=MAX_RETIRE_DAYS),
        max_retained_partitions=_positive_int("SIGNALS_MAX_RETAINED_PARTITIONS", 20000),
    )
