"""A local S3-protocol server for the tests: moto's S3 backend behind werkzeug, over HTTP on a free port.

moto's `ThreadedMotoServer` handles requests on concurrent threads and checks `If-None-Match` before
it writes, so two simultaneous conditional puts can both succeed there, which real S3 never allows.
This server handles one request at a time (HTTP/1.0, one connection per request) so conditional
writes are atomic, as on S3; clients may still call it from many threads. moto takes keys of any
length: this server refuses one over S3's 1,024 bytes with S3's `KeyTooLongError`.
"""

from __future__ import annotations

import logging
import threading
import uuid

ACCESS_KEY = "signals-test-access-key"
SECRET_KEY = "signals-test-secret-key"
REGION = "us-east-1"
S3_MAX_KEY_BYTES = 1024


def refusing_long_keys(app):
    """`app` behind S3's key limit: a request for a key (path-style `/<bucket>/<key>`) over 1,024 bytes
    gets S3's 400 KeyTooLongError."""

    def checked(environ, start_response):
        # WSGI gives the decoded path as latin-1: its bytes are the key's UTF-8 bytes
        key = environ.get("PATH_INFO", "").encode("latin-1").split(b"/", 2)[2:]
        if key and len(key[0]) > S3_MAX_KEY_BYTES:
            environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))  # unread, the client waits to send it
            start_response("400 Bad Request", [("Content-Type", "application/xml")])
            return [
                b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>KeyTooLongError</Code>'
                b"<Message>Your key is too long</Message><MaxSizeAllowed>1024</MaxSizeAllowed>"
                + f"<Size>{len(key[0])}</Size></Error>".encode()
            ]
        return app(environ, start_response)

    return checked


class LocalS3Server:
    def __init__(self) -> None:
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
        from werkzeug.serving import make_server

        app = refusing_long_keys(DomainDispatcherApplication(create_backend_app))
        self._server = make_server("127.0.0.1", 0, app, threaded=False, request_handler=MotoRequestHandler)
        self.endpoint_url = f"http://127.0.0.1:{self._server.server_port}"
        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request
        self._thread = threading.Thread(target=self._server.serve_forever, name="local-s3", daemon=True)

    def __enter__(self) -> "LocalS3Server":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._thread.join()

    def client(self):
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=REGION,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
        )

    def new_bucket(self) -> str:
        name = f"signals-{uuid.uuid4().hex[:16]}"
        self.client().create_bucket(Bucket=name)
        return name

    def environment(self, bucket: str) -> dict[str, str]:
        """The variables that point the project (settings and boto3) at `bucket` on this server."""
        return {
            "SIGNALS_OBJECT_STORE": "s3",
            "SIGNALS_S3_BUCKET": bucket,
            "SIGNALS_S3_ENDPOINT_URL": self.endpoint_url,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_DEFAULT_REGION": REGION,
        }
