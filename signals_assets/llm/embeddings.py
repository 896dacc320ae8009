"""Embeddings from an OpenAI-compatible `/embeddings` endpoint, through the client's retrying transport.

`numpy` is imported inside functions: importing this module must stay cheap.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Sequence, TypeVar

from signals_assets.llm.client import REFUSED_FOR_CONTENT, ContentFiltered, ProviderError, Transport, cut_text

if TYPE_CHECKING:
    import numpy

MIN_CUT_CHARS = 256  # a text refused alone is cut in halves down to this
# Sent when the server has refused a text alone and embedded nothing yet in the call: whether it embeds
# anything at all tells a refusal of that text from a server that refuses every text.
CONTROL_TEXT = "The checkout page is slow."
MAX_REFUSAL_CHARS = 1000  # of the server's answer kept as the reason a text was set apart
Item = TypeVar("Item")


@dataclass(frozen=True)
class Embedded:
    """What `embed_isolating_refused` made of its texts: the vectors of those the server embedded, in
    order, and why it refused each other one (by the text's index)."""

    vectors: numpy.ndarray
    refused: dict[int, str] = field(default_factory=dict)

    def kept(self, items: Sequence[Item]) -> list[Item]:
        """Those of `items` (one per text, in order) whose text was embedded: one per row of `vectors`."""
        return [item for number, item in enumerate(items) if number not in self.refused]


@dataclass
class _Call:
    options: dict[str, Any]
    isolate_refused: bool
    server_embeds: bool = False  # the server embedded some text during this call


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
        """One row per text; a text the server refuses fails the call."""
        return self._embed(texts, isolate_refused=False).vectors

    def embed_isolating_refused(self, texts: Sequence[str]) -> Embedded:
        """As `embed`, except that a text the server refuses for what it holds (a content filter; a text
        past the model's limit even cut to MIN_CUT_CHARS) is set apart with the reason, when the refusal
        is the text's own: only once the server has embedded some other text in the call, one of `texts`
        or else CONTROL_TEXT, sent to ask. A server that refuses every text (a wrong model name, a broken
        proxy answering 400 to everything) still fails the call: setting all its texts apart would lose
        them. Transient failures (timeouts, 408, 429, 5xx) are retried and fail the call, never set apart."""
        return self._embed(texts, isolate_refused=True)

    def _embed(self, texts: Sequence[str], isolate_refused: bool) -> Embedded:
        import numpy as np

        texts = list(texts)
        for number, text in enumerate(texts):
            if not isinstance(text, str) or not text.strip():
                raise ValueError(f"text {number} is empty or not a string: embedding servers reject it")
        # "float" rather than the client's default base64: not every compatible server speaks base64.
        options: dict[str, Any] = {"encoding_format": "float"}
        if self.dimensions is not None:
            options["dimensions"] = self.dimensions
        call = _Call(options, isolate_refused)
        answers: list[list[float] | ProviderError] = []
        for start in range(0, len(texts), self.batch_size):
            answers += self._embed_batch(texts[start : start + self.batch_size], call)
        refused = {
            number: cut_text(
                f"the embedding server refused this text alone, and embedded others: {answer}", MAX_REFUSAL_CHARS
            )
            for number, answer in enumerate(answers)
            if isinstance(answer, ProviderError)
        }
        rows = [answer for answer in answers if not isinstance(answer, ProviderError)]
        if not rows:
            return Embedded(np.zeros((0, self.dimensions or 0), dtype=np.float32), refused)
        dimension = self.dimensions or len(rows[0])
        lengths = sorted({len(row) for row in rows})
        if lengths != [dimension] or dimension == 0:
            raise ProviderError("embeddings", f"vectors have {lengths} dimensions, expected {dimension}")
        matrix = np.asarray(rows, dtype=np.float32)
        norms = np.linalg.norm(matrix, axis=1, keepdims=True)
        if not np.all(np.isfinite(norms)) or np.any(norms == 0):
            raise ProviderError("embeddings", "the server returned a zero or non-finite vector")
        return Embedded(matrix / norms, refused)

    def _embed_batch(self, batch: list[str], call: _Call) -> list[list[float] | ProviderError]:
        """The vector of each text of `batch`, or the refusal of a text set apart (see
        `embed_isolating_refused`). A request the server refuses for what it holds is split in halves
        until each text is alone, and a text refused alone as past the model's input limit (OpenAI
        answers 400) is embedded by its first half, then its first quarter…, down to MIN_CUT_CHARS: one
        long signal must not fail its whole batch, and the input limit depends on the model behind the
        server. A content filter's refusal is not cut: the filter refused what the text says."""
        try:
            vectors = self._request(batch, call.options)
        except ProviderError as error:
            if error.status not in REFUSED_FOR_CONTENT:
                raise
            refusal = error
        else:
            call.server_embeds = True
            return [*vectors]
        if len(batch) > 1:
            middle = len(batch) // 2
            return self._embed_batch(batch[:middle], call) + self._embed_batch(batch[middle:], call)
        if not isinstance(refusal, ContentFiltered) and len(batch[0]) > MIN_CUT_CHARS:
            return self._embed_batch([batch[0][: max(MIN_CUT_CHARS, len(batch[0]) // 2)]], call)
        if not call.isolate_refused:
            raise refusal
        if not call.server_embeds:
            try:
                self._request([CONTROL_TEXT], call.options)
            except ProviderError as error:
                if error.status not in REFUSED_FOR_CONTENT:  # a transient failure: the call fails as it is
                    raise
                raise ProviderError(
                    "embeddings",
                    f"the server refused a text alone ({refusal}) and refused a control text too: the server, not "
                    f"the text, is at fault ({error})",
                ) from error
            call.server_embeds = True
        return [refusal]

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
