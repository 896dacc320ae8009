"""The stable public import path for emitting signals: `from signals_assets.facade import emit_signal`.

Only re-exports (the code lives in `signals_assets/ingestion/emit.py`); importing it stays as cheap
as importing that module: no Dagster, database or cloud client.
"""

from signals_assets.ingestion.emit import EmitResult, emit_signal, emit_signal_result
from signals_assets.ingestion.validation import SignalValidationError

__all__ = ["EmitResult", "SignalValidationError", "emit_signal", "emit_signal_result"]
