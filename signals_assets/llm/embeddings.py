"""Embeddings from an OpenAI-compatible `/embeddings` endpoint, through the client's retrying transport.

`numpy` is imported inside functions: importing this module must stay cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

from signals_assets.llm.client import ProviderError, Transport

if TYPE_CHECKING:
    import numpy

# HTTP statuses of a request refused for what it holds (OpenAI: 400 for an input past the model's limit).
REFUSED_FOR_CONTENT = frozenset({400, 413, 422})
MIN_CUT_CHARS = 256  # a text refused alone is cut in halves down to this


class OpenAIEmbedder:
    """Embeddings from an OpenAI-compatible `/embeddings` endpoint, as an L2-normalised float32 matrix."""

    def __init__(
        self,
        base_url: str | None,
        api_key: str,
        model: str = "text-embedding-3-small",
        batch_size: int = 128,
        timeout_seconds: float = 30,
        max_retries: int = 3,
        backoff_seconds: float = 0.5,
        max_wait_seconds: float = 30,
        dimensions: int | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        self.model = model
        self.batch_size = batch_size
        self.dimensions = dimensions
        self._transport = Transport(base_url, api_key, timeout_seconds, max_retries, backoff_seconds, max_wait_seconds)

    @property
    def model_name(self) -> str:
        return self.model

    def embed(self, texts: Sequence[str]) -> numpy.ndarray:
        import numpy as np

        texts = list(texts)
        for number, text in enumerate(texts):
            if not isinstance(text, str) or not text.strip():
                raise ValueError(f"text {number} is empty or not a string: embedding servers reject it")
        # "float" rather than the client's default base64: not every compatible server speaks base64.
        options: dict[str, Any] = {"encoding_format": "float"}
        if self.dimensions is not None:
            options["dimensions"] = self.dimensions
        rows: list[list[float]] = []
        for start in range(0, len(texts), self.batch_size):
            rows += self._embed_batch(texts[start : start + self.batch_size], options)
        if not rows:
            return np.zeros((0, self.dimensions or 0), dtype=np.float32)
        dimension = self.dimensions or len(rows[0])
        lengths = sorted({len(row) for row in rows})
        if lengths != [dimension] or dimension == 0:
            raise ProviderError("embeddings", f"vectors have {lengths} dimensions, expected {dimension}")
        matrix = np.asarray(rows, dtype=np.float32)
        norms = np.linalg.norm(matrix, axis=1, keepdims=True)
        if not np.all(np.isfinite(norms)) or np.any(norms == 0):
            raise ProviderError("embeddings", "the server returned a zero or non-finite vector")
        return matrix / norms

    def _embed_batch(self, batch: list[str], options: dict[str, Any]) -> list[list[float]]:
        """The vectors of `batch`. A request the server refuses for what it holds (a text past the model's
        input limit: OpenAI answers 400) is split in halves until each text is alone, and a text refused
        alone is embedded by its first half, then its first quarter…, down to MIN_CUT_CHARS: one long
        signal must not fail its whole batch, and the input limit depends on the model behind the server."""
        try:
            return self._request(batch, options)
        except ProviderError as error:
            if error.status not in REFUSED_FOR_CONTENT or (len(batch) == 1 and len(batch[0]) <= MIN_CUT_CHARS):
                raise
        if len(batch) > 1:
            middle = len(batch) // 2
            return self._embed_batch(batch[:middle], options) + self._embed_batch(batch[middle:], options)
        return self._embed_batch([batch[0][: max(MIN_CUT_CHARS, len(batch[0]) // 2)]], options)

    def _request(self, batch: list[str], options: dict[str, Any]) -> list[list[float]]:
        response = self._transport.call(
            "embeddings",
            lambda client: client.embeddings.create(model=self.model, input=batch, **options),
        )
        data = response.data if isinstance(response.data, list) else []  # the client does not validate it
        malformed = next((item for item in data if not _is_indexed_vector(item)), None)
        if malformed is not None:
            raise ProviderError(
                "embeddings", f"an item of the answer is not an index and a list of numbers: {malformed!r:.200}"
            )
        indices = sorted(item.index for item in data)
        if indices != list(range(len(batch))):
            raise ProviderError(
                "embeddings", f"asked for {len(batch)} vectors, got {len(indices)} with indices {indices[:5]}…"
            )
        return [item.embedding for item in sorted(data, key=lambda item: item.index)]


def _is_indexed_vector(item: Any) -> bool:
    vector = getattr(item, "embedding", None)
    return (
        type(getattr(item, "index", None)) is int
        and isinstance(vector, list)
        and all(type(value) in (int, float) for value in vector)
    )
