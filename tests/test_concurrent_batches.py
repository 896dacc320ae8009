"""Nothing twice across batches buffered at the same time: a client that sends one signal twice (two
inbox objects, one id) can see the copies claimed into two batches whose runs buffer concurrently
(SIGNALS_MAX_OPEN_BATCHES > 1, `signals process` beside the daemon). The id must be accepted in one
batch and rejected as a duplicate, naming that batch, in the other, whatever the timing."""

import multiprocessing
import sys
import threading
import uuid

import dagster as dg
import pytest

from signals_assets.assets import ingestion as ingestion_assets
from signals_assets.definitions import defs
from signals_assets.ingestion import inbox, store as ingestion_store
from signals_assets.ingestion.screening import ScreenedBatch
from signals_assets.partition_keys import batch_time
from signals_assets.resources.clickhouse import ClickHouseResource
from signals_assets.resources.llm import LLMResource
from signals_assets.safety.filter import OfflineSafetyJudge
from signals_assets.settings import load_settings

from conftest import CARD_DECLINED, PASSWORD_RESET, emit_texts
from test_store import start_local_server, stop_local_server

RENDEZVOUS_SECONDS = 10


class ModelCallingJudge(OfflineSafetyJudge):
    """The offline rules, run the way a model judge is: the store is released while they screen."""

    calls_model = True


@pytest.fixture(scope="module")
def clickhouse_server(tmp_path_factory):
    process, url = start_local_server(tmp_path_factory.mktemp("clickhouse-http"))
    try:
        yield url
    finally:
        stop_local_server(process)


@pytest.fixture
def store_options(request, signals_home, monkeypatch) -> dict:
    """Options for a ClickHouseResource on the signals store the runs use, `chdb` or `server` (set in
    the environment)."""
    if request.param == "server":
        options = {"url": request.getfixturevalue("clickhouse_server"), "database": f"race_{uuid.uuid4().hex[:12]}"}
        monkeypatch.setenv("SIGNALS_CLICKHOUSE_URL", options["url"])
        monkeypatch.setenv("SIGNALS_CLICKHOUSE_DATABASE", options["database"])
        monkeypatch.setenv("SIGNALS_CLICKHOUSE_PASSWORD", "")
        return options
    return {"path": str(load_settings().clickhouse_path)}


def screening_after_rendezvous(barrier):
    """Each batch's screening, which lies between its duplicate check and its write, waits for the
    other batch to reach its own (for at most RENDEZVOUS_SECONDS: a store that one batch holds from
    check to write keeps the other out, and then it goes on alone)."""
    real = ingestion_assets.screen_batch

    def screen_batch(*args, **kwargs):
        try:
            barrier.wait(RENDEZVOUS_SECONDS)
        except threading.BrokenBarrierError:
            pass
        return real(*args, **kwargs)

    return screen_batch


def buffer(instance, batch) -> bool:
    job = defs().resolve_job_def("signal_batch_job")
    selection = [dg.AssetKey("buffered_signals")]
    return job.execute_in_process(
        partition_key=batch, instance=instance, asset_selection=selection, raise_on_error=False
    ).success


def buffer_in_own_process(batch, model_judge, barrier) -> None:
    """One batch run's buffering in a process of its own, as two `signals process` (or the daemon's
    run workers) run them, on the instance of DAGSTER_HOME."""
    if model_judge:
        LLMResource.safety_judge = lambda self: ModelCallingJudge()
    ingestion_assets.screen_batch = screening_after_rendezvous(barrier)
    with dg.DagsterInstance.get() as instance:
        sys.exit(0 if buffer(instance, batch) else 1)


def stored(options, signal_id) -> tuple[list[dict], list[dict]]:
    with ClickHouseResource(**options).session() as db:
        params = {"id": signal_id}
        accepted = db.query("SELECT batch_key FROM signals WHERE signal_id = {id} ORDER BY batch_key", params)
        rejected = db.query(
            "SELECT batch_key, reason, detail FROM rejected_signals WHERE signal_id = {id} ORDER BY batch_key", params
        )
    return accepted, rejected


# A model judge's buffering releases the store between its duplicate check and its write.
@pytest.mark.parametrize(
    "store_options, model_judge", [("chdb", False), ("chdb", True), ("server", False)], indirect=["store_options"]
)
def test_a_signal_sent_twice_into_two_batches_buffered_at_once_is_accepted_once(
    object_store, team, store_options, model_judge
):
    [twice] = emit_texts(object_store, CARD_DECLINED[:1], idempotency_key="sent-twice")
    emit_texts(object_store, PASSWORD_RESET[:1], start=1)
    first = inbox.claim_pending(object_store, 100, None)
    emit_texts(object_store, CARD_DECLINED[:1], idempotency_key="sent-twice")
    emit_texts(object_store, PASSWORD_RESET[1:2], start=2)
    second = inbox.claim_pending(object_store, 100, first.last_batch)
    batches = first.new_batches + second.new_batches
    with dg.DagsterInstance.get() as instance:
        instance.add_dynamic_partitions("signal_batches", batches)
        spawn = multiprocessing.get_context("spawn")
        barrier = spawn.Barrier(2)
        runs = [spawn.Process(target=buffer_in_own_process, args=(b, model_judge, barrier)) for b in batches]
        for run in runs:
            run.start()
        for run in runs:
            run.join()
        assert [run.exitcode for run in runs] == [0, 0]
        # chdb lets one process into the store at a time: with the offline rules a batch holds it from its
        # check to its write, so the other batch's check waits for that write. Otherwise both checks
        # came before either write.
        held_from_check_to_write = "path" in store_options and not model_judge
        assert barrier.broken == held_from_check_to_write
        accepted, rejected = stored(store_options, twice)
        assert len(accepted) == 1, f"signal {twice} accepted in {[r['batch_key'] for r in accepted]}"
        [owner] = [row["batch_key"] for row in accepted]
        [other] = [b for b in batches if b != owner]
        assert rejected == [
            {
                "batch_key": other,
                "reason": "duplicate",
                "detail": f"signal {twice} was already accepted in batch {owner}",
            }
        ]

        # Re-materialising either batch, one after the other, gives the same tables.
        for batch in batches:
            assert buffer(instance, batch)
        assert stored(store_options, twice) == (accepted, rejected)


def accepted_row(batch: str, signal_id: str) -> dict:
    at = batch_time(batch)
    return {
        "team_id": 1,
        "signal_id": signal_id,
        "batch_key": batch,
        "source_product": "zendesk",
        "source_type": "ticket",
        "source_id": "1",
        "description": CARD_DECLINED[0],
        "weight": 1.0,
        "extra": "{}",
        "idempotency_key": "sent-twice",
        "emitted_at": at,
        "ingested_at": at,
    }


def test_two_batches_writing_one_id_at_the_same_moment_on_a_server_leave_it_to_the_earlier_batch(
    clickhouse_server, monkeypatch
):
    """A ClickHouse server has no session lock: both batches' duplicate checks can come before both
    writes. Each batch looks again after its write, and the later one by key gives the id up."""
    options = {"url": clickhouse_server, "database": f"race_{uuid.uuid4().hex[:12]}"}
    earlier, later = "b20261202T100000000000Z", "b20261202T100000000001Z"
    both_checked = threading.Barrier(2, timeout=RENDEZVOUS_SECONDS)
    real_replace = ingestion_store._replace
    first_writes: set[str] = set()

    def replace_once_both_checked(db, batch, screened):
        if batch not in first_writes:
            first_writes.add(batch)
            both_checked.wait()
        real_replace(db, batch, screened)

    monkeypatch.setattr(ingestion_store, "_replace", replace_once_both_checked)
    written: dict[str, ScreenedBatch] = {}

    def write(batch):
        with ClickHouseResource(**options).session() as db:
            written[batch] = ingestion_store.write_screened(db, batch, ScreenedBatch([accepted_row(batch, "twice")]))

    writers = [threading.Thread(target=write, args=(batch,)) for batch in (later, earlier)]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join()
    assert not both_checked.broken, "the second batch's check did not come before the first write"
    assert [row["batch_key"] for row in written[earlier].accepted] == [earlier] and not written[earlier].rejected
    assert not written[later].accepted
    assert [(r["reason"], r["detail"]) for r in written[later].rejected] == [
        ("duplicate", f"signal twice was already accepted in batch {earlier}")
    ]
    accepted, rejected = stored(options, "twice")
    assert accepted == [{"batch_key": earlier}]
    assert rejected == [{"batch_key": later, "reason": "duplicate", "detail": written[later].rejected[0]["detail"]}]
