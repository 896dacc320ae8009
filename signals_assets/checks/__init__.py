"""The pipeline's guarantees as queries over the store and the object store (reported by the asset
checks of signals_assets/assets/checks.py)."""
