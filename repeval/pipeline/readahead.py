"""Reading a track's windows ahead of the one the decoder sends, as far as a model's cut of a track's rows needs.

A model may cut a track's rows to so many a second of it (:attr:`repeval.models.base.FrameGeometry.rows_per_sample`:
basic-pitch, 86 a second where its 2-s windows give 86.58), which falls 0.67% of the track before its end — past the
window after the one being sent on a long track. The decoder (:class:`repeval.pipeline.stages.DecodeDeform`) reads
ahead until the track is long enough for the cut to lie past the window's rows, or until its end says where the cut
falls, so every window keeps the rows before the cut and none after it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator

import numpy as np

from repeval.models.base import FrameGeometry


class ReadAhead:
    """A track's windows, read ahead on demand (:meth:`reach`): ``read``, the samples read so far — the windows handed
    out and those held — and ``ended``, whether that is the whole track."""

    def __init__(self, windows: Iterator[np.ndarray]) -> None:
        self._windows = windows
        self._held: deque[np.ndarray] = deque()
        self.read = 0
        self.ended = False

    def __iter__(self) -> ReadAhead:
        return self

    def __next__(self) -> np.ndarray:
        window = self._held.popleft() if self._held else self._pull()
        if window is None:
            raise StopIteration
        return window

    def _pull(self) -> np.ndarray | None:
        window = None if self.ended else next(self._windows, None)
        self.ended = window is None
        self.read += 0 if window is None else len(window)
        return window

    def reach(self, n: int) -> None:
        """Read windows ahead until ``n`` samples are read or the track ends."""
        while self.read < n and not self.ended:
            window = self._pull()
            if window is not None:
                self._held.append(window)


def samples_for_cut(geometry: FrameGeometry | None, end: int) -> int:
    """Samples of a track to have read before a window that ends ``end`` samples into it (not the track's last) is
    sent: as many as put the model's cut of the track's rows past the window's rows, so none of them is cut — or the
    track's end, which says where the cut falls; 0 where the model cuts no rows."""
    g = geometry
    if g is None or g.rows_per_sample <= 0:
        return 0
    end_row = end // g.hop * g.rows
    n = int(np.ceil(end_row / g.rows_per_sample))
    while int(np.floor(n * g.rows_per_sample)) < end_row:  # (rounding)
        n += 1
    return n
