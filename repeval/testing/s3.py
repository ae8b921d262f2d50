"""An S3 bucket for tests: a moto server on 127.0.0.1 (``moto[server]``'s ThreadedMotoServer, or a process of its own)
reached through pyarrow's S3FileSystem with ``?endpoint_override=127.0.0.1:PORT&scheme=http`` and credentials from the
environment."""

from __future__ import annotations

import contextlib
import logging
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
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
def _threaded_server() -> Iterator[int]:
    """moto in this process, on a free port (yielded): its buckets and its switches (``enable_iam_authentication``) are
    this process' own."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield port
    finally:
        server.stop()


#: ``python -m moto.server ARGS`` that ends when its parent does (a test session killed with SIGKILL left it running)
_SERVE = """import os, sys, threading, time
from moto.server import main
parent = os.getppid()
def orphaned():
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(0)
threading.Thread(target=orphaned, daemon=True).start()
main(sys.argv[1:])
"""


@contextlib.contextmanager
def _server_process(timeout: float = 120) -> Iterator[int]:
    """moto in a process of its own (``python -m moto.server``, ending with this one) on the port the system gives it
    (yielded: no other process can take it between its choice and the server's start), up once it says so; stopped at
    the end."""
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(
            [sys.executable, "-c", _SERVE, "-H", "127.0.0.1", "-p", "0"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + timeout
            while True:
                log.seek(0)
                said = log.read().decode(errors="replace")
                up = re.search(r"Running on http://127\.0\.0\.1:(\d+)", said)
                if up:
                    break
                if proc.poll() is not None or time.monotonic() > deadline:
                    how = f"exited with {proc.returncode}" if proc.poll() is not None else f"not up in {timeout:.0f} s"
                    raise RuntimeError(f"the moto server (python -m moto.server) {how}:\n{said[-2000:]}")
                time.sleep(0.1)
            yield int(up.group(1))
        finally:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def moto_s3(bucket: str = "repeval", own_process: bool = False) -> Iterator[dict[str, Any]]:
    """A moto S3 server on 127.0.0.1 with the bucket ``bucket``: yields the URI query (``s3://bucket/key`` + it) and a
    filesystem over it; the credentials are in the environment until it stops.

    ``own_process``: the server runs in a process of its own and the credentials are left out of this process'
    environment (the filesystem is given them; a process a test starts must be), for a server that runs beside tests
    running meanwhile: moto's state is per process — a test's ``enable_iam_authentication`` denied every request
    to an in-process server, its buckets were the other servers' of this process — and those tests change the
    environment."""
    saved = {} if own_process else {k: os.environ.get(k) for k in CREDENTIALS}
    with _server_process() if own_process else _threaded_server() as port:
        os.environ.update({} if own_process else CREDENTIALS)
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
            for k, v in saved.items():  # only these: the environment's other changes meanwhile are not undone
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v


def bucket_files(fs: pafs.FileSystem, prefix: str) -> dict[str, int]:
    """The files under ``prefix`` in ``fs`` (recursively): their paths below it and sizes."""
    sel = pafs.FileSelector(prefix, recursive=True, allow_not_found=True)
    return {i.path[len(prefix) + 1 :]: i.size for i in fs.get_file_info(sel) if i.type == pafs.FileType.File}


def denied_user(
    s3: dict[str, Any], *denied: str, may_list: bool = True, action: str = "s3:GetObject"
) -> dict[str, str]:
    """The credentials of a new IAM user of the moto server that may do anything in S3 but read the keys ``denied``
    (patterns of the bucket ``repeval``; ``action``: but that on them) — nor list the bucket unless ``may_list`` —, as
    the environment gives them."""
    import json

    import boto3

    port = re.search(r"127\.0\.0\.1:(\d+)", s3["query"]).group(1)  # type: ignore[union-attr]
    iam = boto3.client("iam", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1")
    name = f"u{len(iam.list_users()['Users'])}"
    iam.create_user(UserName=name)
    statements: list[dict[str, Any]] = [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]
    if denied:
        statements.append(
            {"Effect": "Deny", "Action": action, "Resource": [f"arn:aws:s3:::repeval/{d}" for d in denied]}
        )
    if not may_list:  # (moto does not read an IAM condition's s3:prefix: the whole bucket)
        statements.append({"Effect": "Deny", "Action": "s3:ListBucket", "Resource": "arn:aws:s3:::repeval"})
    policy = {"Version": "2012-10-17", "Statement": statements}
    iam.put_user_policy(UserName=name, PolicyName="p", PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return {"AWS_ACCESS_KEY_ID": key["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"]}
