import json
import re
import subprocess
import sys
from datetime import datetime, timedelta, timezone

import pytest

from signals_assets.facade import EmitResult, emit_signal, emit_signal_result
from signals_assets.ingestion.emit import inbox_key, signal_record
from signals_assets.ingestion.teams import TeamConfig, load_team, save_team
from signals_assets.ingestion.validation import SignalValidationError, validate_signal
from signals_assets.settings import Settings
from signals_assets.storage.object_store import LocalObjectStore

from conftest import REPO_ROOT, zendesk_extra

HEAVY_MODULES = (
    "dagster",
    "openai",
    "pandas",
    "clickhouse_connect",
    "chdb",
    "boto3",
    "docker",
    "torch",
    "numpy",
    "onnxruntime",
)
INBOX_KEY = re.compile(r"^inbox/3/(\d{8}T\d{12}Z)-([0-9a-f-]{36})\.json$")


@pytest.fixture
def store(tmp_path) -> LocalObjectStore:
    return LocalObjectStore(tmp_path / "objects")


@pytest.fixture
def consenting_team(store) -> TeamConfig:
    config = TeamConfig(team_id=3, ai_processing_consent=True)
    save_team(store, config)
    return config


def ticket(**overrides) -> dict:
    return {
        "team_id": 3,
        "source_product": "zendesk",
        "source_type": "ticket",
        "source_id": "T-1",
        "description": "Card payment declined at checkout.",
        "extra": zendesk_extra(1),
        **overrides,
    }


def test_writes_exactly_one_inbox_object_with_the_signal(store, consenting_team):
    before = datetime.now(timezone.utc)
    signal_id = emit_signal(**ticket(weight=0.75, idempotency_key="zendesk-T-1"), store=store)

    [key] = store.list("inbox/")
    stamp, id_in_key = INBOX_KEY.match(key).groups()
    assert id_in_key == signal_id
    body = store.get(key)
    record = json.loads(body.decode("utf-8"))
    assert body == json.dumps(record, sort_keys=True).encode("utf-8")
    assert record == {
        "signal_id": signal_id,
        "team_id": 3,
        "source_product": "zendesk",
        "source_type": "ticket",
        "source_id": "T-1",
        "description": "Card payment declined at checkout.",
        "weight": 0.75,
        "extra": zendesk_extra(1),
        "idempotency_key": "zendesk-T-1",
        "emitted_at": record["emitted_at"],
    }
    emitted_at = datetime.fromisoformat(record["emitted_at"].replace("Z", "+00:00"))
    assert record["emitted_at"].endswith("Z") and before <= emitted_at <= datetime.now(timezone.utc)
    assert stamp == f"{emitted_at:%Y%m%dT%H%M%S%fZ}"


def test_the_record_passes_validation_again_at_ingestion(store, consenting_team):
    emit_signal(**ticket(), store=store)
    record = json.loads(store.get(store.list("inbox/")[0]))
    payload = {k: v for k, v in record.items() if k not in ("signal_id", "emitted_at")}
    assert validate_signal(payload) == validate_signal(ticket())


def test_result_carries_the_id(store, consenting_team):
    result = emit_signal_result(**ticket(), store=store)
    assert result == EmitResult(signal_id=result.signal_id, gated_reason=None)
    assert store.list("inbox/")[0].endswith(f"-{result.signal_id}.json")


@pytest.mark.parametrize(
    "bad, field",
    [
        (ticket(weight=1.5), "weight"),
        (ticket(extra={**zendesk_extra(1), "tags": "web"}), "extra.tags"),
        (ticket(team_id=0), "team_id"),
        (ticket(source_type="issue"), "source_type"),
    ],
)
def test_invalid_input_raises_and_writes_nothing(store, consenting_team, bad, field):
    with pytest.raises(SignalValidationError) as caught:
        emit_signal(**bad, store=store)
    assert caught.value.field == field
    assert store.list("inbox/") == []


def test_validation_comes_before_the_gates(store):
    with pytest.raises(SignalValidationError):
        emit_signal(**ticket(description=""), store=store)  # team 3 is not configured either


@pytest.mark.parametrize(
    "config, reason",
    [
        (None, "team 3 is not configured (run: signals teams set 3 --consent)"),
        (TeamConfig(team_id=3), "team 3 has not consented to AI processing"),
        (
            TeamConfig(team_id=3, ai_processing_consent=True, enabled_sources=["github/issue"]),
            "source zendesk/ticket is not enabled for team 3",
        ),
    ],
)
def test_gates_write_nothing_and_say_why(store, config, reason):
    if config:
        save_team(store, config)
    assert emit_signal(**ticket(), store=store) is None
    assert emit_signal_result(**ticket(), store=store) == EmitResult(signal_id=None, gated_reason=reason)
    assert store.list("inbox/") == []


def test_an_enabled_source_passes_the_gate(store):
    save_team(store, TeamConfig(team_id=3, ai_processing_consent=True, enabled_sources=["zendesk/ticket"]))
    assert emit_signal(**ticket(), store=store)


def test_idempotency_key_gives_a_stable_id(store, consenting_team):
    first = emit_signal(**ticket(idempotency_key="ticket-1"), store=store)
    again = emit_signal(**ticket(idempotency_key="ticket-1", description="Edited text"), store=store)
    other = emit_signal(**ticket(idempotency_key="ticket-2"), store=store)
    assert first == again != other
    assert len(store.list("inbox/")) == 3  # duplicates are dropped at ingestion, not here

    save_team(store, TeamConfig(team_id=4, ai_processing_consent=True))
    assert emit_signal(**ticket(team_id=4, idempotency_key="ticket-1"), store=store) != first


def test_without_idempotency_key_every_emit_gets_a_new_id(store, consenting_team):
    assert emit_signal(**ticket(), store=store) != emit_signal(**ticket(), store=store)


def test_store_defaults_to_the_settings_object_store(tmp_path):
    settings = Settings(signals_home=tmp_path / "home")
    store = LocalObjectStore(settings.objects_root)
    save_team(store, TeamConfig(team_id=3, ai_processing_consent=True))
    signal_id = emit_signal(**ticket(), settings=settings)
    assert store.list("inbox/")[0].endswith(f"-{signal_id}.json")


def test_inbox_key_is_per_team_utc_and_sorts_in_time_order():
    moment = datetime(2026, 11, 22, 9, 30, 5, 123456, tzinfo=timezone(timedelta(hours=2)))
    assert inbox_key(7, moment, "abc") == "inbox/7/20261122T073005123456Z-abc.json"
    assert inbox_key(7, moment, "z") < inbox_key(7, moment + timedelta(microseconds=1), "a")
    with pytest.raises(ValueError, match="timezone-aware"):
        inbox_key(7, datetime(2026, 11, 22), "abc")


def test_signal_record_stamps_emitted_at_in_utc():
    valid = validate_signal(ticket())
    moment = datetime(2026, 11, 22, 9, 30, 5, 123456, tzinfo=timezone(timedelta(hours=2)))
    record = signal_record(valid, "sig-1", moment)
    assert record["emitted_at"] == "2026-11-22T07:30:05.123456Z"
    assert record["signal_id"] == "sig-1" and record["idempotency_key"] is None


def test_team_config_round_trips_and_is_validated(store):
    config = TeamConfig(team_id=5, ai_processing_consent=True, enabled_sources=["github/issue"], repositories=["/src"])
    save_team(store, config)
    assert load_team(store, 5) == config
    assert load_team(store, 6) is None
    with pytest.raises(ValueError, match="enabled_sources: unknown source 'github/pull_request'"):
        save_team(store, TeamConfig(team_id=5, enabled_sources=["github/pull_request"]))
    with pytest.raises(ValueError, match="repositories"):
        save_team(store, TeamConfig(team_id=5, repositories=[42]))
    for repository, rule in [
        ("/", "is the root folder"),
        ("/proc/1", "is inside the system tree /proc"),
        ("/srv/../etc", "is inside the system tree /etc"),
        ("src", "must be an absolute path"),
    ]:
        with pytest.raises(ValueError, match=f"^repositories: '{re.escape(repository)}' {rule}$"):
            save_team(store, TeamConfig(team_id=5, repositories=[repository]))
    with pytest.raises(ValueError, match="^team_id: must be an integer from 1 to 18446744073709551615"):
        save_team(store, TeamConfig(team_id=2**64))
    assert load_team(store, 5) == config


def test_importing_the_facade_loads_no_heavy_module():
    code = (
        "import sys\n"
        "import signals_assets.facade\n"
        f"heavy = [m for m in {HEAVY_MODULES!r} if any(n == m or n.startswith(m + '.') for n in sys.modules)]\n"
        "print(','.join(heavy))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "", f"the facade pulled in: {done.stdout.strip()}"
