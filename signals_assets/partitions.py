"""The two dynamic partition sets (their names and key formats: partition_keys.py), and how a run
that covers many of them attaches each its own metadata."""

import functools
from collections.abc import Mapping

import dagster as dg

from signals_assets.partition_keys import REPORTS, SIGNAL_BATCHES

signal_batches = dg.DynamicPartitionsDefinition(name=SIGNAL_BATCHES)
reports = dg.DynamicPartitionsDefinition(name=REPORTS)


def add_partition_metadata(context: dg.AssetExecutionContext, by_partition: Mapping[str, Mapping]) -> None:
    """Each partition of the run gets its own metadata ({partition key: metadata}) on its own
    materialisation. Dagster checks every key against the run's range by reading the whole partition
    set again (a table check and two queries per key: 0.15 s per key in a set of 50,000, so a run's
    metadata cost its keys times the set). The set is read once for all of them here: the run's own
    keys stay in it while the run lasts (retirement leaves the partitions of running runs alone)."""
    instance = context.instance
    instance.get_dynamic_partitions = functools.cache(instance.get_dynamic_partitions)
    instance.has_dynamic_partition = functools.cache(instance.has_dynamic_partition)
    try:
        for key, metadata in by_partition.items():
            context.add_asset_metadata(metadata, partition_key=key)
    finally:
        del instance.get_dynamic_partitions, instance.has_dynamic_partition


def has_materialisation(instance: dg.DagsterInstance, asset_key: dg.AssetKey, partition: str) -> bool:
    """Whether Dagster holds any materialisation of `asset_key`'s `partition`."""
    records = dg.AssetRecordsFilter(asset_key=asset_key, asset_partitions=[partition])
    return bool(instance.fetch_materializations(records, limit=1).records)
