"""An S3 bucket for tests: a moto server on 127.0.0.1 (``moto[server]``'s ThreadedMotoServer) reached through
pyarrow's S3FileSystem with ``?endpoint_override=127.0.0.1:PORT&scheme=http`` and credentials from the environment."""

from __future__ import annotations

import contextlib
import logging
import os
import socket
from collections.abc import Iterator
from typing import Any

import pyarrow.fs as pafs

#: the credentials the moto server takes (any), set in the environment while it runs
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def moto_s3(bucket: str = "repeval", environ: bool = True) -> Iterator[dict[str, Any]]:
    """A moto S3 server on 127.0.0.1 with the bucket ``bucket``: yields the URI query (``s3://bucket/key`` + it) and a
    filesystem over it; the credentials are in the environment until it stops (``environ=False``: left out of it, for
    a server started beside tests that run meanwhile — the filesystem is given them, a process it starts must be)."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    saved = {k: os.environ.get(k) for k in CREDENTIALS} if environ else {}
    os.environ.update(CREDENTIALS if environ else {})
    try:
        fs = pafs.S3FileSystem(
            endpoint_override=f"127.0.0.1:{port}",
            scheme="http",
            region="us-east-1",
            allow_bucket_creation=True,
            access_key=CREDENTIALS["AWS_ACCESS_KEY_ID"],
            secret_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        )
        fs.create_dir(bucket)
        yield {"query": f"?endpoint_override=127.0.0.1:{port}&scheme=http&region=us-east-1", "fs": fs}
    finally:
        server.stop()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
