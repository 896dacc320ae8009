import re

import pytest

from signals_assets.ingestion.validation import (
    MAX_TEAM_ID,
    SOURCE_PAIRS,
    SignalLimits,
    SignalValidationError,
    ValidSignal,
    validate_signal,
)

VALID_EXTRAS = {
    "zendesk/ticket": {
        "url": "https://support.example/tickets/1",
        "type": "problem",
        "tags": ["web", "billing"],
        "created_at": "2026-11-20T10:00:00Z",
        "priority": "normal",
        "status": "open",
    },
    "github/issue": {
        "html_url": "https://github.com/acme/shop/issues/7",
        "number": 7,
        "labels": ["bug"],
        "created_at": "2026-11-20T10:00:00Z",
        "updated_at": "2026-11-21T08:30:00+00:00",
        "locked": False,
        "state": "open",
        "author_login": "octocat",
        "author_association": "CONTRIBUTOR",
    },
    "linear/issue": {
        "url": "https://linear.app/acme/issue/ENG-12",
        "identifier": "ENG-12",
        "number": 12,
        "priority": 2,
        "priority_label": "High",
        "labels": [],
        "state_name": "Todo",
        "state_type": "unstarted",
        "team_name": "Engineering",
        "created_at": "2026-11-20",
        "updated_at": "2026-11-20T10:00:00.123456Z",
    },
    "error_tracking/issue_created": {"fingerprint": "a1b2c3", "host": "app.example.com", "is_dev_host": False},
    "error_tracking/issue_reopened": {"fingerprint": "a1b2c3"},
    "error_tracking/issue_spiking": {"fingerprint": "a1b2c3", "host": "localhost", "is_dev_host": True},
    "session_replay/session_problem": {
        "session_id": "s-1",
        "segment_title": "Checkout",
        "start_time": "2026-11-20T10:00:00Z",
        "end_time": "2026-11-20T10:05:00Z",
        "problem_type": "blocking_exception",
        "distinct_id": "user-9",
    },
    "llm_analytics/evaluation_report": {
        "evaluation_id": "ev-1",
        "evaluation_name": "Helpfulness",
        "evaluation_description": "Is it helpful?",
        "report_id": "r-1",
        "report_run_id": "run-1",
        "period_start": "2026-11-19T00:00:00Z",
        "period_end": "2026-11-20T00:00:00Z",
    },
}


def payload(pair: str = "zendesk/ticket", **overrides) -> dict:
    product, source_type = pair.split("/")
    base = {
        "team_id": 1,
        "source_product": product,
        "source_type": source_type,
        "source_id": "42",
        "description": "Card payment declined at checkout.",
        "extra": dict(VALID_EXTRAS[pair]),
    }
    return {**base, **overrides}


def with_extra(pair: str = "zendesk/ticket", drop: tuple[str, ...] = (), **changes) -> dict:
    extra = {k: v for k, v in VALID_EXTRAS[pair].items() if k not in drop}
    return payload(pair, extra={**extra, **changes})


def test_every_known_pair_has_a_valid_example():
    assert sorted(VALID_EXTRAS) == sorted(SOURCE_PAIRS)


@pytest.mark.parametrize("pair", sorted(VALID_EXTRAS))
def test_valid_payloads_pass(pair):
    signal = validate_signal(payload(pair))
    assert isinstance(signal, ValidSignal)
    assert f"{signal.source_product}/{signal.source_type}" == pair
    assert signal.extra == VALID_EXTRAS[pair]
    assert signal.weight == 0.5 and signal.idempotency_key is None


def test_optional_fields_are_kept():
    signal = validate_signal(payload(weight=1, idempotency_key="ticket-1"))
    assert signal.weight == 1.0 and isinstance(signal.weight, float)
    assert signal.idempotency_key == "ticket-1"


def test_none_means_not_given_for_optional_fields():
    signal = validate_signal(
        payload(
            "error_tracking/issue_created", weight=None, idempotency_key=None, extra={"fingerprint": "f", "host": None}
        )
    )
    assert signal.weight == 0.5 and signal.idempotency_key is None
    assert signal.extra == {"fingerprint": "f"}


def test_description_at_the_token_limit_passes():
    assert validate_signal(payload(description="x" * 32_000)).description == "x" * 32_000


INVALID = {
    # top level
    "unknown field": ({**payload(), "severity": "high"}, "severity", "is not a known signal field"),
    "missing field": ({k: v for k, v in payload().items() if k != "source_id"}, "source_id", "is required"),
    "payload not a dict": (["not", "a", "dict"], "payload", "must be an object"),
    # team_id
    "team_id zero": (payload(team_id=0), "team_id", f"must be an integer from 1 to {MAX_TEAM_ID}, got 0"),
    "team_id negative": (payload(team_id=-3), "team_id", "got -3"),
    "team_id bool": (payload(team_id=True), "team_id", f"must be an integer from 1 to {MAX_TEAM_ID}, got True"),
    "team_id string": (payload(team_id="1"), "team_id", "got '1'"),
    "team_id float": (payload(team_id=1.0), "team_id", "got 1.0"),
    "team_id 2^64": (payload(team_id=2**64), "team_id", "got 18446744073709551616"),
    "team_id huge": (payload(team_id=10**5000), "team_id", "got an integer of 16610 bits"),
    # source pair
    "unknown product": (payload(source_product="jira"), "source_product", "must be one of"),
    "unknown type": (payload(source_type="tickets"), "source_type", "must be one of ticket for zendesk"),
    "pair from another product": (payload(source_type="issue"), "source_type", "must be one of ticket"),
    # source_id
    "source_id empty": (payload(source_id=""), "source_id", "must be a non-empty string"),
    "source_id not a string": (payload(source_id=42), "source_id", "must be a non-empty string"),
    "source_id too long": (payload(source_id="x" * 513), "source_id", "must be at most 512 characters, got 513"),
    # description
    "description blank": (payload(description="   "), "description", "must be a non-empty string"),
    "description over 8000 tokens": (
        payload(description="x" * 32_001),
        "description",
        "must be at most 8000 tokens (approximated as characters / 4), got ~8001",
    ),
    "description lone surrogate": (
        payload(description="Card \ud800 declined"),
        "description",
        "must be valid UTF-8 text, found an undecodable byte or lone surrogate (U+D800) at character 5",
    ),
    "description undecodable argument byte": (
        payload(description="caf\udce9"),
        "description",
        "(U+DCE9) at character 3",
    ),
    "description NUL": (
        payload(description="Card\x00declined"),
        "description",
        "must not contain NUL characters (found at character 4)",
    ),
    "source_id NUL": (payload(source_id="1\x00"), "source_id", "must not contain NUL characters"),
    # weight
    "weight above 1": (payload(weight=1.5), "weight", "must be in (0, 1], got 1.5"),
    "weight zero": (payload(weight=0), "weight", "must be in (0, 1], got 0"),
    "weight negative": (payload(weight=-0.1), "weight", "must be in (0, 1]"),
    "weight nan": (payload(weight=float("nan")), "weight", "must be in (0, 1], got nan"),
    "weight bool": (payload(weight=True), "weight", "must be a number, got True"),
    "weight string": (payload(weight="0.5"), "weight", "must be a number"),
    # idempotency_key
    "key empty": (payload(idempotency_key=""), "idempotency_key", "must not be empty or whitespace only"),
    "key whitespace": (payload(idempotency_key=" \t "), "idempotency_key", "must not be empty or whitespace only"),
    "key too long": (payload(idempotency_key="k" * 201), "idempotency_key", "must be at most 200 characters, got 201"),
    "key control character": (payload(idempotency_key="a\nb"), "idempotency_key", "must be printable"),
    "key not a string": (payload(idempotency_key=7), "idempotency_key", "must be a string"),
    # extra
    "extra not an object": (payload(extra=["url"]), "extra", "must be an object, got list"),
    "extra unknown key": (
        with_extra(requester_id="u1"),
        "extra.requester_id",
        "is not a known field for zendesk/ticket",
    ),
    "extra missing key": (with_extra(drop=("status",)), "extra.status", "is required for zendesk/ticket"),
    "extra empty string": (with_extra(priority=""), "extra.priority", "must be a non-empty string"),
    "extra list of non-strings": (with_extra(tags=["web", 3]), "extra.tags", "must be a list of strings"),
    "extra list as string": (with_extra(tags="web"), "extra.tags", "must be a list of strings"),
    "extra string NUL": (with_extra(priority="high\x00"), "extra.priority", "must not contain NUL characters"),
    "extra list item surrogate": (with_extra(tags=["ok", "\udcff"]), "extra.tags", "lone surrogate (U+DCFF)"),
    "extra int past 64 bits": (
        with_extra("github/issue", number=2**63),
        "extra.number",
        "must be an integer within ±9223372036854775807, got 9223372036854775808",
    ),
    "extra unknown key with escapes": (
        with_extra(**{"\x1b[31mred": "x"}),
        "extra",
        "has a key '\\x1b[31mred' that is not a known field for zendesk/ticket",
    ),
    "extra too deep": (payload(extra={"tags": [[[["deep"]]]]}), "extra", "must be nested at most 4 levels deep"),
    "extra too many keys": (
        payload(extra={f"k{i}": "v" for i in range(65)}),
        "extra",
        "must have at most 64 keys (counted at every depth)",
    ),
    "extra 50 MB": (with_extra(url="x" * 50_000_000), "extra", "must be at most 65536 bytes as JSON, got more"),
    "extra over the size in UTF-8": (
        with_extra(tags=["€" * 1000] * 30),
        "extra",
        "must be at most 65536 bytes as JSON, got 90",
    ),
    "extra bad timestamp": (
        with_extra(created_at="yesterday"),
        "extra.created_at",
        "must be an ISO-8601 timestamp, got 'yesterday'",
    ),
    "extra timestamp not a string": (
        with_extra(created_at=1700000000),
        "extra.created_at",
        "must be an ISO-8601 timestamp",
    ),
    "extra int as string": (with_extra("github/issue", number="7"), "extra.number", "must be an integer, got '7'"),
    "extra int as bool": (with_extra("linear/issue", priority=True), "extra.priority", "must be an integer, got True"),
    "extra bool as string": (
        with_extra("github/issue", locked="false"),
        "extra.locked",
        "must be a boolean, got 'false'",
    ),
    "extra optional typed": (
        with_extra("error_tracking/issue_spiking", is_dev_host=1),
        "extra.is_dev_host",
        "must be a boolean, got 1",
    ),
    "extra optional empty": (
        with_extra("github/issue", author_login=""),
        "extra.author_login",
        "must be a non-empty string",
    ),
    "extra choice": (
        with_extra("session_replay/session_problem", problem_type="slow"),
        "extra.problem_type",
        "must be one of confusion, abandonment, blocking_exception, non_blocking_exception, failure, got 'slow'",
    ),
    "extra missing for another pair": (
        with_extra("llm_analytics/evaluation_report", drop=("period_end",)),
        "extra.period_end",
        "is required for llm_analytics/evaluation_report",
    ),
}


@pytest.mark.parametrize("bad, field, rule", INVALID.values(), ids=INVALID.keys())
def test_invalid_payloads_name_the_field_and_the_rule(bad, field, rule):
    with pytest.raises(SignalValidationError) as caught:
        validate_signal(bad)
    error = caught.value
    assert error.field == field
    assert rule in error.rule
    assert str(error) == f"{field}: {error.rule}"
    assert isinstance(error, ValueError)


def test_the_error_message_format():
    with pytest.raises(SignalValidationError, match=r"^extra\.tags: must be a list of strings$"):
        validate_signal(with_extra(tags=[1]))
    with pytest.raises(SignalValidationError, match=r"^weight: must be in \(0, 1\], got 1\.5$"):
        validate_signal(payload(weight=1.5))


def test_a_cyclic_extra_is_stopped_by_the_depth_limit():
    extra = {"tags": []}
    extra["tags"].append(extra)
    with pytest.raises(SignalValidationError, match=r"^extra: must be nested at most 4 levels deep$"):
        validate_signal(payload(extra=extra))


def test_limits_are_configurable():
    small = SignalLimits(max_signal_bytes=2048, max_extra_bytes=100, max_extra_depth=1, max_extra_keys=3)
    with pytest.raises(SignalValidationError, match="^extra: must have at most 3 keys"):
        validate_signal(payload(), small)
    roomy = SignalLimits(max_signal_bytes=2048, max_extra_bytes=1000, max_extra_depth=2, max_extra_keys=10)
    assert validate_signal(payload(), roomy).extra == VALID_EXTRAS["zendesk/ticket"]
    with pytest.raises(SignalValidationError) as caught:
        validate_signal(payload(description="x" * 2000), roomy)
    assert caught.value.field == "signal"
    assert caught.value.rule.startswith("must be at most 1536 bytes as JSON (2048 minus 512 for the envelope), got ")


def test_error_messages_show_at_most_a_short_prefix_of_a_bad_value():
    with pytest.raises(SignalValidationError) as caught:
        validate_signal(payload(source_product="secret customer text " * 1000))
    assert len(str(caught.value)) < 200 and str(caught.value).endswith("…")


def test_the_team_id_range_is_the_stores_column_type():
    from signals_assets.storage.clickhouse import SCHEMA_DIR

    types = {m for path in SCHEMA_DIR.glob("*.sql") for m in re.findall(r"^\s*team_id (\w+)", path.read_text(), re.M)}
    assert types == {"UInt64"} and MAX_TEAM_ID == 2**64 - 1


INVISIBLE = {
    "zero-width spaces": "\u200b\u200b\u200b",
    "a byte order mark": "\ufeff",
    "bidi overrides": "\u202e\u202d",
    "control characters": "\x01\x02\x03",
    "word joiners and spaces": "\u200b \u200c \u200d \u2060",
    "a lone combining mark": "\u0301",
}


@pytest.mark.parametrize("text", INVISIBLE.values(), ids=INVISIBLE.keys())
def test_text_with_no_visible_character_is_refused(text):
    """Such a description passed the "non-empty" rule; a few of them became a promoted report whose title
    showed as nothing, researched like any other."""
    for field, bad in (
        ("description", payload(description=text)),
        ("source_id", payload(source_id=text)),
        ("extra.fingerprint", payload("error_tracking/issue_created", extra={"fingerprint": text})),
    ):
        with pytest.raises(SignalValidationError) as caught:
            validate_signal(bad)
        assert (caught.value.field, caught.value.rule) == (
            field,
            "must contain a visible character (not only spaces, control, format or zero-width characters)",
        )


def test_visible_text_around_invisible_characters_passes():
    text = "\u200bCard\u202e declined\x01"
    assert validate_signal(payload(description=text, source_id="\ufeff42")).description == text


DUPLICATED = {
    "a signal field": b'{"team_id": 2, "description": "Card declined.", "team_id": 1}',
    "an extra key": b'{"extra": {"fingerprint": "a", "fingerprint": "b"}}',
}


@pytest.mark.parametrize("body", DUPLICATED.values(), ids=DUPLICATED.keys())
def test_a_key_twice_in_one_object_is_refused_naming_it(body):
    """Was read as the last value: a record in team 1's folder could say team 2 to one reader and team 1 to
    another. Model answers are already refused for it; inbox records, JSONL lines and --extra now are too."""
    from signals_assets.ingestion.validation import decode_json_object

    with pytest.raises(SignalValidationError) as caught:
        decode_json_object(body, "body")
    assert caught.value.field == "body"
    assert re.fullmatch(r"must not hold the key '(team_id|fingerprint)' twice in one object", caught.value.rule)


def test_a_report_export_with_a_key_twice_is_refused_naming_it():
    from signals_assets.operations.report_transfer import ReportFileError, decode_report_file

    with pytest.raises(ReportFileError, match=r"^file: must not hold the key 'version' twice in one object$"):
        decode_report_file(b'{"format": "signals_assets.report", "version": 2, "version": 1, "signals": []}')


def test_a_limit_set_in_the_environment_holds_at_every_entry(
    capsys, signals_home, object_store, team, tmp_path, monkeypatch
):
    """The README's "the same at every entry": one limit of the environment refuses the same signal, with the
    same rule, from the facade, `signals emit`, `emit-file` and `import-report`, and quarantines it when it
    was written straight into the team's inbox folder."""
    import json

    from signals_assets.cli.main import main
    from signals_assets.facade import emit_signal

    from conftest import zendesk_extra

    monkeypatch.setenv("SIGNALS_MAX_EXTRA_KEYS", "3")
    rule = "extra: must have at most 3 keys (counted at every depth)"
    signal = {
        "source_product": "zendesk",
        "source_type": "ticket",
        "source_id": "1",
        "description": "Card declined at checkout.",
        "extra": zendesk_extra(1),
    }
    with pytest.raises(SignalValidationError, match=re.escape(rule)):
        emit_signal(team_id=1, **signal, store=object_store)
    options = [f"--{name.replace('_', '-')}={value}" for name, value in signal.items() if name != "extra"]
    assert main(["emit", "--team-id", "1", *options, "--extra", json.dumps(signal["extra"])]) == 2
    lines = tmp_path / "signals.jsonl"
    lines.write_text(json.dumps(signal) + "\n")
    assert main(["emit-file", str(lines), "--team-id", "1"]) == 2
    export = tmp_path / "report.json"
    document = {
        "format": "signals_assets.report",
        "version": 1,
        "report": {},
        "signals": [{"signal_id": "s1", **signal}],
    }
    export.write_text(json.dumps(document))
    assert main(["import-report", str(export), "--team-id", "1"]) == 2
    refusals = capsys.readouterr().err.splitlines()
    assert refusals[0] == f"error: {rule}" and refusals[1] == f"{lines}:1: {rule}"
    assert refusals[3] == f"error: signals[0].{rule}"
    assert object_store.list("inbox/") == []

    record = {"signal_id": "direct", "team_id": 1, "emitted_at": "2026-11-30T10:00:00Z", **signal}
    object_store.put("inbox/1/20261130T100000000000Z-direct.json", json.dumps(record).encode())
    assert main(["process"]) == 0
    capsys.readouterr()
    assert main(["status", "--team-id", "1", "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert (status["accepted"], status["rejected_by_reason"]) == (0, {"malformed": 1})
    assert status["recent_rejections"][0]["detail"] == rule
