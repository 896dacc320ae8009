import json
import textwrap
from pathlib import Path

import pytest

from signals_assets.objects import LocalObjectStore
from signals_assets.settings import load_settings

REPO_ROOT = Path(__file__).resolve().parents[1]
SETTINGS_VARIABLES = (
    "SIGNALS_OBJECT_STORE", "SIGNALS_S3_BUCKET", "SIGNALS_S3_PREFIX", "SIGNALS_S3_ENDPOINT_URL",
    "SIGNALS_CLICKHOUSE_URL", "SIGNALS_CLICKHOUSE_DATABASE", "SIGNALS_EMBEDDER", "SIGNALS_LLM_PROVIDER",
    "SIGNALS_SANDBOX", "SIGNALS_BATCH_MAX_SIGNALS", "SIGNALS_SENSOR_INTERVAL_SECONDS",
    "SIGNALS_SANDBOX_IMAGE", "SIGNALS_SANDBOX_TIMEOUT_SECONDS", "SIGNALS_SANDBOX_INACTIVITY_SECONDS",
    "SIGNALS_SANDBOX_MEMORY_MB", "SIGNALS_SANDBOX_CPUS", "SIGNALS_SANDBOX_PIDS", "SIGNALS_SANDBOX_NETWORK",
    "SIGNALS_SANDBOX_NETWORK_ALLOWLIST",
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


@pytest.fixture
def object_store(signals_home) -> LocalObjectStore:
    return LocalObjectStore(load_settings().objects_root)


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
        "search/query.py": '''
            def search_products(query):
                return index.lookup(query.lower())
            ''',
    }
    for name, body in files.items():
        path = repo / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(body).lstrip())
    return repo


@pytest.fixture
def team(object_store, demo_repository):
    from signals_assets.teams import TeamConfig, save_team

    config = TeamConfig(team_id=1, ai_processing_consent=True, repositories=[str(demo_repository)])
    save_team(object_store, config)
    return config


def zendesk_extra(number: int) -> dict:
    return {"url": f"https://support.example/tickets/{number}", "type": "problem", "tags": ["web"],
            "created_at": "2026-11-20T10:00:00Z", "priority": "normal", "status": "open"}


def emit_texts(store, texts, team_id=1, start=0, **kwargs) -> list[str]:
    from signals_assets.facade import emit_signal

    return [
        emit_signal(team_id=team_id, source_product="zendesk", source_type="ticket", source_id=str(start + i),
                    description=text, extra=zendesk_extra(start + i), store=store, **kwargs)
        for i, text in enumerate(texts)
    ]


def read_json_lines(data: bytes) -> list[dict]:
    return [json.loads(line) for line in data.decode().splitlines() if line.strip()]
