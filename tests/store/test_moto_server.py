"""The tests' moto S3 server of a process of its own (:func:`repeval.testing.s3.moto_s3` ``own_process``): apart
from the tests' own moto state and environment, and ending with the session that started it."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from typing import Any

import pyarrow.fs as pafs
import pytest

from repeval.testing.s3 import moto_s3


def test_a_moto_server_of_its_own_process_is_not_the_tests_moto(s3: dict[str, Any]) -> None:
    """The S3 end-to-end run started ahead (tests/cluster/test_s3_run.py) runs beside other tests; its moto server
    ran in this process, whose moto state they share: a test's ``enable_iam_authentication`` denied the run's every
    request (the run failed, depending on which tests ran meanwhile) and its bucket was theirs. In a process of its
    own, neither: nor are its credentials put in the environment, which those tests change."""
    from moto.core.authorization import enable_iam_authentication

    env = dict(os.environ)
    with moto_s3(own_process=True) as apart:
        assert dict(os.environ) == env
        with enable_iam_authentication():  # as a test of this module does meanwhile
            with apart["fs"].open_output_stream("repeval/apart/x") as f:
                f.write(b"x")
            assert apart["fs"].get_file_info("repeval/apart/x").size == 1
        assert s3["fs"].get_file_info("repeval/apart/x").type == pafs.FileType.NotFound
    with pytest.raises(OSError):  # stopped with it
        apart["fs"].get_file_info("repeval/apart/x")


def test_a_moto_server_of_its_own_process_ends_with_the_session_that_started_it() -> None:
    """A test session killed with SIGKILL (a CI job's timeout) left the moto server of its own process running for
    ever: it ends with its parent."""
    script = (
        "from repeval.testing.s3 import moto_s3\n"
        "with moto_s3(own_process=True) as bucket:\n"
        "    print(bucket['query'], flush=True)\n"
        "    input()\n"
    )
    session = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert session.stdout is not None
        query = session.stdout.readline()
    finally:
        session.kill()
        session.wait()
    port = int(re.search(r"127\.0\.0\.1:(\d+)", query).group(1))  # type: ignore[union-attr]
    deadline = time.monotonic() + 60
    while _listening(port):
        assert time.monotonic() < deadline, f"the moto server on port {port} outlived the session that started it"
        time.sleep(0.1)


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0
