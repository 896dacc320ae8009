"""Every request ends within its timeout, headers and body together, and its body within `MAX_RESPONSE_BYTES`.

httpx's timeouts bound each wait for data, not the request: a server that sends a byte now and then, of
its headers or of its body, would hold a request forever, and one that sends without end would fill the
memory. `bounded_http_client` is the `openai` client's own httpx client on a transport that starts a
deadline with each request, gives every connect, write and read of the request only the time left, and
wraps every body in `BoundedBody`. It asks for the body as it is (`Accept-Encoding: identity`) and refuses
an encoded one: httpx decompresses after `BoundedBody` counted, so 1 MB of gzip could become 1 GB. The proxy
variables (`HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY`, `NO_PROXY`) are honoured, each proxy through such a
transport too. A redirect is followed only within the origin (scheme, host and port) it came from: httpx
drops the API key on one to another origin but sends the request body, signal texts, there again.
"""

from __future__ import annotations

import time
from contextvars import ContextVar
from typing import Iterator

import httpcore
import httpx
import openai

MAX_RESPONSE_BYTES = 64 * 2**20  # a chat answer is small; 128 embeddings of 3,072 floats as JSON are about 8 MB

# When this thread's current request must end. Set by the transport before the request's first byte and
# left set: the body is read after the transport returns, and the next request sets its own.
_request_deadline: ContextVar[float | None] = ContextVar("request_deadline", default=None)


def _time_left(timeout: float | None, expired: type[httpcore.TimeoutException]) -> float | None:
    """`timeout`, shortened to the time left before the request's deadline; `expired` once it passed."""
    deadline = _request_deadline.get()
    if deadline is None:
        return timeout
    left = deadline - time.monotonic()
    if left <= 0:
        raise expired("the request took longer than its timeout, headers and body together")
    return left if timeout is None else min(timeout, left)


class _DeadlineStream(httpcore.NetworkStream):
    def __init__(self, stream: httpcore.NetworkStream) -> None:
        self._stream = stream

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._stream.read(max_bytes, _time_left(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, _time_left(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._stream.close()

    def start_tls(self, ssl_context, server_hostname: str | None = None, timeout: float | None = None):
        return _DeadlineStream(
            self._stream.start_tls(ssl_context, server_hostname, _time_left(timeout, httpcore.ConnectTimeout))
        )

    def get_extra_info(self, info: str):
        return self._stream.get_extra_info(info)


class _DeadlineBackend(httpcore.NetworkBackend):
    def __init__(self, backend: httpcore.NetworkBackend) -> None:
        self._backend = backend

    def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address=None, socket_options=None):
        stream = self._backend.connect_tcp(
            host, port, _time_left(timeout, httpcore.ConnectTimeout), local_address, socket_options
        )
        return _DeadlineStream(stream)


class _DeadlineTransport(httpx.HTTPTransport):
    def __init__(self, seconds: float, **options) -> None:
        super().__init__(**options)
        self._seconds = seconds
        # httpx takes no network backend of its own choosing: wrap the one its connection pool was built with.
        pool = self._pool
        pool._network_backend = _DeadlineBackend(pool._network_backend)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        _request_deadline.set(time.monotonic() + self._seconds)
        response = super().handle_request(request)
        encoding = response.headers.get("Content-Encoding", "identity")
        if encoding.strip().lower() != "identity":
            response.close()
            raise openai.APIConnectionError(
                message=f"the response is encoded ({encoding[:50]!r}) though none was asked for: refused, "
                "its decoded size is unknown",
                request=request,
            )
        response.stream = BoundedBody(response.stream, request)
        return response


class BoundedBody(httpx.SyncByteStream):
    def __init__(self, stream: httpx.SyncByteStream | httpx.AsyncByteStream, request: httpx.Request) -> None:
        assert isinstance(stream, httpx.SyncByteStream)  # the client is synchronous
        self._stream = stream
        self._request = request

    def __iter__(self) -> Iterator[bytes]:
        size = 0
        for chunk in self._stream:
            size += len(chunk)
            if size > MAX_RESPONSE_BYTES:
                raise openai.APIConnectionError(
                    message=f"the response is larger than {MAX_RESPONSE_BYTES} bytes", request=self._request
                )
            yield chunk

    def close(self) -> None:
        self._stream.close()


class CrossOriginRedirect(openai.OpenAIError):
    """The server redirected a request to another origin: not followed (a setting to change, not a failure to retry)."""


def _origin(url: httpx.URL) -> str:
    """`scheme://host:port` of `url`, without the user and password it may carry."""
    return f"{url.scheme}://{url.host}:{url.port or {'http': 80, 'https': 443}.get(url.scheme, '')}"


def refuse_cross_origin_redirect(response: httpx.Response) -> None:
    """A response hook: raises CrossOriginRedirect for a redirect to another origin than the request's."""
    if not response.has_redirect_location:
        return
    target = response.request.url.join(response.headers["Location"])
    if _origin(target) != _origin(response.request.url):
        raise CrossOriginRedirect(
            f"HTTP {response.status_code}, a redirect to {_origin(target)}, another origin: not followed, so no "
            "signal text goes to a server that is not configured (set OPENAI_BASE_URL to the server that should answer)"
        )


def bounded_http_client(seconds: float) -> httpx.Client:
    from httpx._utils import get_environment_proxies  # httpx's own reading of the proxy variables

    limits = openai.DEFAULT_CONNECTION_LIMITS
    # httpx reads the proxy variables only for a client without a transport of its own, so they are mounted
    # here: a pattern NO_PROXY names maps to None, the client's own transport.
    proxies = {
        pattern: _DeadlineTransport(seconds, proxy=proxy, limits=limits) if proxy else None
        for pattern, proxy in get_environment_proxies().items()
    }
    return openai.DefaultHttpxClient(
        transport=_DeadlineTransport(seconds, limits=limits),
        mounts=proxies,
        headers={"Accept-Encoding": "identity"},
        event_hooks={"response": [refuse_cross_origin_redirect]},
    )
