from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import dagster as dg

if TYPE_CHECKING:
    import numpy

    from signals_assets.llm.embeddings import Embedded, OpenAIEmbedder


class EmbedderResource(dg.ConfigurableResource):
    """Sentence embeddings: `minilm` runs all-MiniLM-L6-v2 locally (no network, no torch);
    `openai` calls an OpenAI-compatible embeddings endpoint (`model`, `base_url`)."""

    provider: str = "minilm"
    model: str = ""  # openai only; minilm has one model
    base_url: str = ""
    api_key: str = ""
    batch_size: int = 64

    @property
    def model_name(self) -> str:
        if self.provider == "openai":
            return self.model or "text-embedding-3-small"
        from signals_assets.llm.minilm import MODEL_NAME

        return MODEL_NAME

    @property
    def dimension(self) -> int | None:
        """The length of the model's vectors when known before any is stored (not for openai models)."""
        if self.provider == "openai":
            return None
        from signals_assets.llm.minilm import DIMENSION

        return DIMENSION

    def preload(self) -> None:
        """Start loading the local model in the background (a second or so: its ONNX graph is built from
        the weights), so a step with other work first finds it loaded when it embeds; no-op for openai."""
        if self.provider == "minilm":
            from signals_assets.llm.minilm import preload_encoder

            preload_encoder()

    def embed(self, texts: Sequence[str]) -> numpy.ndarray:
        """L2-normalised float32 matrix, one row per text."""
        if self.provider == "openai":
            return self._openai().embed(list(texts))
        from signals_assets.llm.minilm import load_encoder

        encoder = load_encoder()
        encoder.batch_size = self.batch_size
        return encoder.encode(list(texts))

    def embed_isolating_refused(self, texts: Sequence[str]) -> Embedded:
        """As `embed`, with the texts an embedding server refuses for what they hold set apart with the
        reason (`OpenAIEmbedder.embed_isolating_refused` says when); the local model refuses none."""
        if self.provider == "openai":
            return self._openai().embed_isolating_refused(list(texts))
        from signals_assets.llm.embeddings import Embedded

        return Embedded(self.embed(texts))

    def _openai(self) -> OpenAIEmbedder:
        from signals_assets.llm.embeddings import OpenAIEmbedder

        # as set when read through EnvVar (a URL with a password); the settings strip it
        return OpenAIEmbedder(self.base_url.strip() or None, self.api_key, self.model_name)
