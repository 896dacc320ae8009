"""A scripted local server speaking enough of the OpenAI REST protocol for the official `openai` client.

`POST /v1/chat/completions` and `POST /v1/embeddings` answer from a per-endpoint queue of `Reply`
objects (content, raw status/body/headers, delay, headers or a body trickled byte by byte); once a queue is empty, chat answers come from the
test's `chat_default(request_body)` and embeddings from a hash of each text, unless the server's
`refuse_embedding(text)` answers a refusal for one of the request's texts. Every request is recorded
before it is answered, so tests can assert on prompts and retries.
"""

from __future__ import annotations

import base64
import collections
import hashlib
import json
import re
import struct
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

CHAT = "/v1/chat/completions"
EMBEDDINGS = "/v1/embeddings"


@dataclass
class Reply:
    """One scripted answer. `body` (dict → JSON, str or bytes → as is) replaces the normal payload."""

    content: str | None = None
    embeddings: list[list[float]] | None = None
    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    finish_reason: str = "stop"
    trickle: float = 0.0  # seconds between the body's bytes: a server that sends slowly
    trickle_headers: float = 0.0  # seconds between the bytes of the status line and headers


def answer(payload: dict, **options) -> Reply:
    """A chat answer whose content is `payload` as JSON."""
    return Reply(content=json.dumps(payload), **options)


def error(status: int, message: str = "scripted error", headers: dict[str, str] | None = None) -> Reply:
    kind = {401: "invalid_request_error", 429: "rate_limit_exceeded"}.get(status, "server_error")
    return Reply(
        status=status,
        headers=headers or {},
        body={"error": {"message": message, "type": kind, "param": None, "code": None}},
    )


def content_filtered() -> Reply:
    """Azure OpenAI's answer to a request its content filter refuses: HTTP 400 with code `content_filter`."""
    return Reply(
        status=400,
        body={
            "error": {
                "message": "The response was filtered due to the prompt triggering content management policy.",
                "type": None,
                "param": "prompt",
                "code": "content_filter",
                "status": 400,
            }
        },
    )


def past_input_limit(max_chars: int) -> Callable[[str], Reply | None]:
    """A `refuse_embedding` that refuses a text longer than `max_chars`, as past a model's input limit."""
    return lambda text: (
        error(400, f"This model's maximum context length is {max_chars} tokens") if len(text) > max_chars else None
    )


def hash_embedding(text: str, dimension: int) -> list[float]:
    """Deterministic, not normalised: values in [-1, 1] from repeated SHA-256 of the text."""
    digest = b""
    while len(digest) < dimension:
        digest += hashlib.sha256(digest + text.encode()).digest()
    return [byte / 127.5 - 1.0 for byte in digest[:dimension]]


def fenced_blocks(prompt: str) -> dict[str, str]:
    """label → text of every block fenced with the prompt's own code."""
    found = re.search(r"Only markers carrying the code ([0-9a-f]{16})", prompt)
    if found is None:
        return {}
    pattern = rf"\[BEGIN DATA {found.group(1)}: ([^\]]+)\]\n(.*?)\n\[END DATA {found.group(1)}\]"
    return dict(re.findall(pattern, prompt, flags=re.DOTALL))


def merge_groups(body: dict) -> tuple[list[str], list[str]] | None:
    """The two reports' signal texts of a merge-confirmation request, or None for any other request."""
    system = body["messages"][0]["content"]
    if "one problem and should be merged" not in system:
        return None
    blocks = fenced_blocks(system + "\n" + body["messages"][1]["content"])
    texts = {
        name: [text for label, text in blocks.items() if label.startswith(f"group {name} signal ")] for name in "AB"
    }
    return texts["A"], texts["B"]


@dataclass
class RecordedRequest:
    path: str
    headers: dict[str, str]
    body: Any

    @property
    def messages(self) -> list[dict]:
        return self.body["messages"]

    def text(self) -> str:
        """All message contents, joined: what the model was shown."""
        return "\n".join(message["content"] or "" for message in self.messages)


class OpenAIProtocolServer:
    def __init__(
        self,
        chat_default: Callable[[dict], str | dict | Reply] | None = None,
        embedding_dimension: int = 8,
        refuse_embedding: Callable[[str], Reply | None] | None = None,
    ) -> None:
        self.chat_default = chat_default
        self.embedding_dimension = embedding_dimension
        # The reply refusing an embeddings request that holds this text (None: the text is embedded).
        self.refuse_embedding = refuse_embedding
        self._queues: dict[str, collections.deque[Reply]] = {CHAT: collections.deque(), EMBEDDINGS: collections.deque()}
        self._requests: list[RecordedRequest] = []
        self._lock = threading.Lock()
        self._http = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._http.daemon_threads = True
        # A short poll interval keeps shutdown, once per test, fast.
        self._thread = threading.Thread(target=self._http.serve_forever, args=(0.05,), daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._http.server_address[1]}/v1"

    def __enter__(self) -> OpenAIProtocolServer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._http.shutdown()
        self._http.server_close()
        self._thread.join()

    def script_chat(self, *replies: Reply) -> None:
        with self._lock:
            self._queues[CHAT].extend(replies)

    def script_embeddings(self, *replies: Reply) -> None:
        with self._lock:
            self._queues[EMBEDDINGS].extend(replies)

    def requests(self, path: str = CHAT) -> list[RecordedRequest]:
        with self._lock:
            return [request for request in self._requests if request.path == path]

    def _next_reply(self, path: str, headers: dict[str, str], body: dict) -> Reply:
        with self._lock:
            self._requests.append(RecordedRequest(path, headers, body))
            queue = self._queues.get(path)
            scripted = queue.popleft() if queue else None
        if scripted is not None:
            return scripted
        if path == EMBEDDINGS:
            inputs = [body["input"]] if isinstance(body["input"], str) else body["input"]
            refusals = (self.refuse_embedding(text) for text in inputs) if self.refuse_embedding else iter(())
            return next((refusal for refusal in refusals if refusal is not None), Reply())
        if path == CHAT and self.chat_default is not None:
            result = self.chat_default(body)
            if isinstance(result, Reply):
                return result
            return Reply(content=result if isinstance(result, str) else json.dumps(result))
        if path == CHAT:
            return error(418, "no scripted chat reply and no chat_default")
        return error(404, f"unknown path {path}")

    def _payload(self, path: str, body: dict, reply: Reply) -> Any:
        if reply.body is not None:
            return reply.body
        common = {"model": body.get("model", "scripted"), "created": int(time.time())}
        if path == CHAT:
            prompt_tokens = sum(len(str(message.get("content", "")).split()) for message in body["messages"])
            completion_tokens = len((reply.content or "").split())
            return {
                "id": f"chatcmpl-{time.monotonic_ns()}",
                "object": "chat.completion",
                **common,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": reply.content, "refusal": None},
                        "finish_reason": reply.finish_reason,
                        "logprobs": None,
                    }
                ],
                "usage": {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": completion_tokens,
                    "total_tokens": prompt_tokens + completion_tokens,
                },
            }
        texts = [body["input"]] if isinstance(body["input"], str) else list(body["input"])
        vectors = reply.embeddings or [
            hash_embedding(text, body.get("dimensions") or self.embedding_dimension) for text in texts
        ]
        if body.get("encoding_format") == "base64":
            vectors = [base64.b64encode(struct.pack(f"<{len(v)}f", *v)).decode() for v in vectors]
        tokens = sum(len(str(text).split()) for text in texts)
        return {
            "object": "list",
            **common,
            "data": [
                {"object": "embedding", "index": index, "embedding": vector} for index, vector in enumerate(vectors)
            ],
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                body = json.loads(raw) if raw else {}
                reply = server._next_reply(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                time.sleep(reply.delay)
                payload = server._payload(self.path, body, reply)
                if isinstance(payload, bytes):
                    data = payload
                else:
                    data = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
                headers = {"Content-Type": "application/json", "Content-Length": str(len(data)), **reply.headers}
                head = f"HTTP/1.1 {reply.status} {self.responses.get(reply.status, ('Scripted',))[0]}\r\n"
                head += "".join(f"{name}: {value}\r\n" for name, value in headers.items()) + "\r\n"
                try:
                    self._send(head.encode(), reply.trickle_headers)
                    self._send(data, reply.trickle)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client timed out and left

            def _send(self, data: bytes, pause: float) -> None:
                """`data`, byte by byte `pause` seconds apart when `pause` is set."""
                if not pause:
                    self.wfile.write(data)
                    return
                for byte in data:
                    self.wfile.write(bytes([byte]))
                    time.sleep(pause)

            def log_message(self, format: str, *args) -> None:
                pass

        return Handler
