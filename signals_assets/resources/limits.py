import dagster as dg

from signals_assets.ingestion.validation import DEFAULT_LIMITS, SignalLimits


class SignalLimitsResource(dg.ConfigurableResource):
    """Size limits of one signal (`SIGNALS_MAX_*`), applied again when a batch is buffered."""

    max_signal_bytes: int = DEFAULT_LIMITS.max_signal_bytes
    max_extra_bytes: int = DEFAULT_LIMITS.max_extra_bytes
    max_extra_depth: int = DEFAULT_LIMITS.max_extra_depth
    max_extra_keys: int = DEFAULT_LIMITS.max_extra_keys

    def limits(self) -> SignalLimits:
        return SignalLimits(self.max_signal_bytes, self.max_extra_bytes, self.max_extra_depth, self.max_extra_keys)
