"""A response body read whole within the request's timeout and `MAX_RESPONSE_BYTES`.

httpx's timeouts bound each wait for data, not the body: a server that sends a byte now and then, or
sends without end, would hold a request forever (and fill the memory). `bounded_http_client` is the
`openai` client's own httpx client with a response hook that wraps every body in `BoundedBody`.
"""

from __future__ import annotations

import time
from typing import Iterator

import httpx
import openai

MAX_RESPONSE_BYTES = 64 * 2**20  # a chat answer is small; 128 embeddings of 3,072 floats as JSON are about 8 MB


class BoundedBody(httpx.SyncByteStream):
    def __init__(self, response: httpx.Response, seconds: float) -> None:
        assert isinstance(response.stream, httpx.SyncByteStream)  # the client is synchronous
        self._stream = response.stream
        self._request = response.request
        self._seconds = seconds
        self._deadline = time.monotonic() + seconds

    def __iter__(self) -> Iterator[bytes]:
        size = 0
        for chunk in self._stream:
            size += len(chunk)
            if size > MAX_RESPONSE_BYTES:
                raise openai.APIConnectionError(
                    message=f"the response is larger than {MAX_RESPONSE_BYTES} bytes", request=self._request
                )
            if time.monotonic() > self._deadline:
                raise openai.APIConnectionError(
                    message=f"the response body took longer than {self._seconds:g} s", request=self._request
                )
            yield chunk

    def close(self) -> None:
        self._stream.close()


def bounded_http_client(seconds: float) -> httpx.Client:
    def bound(response: httpx.Response) -> None:
        response.stream = BoundedBody(response, seconds)

    return openai.DefaultHttpxClient(event_hooks={"response": [bound]})
