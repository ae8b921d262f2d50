"""An HTTP server on 127.0.0.1 standing in for a cloud storage API (S3, Google Cloud Storage, Azure): it answers as
the real service does — its status codes and XML or JSON bodies —, for the answers a local server (moto) does not give
as the service does."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@contextlib.contextmanager
def stand_in(answer: Callable[[str, str], tuple[int, dict[str, str], bytes]]) -> Iterator[str]:
    """An HTTP server on 127.0.0.1 standing in for a cloud storage API, reached by pyarrow's own client: each request
    (method, path) is answered ``answer``'s (status, headers, body); yields its ``host:port``."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # quiet
            pass

        def _answer(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))  # a POST's body, unread else
            code, headers, body = answer(self.command, self.path)
            self.send_response(code)
            for k, v in {**headers, "Content-Length": str(len(body))}.items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_HEAD = do_POST = _answer  # http.server calls them by these names

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
