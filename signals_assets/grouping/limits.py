"""The grouping's size limits, apart from its code: the settings import them for their defaults, and
the settings are imported by every emitting client, which should not load the consolidation for one
number."""

# Newest pooled signals re-clustered per batch and team (memory: about 8 bytes × its square); the
# default of the setting SIGNALS_CONSOLIDATION_POOL.
POOL_LIMIT = 6000
