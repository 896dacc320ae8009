import json
import os
import signal
import textwrap
from contextlib import contextmanager
from pathlib import Path

import pytest

from signals_assets.settings import load_settings
from signals_assets.storage.object_store import ObjectStore, open_object_store

REPO_ROOT = Path(__file__).resolve().parents[1]
CODE_IMAGE = os.environ.get("SIGNALS_ASSETS_IMAGE", "signals-assets:local")
CODE_IMAGE_NEEDED = "code-location image: needed"
SETTINGS_VARIABLES = (
    "SIGNALS_OBJECT_STORE",
    "SIGNALS_S3_BUCKET",
    "SIGNALS_S3_PREFIX",
    "SIGNALS_S3_ENDPOINT_URL",
    "SIGNALS_CLICKHOUSE_URL",
    "SIGNALS_CLICKHOUSE_DATABASE",
    "SIGNALS_EMBEDDER",
    "SIGNALS_LLM_PROVIDER",
    "SIGNALS_LLM_MERGE_PROPOSALS",
    "SIGNALS_CONSOLIDATION_POOL",
    "SIGNALS_SANDBOX",
    "SIGNALS_BATCH_MAX_SIGNALS",
    "SIGNALS_SENSOR_INTERVAL_SECONDS",
    "SIGNALS_CLICKHOUSE_USER",
    "SIGNALS_CLICKHOUSE_SECURE",
    "SIGNALS_CLICKHOUSE_VECTOR_INDEX",
    "SIGNALS_CLICKHOUSE_VECTOR_DIMENSIONS",
    "SIGNALS_SANDBOX_IMAGE",
    "SIGNALS_SANDBOX_TIMEOUT_SECONDS",
    "SIGNALS_SANDBOX_INACTIVITY_SECONDS",
    "SIGNALS_SANDBOX_MEMORY_MB",
    "SIGNALS_SANDBOX_CPUS",
    "SIGNALS_SANDBOX_PIDS",
    "SIGNALS_SANDBOX_NETWORK",
    "SIGNALS_SANDBOX_NETWORK_ALLOWLIST",
    "SIGNALS_MAX_ATTEMPTS",
    "SIGNALS_RETRY_BACKOFF_SECONDS",
    "SIGNALS_MAX_SIGNAL_BYTES",
    "SIGNALS_MAX_EXTRA_BYTES",
    "SIGNALS_MAX_EXTRA_DEPTH",
    "SIGNALS_MAX_EXTRA_KEYS",
    "SIGNALS_MAX_SIGNALS_PER_TEAM_BATCH",
    "SIGNALS_MAX_OPEN_BATCHES",
    "SIGNALS_MAX_BATCHES_PER_RUN",
    "SIGNALS_MAX_REPORTS_PER_TEAM_DAY",
    "SIGNALS_RETIRE_BATCHES_AFTER_DAYS",
    "SIGNALS_RETIRE_REPORTS_AFTER_DAYS",
    "SIGNALS_MAX_RETAINED_PARTITIONS",
)

CARD_DECLINED = [
    "My card payment was declined at checkout.",
    "Card payment declined at checkout again today.",
    "At checkout my card payment keeps getting declined.",
]
PASSWORD_RESET = [
    "The password reset email never arrives in my inbox.",
    "I requested a password reset but the email never arrived.",
    "Password reset emails are not arriving for me.",
]


@pytest.fixture
def signals_home(tmp_path, monkeypatch) -> Path:
    """A private SIGNALS_HOME on the embedded defaults."""
    for name in SETTINGS_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    home = tmp_path / "signals_home"
    monkeypatch.setenv("SIGNALS_HOME", str(home))
    monkeypatch.setenv("DAGSTER_HOME", str(home / "dagster_home"))
    (home / "dagster_home").mkdir(parents=True)
    return home


@pytest.fixture(scope="session")
def s3_server():
    """moto's S3 over HTTP on a free localhost port, for the whole session."""
    from s3_server import LocalS3Server

    with LocalS3Server() as server:
        yield server


@pytest.fixture
def object_store(request, signals_home, monkeypatch) -> ObjectStore:
    """The settings' object store: the local folder, or with `indirect` param "s3" a fresh bucket on
    the local S3 server (the environment then selects it for everything the test runs)."""
    if getattr(request, "param", "local") == "s3":
        server = request.getfixturevalue("s3_server")
        for name, value in server.environment(server.new_bucket()).items():
            monkeypatch.setenv(name, value)
    return open_object_store(load_settings())


@pytest.fixture
def demo_repository(tmp_path) -> Path:
    """A small code repository for the research agent."""
    repo = tmp_path / "shop"
    files = {
        "checkout/card_payments.py": '''
            """Card payment authorisation at checkout."""

            def authorise_card_payment(card, amount):
                """Declined card payments raise PaymentDeclined with the issuer's reason."""
                if card.expired:
                    raise PaymentDeclined("card expired")
                return gateway.charge(card, amount)
            ''',
        "auth/password_reset.py": '''
            """Password reset emails with a one-time token."""

            def send_password_reset_email(user):
                token = create_reset_token(user)
                mailer.send(user.email, "Reset your password", token)
            ''',
        "search/query.py": """
            def search_products(query):
                return index.lookup(query.lower())
            """,
    }
    for name, body in files.items():
        path = repo / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(body).lstrip())
    return repo


@pytest.fixture
def team(object_store, demo_repository):
    from signals_assets.ingestion.teams import TeamConfig, save_team

    config = TeamConfig(team_id=1, ai_processing_consent=True, repositories=[str(demo_repository)])
    save_team(object_store, config)
    return config


def zendesk_extra(number: int) -> dict:
    return {
        "url": f"https://support.example/tickets/{number}",
        "type": "problem",
        "tags": ["web"],
        "created_at": "2026-11-20T10:00:00Z",
        "priority": "normal",
        "status": "open",
    }


def emit_texts(store, texts, team_id=1, start=0, **kwargs) -> list[str]:
    from signals_assets.facade import emit_signal

    return [
        emit_signal(
            team_id=team_id,
            source_product="zendesk",
            source_type="ticket",
            source_id=str(start + i),
            description=text,
            extra=zendesk_extra(start + i),
            store=store,
            **kwargs,
        )
        for i, text in enumerate(texts)
    ]


def group_one_batch(store, instance, definitions, texts):
    """`texts` emitted for team 1, claimed as one batch and grouped by an in-process `signal_batch_job`
    run on `instance`; the batch key and the run's result."""
    from signals_assets.ingestion import inbox

    emit_texts(store, texts)
    batch = inbox.claim_pending(store, 100, None).new_batches[0]
    instance.add_dynamic_partitions("signal_batches", [batch])
    result = definitions.resolve_job_def("signal_batch_job").execute_in_process(partition_key=batch, instance=instance)
    assert result.success
    return batch, result


def rescaled(vectors, gain: float, shift: float):
    """The same signals embedded so that every pairwise cosine c becomes gain · c + shift (shift ≥ 0,
    gain + shift ≤ 1): each unit vector is shrunk by √gain and gets a component √shift shared by all
    and an own one √(1 − gain − shift)."""
    import numpy as np

    matrix = np.asarray(vectors, dtype=np.float64)
    n = len(matrix)
    shared = np.full((n, 1), np.sqrt(shift))
    return np.hstack([np.sqrt(gain) * matrix, shared, np.sqrt(1 - gain - shift) * np.eye(n)])


def read_json_lines(data: bytes) -> list[dict]:
    return [json.loads(line) for line in data.decode().splitlines() if line.strip()]


POSTGRES_DEFAULTS = {
    "DAGSTER_PG_HOST": "127.0.0.1",
    "DAGSTER_PG_PORT": "5432",
    "DAGSTER_PG_USER": "signals_test",
    "DAGSTER_PG_PASSWORD": "signals_test",
}  # the role scripts/start-postgres creates


@contextmanager
def fresh_postgres_database():
    """A fresh database on the Postgres of scripts/start-postgres, dropped afterwards; yields its DAGSTER_PG_*."""
    import uuid

    import psycopg2

    env = {name: os.environ.get(name) or default for name, default in POSTGRES_DEFAULTS.items()}
    env["DAGSTER_PG_DB"] = f"signals_test_{uuid.uuid4().hex[:12]}"
    try:
        admin = psycopg2.connect(
            host=env["DAGSTER_PG_HOST"],
            port=int(env["DAGSTER_PG_PORT"]),
            user=env["DAGSTER_PG_USER"],
            password=env["DAGSTER_PG_PASSWORD"],
            dbname="postgres",
        )
    except psycopg2.OperationalError as error:
        raise RuntimeError(f"no Postgres for the instance tests (run scripts/start-postgres): {error}") from error
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute(f'CREATE DATABASE "{env["DAGSTER_PG_DB"]}"')
    try:
        yield env
    finally:
        with admin.cursor() as cursor:
            cursor.execute(f'DROP DATABASE "{env["DAGSTER_PG_DB"]}" WITH (FORCE)')
        admin.close()


@pytest.fixture
def postgres_database(monkeypatch):
    """A fresh database (fresh_postgres_database) that DAGSTER_PG_* name for the test."""
    with fresh_postgres_database() as env:
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        yield env


def production_instance_config() -> dict:
    import yaml

    return yaml.safe_load((REPO_ROOT / "deploy" / "dagster.yaml").read_text())


def pytest_configure(config):
    # scripts/test stops each half of the suite with SIGINT, so that pytest tears down the fixtures that
    # stop the daemons and servers the tests started. A script started in the background hands its own
    # background commands SIGINT ignored: without this, a half would only end at the SIGKILL that follows.
    signal.signal(signal.SIGINT, signal.default_int_handler)


def pytest_addoption(parser):
    parser.addoption(
        "--code-image-needed",
        action="store_true",
        help=f"print '{CODE_IMAGE_NEEDED}' when a selected test requests the code_image fixture "
        "(scripts/test builds the image only then; use with --collect-only)",
    )


@pytest.hookimpl(tryfirst=True)  # before -m deselects by marker
def pytest_collection_modifyitems(items):
    for item in items:
        if "code_image" in getattr(item, "fixturenames", ()):
            item.add_marker("code_image")


def pytest_collection_finish(session):
    if session.config.getoption("--code-image-needed") and any(
        item.get_closest_marker("code_image") for item in session.items
    ):
        print(f"\n{CODE_IMAGE_NEEDED}")


@pytest.fixture
def code_image() -> str:
    """The code-location image (scripts/build-code-image) for a test that runs containers of it. The one
    way a test gets the image: requesting this fixture marks the test `code_image`, which is how
    scripts/test knows to build the image (a build copies every layer on the vfs storage driver)."""
    return CODE_IMAGE


def queued_run(instance, job_name: str, tags: dict):
    """A run of this code location's `job_name` waiting in the run queue (QUEUED needs a job origin)."""
    import dagster as dg
    from dagster._core.remote_origin import RegisteredCodeLocationOrigin, RemoteJobOrigin, RemoteRepositoryOrigin
    from dagster._core.test_utils import create_run_for_test

    origin = RemoteJobOrigin(
        RemoteRepositoryOrigin(RegisteredCodeLocationOrigin("signals_assets"), "__repository__"), job_name
    )
    return create_run_for_test(
        instance, job_name=job_name, status=dg.DagsterRunStatus.QUEUED, tags=tags, remote_job_origin=origin
    )


def refuse_permission(monkeypatch, call: str, path_suffix: str) -> None:
    """`os.<call>` raises PermissionError for a path ending in `path_suffix`, as for a file or folder its
    caller may not open or write into: the tests run as root, whom permissions do not stop."""
    real = getattr(os, call)

    def refusing(path, *args, **kwargs):
        if str(path).endswith(path_suffix):
            raise PermissionError(13, "Permission denied", str(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(os, call, refusing)
