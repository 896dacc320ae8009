"""A poison-pill corpus through every entry: the emit facade, `signals emit-file`, and objects written
straight into the inbox (bypassing validation, as direct bucket writes and older clients do). Good
signals are all assigned, each bad one is refused or quarantined with its reason, no batch fails,
and the team ids at the store's boundary never reach another team."""

import hashlib
import json
import os
import socket
import subprocess
import sys

import pytest

from signals_assets.cli.main import main
from signals_assets.facade import emit_signal
from signals_assets.ingestion.teams import TeamConfig, save_team
from signals_assets.ingestion.validation import MAX_TEAM_ID, SignalValidationError
from signals_assets.settings import load_settings
from signals_assets.storage.clickhouse import open_chdb
from signals_assets.storage.object_store import LOCAL_MAX_PATH_BYTES, S3_MAX_KEY_BYTES, S3ObjectStore

from conftest import CARD_DECLINED, PASSWORD_RESET, emit_texts, refuse_permission, zendesk_extra

ANSI = "\x1b[31mThe checkout page shows a red error\x1b[0m and the card is declined.\x07"
PLACEHOLDERS = "Export fails for files named {batch} {ids} {team} {report} {limit}."
# Line breaks to `str.splitlines`, but not to JSON: ClickHouse writes them unescaped in its JSON rows.
SEPARATORS = "The card is declined\u0085at checkout\u2028every time\u001csince Monday."
FIFTY_MB = 50 * 1024 * 1024


def signal(source_id: str, description: str, **overrides) -> dict:
    return {
        "team_id": 1,
        "source_product": "zendesk",
        "source_type": "ticket",
        "source_id": source_id,
        "description": description,
        "extra": zendesk_extra(1),
        **overrides,
    }


# (entry-independent) bad signals: (what, payload changes, the field named)
BAD_SIGNALS = {
    "lone surrogate": ({"description": "Card \ud800 declined"}, "description"),
    "invalid UTF-8 argument": ({"source_id": "caf\udce9"}, "source_id"),
    "NUL": ({"description": "Card\x00declined"}, "description"),
    "team 2^64": ({"team_id": 2**64}, "team_id"),
    "team 2^64+1": ({"team_id": 2**64 + 1}, "team_id"),
    "team 0": ({"team_id": 0}, "team_id"),
    "team -1": ({"team_id": -1}, "team_id"),
    "team bool": ({"team_id": True}, "team_id"),
    "team float": ({"team_id": 1.0}, "team_id"),
    "team string": ({"team_id": "1"}, "team_id"),
    "extra 50 MB": ({"extra": {**zendesk_extra(1), "url": "x" * FIFTY_MB}}, "extra"),
    "extra nested": ({"extra": {**zendesk_extra(1), "tags": [[[["deep"]]]]}}, "extra"),
    "extra keys": ({"extra": {f"k{i}": "v" for i in range(100)}}, "extra"),
}


@pytest.fixture
def teams(object_store, team, demo_repository):
    """Team 1 and the largest team id, both consenting, with the same repository."""
    save_team(
        object_store, TeamConfig(team_id=MAX_TEAM_ID, ai_processing_consent=True, repositories=[str(demo_repository)])
    )


def facade_entry(object_store) -> set[str]:
    for what, (changes, field) in BAD_SIGNALS.items():
        with pytest.raises(SignalValidationError) as caught:
            emit_signal(**{**signal("f-bad", "Card declined."), **changes}, store=object_store)
        assert caught.value.field == field, what
        assert len(str(caught.value)) < 300, what  # never the value itself
    assert object_store.list("inbox/") == []
    goods = [signal(f"f-{i}", text) for i, text in enumerate(CARD_DECLINED + [ANSI, PLACEHOLDERS, SEPARATORS])]
    goods += [signal(f"f-max-{i}", text, team_id=MAX_TEAM_ID) for i, text in enumerate(PASSWORD_RESET)]
    for good in goods:
        assert emit_signal(**good, store=object_store)
    return {good["source_id"] for good in goods}


def emit_file_entry(tmp_path, capsys) -> set[str]:
    lines = [
        json.dumps({k: v for k, v in signal(f"l-{i}", text).items() if k != "team_id"}).encode()
        for i, text in enumerate(PASSWORD_RESET)
    ]
    bad_lines = [
        json.dumps({**signal("l-bad", "Card declined."), **changes}).encode()
        for what, (changes, _) in BAD_SIGNALS.items()
        if what != "invalid UTF-8 argument"
    ]
    bad_lines += [b'{"source_id": "caf\xe9", "description": "raw Latin-1 byte"}', b"not json", b"[" * 100_000]
    path = tmp_path / "corpus.jsonl"
    path.write_bytes(b"\n".join(lines + bad_lines) + b"\n")
    code, out, err = run_cli(capsys, "emit-file", str(path), "--team-id", "1", "--skip-invalid")
    assert code == 3 and json.loads(out) == {"emitted": 3, "not_emitted": {}, "invalid_lines": len(bad_lines)}
    reported = [line for line in err.splitlines() if line.startswith(f"{path}:")]
    assert [int(line.split(":")[1]) for line in reported] == list(range(4, 4 + len(bad_lines)))
    assert all(len(line) < 400 for line in reported)  # the 50 MB line is named, not shown
    return {f"l-{i}" for i in range(len(PASSWORD_RESET))}


def direct_inbox_entry(object_store) -> tuple[set[str], dict[str, tuple[int, str]]]:
    """Objects put straight into the inbox. Returns the good source ids and, per bad object name,
    the team id and the start of the reason its rejected row must have."""

    def record(signal_id, source_id, description, changes=None) -> dict:
        return {
            "signal_id": signal_id,
            "emitted_at": "2026-11-30T10:00:00Z",
            **signal(source_id, description),
            **(changes or {}),
        }

    goods = {
        "good-1": record("{batch}", "d-1", "Card payment declined at checkout, again."),
        "good-2": record("sig-{ids}'\\", "d-2", PLACEHOLDERS),
        "good-max": record("sig-max", "d-max", "The password reset email never arrives.", {"team_id": MAX_TEAM_ID}),
    }
    bad: dict[str, tuple[bytes, int, str]] = {}
    for what, (changes, field) in BAD_SIGNALS.items():
        body = json.dumps(record(f"sig-{what}", "d-bad", "Card declined.", changes)).encode()
        team_id = changes.get("team_id", 1)
        expected_team = team_id if type(team_id) is int and 1 <= team_id <= MAX_TEAM_ID else 0
        if len(body) > load_settings().signal_limits.max_signal_bytes:  # not even parsed: no team known
            bad[what] = (body, 0, "body: must be at most 262144 bytes")
        else:
            bad[what] = (body, expected_team, f"{field}: ")
    bad |= {
        "raw invalid UTF-8": (b'{"signal_id": "caf\xe9"}', 0, "body: must be UTF-8"),
        "not JSON": (b"garbage", 0, "body: must be JSON"),
        "a JSON array": (b"[1, 2]", 0, "body: must be a JSON object"),
        "nested past the recursion limit": (b"[" * 100_000, 0, "body: must be JSON (RecursionError"),
        "an integer past the digit limit": (b'{"team_id": 1' + b"0" * 5000 + b"}", 0, "body: must be JSON (ValueError"),
        "signal id with NUL": (
            json.dumps(record("a\x00b", "d-bad", "Card declined.")).encode(),
            1,
            "signal_id: must be printable",
        ),
        "signal id of 300 characters": (
            json.dumps(record("s" * 300, "d-bad", "Card declined.")).encode(),
            1,
            "signal_id: must be at most 200 characters",
        ),
        "name \x1b[2J with escapes": (b"{}", 0, "signal_id: must be a non-empty string"),
    }
    for index, (name, body) in enumerate(
        {**{n: json.dumps(r).encode() for n, r in goods.items()}, **{n: v[0] for n, v in bad.items()}}.items()
    ):
        object_store.put(f"inbox/20261130T100000{index:06d}Z-{name}.json", body)
    return {r["source_id"] for r in goods.values()}, {n: (team, reason) for n, (_, team, reason) in bad.items()}


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_the_corpus_through_every_entry_fails_no_batch_and_crosses_no_team(capsys, tmp_path, object_store, teams):
    good = facade_entry(object_store) | emit_file_entry(tmp_path, capsys)
    direct_good, direct_bad = direct_inbox_entry(object_store)
    good |= direct_good

    code, out, err = run_cli(capsys, "process")
    assert code == 0 and "Traceback" not in err, err
    assert json.loads(out)["reports_failed"] == []

    settings = load_settings()
    with open_chdb(settings.clickhouse_path, settings.clickhouse_database) as db:
        accepted = db.query("SELECT team_id, signal_id, source_id, description FROM signals")
        assigned = db.query(
            "SELECT DISTINCT a.team_id AS team_id, a.signal_id AS signal_id, a.report_id AS report_id "
            "FROM report_assignments AS a"
        )
        rejected = db.query("SELECT team_id, signal_id, reason, detail, description FROM rejected_signals")
    assert {row["source_id"] for row in accepted} == good
    assert {row["signal_id"] for row in assigned} == {row["signal_id"] for row in accepted}
    stored = {row["source_id"]: row for row in accepted}
    assert stored["d-1"]["signal_id"] == "{batch}" and stored["d-2"]["signal_id"] == "sig-{ids}'\\"
    assert stored["d-2"]["description"] == PLACEHOLDERS and stored["f-3"]["description"] == ANSI
    assert stored["f-5"]["description"] == SEPARATORS

    team_of_signal = {row["signal_id"]: int(row["team_id"]) for row in accepted}
    for row in assigned:  # a report holds one team's signals, and its key names that team
        assert int(row["team_id"]) == team_of_signal[row["signal_id"]]
        assert row["report_id"].startswith(f"r{row['team_id']}-")
    max_team = {row["source_id"] for row in accepted if int(row["team_id"]) == MAX_TEAM_ID}
    assert max_team == {"f-max-0", "f-max-1", "f-max-2", "d-max"}

    assert all(row["reason"] == "malformed" for row in rejected)
    by_name = {
        row["signal_id"].removeprefix("object:").split("Z-", 1)[-1].removesuffix(".json"): row
        for row in rejected
        if row["signal_id"].startswith("object:")
    }
    by_name |= {row["signal_id"].removeprefix("sig-"): row for row in rejected if row["signal_id"].startswith("sig-")}
    assert len(rejected) == len(direct_bad)
    for name, (team_id, reason) in direct_bad.items():
        row = by_name[name]
        assert int(row["team_id"]) == team_id, name
        assert row["detail"].startswith(reason), (name, row["detail"])
        assert len(row["detail"]) < 300 and len(row["description"]) <= 2000

    code, out, _ = run_cli(capsys, "list-reports", "--team-id", "1", "--signals")
    assert code == 0 and "\x1b" not in out and "\\x1b[31mThe checkout page" in out
    code, out, _ = run_cli(capsys, "status", "--team-id", "1")
    assert code == 0 and "\x1b" not in out
    code, out, _ = run_cli(capsys, "list-reports", "--team-id", "1", "--signals", "--json")
    assert {ANSI, SEPARATORS} <= {s["description"] for r in json.loads(out)["reports"] for s in r["signals"]}


READ_BATCH = """
import json, resource, sys
from datetime import datetime, timezone
from signals_assets.ingestion import inbox
from signals_assets.ingestion.screening import screen_batch
from signals_assets.ingestion.teams import TeamConfig
from signals_assets.ingestion.validation import DEFAULT_LIMITS
from signals_assets.storage.object_store import LocalObjectStore

store = LocalObjectStore(sys.argv[1])
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
objects = inbox.load_batch(store, "b20261130T100000000000Z", DEFAULT_LIMITS.max_signal_bytes)
screened = screen_batch("b20261130T100000000000Z", datetime.now(timezone.utc), objects,
                        lambda team: TeamConfig(team, ai_processing_consent=True), set())
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"peak_growth_kib": after - before, "accepted": len(screened.accepted),
                  "rejected": [row["detail"] for row in screened.rejected]}))
"""


def test_an_oversized_inbox_object_is_quarantined_without_being_read_whole(tmp_path):
    """Memory bound: reading a batch holds at most SIGNALS_MAX_SIGNAL_BYTES + 1 bytes of any object."""
    folder = tmp_path / "objects" / "claimed" / "b20261130T100000000000Z"
    folder.mkdir(parents=True)
    good = {"signal_id": "s1", **signal("1", "Card payment declined at checkout.")}
    (folder / "a-good.json").write_text(json.dumps(good))
    with open(folder / "b-huge.json", "wb") as handle:  # 200 MB of one description
        handle.write(b'{"signal_id": "s2", "description": "')
        for _ in range(200):
            handle.write(b"x" * 1024 * 1024)
        handle.write(b'"}')
    result = subprocess.run(
        [sys.executable, "-c", READ_BATCH, str(tmp_path / "objects")],
        capture_output=True,
        text=True,
        env=os.environ,
        check=True,
    )
    measured = json.loads(result.stdout)
    assert measured["accepted"] == 1
    assert measured["rejected"] == ["body: must be at most 262144 bytes (SIGNALS_MAX_SIGNAL_BYTES), got more"]
    assert measured["peak_growth_kib"] < 16 * 1024, measured  # the object is 200 MB


def test_an_invalid_stored_team_config_stops_only_that_teams_signals():
    from datetime import datetime, timezone

    from signals_assets.ingestion.screening import screen_batch

    def team_config(team_id):
        if team_id == 2:
            raise ValueError(
                "team config teams/2.json is invalid: repositories: '/proc' is inside the system tree /proc"
            )
        return TeamConfig(team_id, ai_processing_consent=True)

    objects = [
        (
            f"{n}.json",
            json.dumps(
                {
                    "signal_id": f"s{n}",
                    "emitted_at": "2026-11-30T12:00:00+05:00",
                    **signal(str(n), "Card declined.", team_id=n),
                }
            ).encode(),
        )
        for n in (1, 2)
    ]
    screened = screen_batch("b20261130T100000000000Z", datetime.now(timezone.utc), objects, team_config, set())
    assert [row["signal_id"] for row in screened.accepted] == ["s1"]
    assert screened.accepted[0]["emitted_at"] == datetime(2026, 11, 30, 7, tzinfo=timezone.utc)
    assert [(row["signal_id"], row["reason"], row["detail"]) for row in screened.rejected] == [
        ("s2", "gated", "team config teams/2.json is invalid: repositories: '/proc' is inside the system tree /proc")
    ]


def test_limits_come_from_the_environment(signals_home, object_store, team, monkeypatch):
    from signals_assets.resources.environment import build_resources

    monkeypatch.setenv("SIGNALS_MAX_EXTRA_KEYS", "3")
    monkeypatch.setenv("SIGNALS_MAX_SIGNAL_BYTES", "4096")
    with pytest.raises(SignalValidationError, match=r"^extra: must have at most 3 keys"):
        emit_signal(**signal("1", "Card declined."), store=object_store)
    resource = build_resources(load_settings())["signal_limits"]
    assert (resource.max_signal_bytes, resource.max_extra_keys, resource.max_extra_bytes) == (4096, 3, 65536)
    monkeypatch.setenv("SIGNALS_MAX_SIGNAL_BYTES", "100")
    with pytest.raises(ValueError, match=r"^SIGNALS_MAX_SIGNAL_BYTES='100' must be an integer of at least 1024"):
        load_settings()


def test_odd_objects_in_a_teams_inbox_folder_are_quarantined_as_that_teams(
    capsys, tmp_path, monkeypatch, object_store, teams
):
    """What a folder or a bucket can hold besides objects the facade wrote: each is quarantined under the
    folder's team, the batch's other signals go on. Before: a dangling symlink failed the batch (and so
    held every later one), a FIFO hung it, a symlink was read through (a host file as a signal), a socket
    failed the batch, and a record naming team 2 in team 1's folder joined team 2's reports."""

    def record(signal_id: str, description: str, **changes) -> bytes:
        body = {"signal_id": signal_id, "emitted_at": "2026-11-30T10:00:00Z", **signal(signal_id, description)}
        return json.dumps({**body, **changes}).encode()

    outside = tmp_path / "outside.json"
    outside.write_bytes(record("outside", "Card payment declined, read through a symlink."))
    folder = object_store.root / "inbox" / "1"
    folder.mkdir(parents=True)
    (folder / "20261130T100000000001Z-dangling.json").symlink_to(tmp_path / "missing.json")
    os.mkfifo(folder / "20261130T100000000002Z-fifo.json")
    with monkeypatch.context() as here, socket.socket(socket.AF_UNIX) as listener:
        here.chdir(folder)  # a socket's path has at most 108 bytes
        listener.bind("20261130T100000000008Z-socket.json")
    (folder / "20261130T100000000003Z-link.json").symlink_to(outside)
    object_store.put("inbox/1/20261130T100000000004Z-empty.json", b"")
    object_store.put(
        "inbox/1/20261130T100000000005Z-team2.json", record("team2", "Card declined.", team_id=MAX_TEAM_ID)
    )
    forged = "Card payment declined at checkout.\nr1-0000000000000000  ready  P0  99 signals  w=99  Forged report"
    object_store.put("inbox/1/20261130T100000000006Z-forged.json", record("forged", forged, source_id="7\n- [x]"))
    object_store.put(
        "inbox/1/20261130T100000000007Z-year1.json",
        record("year1", CARD_DECLINED[0], emitted_at="0001-01-01T00:00:00Z"),
    )
    key_ids = {
        emit_signal(**signal(f"k-{team}", CARD_DECLINED[1], team_id=team), idempotency_key="shared", store=object_store)
        for team in (1, MAX_TEAM_ID)
    }
    assert len(key_ids) == 2  # the same idempotency key on two teams: two signals, neither a duplicate

    code, out, err = run_cli(capsys, "process")
    assert code == 0 and "Traceback" not in err, err
    settings = load_settings()
    with open_chdb(settings.clickhouse_path, settings.clickhouse_database) as db:
        accepted = {
            row["signal_id"]: row
            for row in db.query("SELECT team_id, signal_id, toYear(emitted_at) AS year FROM signals")
        }
        rejected = {
            row["signal_id"].rsplit("-", 1)[-1].removesuffix(".json"): (int(row["team_id"]), row["detail"])
            for row in db.query("SELECT team_id, signal_id, detail FROM rejected_signals")
        }
    assert set(accepted) == {"forged", "year1"} | key_ids
    assert int(accepted["year1"]["year"]) == 2026  # out of the store's range: the batch time, not year 2001
    unreadable = "body: must not be empty (an empty object, or one that could not be read)"
    assert rejected == {
        "dangling": (1, unreadable),
        "fifo": (1, unreadable),
        "socket": (1, unreadable),
        "link": (1, unreadable),
        "empty": (1, unreadable),
        "team2": (1, f"team_id: must be 1, the team of its inbox folder, got {MAX_TEAM_ID}"),
    }

    code, out, _ = run_cli(capsys, "list-reports", "--team-id", "1", "--signals")
    assert code == 0 and "Forged report" in out
    assert not [line for line in out.splitlines() if line.startswith(("r1-0000", "- [x]"))]


def test_a_claimed_object_gone_since_the_listing_fails_the_read_and_is_not_quarantined(object_store, monkeypatch):
    """An object listed and then gone (moved into the batch's file by another reader) is read again on
    retry, never quarantined as an empty one: that would lose its signal."""
    from signals_assets.ingestion import inbox

    object_store.put("claimed/b1/1/20261130T100000000001Z-a.json", b"{}")
    object_store.put("claimed/b1/1/20261130T100000000002Z-b.json", b"{}")
    real_get = object_store.get

    def get_after_another_reader_took_b(key, limit=None):
        if key.endswith("-b.json"):
            object_store.delete(key)
        return real_get(key, limit)

    monkeypatch.setattr(object_store, "get", get_after_another_reader_took_b)
    with pytest.raises(KeyError):
        inbox.load_batch(object_store, "b1")
    monkeypatch.undo()
    assert [name for name, _ in inbox.load_batch(object_store, "b1")] == ["1/20261130T100000000001Z-a.json"]


def test_a_repository_file_name_that_is_not_utf8_is_researched(capsys, object_store, team, demo_repository):
    """Linux file names are bytes; one that is not UTF-8 reaches the host as lone surrogates. Before, the
    research reason naming it could not be stored, so the report failed at every round."""
    name = os.fsencode(demo_repository / "checkout") + b"/card_payments_\xe9_declined.py"
    with open(name, "w") as handle:
        handle.write("def card_payment_declined_at_checkout(card):\n    raise PaymentDeclined('card declined')\n")
    emit_texts(object_store, CARD_DECLINED)

    code, out, err = run_cli(capsys, "process")
    assert code == 0 and json.loads(out)["reports_failed"] == [], err
    code, out, _ = run_cli(capsys, "list-reports", "--team-id", "1", "--json")
    [report] = json.loads(out)["reports"]
    assert report["status"] == "ready"
    assert "checkout/card_payments_\udce9_declined.py" in [f["file"] for f in report["research"]["findings"]]


def test_a_record_cannot_claim_another_teams_future_signal_ids(capsys, object_store, teams):
    """Ids are de-duplicated across teams and keyed ids are derivable: a record written straight into
    team 1's folder with team MAX_TEAM_ID's id for the key "order-42" (unkeyed, under a key of its own,
    in upper case) is quarantined, and that team's signal with the key is accepted later. An id of
    another form stays the writer's choice."""
    from signals_assets.ingestion.signal_ids import signal_id_for

    victim_id = signal_id_for(MAX_TEAM_ID, "order-42")

    def record(signal_id: str, **changes) -> bytes:
        body = {"signal_id": signal_id, "emitted_at": "2026-11-30T10:00:00Z", **signal("a", CARD_DECLINED[0])}
        return json.dumps({**body, **changes}).encode()

    attempts = {
        "unkeyed": record(victim_id),
        "own-key": record(victim_id, idempotency_key="mine"),
        "upper-case": record(victim_id.upper()),
    }
    for index, (name, body) in enumerate(attempts.items()):
        object_store.put(f"inbox/1/20261130T10000000000{index}Z-{name}.json", body)
    object_store.put("inbox/1/20261130T100000000009Z-custom.json", record("ticket-7"))
    own_keyed = emit_signal(**signal("k", CARD_DECLINED[1]), idempotency_key="order-42", store=object_store)
    assert run_cli(capsys, "process")[0] == 0

    emit_signal(**signal("v", CARD_DECLINED[2], team_id=MAX_TEAM_ID), idempotency_key="order-42", store=object_store)
    assert run_cli(capsys, "process")[0] == 0
    settings = load_settings()
    with open_chdb(settings.clickhouse_path, settings.clickhouse_database) as db:
        accepted = {row["signal_id"]: int(row["team_id"]) for row in db.query("SELECT team_id, signal_id FROM signals")}
        rejected = db.query("SELECT team_id, signal_id, reason, detail FROM rejected_signals")
    assert accepted == {"ticket-7": 1, own_keyed: 1, victim_id: MAX_TEAM_ID}
    assert sorted((int(r["team_id"]), r["signal_id"], r["reason"]) for r in rejected) == sorted(
        [(1, victim_id, "malformed"), (1, victim_id, "malformed"), (1, victim_id.upper(), "malformed")]
    )
    derived = "signal_id: a version 5 UUID must be the id derived from team 1 and the idempotency_key"
    assert all(r["detail"].startswith(derived) for r in rejected)


def processed(capsys, rejected_columns: str = "team_id", order: str = "") -> tuple[list[str], list[dict]]:
    """`signals process` run without an error; then the accepted signal ids and the rejected rows."""
    code, _, err = run_cli(capsys, "process")
    assert code == 0 and "Traceback" not in err, err
    settings = load_settings()
    with open_chdb(settings.clickhouse_path, settings.clickhouse_database) as db:
        accepted = [row["signal_id"] for row in db.query("SELECT signal_id FROM signals")]
        rejected = db.query(f"SELECT {rejected_columns} FROM rejected_signals {order}")
    return accepted, rejected


def test_an_inbox_folder_named_with_a_digit_that_is_not_decimal_blocks_no_claim(capsys, object_store, teams):
    """A folder "²" is a digit to `str.isdigit` but no integer to `int`: before, an object in `inbox/²/` failed
    every claim, so no team's signals were taken in any more. It is quarantined like a loose object."""
    object_store.put("inbox/\u00b2/20261130T100000000000Z-squared.json", b"{}")
    [good] = emit_texts(object_store, CARD_DECLINED[:1])

    accepted, rejected = processed(capsys, "team_id, signal_id, detail")
    assert accepted == [good]
    assert [(int(r["team_id"]), r["detail"]) for r in rejected] == [(0, "signal_id: must be a non-empty string")]
    assert object_store.list("inbox/") == []


@pytest.mark.parametrize("spoilt", ["nested past the recursion limit", "unreadable"])
def test_a_team_config_nested_too_deep_or_unreadable_stops_only_that_teams_signals(
    capsys, object_store, team, monkeypatch, spoilt
):
    """Before, reading one nested too deep raised RecursionError, and one its reader may not open (a local
    file's permissions) PermissionError, not the ValueError of an invalid config: every claim (which
    reads each team's batch limit) failed, so no team's signals were taken in any more."""
    object_store.put("teams/2.json", b"[" * 100_000)
    if spoilt == "unreadable":
        refuse_permission(monkeypatch, "open", "/teams/2.json")
    [good] = emit_texts(object_store, CARD_DECLINED[:1])
    body = {"signal_id": "team-2", "emitted_at": "2026-11-30T10:00:00Z", **signal("2", CARD_DECLINED[1], team_id=2)}
    object_store.put("inbox/2/20261130T100000000000Z-team-2.json", json.dumps(body).encode())

    accepted, rejected = processed(capsys, "team_id, signal_id, reason, detail")
    assert accepted == [good]
    [row] = rejected
    assert (int(row["team_id"]), row["signal_id"], row["reason"]) == (2, "team-2", "gated")
    assert row["detail"].startswith(
        "team config teams/2.json cannot be read: Permission denied"
        if spoilt == "unreadable"
        else "team config teams/2.json is invalid: "
    )


def test_a_record_in_a_folder_named_like_a_team_but_no_teams_is_quarantined_as_no_teams(capsys, object_store, teams):
    """Only `inbox/<team id>/`, the id spelled as the facade writes it, is a team's folder. Before, a
    record in a folder named with digits but no team's (`inbox/0/`, past 2^64 − 1) was taken like one
    from before the folders, free to name any team, and `inbox/01/` or Arabic-Indic `inbox/١/` was team
    1's: a writer allowed such a prefix fed another team's reports."""
    folders = ["0", "01", str(MAX_TEAM_ID + 1), "\u0661", "\u00b2"]
    for index, folder in enumerate(folders):
        body = {
            "signal_id": f"folder-{index}",
            "emitted_at": "2026-11-30T10:00:00Z",
            **signal(f"folder-{index}", CARD_DECLINED[0], team_id=MAX_TEAM_ID),
        }
        object_store.put(f"inbox/{folder}/20261130T10000000000{index}Z-folder-{index}.json", json.dumps(body).encode())
    [good] = emit_texts(object_store, CARD_DECLINED[1:2], team_id=MAX_TEAM_ID)

    accepted, rejected = processed(capsys, "team_id, signal_id, detail", "ORDER BY signal_id")
    assert accepted == [good]
    assert [(int(r["team_id"]), r["signal_id"]) for r in rejected] == [(0, f"folder-{i}") for i in range(len(folders))]
    assert all(r["detail"].startswith("team_id: must be in the inbox folder of its team") for r in rejected)


def test_a_symlink_to_a_folder_in_the_inbox_is_not_followed(capsys, tmp_path, object_store, teams):
    """A symlink in the inbox that points at a folder is neither a team's folder nor an object. Before,
    it was listed as a team's folder, and the claim moved the files of the folder it points to (any
    folder on the host) into the store: taken from the host, kept in the batch's raw file."""
    outside = tmp_path / "host-folder"
    outside.mkdir()
    body = {"signal_id": "host", "emitted_at": "2026-11-30T10:00:00Z", **signal("host", CARD_DECLINED[0])}
    (outside / "20261130T100000000000Z-host.json").write_text(json.dumps(body))
    (outside / "notes.txt").write_text("a host file")
    (object_store.root / "inbox").mkdir(parents=True)
    (object_store.root / "inbox" / "1").symlink_to(outside, target_is_directory=True)
    (object_store.root / "inbox" / "7").symlink_to(outside, target_is_directory=True)
    [good] = emit_texts(object_store, CARD_DECLINED[1:2], team_id=MAX_TEAM_ID)

    accepted, rejected = processed(capsys, "signal_id")
    assert sorted(p.name for p in outside.iterdir()) == ["20261130T100000000000Z-host.json", "notes.txt"]
    assert (accepted, rejected) == ([good], [])
    assert not [key for key in object_store.list("") if "host" in key or "notes" in key]


@pytest.mark.parametrize("object_store", ["s3"], indirect=True)
def test_bucket_keys_that_are_no_store_keys_block_no_claim(capsys, object_store, teams):
    """A bucket can hold keys the store cannot address: a console's folder marker (`inbox/1/`), an empty
    part (`inbox/1//x.json`), `.` or `..` parts. Before, listing them put them in the claim, whose move
    refused the key: every claim failed, so no team's signals were taken in any more."""
    odd = ["inbox/1/", "inbox/1//a.json", "inbox//b.json", "inbox/1/./c.json", "inbox/1/../d.json"]
    odd = [f"{object_store.prefix}/{key}" if object_store.prefix else key for key in odd]
    for key in odd:
        object_store.client.put_object(Bucket=object_store.bucket, Key=key, Body=b"{}")
    [good] = emit_texts(object_store, CARD_DECLINED[:1])

    accepted, _ = processed(capsys)
    assert accepted == [good]
    keys = [o["Key"] for o in object_store.client.list_objects_v2(Bucket=object_store.bucket)["Contents"]]
    assert set(odd) <= set(keys)  # left where they are: nothing the store can read, move or delete


def test_an_inbox_folder_named_with_more_digits_than_a_team_id_blocks_no_claim(capsys, object_store, teams):
    """A team's batch limit is read from its config, `teams/<id>.json`. Before, it was looked up for any
    folder of digits: for 255 of them the file name is too long for the file system, and the error
    failed every claim, so no team's signals were taken in any more."""
    object_store.put(f"inbox/{'9' * 255}/20261130T100000000000Z-long.json", b"{}")
    [good] = emit_texts(object_store, CARD_DECLINED[:1])

    accepted, rejected = processed(capsys, "team_id")
    assert accepted == [good] and [int(r["team_id"]) for r in rejected] == [0]


def inbox_key_near_the_limit(store) -> str:
    """A key of team 1's inbox 3 bytes short of the store's limit (S3: 1,024 bytes with the prefix; a
    local folder: 4,095 bytes of path, 255 per name), so too long once under claimed/<batch>/ (and on S3
    for its move marker, `.moves/<key>`)."""
    if isinstance(store, S3ObjectStore):
        head = f"{store.prefix}/inbox/1/" if store.prefix else "inbox/1/"
        return "inbox/1/" + "x" * (S3_MAX_KEY_BYTES - 3 - len(head) - len(".json")) + ".json"
    folders = ["inbox", "1"]
    while (name_bytes := LOCAL_MAX_PATH_BYTES - 3 - len(os.fsencode(store.root.joinpath(*folders))) - 1) > 255:
        folders.append("d" * 200)
    return "/".join([*folders, "x" * (name_bytes - len(".json")) + ".json"])


@pytest.mark.parametrize("object_store", ["local", "s3"], indirect=True)
def test_an_inbox_key_too_long_to_be_claimed_is_quarantined_and_blocks_no_claim(capsys, object_store, teams):
    """A claim moves `inbox/<name>` to `claimed/<batch>/<name>`, 26 bytes longer. Before, a direct writer's
    key within 26 bytes of the store's limit failed its move, and so every claim: no team's signals were
    taken in any more. It is claimed under a short name and quarantined, the rule named."""
    key = inbox_key_near_the_limit(object_store)
    body = {"signal_id": "long-key", "emitted_at": "2026-11-30T10:00:00Z", **signal("long-key", CARD_DECLINED[0])}
    object_store.put(key, json.dumps(body).encode())
    [good] = emit_texts(object_store, CARD_DECLINED[1:2])

    accepted, rejected = processed(capsys, "team_id, signal_id, reason, detail")
    assert accepted == [good]
    assert [(int(r["team_id"]), r["signal_id"], r["reason"]) for r in rejected] == [(1, "long-key", "malformed")]
    assert rejected[0]["detail"].startswith("object_key: must be short enough to move under claimed/<batch>/")
    assert object_store.list("inbox/") == [] and object_store.list("claimed/") == []


def test_an_inbox_file_or_folder_whose_name_is_not_utf8_is_quarantined_and_blocks_no_claim(capsys, object_store, teams):
    """Any bytes name a file in a local inbox folder, and no key can name one that is not UTF-8. Before, the
    claim failed on such a name after moving the others, and so did every claim after: nothing was
    processed any more and the moved signals waited in a batch without a manifest. Both are claimed under
    a UTF-8 name and quarantined, the rule named (the one in a folder that names no team, like any such
    folder's, under the team its record names)."""
    body = {"signal_id": "odd-name", "emitted_at": "2026-11-30T10:00:00Z", **signal("odd-name", CARD_DECLINED[0])}
    inbox = os.fsencode(object_store.root / "inbox")
    for folder in (b"1", b"\xff"):
        os.makedirs(os.path.join(inbox, folder), exist_ok=True)
        with open(os.path.join(inbox, folder, b"20261130T100000000000Z-\xff\xfe.json"), "wb") as handle:
            handle.write(json.dumps(body).encode())
    [good] = emit_texts(object_store, CARD_DECLINED[1:2])
    [other_team] = emit_texts(object_store, PASSWORD_RESET[:1], team_id=MAX_TEAM_ID)

    accepted, rejected = processed(capsys, "team_id, signal_id, reason, detail")
    assert sorted(accepted) == sorted([good, other_team])
    assert [(int(r["team_id"]), r["signal_id"], r["reason"]) for r in rejected] == [(1, "odd-name", "malformed")] * 2
    assert all(r["detail"].startswith("object_key: must be valid UTF-8") for r in rejected)
    assert object_store.list("inbox/") == [] and object_store.list("claimed/") == []


def test_a_name_of_the_form_the_claim_renames_to_is_renamed_too_so_no_object_replaces_another(
    capsys, object_store, teams
):
    """The claim renames an object whose name can be no key to `key-not-utf8-<SHA-256 of the name>.json`.
    Before, an object already named so was moved onto it (the rename replaced one of them: a signal lost
    without a trace), and any name merely starting `key-too-long-` was quarantined as too long. A name of
    the exact form is renamed and quarantined with its own rule; one only starting so is a name like any."""

    def body(signal_id: str) -> bytes:
        record = {"signal_id": signal_id, "emitted_at": "2026-11-30T10:00:00Z", **signal(signal_id, CARD_DECLINED[0])}
        return json.dumps(record).encode()

    odd_name = b"1/20261130T100000000000Z-\xff.json"
    (object_store.root / "inbox" / "1").mkdir(parents=True)
    with open(os.fsencode(object_store.root / "inbox") + b"/" + odd_name, "wb") as handle:
        handle.write(body("odd-name"))
    object_store.put(f"inbox/1/key-not-utf8-{hashlib.sha256(odd_name).hexdigest()}.json", body("lookalike"))
    object_store.put("inbox/1/key-too-long-but-it-is-not.json", body("prefix-only"))
    [good] = emit_texts(object_store, CARD_DECLINED[1:2])

    accepted, rejected = processed(capsys, "team_id, signal_id, reason, detail", "ORDER BY signal_id")
    assert sorted(accepted) == sorted([good, "prefix-only"])
    assert [(int(r["team_id"]), r["signal_id"], r["reason"]) for r in rejected] == [
        (1, "lookalike", "malformed"),
        (1, "odd-name", "malformed"),
    ]
    assert rejected[0]["detail"].startswith("object_key: must not have the form the claim gives the names it renames")
    assert rejected[1]["detail"].startswith("object_key: must be valid UTF-8")
    assert object_store.list("inbox/") == [] and object_store.list("claimed/") == []


def test_an_inbox_object_the_store_refuses_to_move_waits_and_blocks_no_claim(capsys, object_store, teams, monkeypatch):
    """A local inbox object in a folder the claimer may not write into cannot be moved. Before, its
    move failed every claim after moving the others: they waited in a batch without a manifest, and no
    team's signals were taken in any more. It stays in the inbox (counted as pending) and the rest go on."""
    stuck = "inbox/1/20261130T100000000000Z-stuck.json"
    object_store.put(stuck, b"{}")
    first = emit_texts(object_store, CARD_DECLINED[:1])
    [other_team] = emit_texts(object_store, PASSWORD_RESET[:1], team_id=MAX_TEAM_ID)
    later = emit_texts(object_store, CARD_DECLINED[1:2])
    refuse_permission(monkeypatch, "rename", "-stuck.json")
    accepted, rejected = processed(capsys)
    assert sorted(accepted) == sorted([*first, other_team, *later]) and rejected == []
    assert object_store.list("inbox/") == [stuck]
    code, out, _ = run_cli(capsys, "status", "--team-id", "1")
    assert code == 0 and "1 pending in inbox, 0 unfinished batches" in out, out


def test_an_inbox_object_is_read_as_emit_file_reads_a_file_a_byte_order_mark_at_its_start_ignored(
    capsys, tmp_path, object_store, teams
):
    """Windows tools write a UTF-8 byte order mark at a file's start. emit-file ignored it, but the same
    record written straight into the inbox was quarantined ("Unexpected UTF-8 BOM"). A mark past the
    start and UTF-16 text are quarantined with the rule they break, and emit-file says the same."""

    def record(name: str) -> dict:
        return {"signal_id": name, "emitted_at": "2026-11-30T10:00:00Z", **signal(name, CARD_DECLINED[0])}

    middle = json.dumps(record("middle"))
    at = middle.index('"team_id": ') + len('"team_id": ')
    bodies = {
        "bom": b"\xef\xbb\xbf" + json.dumps(record("bom")).encode(),
        "middle": (middle[:at] + "\ufeff" + middle[at:]).encode(),
        "utf16": json.dumps(record("utf16")).encode("utf-16"),
        "utf16le": json.dumps(record("utf16le")).encode("utf-16-le"),
    }
    for index, (name, body) in enumerate(bodies.items()):
        object_store.put(f"inbox/1/20261130T10000000000{index}Z-{name}.json", body)

    accepted, rejected = processed(capsys, "signal_id, detail", "ORDER BY signal_id")
    assert accepted == ["bom"]
    assert {r["signal_id"].rsplit("-", 1)[1]: r["detail"] for r in rejected} == {
        "middle.json": f"body: must be JSON, found U+FEFF at character {at}: a byte order mark is allowed only at "
        "the start of a file or an inbox object",
        "utf16.json": "body: must be UTF-8, found a UTF-16 or UTF-32 byte order mark",
        "utf16le.json": "body: must be JSON in UTF-8, found NUL at character 1 (UTF-16 or UTF-32 text?)",
    }

    path = tmp_path / "signals.jsonl"
    path.write_bytes(json.dumps(signal("f", CARD_DECLINED[1])).encode("utf-16") + b"\n")
    code, _, err = run_cli(capsys, "emit-file", str(path), "--team-id", "1")
    assert code == 2 and err.startswith(f"{path}:1: line: must be UTF-8, found a UTF-16 or UTF-32 byte order mark")
