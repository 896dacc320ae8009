"""Remove everything of one team: store rows, objects and its `reports` partitions, so nothing of it
can resurface (a re-run of a shared batch included).

Batches are shared by every team: from a batch's raw file, claims and manifest only the team's
signals are removed; the batch itself (its partition and markers) stays for the other teams.
"""

from __future__ import annotations

import io
import json
from typing import TYPE_CHECKING

from signals_assets.ingestion import inbox
from signals_assets.ingestion.emit import object_signal_id
from signals_assets.ingestion.screening import folder_team
from signals_assets.ingestion.teams import team_key
from signals_assets.reports import quotas
from signals_assets.reports.promotions import PROMOTIONS
from signals_assets.storage.clickhouse import StoreError, StoreSession
from signals_assets.storage.object_store import ObjectStore

if TYPE_CHECKING:
    from collections.abc import Callable

    import dagster as dg

RESEARCH_LOGS = "research_logs/"
STALE_TEMPORARY_SECONDS = 3600
TEAM_COLUMN = "team_id"


def report_prefix(team_id: int) -> str:
    """The start of every report id (and `reports` partition key) of the team: `r<team>-`."""
    return f"r{team_id}-"


def team_signal_ids(db: StoreSession, team_id: int) -> set[str]:
    """Every signal id the store holds for the team, accepted or rejected."""
    rows = db.query(
        "SELECT signal_id FROM signals WHERE team_id = {team} "
        "UNION DISTINCT SELECT signal_id FROM rejected_signals WHERE team_id = {team}",
        {"team": team_id},
    )
    return {r["signal_id"] for r in rows}


def team_tables(db: StoreSession) -> list[str]:
    """Every table of the database that holds rows (not views), found in the catalogue so that a new
    table is covered; StoreError when one has no `team_id` column (a team's rows cannot be told apart)."""
    tables = db.query(
        "SELECT t.name AS name, countIf(c.name = {column}) > 0 AS has_team "
        "FROM system.tables AS t LEFT JOIN system.columns AS c ON c.database = t.database AND c.table = t.name "
        "WHERE t.database = currentDatabase() AND t.engine NOT IN ('View', 'MaterializedView') "
        "GROUP BY t.name ORDER BY t.name",
        {"column": TEAM_COLUMN},
    )
    unsplittable = [t["name"] for t in tables if not int(t["has_team"])]
    if unsplittable:
        raise StoreError(
            f"cleanup: table(s) {', '.join(unsplittable)} have no {TEAM_COLUMN} column, so a team's rows "
            "cannot be told apart; nothing was deleted"
        )
    return [t["name"] for t in tables]


def delete_team_rows(db: StoreSession, team_id: int, tables: list[str]) -> dict[str, int]:
    """Delete the team's rows from `tables` (`team_tables`); the number deleted per table. Mutations
    run synchronously: no query sees the rows once this returns. The parts they rewrote stay on disk,
    inactive, until ClickHouse's background clean-up removes them (`old_parts_lifetime`, 8 minutes by
    default, in a process holding the store)."""
    deleted = {}
    for name in tables:
        count = int(db.scalar(f"SELECT count() FROM {name} WHERE {TEAM_COLUMN} = {{team}}", {"team": team_id}))
        if count:
            db.command(
                f"ALTER TABLE {name} DELETE WHERE {TEAM_COLUMN} = {{team}} SETTINGS mutations_sync = 1",
                {"team": team_id},
            )
        deleted[name] = count
    return deleted


def _is_team_signal(name: str, body: Callable[[], bytes], team_id: int, signal_ids: set[str]) -> bool:
    """Whether a signal object (by its name relative to `inbox/`, and its body, read only when the name
    does not decide) is the team's: one in a team's inbox folder is that team's, whatever its body names
    (so is its rejected row); one from before the folders by its id or body, and a body that is not a
    JSON object belongs to no team."""
    folder = folder_team(name)
    if folder is not None:
        return folder == team_id
    if object_signal_id(name) in signal_ids:
        return True
    try:
        record = json.loads(body())
    except (ValueError, RecursionError):  # not JSON, or nested past the recursion limit
        return False
    return isinstance(record, dict) and record.get("team_id") == team_id


def _object_body(store: ObjectStore, key: str, max_bytes: int) -> bytes:
    """The start of a listed object's body; none for one gone since the listing or that is no object
    (a symlink or FIFO dropped into a local folder): another team's must not stop this team's cleanup."""
    try:
        return store.get(key, max_bytes)
    except KeyError:
        return b""


def _clean_raw_batch(store: ObjectStore, batch: str, team_id: int, signal_ids: set[str]) -> set[str]:
    """Rewrite the batch's raw file without the team's signals; the object names removed."""
    key = inbox.raw_batch_key(batch)
    if not store.exists(key):
        return set()
    kept, removed = io.BytesIO(), set()
    for line, entry in inbox.raw_entries(store.get(key)):
        if _is_team_signal(entry["object"], lambda entry=entry: inbox.raw_entry_body(entry), team_id, signal_ids):
            removed.add(entry["object"])
        else:
            kept.write(line.rstrip(b"\n") + b"\n")
    if removed:
        store.put(key, kept.getvalue())
    return removed


def _clean_manifest(store: ObjectStore, batch: str, names: set[str], signal_ids: set[str]) -> None:
    key = inbox.manifest_key(batch)
    if not store.exists(key):
        return
    manifest = json.loads(store.get(key))
    objects = manifest.get("objects", [])
    kept = [n for n in objects if n not in names and object_signal_id(n) not in signal_ids]
    if len(kept) != len(objects):
        store.put(key, json.dumps({**manifest, "objects": kept}, indent=1).encode())


def delete_team_objects(
    store: ObjectStore, team_id: int, signal_ids: set[str], max_bytes: int, keep_config: bool = False
) -> dict[str, int]:
    """Delete the team's objects (inbox and claimed signals, its lines of raw batch files and manifests,
    promotions, research logs, daily report quota ledgers, temp files killed writers left and, unless
    `keep_config`, its config); the number per kind."""
    counts = {
        "inbox": 0,
        "claimed": 0,
        "batch_signals": 0,
        "promotions": 0,
        "research_logs": 0,
        "report_quota": 0,
        "team_config": 0,
        "temporaries": 0,
    }

    def body(key: str) -> Callable[[], bytes]:
        return lambda: _object_body(store, key, max_bytes)

    for key in store.list(inbox.INBOX):
        if _is_team_signal(key[len(inbox.INBOX) :], body(key), team_id, signal_ids):
            store.delete(key)
            counts["inbox"] += 1
    claimed_by_batch: dict[str, set[str]] = {}
    for key in store.list(inbox.CLAIMED):
        batch, _, name = key[len(inbox.CLAIMED) :].partition("/")
        if _is_team_signal(name, body(key), team_id, signal_ids):
            store.delete(key)
            claimed_by_batch.setdefault(batch, set()).add(name)
            counts["claimed"] += 1
    for progress in inbox.batch_progress(store):
        removed = _clean_raw_batch(store, progress.batch, team_id, signal_ids)
        counts["batch_signals"] += len(removed)
        _clean_manifest(store, progress.batch, removed | claimed_by_batch.get(progress.batch, set()), signal_ids)
    for prefix, kind in ((PROMOTIONS, "promotions"), (RESEARCH_LOGS, "research_logs")):
        for key in store.list(prefix + report_prefix(team_id)):
            store.delete(key)
            counts[kind] += 1
    for key in store.list(quotas.team_ledgers_prefix(team_id)):
        store.delete(key)
        counts["report_quota"] += 1
    # A writer killed mid-put leaves its temp file: any in the team's inbox folder is the team's text; one
    # elsewhere (a raw batch file, a manifest) is cut off for certain once older than any write takes.
    counts["temporaries"] = store.remove_temporaries(f"{inbox.INBOX}{team_id}/") + store.remove_temporaries(
        "", STALE_TEMPORARY_SECONDS
    )
    if not keep_config and store.exists(team_key(team_id)):
        store.delete(team_key(team_id))
        counts["team_config"] = 1
    return counts


def runs_in_flight(instance: dg.DagsterInstance) -> list[str]:
    """Ids of the runs queued or running: a cleanup waits for none of them and could race them."""
    import dagster as dg

    status = dg.DagsterRunStatus
    in_flight = [status.QUEUED, status.NOT_STARTED, status.STARTING, status.STARTED, status.CANCELING]
    return [run.run_id for run in instance.get_runs(filters=dg.RunsFilter(statuses=in_flight))]


def delete_team_partitions(instance: dg.DagsterInstance, team_id: int) -> dict[str, int]:
    """Delete the team's report runs with their event logs (so the materialisations of the team's
    report partitions go with them: Dagster's open-source storages cannot wipe single partitions),
    then the team's `reports` partitions. A report run is the team's by its team tag or its partition."""
    import dagster as dg

    from signals_assets.jobs import TEAM_TAG
    from signals_assets.partitions import reports

    partition_set = reports.name or "reports"  # always named; the attribute is typed optional
    keys = [k for k in instance.get_dynamic_partitions(partition_set) if k.startswith(report_prefix(team_id))]
    runs = set(instance.get_run_ids(filters=dg.RunsFilter(tags={TEAM_TAG: str(team_id)})))
    for key in keys:
        runs.update(instance.get_run_ids(filters=dg.RunsFilter(tags={"dagster/partition": key})))
    for run_id in sorted(runs):
        instance.delete_run(run_id)
    for key in keys:
        instance.delete_dynamic_partition(partition_set, key)
    return {"report_partitions": len(keys), "runs": len(runs)}
