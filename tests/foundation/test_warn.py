"""``warn_once``: the one way repeval says a warning once per process (not once per probe, trial or validation)."""

from __future__ import annotations

import logging
import threading
import warnings

import pytest

from repeval.warn import reset_warned, warn_once


def test_warn_once_says_each_key_once_per_logger_or_category_from_any_thread(caplog):
    reset_warned()
    log = logging.getLogger("repeval.test_warn")
    barrier = threading.Barrier(8)
    said: list[bool] = []

    def ask() -> None:
        barrier.wait()
        said.append(warn_once(log, ("k", 1), "%s: said once of %d asks", "k", 8))

    with caplog.at_level("WARNING", logger=log.name):
        threads = [threading.Thread(target=ask) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(said) == [False] * 7 + [True]
        assert warn_once(log, ("k", 2), "another key") and not warn_once(log, ("k", 2), "another key")
        assert warn_once(logging.getLogger("repeval.other"), ("k", 1), "another logger, the same key")
    assert [r.getMessage() for r in caplog.records if r.name == log.name] == ["k: said once of 8 asks", "another key"]
    assert caplog.records[0].funcName == "ask"  # logged as the caller's line
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(3):
            warn_once(RuntimeWarning, ("k", 1), "as a %s", "warning")
            warn_once(UserWarning, ("k", 1), "another category")
    assert [(w.category, str(w.message)) for w in caught] == [
        (RuntimeWarning, "as a warning"),
        (UserWarning, "another category"),
    ]
    assert caught[0].filename == __file__
    reset_warned()
    with pytest.warns(RuntimeWarning, match="as a warning"):
        assert warn_once(RuntimeWarning, ("k", 1), "as a %s", "warning")  # said again after a reset
