"""What the table tests share: the task their cells come from."""

from __future__ import annotations

TASK = "instrument_recognition"
