import json
import threading
from collections import Counter
from datetime import datetime, timedelta, timezone

import dagster as dg
import pytest
from dagster._core.test_utils import create_run_for_test

from signals_assets.ingestion import inbox
from signals_assets.partition_keys import batch_key, batch_time
from signals_assets.resources.object_store import ObjectStoreResource
from signals_assets.sensors.signal_inbox import build_signal_inbox_sensor
from signals_assets.storage.object_store import LocalObjectStore

from conftest import refuse_permission
from test_object_store import assert_manifests_list_their_claims


def put_inbox(store, n, start=0):
    for i in range(start, start + n):
        store.put(f"inbox/20261122T000000{i:06d}Z-sig{i}.json", json.dumps({"signal_id": f"sig{i}"}).encode())


def mark_run_created(instance, batch, run_key=None, status=dg.DagsterRunStatus.NOT_STARTED):
    """What the daemon does with the sensor's run request: a run of the batch job for the partition."""
    return create_run_for_test(
        instance,
        job_name="signal_batch_job",
        status=status,
        tags={"dagster/run_key": run_key or batch, "dagster/partition": batch},
    )


@pytest.fixture
def store(tmp_path):
    return LocalObjectStore(tmp_path / "objects")


@pytest.fixture
def tick(store):
    # One run per batch, so each claimed batch shows as its own request (ranges: test_batch_ranges.py).
    sensor = build_signal_inbox_sensor(max_signals_per_batch=4, max_open_batches=10, max_batches_per_run=1)
    resource = ObjectStoreResource(root=str(store.root))

    def run(instance, cursor=None):
        return sensor(dg.build_sensor_context(instance=instance, cursor=cursor, resources={"object_store": resource}))

    return run


def test_an_object_the_store_refuses_to_move_stays_pending_and_the_sensor_says_so(store, tick, monkeypatch):
    """A local inbox object in a folder the claimer may not write into: the others are claimed around
    it, and each tick's skip reason names it while it waits."""
    put_inbox(store, 3)
    refuse_permission(monkeypatch, "rename", "-sig1.json")
    with dg.instance_for_test() as instance:
        result = tick(instance)
        [batch] = [r.partition_key for r in result.run_requests]
        assert json.loads(store.get(inbox.manifest_key(batch)))["objects"] == [
            "20261122T000000000000Z-sig0.json",
            "20261122T000000000002Z-sig2.json",
        ]
        assert store.list("inbox/") == ["inbox/20261122T000000000001Z-sig1.json"]
        mark_run_created(instance, batch)
        waiting = tick(instance, result.cursor)
        assert not waiting.run_requests
        assert (
            "1 inbox object(s) the store refused to move stay in the inbox "
            "(first: inbox/20261122T000000000001Z-sig1.json: Permission denied)"
        ) in waiting.skip_reason.skip_message


def test_pending_objects_are_claimed_once_into_manifested_batches(store, tick):
    put_inbox(store, 6)
    with dg.instance_for_test() as instance:
        result = tick(instance)
        keys = [r.partition_key for r in result.run_requests]
        assert len(keys) == 2 and keys == sorted(keys)
        assert [r.run_key for r in result.run_requests] == keys
        assert result.dynamic_partitions_requests[0].partition_keys == keys
        manifests = [json.loads(store.get(inbox.manifest_key(k))) for k in keys]
        assert [len(m["objects"]) for m in manifests] == [4, 2]
        assert store.list("inbox/") == []
        cursor = json.loads(result.cursor)
        assert cursor == {"last_batch": keys[-1], "claimed_signals": 6}

        for key in keys:
            mark_run_created(instance, key)
        again = tick(instance, result.cursor)
        assert not again.run_requests
        assert "2 batch(es) in flight" in again.skip_reason.skip_message


def test_a_claim_whose_tick_died_is_requested_by_the_next_tick(store, tick):
    put_inbox(store, 3)
    orphan = "b20261122T000000000001Z"
    inbox.claim_pending(store, 10, None, now=batch_time(orphan))  # moved, but no run was ever requested
    with dg.instance_for_test() as instance:
        result = tick(instance)
        assert [r.partition_key for r in result.run_requests] == [orphan]
        assert len(inbox.load_batch(store, orphan)) == 3


class StoreWithLateWriter(LocalObjectStore):
    """An emitter writes a new object right after the claimer listed the inbox."""

    def list_level(self, folder, start_after=""):
        level = super().list_level(folder, start_after)
        if folder == inbox.INBOX and not getattr(self, "written", False):
            self.written = True
            self.put("inbox/20261122T000000000000Z-late.json", b'{"signal_id": "late"}')
        return level


def test_an_object_landing_during_a_claim_goes_to_a_later_batch(tmp_path):
    store = StoreWithLateWriter(tmp_path / "objects")
    put_inbox(store, 2, start=1)
    first = inbox.claim_pending(store, 100, None)
    assert first.claimed_signals == 2
    assert store.list("inbox/") == ["inbox/20261122T000000000000Z-late.json"]
    second = inbox.claim_pending(store, 100, first.last_batch)
    assert second.claimed_signals == 1 and second.new_batches[0] > first.new_batches[0]
    names = [n for b in first.new_batches + second.new_batches for n, _ in inbox.load_batch(store, b)]
    assert sorted(names) == sorted(set(names)) and len(names) == 3


def test_concurrent_claimers_never_claim_the_same_object(store):
    put_inbox(store, 300)
    results = []

    def claim(offset):
        now = datetime(2026, 11, 22, 0, 0, offset, tzinfo=timezone.utc)
        results.append(inbox.claim_pending(store, 7, None, now=now))

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    while store.list("inbox/"):
        results.append(inbox.claim_pending(store, 50, max(b for r in results for b in r.new_batches)))
    # Two claimers can choose one key (one keys right after the other's newest, which the other follows
    # with the same key): the reservation gives it to one of them, so each batch is one claim's.
    names = [n for r in results for b in r.new_batches for n, _ in inbox.load_batch(store, b)]
    assert len(names) == 300 == len(set(names))
    assert_manifests_list_their_claims(store, results)


def test_consolidation_keeps_the_raw_batch_and_releases_the_claims(store):
    put_inbox(store, 3)
    claim = inbox.claim_pending(store, 10, None)
    batch = claim.new_batches[0]
    objects = inbox.load_batch(store, batch)
    inbox.consolidate_batch(store, batch, objects)
    assert store.list(f"claimed/{batch}/") == []
    assert inbox.load_batch(store, batch) == objects  # re-materialising reads the retained raw file
    # buffered is not finished: the batch stays unfinished until its grouping has committed
    assert inbox.unfinished_batches(store) == [batch]
    inbox.mark_stage_done(store, batch, inbox.EMBEDDED)
    inbox.mark_stage_done(store, batch, inbox.GROUPED)
    assert inbox.unfinished_batches(store) == []


def test_the_raw_batch_file_keeps_bodies_with_unicode_line_separators_whole(store):
    """A line of the raw file ends at "\n" only: a body may hold U+0085 or U+2028 unescaped (JSON allows
    it; `splitlines()` would cut the line there)."""
    put_inbox(store, 1)
    batch = inbox.claim_pending(store, 10, None).new_batches[0]
    bodies = [("1/a.json", "Checkout\u0085fails\u2028again\r".encode()), ("1/b.json", b"plain")]
    lines = [json.dumps({"object": name, "body": body.decode()}, ensure_ascii=False) for name, body in bodies]
    store.put(inbox.raw_batch_key(batch), ("\n".join(lines) + "\n").encode())

    assert inbox.load_batch(store, batch) == bodies


def test_the_raw_batch_file_keeps_any_bytes_as_they_were_at_about_their_size(store):
    """Before, each control character or byte that is not UTF-8 took six bytes in the raw file (a JSON
    escape): a batch of 500 objects of 256 KiB of \\x01 wrote 751 MB and took `signals process` to 3.0 GB
    peak RSS (now 167 MB and 0.93 GB). A raw file written before keeps being read."""
    put_inbox(store, 1)
    batch = inbox.claim_pending(store, 10, None).new_batches[0]
    bodies = [
        ("1/json.json", json.dumps({"description": "Card declined \u2028 at checkout"}).encode()),
        ("1/controls.json", b"\x01\x00\x1b" * 20_000),
        ("1/latin-1.json", b"caf\xe9 " * 20_000),
        ("1/emoji.json", "\U0001f600\u0085".encode() * 10_000),
        ("1/empty.json", b""),
    ]
    inbox.consolidate_batch(store, batch, bodies)
    assert inbox.load_batch(store, batch) == bodies
    assert len(store.get(inbox.raw_batch_key(batch))) < 1.4 * sum(len(body) for _, body in bodies) + 500

    earlier = [("1/latin-1.json", b"caf\xe9\x01")]
    line = json.dumps({"object": "1/latin-1.json", "body": earlier[0][1].decode("utf-8", "surrogateescape")})
    store.put(inbox.raw_batch_key(batch), line.encode() + b"\n")
    assert inbox.load_batch(store, batch) == earlier


def put_team_inbox(store, team, n, start_second=0):
    """`n` signals of `team` in its inbox queue, received one microsecond apart from `start_second`."""
    for i in range(n):
        key = f"inbox/{team}/20261122T0000{start_second:02d}{i:06d}Z-t{team}s{i}.json"
        store.put(key, json.dumps({"signal_id": f"t{team}s{i}", "team_id": team}).encode())


def batch_teams(store, batch):
    return [name.split("/", 1)[0] for name, _ in inbox.load_batch(store, batch)]


def test_a_burst_of_one_team_does_not_push_another_teams_signals_back(store):
    put_team_inbox(store, 1, 10_000)
    put_team_inbox(store, 2, 3, start_second=30)  # team 2 emits after team 1's whole burst
    first = inbox.claim_pending(store, 500, None, max_batches=2)
    assert batch_teams(store, first.new_batches[0]).count("2") == 3
    assert batch_teams(store, first.new_batches[0]).count("1") == 497
    assert batch_teams(store, first.new_batches[1]) == ["1"] * 500
    assert len(store.list("inbox/1/")) == 10_000 - 997 and store.list("inbox/2/") == []


def test_after_a_batch_that_served_a_backlog_another_teams_few_signals_go_alone_and_the_backlog_next(store):
    """A batch is grouped as long as its largest team takes, so a team's few signals are not put beside a
    burst's 500 right after a batch that served the burst. But every other batch serves the burst, however
    often the other team sends a few: it cannot hold the burst back."""
    put_team_inbox(store, 1, 2_000)
    claims = [inbox.claim_pending(store, 500, None, max_batches=1)]  # team 1's first 500
    for second in (30, 40, 50, 59):
        put_team_inbox(store, 2, 3, start_second=second)
        claims.append(inbox.claim_pending(store, 500, claims[-1].last_batch, max_batches=1))
    teams = [Counter(batch_teams(store, claim.new_batches[0])) for claim in claims]
    assert teams == [{"1": 500}, {"2": 3}, {"1": 497, "2": 3}, {"2": 3}, {"1": 497, "2": 3}]
    # A claim of several batches goes on past the one that left the backlog out.
    put_team_inbox(store, 2, 3, start_second=20)
    two = inbox.claim_pending(store, 500, claims[-1].last_batch, max_batches=2)
    assert [Counter(batch_teams(store, batch)) for batch in two.new_batches] == [{"2": 3}, {"1": 500}]
    # Without a backlog, nobody is left out: team 1's last 6 and team 2's next 3 share a batch.
    put_team_inbox(store, 2, 3, start_second=21)
    [last] = inbox.claim_pending(store, 500, two.last_batch, max_batches=1).new_batches
    assert Counter(batch_teams(store, last)) == {"1": 6, "2": 3}


def test_the_per_team_limit_caps_a_team_in_a_batch_and_its_config_overrides_it(store):
    from signals_assets.ingestion.teams import TeamConfig, save_team

    put_team_inbox(store, 1, 30)
    put_team_inbox(store, 2, 30, start_second=1)
    put_team_inbox(store, 3, 30, start_second=2)
    save_team(store, TeamConfig(team_id=3, ai_processing_consent=True, max_signals_per_batch=2))
    batch = inbox.claim_pending(store, 100, None, max_per_team=10, max_batches=1).new_batches[0]
    teams = batch_teams(store, batch)
    assert (teams.count("1"), teams.count("2"), teams.count("3")) == (10, 10, 2)
    # each team's oldest signals went first, in receive order
    assert [n for n, _ in inbox.load_batch(store, batch) if n.startswith("1/")] == [
        k[len("inbox/") :] for k in sorted(f"inbox/1/20261122T000000{i:06d}Z-t1s{i}.json" for i in range(10))
    ]


def test_the_sensor_claims_a_new_batch_only_below_the_open_batch_limit(store):
    """10,000 signals of team 1 are pending; team 2's three arrive after the first tick: they are in
    the very next batch claimed, not behind team 1's backlog."""
    sensor = build_signal_inbox_sensor(max_signals_per_batch=500, max_open_batches=1)
    resource = ObjectStoreResource(root=str(store.root))
    put_team_inbox(store, 1, 10_000)
    with dg.instance_for_test() as instance:

        def tick(cursor):
            return sensor(
                dg.build_sensor_context(instance=instance, cursor=cursor, resources={"object_store": resource})
            )

        first = tick(None)
        [batch1] = [r.partition_key for r in first.run_requests]
        put_team_inbox(store, 2, 3, start_second=30)
        mark_run_created(instance, batch1)
        held = tick(first.cursor)
        assert not held.run_requests and "1 unfinished" in held.skip_reason.skip_message
        assert len(store.list("inbox/2/")) == 3  # not claimed behind the open batch

        for stage in inbox.STAGES:
            inbox.mark_stage_done(store, batch1, stage)
        second = tick(held.cursor)
        [batch2] = [r.partition_key for r in second.run_requests]
        assert batch_teams(store, batch2).count("2") == 3


@pytest.mark.parametrize(
    "cursor",
    [
        "not json",
        "[]",
        '{"last_batch": "garbage"}',
        '{"last_batch": "b20261131T000000000000Z"}',
        '{"last_batch": 7, "claimed_signals": "many"}',
    ],
)
def test_a_cursor_set_by_hand_neither_stops_the_claims_nor_keys_a_batch_before_the_stored_ones(store, tick, cursor):
    put_inbox(store, 1)  # claimed while the clock was ahead
    [later] = inbox.claim_pending(store, 10, None, now=datetime.now(timezone.utc) + timedelta(hours=1)).new_batches
    put_inbox(store, 2, start=1)
    with dg.instance_for_test() as instance:
        result = tick(instance, cursor)
        [claimed] = [r.partition_key for r in result.run_requests if r.partition_key != later]
        assert claimed > later and len(inbox.load_batch(store, claimed)) == 2
        assert json.loads(result.cursor) == {"last_batch": claimed, "claimed_signals": 2}


def test_every_claimer_keys_a_new_batch_after_the_batches_the_store_holds(store):
    """The clock went back (or a batch was keyed while it was ahead): `signals process` and the sensor
    alike key new batches after every stored one, so key order stays claim order. Not after a batch
    keyed by hand far ahead of the clock: that would date every later signal there."""
    now = datetime.now(timezone.utc)
    put_inbox(store, 1)
    [later] = inbox.claim_pending(store, 10, None, now=now + timedelta(hours=1)).new_batches
    put_inbox(store, 2, start=1)
    [claimed] = inbox.claim_all(store, 10)
    assert claimed > later
    put_inbox(store, 1, start=3)
    assert inbox.claim_pending(store, 10, None).new_batches[0] > claimed
    inbox.write_manifest(store, "b20991231T000000000000Z", [])
    put_inbox(store, 1, start=4)
    [today] = inbox.claim_all(store, 10)
    assert batch_time(today) < now + timedelta(days=1)


class ListingRecorder(LocalObjectStore):
    """Records every key its listings return."""

    listed: list[str]

    def list(self, prefix, limit=None, start_after=""):
        keys = super().list(prefix, limit, start_after)
        self.listed = [*getattr(self, "listed", []), *keys]
        return keys


def finished_batch(store, batch):
    inbox.write_manifest(store, batch, ["a.json"])
    for stage in inbox.STAGES:
        inbox.mark_stage_done(store, batch, stage)


def test_unfinished_batches_are_found_from_the_finished_through_mark_on(tmp_path):
    """The finished batches of the history are listed once: the mark moves over them, stopping at a
    parked or unfinished batch and short of the last hour's; listings after it hold none of them, and
    nothing after the mark is missed, an unparked batch included."""
    store = ListingRecorder(tmp_path / "objects")
    now = datetime.now(timezone.utc)
    old = [batch_key(now - timedelta(days=3) + timedelta(minutes=i)) for i in range(30)]
    recent = batch_key(now - timedelta(minutes=10))
    for batch in old + [recent]:
        finished_batch(store, batch)
    parked, unfinished = old[20], old[25]
    inbox.park_batch(store, parked, "poison", 3)
    for batch in (parked, unfinished):
        (store.root / inbox.stage_marker_key(batch, inbox.GROUPED)).unlink()

    assert len(inbox.open_batch_progress(store, move_mark=False)) == 31  # a reader (`signals status`)
    assert inbox.finished_through(store) is None
    assert [p.batch for p in inbox.open_batch_progress(store)] == old + [recent]  # no mark yet: everything
    assert inbox.finished_through(store) == old[19]
    store.listed = []
    assert inbox.unfinished_batches(store) == [unfinished]
    assert inbox.unfinished_batches(store, include_parked=True) == [parked, unfinished]
    assert {key.split("/")[1] for key in store.listed} == set(old[20:] + [recent])

    inbox.unpark_batch(store, parked)
    assert inbox.unfinished_batches(store) == [parked, unfinished]
    for batch in (parked, unfinished):
        inbox.mark_stage_done(store, batch, inbox.GROUPED)
    assert inbox.unfinished_batches(store) == []
    assert inbox.finished_through(store) == old[-1]  # the last hour's batch stays listed
    store.listed = []
    inbox.write_manifest(store, "b20261101T000000000000Z", ["late.json"])  # keyed before the mark: not listed
    put_inbox(store, 1)
    [claimed] = inbox.claim_pending(store, 10, None).new_batches
    assert claimed > recent and inbox.unfinished_batches(store) == [claimed]
    assert {key.split("/")[1] for key in store.listed if key.startswith(("batches/", "claimed/"))} == {recent, claimed}


def test_no_batch_is_keyed_at_or_before_the_finished_through_mark(store):
    """Not even when the mark lies days ahead of a clock that went back: a batch keyed before the mark
    would never be listed again. An unreadable mark lists everything and is written anew."""
    ahead = batch_key(datetime.now(timezone.utc) + timedelta(days=3))
    store.put(inbox.FINISHED_MARK, json.dumps({"batch": ahead}).encode())
    put_inbox(store, 2)
    [first] = inbox.claim_pending(store, 1, None, max_batches=1).new_batches
    [second] = inbox.claim_all(store, 10)
    assert ahead < first < second
    assert inbox.unfinished_batches(store) == [first, second]

    finished_batch(store, "b20261101T000000000000Z")
    store.put(inbox.FINISHED_MARK, b"not json")
    assert [p.batch for p in inbox.open_batch_progress(store)] == ["b20261101T000000000000Z", first, second]
    assert inbox.finished_through(store) == "b20261101T000000000000Z"


class ClaimDuringListing(LocalObjectStore):
    """A claimer whose clock is two hours behind claims a batch between the listings of claimed/ and
    batches/ of whoever moves the finished-through mark."""

    def list(self, prefix, limit=None, start_after=""):
        keys = super().list(prefix, limit, start_after)
        if prefix == inbox.CLAIMED and not getattr(self, "claimed", None):
            [self.claimed] = inbox.claim_pending(
                self, 10, None, now=datetime.now(timezone.utc) - timedelta(hours=2)
            ).new_batches
        return keys


def test_the_mark_does_not_pass_a_batch_claimed_while_it_was_listed(tmp_path):
    """Its manifest is listed and its claims were not yet: a batch without claims or markers, finished by
    the rule of the batches before the markers. Passed by the mark, it would never be listed again."""
    store = ClaimDuringListing(tmp_path / "objects")
    finished_batch(store, batch_key(datetime.now(timezone.utc) - timedelta(hours=3)))
    put_inbox(store, 1)

    inbox.open_batch_progress(store)
    assert inbox.unfinished_batches(store) == [store.claimed]


def test_a_claim_outlasting_the_mark_lag_keys_each_batch_at_its_own_time(store, monkeypatch):
    """`signals process` claiming a backlog for hours while the sensor claims what arrives meanwhile: a
    batch keyed at the claim's start would land before the mark, past the sensor's finished batches."""
    clock = [datetime.now(timezone.utc)]

    class Clock(datetime):
        @classmethod
        def now(cls, tz=None):
            return clock[0]

    monkeypatch.setattr(inbox, "datetime", Clock)
    put_inbox(store, 2)
    write_manifest = inbox.write_manifest

    def sensor_claims_and_finishes_meanwhile(store, batch, names):
        write_manifest(store, batch, names)
        if clock[0] > started:
            return
        clock[0] += timedelta(hours=2)
        finished_batch(store, batch)
        store.put("inbox/0-new.json", b'{"signal_id": "new"}')
        [meanwhile] = inbox.claim_pending(store, 1, batch, now=clock[0], max_batches=1).new_batches
        finished_batch(store, meanwhile)
        clock[0] += timedelta(hours=2)
        inbox.open_batch_progress(store, now=clock[0])
        assert inbox.finished_through(store) == meanwhile

    started = clock[0]
    monkeypatch.setattr(inbox, "write_manifest", sensor_claims_and_finishes_meanwhile)
    first, second = inbox.claim_all(store, 1)
    assert inbox.unfinished_batches(store) == [second]


def test_a_finished_folder_of_no_batch_does_not_stop_the_mark(store):
    """Put there by hand between two batches: nothing to do for it, so the mark moves past it (stopped
    there, every listing would cost the whole history after it again)."""
    now = datetime.now(timezone.utc)
    first, second = (batch_key(now - timedelta(hours=hours)) for hours in (3, 2))
    for batch in (first, second):
        finished_batch(store, batch)
    store.put(f"batches/{first}_notes/readme.txt", b"why this batch was slow")
    store.put(f"claimed/{first}_held/1/a.json", b"{}")

    inbox.open_batch_progress(store)
    assert inbox.finished_through(store) == first
    store.delete(f"claimed/{first}_held/1/a.json")
    inbox.open_batch_progress(store)
    assert inbox.finished_through(store) == second


def test_a_mark_that_cannot_be_written_stops_no_claim(store, tick, caplog):
    """A folder put by hand where the mark goes: each tick still claims and requests its batches."""
    now = datetime.now(timezone.utc)
    finished_batch(store, batch_key(now - timedelta(days=1)))
    (store.root / inbox.FINISHED_MARK).mkdir(parents=True)
    put_inbox(store, 2)
    with dg.instance_for_test() as instance:
        result = tick(instance)
    [request] = result.run_requests
    assert len(inbox.load_batch(store, request.partition_key)) == 2
    assert inbox.finished_through(store) is None
    assert "the finished-through mark stays at None: writing batch_marks/finished_through.json failed" in caplog.text


def test_a_reserved_batch_whose_moves_all_lost_is_finished_and_never_run(store, tick):
    """Another claimer moved its objects first: the batch holds its reservation only. No partition, no
    run, nothing unfinished in `signals status`, and the finished-through mark passes it."""
    from signals_assets.cli.read_models import unfinished_work

    now = datetime.now(timezone.utc)
    finished_batch(store, batch_key(now - timedelta(hours=3)))
    lost = inbox.reserve_batch(store, now - timedelta(hours=2), None)
    assert store.list(f"batches/{lost}/") == [inbox.reservation_key(lost)]
    put_inbox(store, 1)
    with dg.instance_for_test() as instance:
        result = tick(instance)
    [claimed] = [r.partition_key for r in result.run_requests]
    assert claimed > lost and result.dynamic_partitions_requests[0].partition_keys == [claimed]
    assert inbox.finished_through(store) == lost
    assert unfinished_work(store) == [f"batch {claimed}: {inbox.BUFFERED} not done"]


def test_a_folder_of_no_batch_key_is_never_run_and_holds_nothing_back(store):
    """Folders put under claimed/ and batches/ by hand: no run is requested for them (each would fail
    until parked), they count as no open batch (the claim goes on) and hold no later batch's grouping
    back, even one sorting before every batch key; the sensor names them."""
    sensor = build_signal_inbox_sensor(max_signals_per_batch=4, max_open_batches=1)
    resource = ObjectStoreResource(root=str(store.root))
    store.put("claimed/notes/1/x.json", b"{}")
    store.put("claimed/archive/1/y.json", b"{}")  # sorts before every batch key
    store.put(f"batches/notes/stages/{inbox.BUFFERED}", b"{}")
    put_inbox(store, 2)
    with dg.instance_for_test() as instance:

        def tick(cursor=None):
            return sensor(
                dg.build_sensor_context(instance=instance, cursor=cursor, resources={"object_store": resource})
            )

        first = tick()
        [batch] = [r.partition_key for r in first.run_requests]
        assert first.dynamic_partitions_requests[0].partition_keys == [batch]
        assert inbox.unfinished_batches(store, include_parked=True) == [batch]
        assert inbox.earlier_unfinished_batches(store, batch) == []
        mark_run_created(instance, batch)
        held = tick(first.cursor)
        assert not held.run_requests
        assert (
            "stray folders, which no batch run processes (see `signals status`): ['claimed/archive/', "
            "'claimed/notes/']" in held.skip_reason.skip_message
        )
        assert not store.list("batches/notes/parked") and not store.list("batches/archive/")


def test_a_tick_lists_the_open_batches_once(store, tick, monkeypatch):
    """The batches a claim forms are known, so a tick lists claimed/ once and still requests them; only a
    claim made while other batches are unfinished lists again (a run may finish one during the moves)."""
    listed = []
    real_list = LocalObjectStore.list

    def recording(self, prefix, limit=None, start_after=""):
        listed.append(prefix)
        return real_list(self, prefix, limit, start_after)

    monkeypatch.setattr(LocalObjectStore, "list", recording)
    put_inbox(store, 6)
    with dg.instance_for_test() as instance:
        first = tick(instance)
        batches = [r.partition_key for r in first.run_requests]
        assert len(batches) == 2 and listed.count("claimed/") == 1
        for batch in batches:
            mark_run_created(instance, batch)

        listed.clear()
        put_inbox(store, 1, start=6)
        second = tick(instance, first.cursor)
        [claimed] = [r.partition_key for r in second.run_requests]
        assert claimed > batches[-1] and listed.count("claimed/") == 2

        mark_run_created(instance, claimed)
        listed.clear()
        third = tick(instance, second.cursor)
        assert not third.run_requests and "3 batch(es) in flight" in third.skip_reason.skip_message
        assert listed.count("claimed/") == 1


def test_a_batch_finished_during_the_claim_is_not_requested_again(store, tick, monkeypatch):
    """Batch A is unfinished when the tick lists, and finished (by `signals process`, say) while the tick
    claims a new batch: the tick requests the new batch only, not A by its first listing."""
    put_inbox(store, 1)
    [early] = inbox.claim_pending(store, 10, None).new_batches
    real_reserve = LocalObjectStore.put_if_absent

    def finish_early_then_reserve(self, key, data):
        for stage in inbox.STAGES:
            inbox.mark_stage_done(store, early, stage)
        return real_reserve(self, key, data)

    monkeypatch.setattr(LocalObjectStore, "put_if_absent", finish_early_then_reserve)
    put_inbox(store, 1, start=1)
    with dg.instance_for_test() as instance:
        result = tick(instance)
    [claimed] = [r.partition_key for r in result.run_requests]
    assert claimed > early and inbox.unfinished_batches(store) == [claimed]
