"""The object store contract, run against the local folder and against S3 (moto over HTTP)."""

import json
import os
import socket
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone

import pytest

from signals_assets.ingestion import inbox
from signals_assets.ingestion.teams import TeamConfig, load_team, save_team
from signals_assets.resources.object_store import ObjectStoreResource
from signals_assets.settings import load_settings
from signals_assets.storage.object_store import (
    LocalObjectStore,
    ObjectStoreError,
    S3ObjectStore,
    open_object_store,
)

from conftest import emit_texts

both = pytest.mark.parametrize("object_store", ["local", "s3"], indirect=True)
s3_only = pytest.mark.parametrize("object_store", ["s3"], indirect=True)
NOW = datetime(2026, 11, 24, 12, 0, tzinfo=timezone.utc)


def fresh_handle():
    """A second, independent store object on the same backend (as another process would open)."""
    return open_object_store(load_settings())


@both
def test_put_get_exists_delete(object_store):
    object_store.put("teams/1.json", b"one")
    object_store.put("teams/1.json", b"two")  # overwrite

    assert object_store.get("teams/1.json") == b"two"
    assert object_store.exists("teams/1.json") and not object_store.exists("teams/2.json")
    with pytest.raises(KeyError):
        object_store.get("teams/2.json")
    object_store.delete("teams/1.json")
    object_store.delete("teams/1.json")  # deleting what is gone is fine
    assert not object_store.exists("teams/1.json")


@both
def test_get_reads_at_most_max_bytes(object_store):
    object_store.put("inbox/big.json", b"x" * 100_000)
    object_store.put("inbox/empty.json", b"")
    assert object_store.get("inbox/big.json", 10) == b"x" * 10
    assert object_store.get("inbox/big.json", 200_000) == b"x" * 100_000
    assert object_store.get("inbox/empty.json", 10) == b""
    claim = inbox.claim_pending(object_store, 10, None, now=NOW)
    assert claim.new_batches == ["b20261124T120000000000Z"] and claim.claimed_signals == 2
    assert inbox.load_batch(object_store, "b20261124T120000000000Z", max_object_bytes=99) == [
        ("big.json", b"x" * 100),
        ("empty.json", b""),
    ]


@both
def test_a_read_limit_as_large_as_the_settings_allow_costs_only_the_object(object_store):
    """SIGNALS_MAX_SIGNAL_BYTES may be set just below 10^18: a read up to it takes the object's bytes,
    not memory for the limit."""
    object_store.put("inbox/small.json", b"{}")
    assert object_store.get("inbox/small.json", 10**18) == b"{}"


@both
@pytest.mark.parametrize("key", ["", "/abs", "a//b", "a/../b", "./a", "a/"])
def test_invalid_keys_are_refused(object_store, key):
    with pytest.raises(ObjectStoreError, match="must be a relative path"):
        object_store.put(key, b"x")


@both
def test_list_by_folder_and_by_partial_name_sorted(object_store):
    for key in ["inbox/b.json", "inbox/a.json", "inbox/sub/c.json", "inboxes/x.json", "batches/b1/manifest.json"]:
        object_store.put(key, b"{}")

    assert object_store.list("inbox/") == ["inbox/a.json", "inbox/b.json", "inbox/sub/c.json"]
    assert object_store.list("inbox/a") == ["inbox/a.json"]
    assert object_store.list("inbox") == ["inbox/a.json", "inbox/b.json", "inbox/sub/c.json", "inboxes/x.json"]
    assert object_store.list("inbox/", limit=2) == ["inbox/a.json", "inbox/b.json"]
    assert object_store.list_level("inbox/") == (["inbox/sub/"], ["inbox/a.json", "inbox/b.json"])
    assert object_store.list_level("nothing/") == ([], [])
    assert object_store.list("missing/") == []


@both
def test_a_listing_from_a_key_on_holds_only_the_keys_after_it(object_store):
    keys = [f"batches/b{day}/{name}" for day in (1, 2, 3) for name in ("manifest.json", "stages/x")]
    for key in [*keys, "batches/b3/stages/y", "claimed/b2/a.json"]:
        object_store.put(key, b"{}")

    assert object_store.list("batches/", start_after="batches/b10") == keys[2:] + ["batches/b3/stages/y"]
    assert object_store.list("batches/", start_after="batches/b2") == keys[2:] + ["batches/b3/stages/y"]
    assert object_store.list("batches/", start_after="batches/b3/stages/x") == ["batches/b3/stages/y"]
    assert object_store.list("batches/", start_after="batches/b3/stages/y") == []
    assert object_store.list("batches/", start_after="batches/b2", limit=1) == ["batches/b2/manifest.json"]
    assert object_store.list_level("batches/", start_after="batches/b20") == (["batches/b3/"], [])
    assert object_store.list_level("batches/", start_after="batches/b1") == (
        ["batches/b1/", "batches/b2/", "batches/b3/"],
        [],
    )
    assert object_store.list_level("batches/b3/", start_after="batches/b3/manifest.json") == (
        ["batches/b3/stages/"],
        [],
    )


@both
def test_listing_pages_past_a_thousand_keys(object_store):
    keys = [f"inbox/{i:05d}.json" for i in range(1205)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda key: object_store.put(key, b"{}"), keys))

    assert object_store.list("inbox/") == keys
    assert object_store.list("inbox/", limit=1100) == keys[:1100]
    assert object_store.list("inbox/011") == keys[1100:1200]
    assert inbox.pending_inbox_count(object_store) == 1205


@both
def test_move_takes_the_object_once(object_store):
    object_store.put("inbox/a.json", b"body")

    assert object_store.move("inbox/a.json", "claimed/b1/a.json")
    assert object_store.get("claimed/b1/a.json") == b"body"
    assert not object_store.exists("inbox/a.json")
    assert not object_store.move("inbox/a.json", "claimed/b2/a.json")
    assert not object_store.exists("claimed/b2/a.json")
    assert object_store.list("") == ["claimed/b1/a.json"]  # no claim marker left behind


@both
def test_put_if_absent_creates_a_key_once(object_store):
    assert object_store.put_if_absent("batches/b1/reserved.json", b"first")
    assert not object_store.put_if_absent("batches/b1/reserved.json", b"second")
    assert object_store.get("batches/b1/reserved.json") == b"first"
    assert object_store.list("") == ["batches/b1/reserved.json"]  # no temp file left behind
    object_store.delete("batches/b1/reserved.json")
    assert object_store.put_if_absent("batches/b1/reserved.json", b"again")
    assert object_store.get("batches/b1/reserved.json") == b"again"


@both
def test_of_concurrent_writers_of_a_key_exactly_one_creates_it(object_store):
    writers = 8
    start = threading.Barrier(writers)

    def write(index):
        store = fresh_handle()
        start.wait()
        return store.put_if_absent("batches/b1/reserved.json", f"writer {index}".encode())

    with ThreadPoolExecutor(writers) as pool:
        created = list(pool.map(write, range(writers)))

    assert created.count(True) == 1
    assert object_store.get("batches/b1/reserved.json") == f"writer {created.index(True)}".encode()


def assert_manifests_list_their_claims(store, claims):
    """Each claim's batches are its own: distinct from every other claim's, each with a manifest listing
    exactly the objects under its claimed folder."""
    batches = [batch for claim in claims for batch in claim.new_batches]
    assert len(batches) == len(set(batches)), f"a batch key shared by two claims: {batches}"
    for batch in batches:
        claimed = [key[len(f"claimed/{batch}/") :] for key in store.list(f"claimed/{batch}/")]
        assert json.loads(store.get(inbox.manifest_key(batch)))["objects"] == claimed
    assert sum(claim.claimed_signals for claim in claims) == len(store.list("claimed/"))


@both
def test_concurrent_claimers_keying_alike_each_claim_a_batch_of_their_own(object_store, team):
    """Four claimers with one clock and nothing stored before them choose one batch key: each reserves
    before it moves, so each object lands in exactly one batch, and each batch is one claimer's."""
    emit_texts(object_store, [f"Checkout fails with error {i}" for i in range(60)])
    claimers = 4
    start = threading.Barrier(claimers)

    def claimer(_):
        store = fresh_handle()
        start.wait()
        return inbox.claim_pending(store, max_signals=60, last_batch=None, now=NOW, max_batches=1)

    with ThreadPoolExecutor(claimers) as pool:
        claims = list(pool.map(claimer, range(claimers)))

    assert sum(claim.claimed_signals for claim in claims) == 60
    assert object_store.list("inbox/") == []
    assert_manifests_list_their_claims(object_store, claims)


@both
def test_a_claimer_keying_after_a_listing_older_than_another_claim_takes_the_next_key(object_store, team):
    """Claimer B lists the stored batches (none), then claimer A claims a batch at the same clock, then B
    claims: B chose A's key, and finding it reserved takes the next one instead of claiming into A's
    batch (where its manifest would replace A's)."""
    emit_texts(object_store, [f"Checkout fails with error {i}" for i in range(4)])
    a, b = fresh_handle(), fresh_handle()
    listed = b.list_level
    claims = []

    def list_level(folder, start_after=""):
        level = listed(folder, start_after)
        if folder == inbox.BATCHES and not claims:  # B's key floor is read: A claims now
            claims.append(inbox.claim_pending(a, 2, None, now=NOW, max_batches=1))
        return level

    b.list_level = list_level
    claims.append(inbox.claim_pending(b, 2, None, now=NOW, max_batches=1))

    first, second = claims
    assert first.new_batches == ["b20261124T120000000000Z"] and second.new_batches == ["b20261124T120000000001Z"]
    assert first.claimed_signals == second.claimed_signals == 2
    assert_manifests_list_their_claims(object_store, claims)
    reservation = json.loads(object_store.get(inbox.reservation_key(second.new_batches[0])))
    assert reservation["batch_key"] == second.new_batches[0] and str(os.getpid()) in reservation["claimer"]


@both
def test_claim_consolidate_and_cleanup(object_store, team):
    ids = emit_texts(object_store, ["The export button does nothing.", "Export to CSV is broken."])

    claim = inbox.claim_pending(object_store, max_signals=1, last_batch=None, now=NOW)
    assert claim.claimed_signals == 2 and len(claim.new_batches) == 2
    assert inbox.unfinished_batches(object_store) == claim.new_batches
    first = claim.new_batches[0]
    objects = inbox.load_batch(object_store, first)
    assert len(objects) == 1 and json.loads(objects[0][1])["signal_id"] in ids

    inbox.consolidate_batch(object_store, first, objects)
    inbox.consolidate_batch(object_store, first, objects)  # a re-run changes nothing

    assert object_store.list(f"claimed/{first}/") == []
    assert inbox.unfinished_batches(object_store) == claim.new_batches  # buffered, not grouped yet
    assert inbox.load_batch(object_store, first) == objects  # now from the retained raw batch file
    assert object_store.list(f"batches/{first}/") == [
        inbox.manifest_key(first),
        inbox.reservation_key(first),
        inbox.raw_batch_key(first),
        inbox.stage_marker_key(first, inbox.BUFFERED),
    ]


@both
def test_team_config_and_sandbox_log_round_trip(object_store):
    config = TeamConfig(team_id=7, ai_processing_consent=True, repositories=["/srv/shop"])
    save_team(object_store, config)
    log = b'{"type": "start"}\n{"type": "result"}\n'
    object_store.put("research_logs/r7-0123456789abcdef/round-1.jsonl", log)

    assert load_team(object_store, 7) == config and load_team(object_store, 8) is None
    assert object_store.get("research_logs/r7-0123456789abcdef/round-1.jsonl") == log


# --- S3 specifics ---------------------------------------------------------------------------------


def marker(store: S3ObjectStore, src: str) -> str:
    return store._full(S3ObjectStore.MOVES + src)


@s3_only
def test_a_live_claim_marker_keeps_other_movers_off(object_store):
    object_store.put("inbox/a.json", b"body")
    object_store.client.put_object(
        Bucket=object_store.bucket, Key=marker(object_store, "inbox/a.json"), Body=b"claimed/b1/a.json\nother-mover"
    )

    assert not object_store.move("inbox/a.json", "claimed/b2/a.json")
    assert object_store.exists("inbox/a.json") and object_store.exists(".moves/inbox/a.json")
    assert object_store.list("claimed/") == []


@s3_only
def test_a_stale_marker_without_copy_is_released_and_the_object_moved_by_that_mover(object_store):
    """Before, the mover that released a dead mover's marker still answered False: a claim that runs once
    (`signals process`) left the object in the inbox and said nothing was unfinished."""
    object_store.put("inbox/a.json", b"body")
    object_store.client.put_object(
        Bucket=object_store.bucket, Key=marker(object_store, "inbox/a.json"), Body=b"claimed/b1/a.json\ndead-mover"
    )
    object_store.stale_move_seconds = 0

    assert object_store.move("inbox/a.json", "claimed/b2/a.json")  # releases the dead mover's marker and moves
    assert object_store.list("") == ["claimed/b2/a.json"]


@s3_only
def test_a_stale_marker_after_the_copy_finishes_the_dead_move(object_store):
    batch = "b20261124T120000000000Z"
    object_store.put("inbox/a.json", b"body")
    object_store.put(f"claimed/{batch}/a.json", b"body")  # the dead mover copied, then died
    object_store.client.put_object(
        Bucket=object_store.bucket,
        Key=marker(object_store, "inbox/a.json"),
        Body=f"claimed/{batch}/a.json\ndead-mover".encode(),
    )
    object_store.stale_move_seconds = 0

    assert not object_store.move("inbox/a.json", "claimed/b2/a.json")
    assert object_store.list("") == [f"claimed/{batch}/a.json"]
    assert inbox.unfinished_batches(object_store) == [batch]  # the sensor requests a run for it


@s3_only
def test_prefix_scopes_every_key(object_store, s3_server):
    scoped = S3ObjectStore(object_store.bucket, "/team-a/", client=object_store.client)
    scoped.put("inbox/a.json", b"1")

    assert scoped.list("inbox/") == ["inbox/a.json"]
    assert scoped.move("inbox/a.json", "claimed/b1/a.json")
    assert object_store.list("") == ["team-a/claimed/b1/a.json"]
    assert scoped.describe() == f"s3://{object_store.bucket}/team-a"


@s3_only
def test_resource_builds_its_client_through_dagster_aws(object_store, s3_server):
    settings = load_settings()
    resource = ObjectStoreResource(kind="s3", bucket=settings.s3_bucket, endpoint_url=settings.s3_endpoint_url)
    store = resource.open()
    store.put("inbox/a.json", b"1")

    assert object_store.get("inbox/a.json") == b"1"
    assert store.describe() == f"s3://{settings.s3_bucket}/"


def test_s3_needs_a_bucket(signals_home, monkeypatch):
    monkeypatch.setenv("SIGNALS_OBJECT_STORE", "s3")

    with pytest.raises(ValueError, match="SIGNALS_S3_BUCKET must be set when SIGNALS_OBJECT_STORE=s3"):
        load_settings()


def test_a_missing_bucket_or_an_unreachable_endpoint_is_an_error_naming_the_store(
    signals_home, s3_server, monkeypatch, capsys
):
    """What the operator must fix (a bucket not created, an endpoint down): one line naming the store, exit 1,
    as for an unreachable ClickHouse server; not an internal error."""
    from signals_assets.cli.main import main

    for name, value in s3_server.environment("no-such-bucket").items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ObjectStoreError, match="^the S3 object store s3://no-such-bucket/: .*NoSuchBucket"):
        open_object_store(load_settings()).put("teams/1.json", b"{}")
    assert main(["teams", "show", "1"]) == 1
    error = capsys.readouterr().err
    assert error.startswith("error: the S3 object store s3://no-such-bucket/: ") and error.count("\n") == 1
    monkeypatch.setenv("SIGNALS_S3_ENDPOINT_URL", "http://127.0.0.1:9")  # discard: nothing listens
    assert main(["teams", "show", "1"]) == 1
    assert capsys.readouterr().err.startswith("error: the S3 object store s3://no-such-bucket/: Could not connect")


def test_claim_all_forms_the_batches_that_claims_one_after_the_other_form(object_store, tmp_path):
    """`signals process` claims everything from one listing of the inbox: the same batches, in the same
    order, with the same objects, as claiming them one after the other (round-robin across teams, each
    team at most its own per-batch limit)."""
    import shutil

    from signals_assets.storage.object_store import LocalObjectStore

    for team, limit in ((1, None), (2, 1), (3, None)):
        save_team(object_store, TeamConfig(team_id=team, ai_processing_consent=True, max_signals_per_batch=limit))
    emit_texts(object_store, [f"team one's signal {i}" for i in range(7)], team_id=1)
    emit_texts(object_store, [f"team two's signal {i}" for i in range(3)], team_id=2, start=100)
    emit_texts(object_store, [f"team three's signal {i}" for i in range(2)], team_id=3, start=200)
    one_by_one = LocalObjectStore(tmp_path / "copy")
    shutil.copytree(load_settings().objects_root, one_by_one.root)

    batches = inbox.claim_all(object_store, 4, max_per_team=3)
    expected, last = [], None
    while claim := inbox.claim_pending(one_by_one, 4, last, max_per_team=3).new_batches:
        expected += claim
        last = claim[-1]

    def contents(store, keys):
        return [json.loads(store.get(inbox.manifest_key(batch)))["objects"] for batch in keys]

    assert contents(object_store, batches) == contents(one_by_one, expected)
    # the first batch served teams 1 and 2, left with backlogs (5 of 3 a batch, 2 of 1): team 3 goes alone
    assert [{name.split("/")[0] for name in names} for names in contents(object_store, batches)] == [
        {"1", "2", "3"},
        {"3"},
        {"1", "2"},
        {"1", "2"},
    ]
    assert batches == sorted(batches) and not object_store.list("inbox/")


def _batches_refiltering_every_list(inboxes, max_signals, served_before):
    """The obvious definition `plan_batches` must match: round-robin over the teams' queues, or over those
    of the teams without a backlog (more left than their limit) when some team has one and the batch
    before served such a team, then remove the taken keys from every list, until nothing is left."""
    from signals_assets.fairness import round_robin

    def folder(key):
        return key.split("/")[1] if key.count("/") == 2 else None

    batches, served = [], served_before
    while queues := inbox._queues(inboxes):
        backlogged = {folder(keys[0]) for keys, limit in inboxes if len(keys) > limit}
        if backlogged & served and len(backlogged) < len(queues):
            queues = [queue for queue in queues if folder(queue[0]) not in backlogged]
        batches.append(round_robin(queues, max_signals))
        taken = set(batches[-1])
        served = {folder(key) for key in taken}
        inboxes = [([key for key in keys if key not in taken], limit) for keys, limit in inboxes]
    return batches


@pytest.mark.parametrize("seed", range(40))
def test_planned_batches_are_those_of_refiltering_every_team_list_per_batch(seed):
    """Many teams with uneven backlogs and limits, names shared between teams (ties in the team order),
    the loose pre-team queue, and batch sizes from below to above the number of teams."""
    import random

    rng = random.Random(seed)
    inboxes = [(sorted({f"inbox/{rng.randrange(50):04d}-loose.json" for _ in range(rng.randrange(4))}), 3)]
    for team in range(rng.randrange(1, 12)):
        names = {f"{rng.randrange(50):04d}-{rng.randrange(3)}.json" for _ in range(rng.choice((0, 1, 5, 40)))}
        inboxes.append(([f"inbox/{team}/{name}" for name in sorted(names)], rng.randrange(1, 8)))
    max_signals = rng.choice((1, 2, 3, 7, 25))
    served_before = rng.choice((set(), {None}, {"0"}, {"1", "2"}))  # the batch before the first took these

    planned = list(inbox.plan_batches(inboxes, max_signals, served_before))

    assert planned == _batches_refiltering_every_list(inboxes, max_signals, served_before)
    assert sorted(key for batch in planned for key in batch) == sorted(key for keys, _ in inboxes for key in keys)


def test_only_a_regular_file_is_an_object_of_the_local_folder(tmp_path, monkeypatch):
    store = LocalObjectStore(tmp_path / "objects")
    (store.root / "teams" / "1.json").mkdir(parents=True)
    os.mkfifo(store.root / "teams" / "2.json")  # opening it for reading would wait for a writer
    (store.root / "teams" / "3.json").symlink_to("/etc/hostname")
    monkeypatch.chdir(store.root / "teams")  # a socket's path has at most 108 bytes
    with socket.socket(socket.AF_UNIX) as listener:  # opening it fails (ENXIO): before, the caller failed
        listener.bind("4.json")
    for key in ("teams/1.json", "teams/2.json", "teams/3.json", "teams/4.json"):
        with pytest.raises(KeyError):
            store.get(key)
