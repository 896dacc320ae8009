"""The two dynamic partition sets (their names and key formats: partition_keys.py)."""

import dagster as dg

from signals_assets.partition_keys import REPORTS, SIGNAL_BATCHES

signal_batches = dg.DynamicPartitionsDefinition(name=SIGNAL_BATCHES)
reports = dg.DynamicPartitionsDefinition(name=REPORTS)
