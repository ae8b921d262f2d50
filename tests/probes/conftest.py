"""Small synthetic probe data (class-conditional Gaussians, see :mod:`repeval.probes.synthetic`)."""

from __future__ import annotations

import pytest

from repeval.probes import ProbeData
from repeval.probes.synthetic import gaussian_probe_data


@pytest.fixture
def mc_data() -> ProbeData:
    return gaussian_probe_data()
