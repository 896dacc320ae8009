"""Store sessions across a run's steps: a store use may hand its session on to the next one, so a run's
consecutive store-only steps open chdb once, while the store is never locked during a model pass."""

import fcntl

import dagster as dg
import pytest

from signals_assets.definitions import defs
from signals_assets.ingestion import inbox
from signals_assets.resources.clickhouse import ClickHouseResource
from signals_assets.resources.embedder import EmbedderResource
from signals_assets.settings import load_settings
from signals_assets.storage import clickhouse as store_module

from conftest import CARD_DECLINED, PASSWORD_RESET, emit_texts


def store_is_locked(path) -> bool:
    """Whether another holder has the store's file lock (a second open file cannot take it)."""
    with open(path / ".store.lock", "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
        return False


@pytest.fixture
def openings(monkeypatch) -> list[str]:
    """Each chdb opening, recorded (the real opening runs)."""
    opened = []
    real = store_module.open_chdb

    def counted(path, *args, **kwargs):
        opened.append(str(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(store_module, "open_chdb", counted)
    return opened


def test_a_handed_on_session_stays_locked_until_the_next_use_ends(tmp_path, openings):
    resource = ClickHouseResource(path=str(tmp_path / "store"))
    with resource.session(hand_on=True) as first:
        first.command("CREATE TABLE t (x UInt8) ENGINE = MergeTree ORDER BY x")
    assert store_is_locked(tmp_path / "store")
    with resource.session() as second:
        assert second is first
        second.insert("t", [{"x": 1}])
    assert not store_is_locked(tmp_path / "store")
    with resource.session() as third:
        assert third is not first and third.scalar("SELECT count() FROM t") == 1
    assert len(openings) == 2


def test_a_failing_use_closes_a_handed_on_session_and_teardown_closes_the_last_one(tmp_path, openings):
    resource = ClickHouseResource(path=str(tmp_path / "store"))
    with resource.session(hand_on=True):
        pass
    with pytest.raises(RuntimeError), resource.session(hand_on=True):
        raise RuntimeError("a step failed")
    assert not store_is_locked(tmp_path / "store")
    with resource.session(hand_on=True):
        pass
    resource.teardown_after_execution(dg.build_init_resource_context())
    assert not store_is_locked(tmp_path / "store")
    assert len(openings) == 2


def test_a_batch_run_opens_the_store_twice_and_not_during_the_embedding_pass(object_store, team, monkeypatch, openings):
    """Offline: buffering hands its session to the embeddings' read, which closes it before the model
    runs; the embeddings' write hands it on through the check, the grouping, the SQL models and the last check."""
    store_path = load_settings().clickhouse_path
    locked_during_embedding = []
    real_embed = EmbedderResource.embed

    def embed(self, texts):
        locked_during_embedding.append(store_is_locked(store_path))
        return real_embed(self, texts)

    monkeypatch.setattr(EmbedderResource, "embed", embed)
    emit_texts(object_store, CARD_DECLINED + PASSWORD_RESET)
    batches = inbox.claim_all(object_store, 100)
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("signal_batches", batches)
    result = defs().resolve_job_def("signal_batch_job").execute_in_process(partition_key=batches[0], instance=instance)
    assert result.success
    assert locked_during_embedding == [False]
    assert len(openings) == 2
    assert not store_is_locked(store_path)
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks and all(checks.values()), checks
