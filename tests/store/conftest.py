"""The store tests' S3 bucket: a moto server of each module that asks for it (:func:`repeval.testing.s3.moto_s3`)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from repeval.testing.s3 import moto_s3


@pytest.fixture(scope="module")
def s3() -> Iterator[dict[str, Any]]:
    """A moto S3 server with a bucket ``repeval`` (:func:`~repeval.testing.s3.moto_s3`)."""
    with moto_s3() as bucket:
        yield bucket
