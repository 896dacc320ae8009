from typing import Sequence

import dagster as dg


class EmbedderResource(dg.ConfigurableResource):
    """Sentence embeddings; the default runs all-MiniLM-L6-v2 locally (no network, no torch)."""

    provider: str = "minilm"
    batch_size: int = 64

    @property
    def model_name(self) -> str:
        from signals_assets.minilm import MODEL_NAME

        return MODEL_NAME

    def embed(self, texts: Sequence[str]):
        """L2-normalised float32 matrix, one row per text."""
        from signals_assets.minilm import load_encoder

        encoder = load_encoder()
        encoder.batch_size = self.batch_size
        return encoder.encode(list(texts))
