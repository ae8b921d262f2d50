"""A packed embedding actor pool's watch (repeval.pipeline.placement.PackedPool) on the session's embedded Ray, its
placement group real: how long it waits for a lost pool (``run.resources.pool_wait_s``, ``pool_stall_s``), and what
it says when it cannot look at the group. (The run that kills a node: tests/cluster/test_pool_placement.py.)"""

from __future__ import annotations

import logging
import time
from typing import Any

import pytest
from pydantic import ValidationError

from repeval.config.run import ResourcesConfig
from repeval.pipeline.placement import PACK_STALL_S, PACK_WAIT_S, PackedPool, PoolNodeLost, _seconds

GONE = "ab" * 28  # a node ID no live node has: the node the pool was asked for, dead


def _pool(actor: dict[str, float], task_cpus: float, **waits: Any) -> PackedPool:
    from repeval.pipeline.resources import EmbedResources

    res = EmbedResources(
        n_actors=2, num_cpus=actor["CPU"], num_gpus=0.0, threads=1, decode_num_cpus=task_cpus, pack_node=GONE
    )
    pool = res.packed_pool("clmr", waits.get("wait_s"), waits.get("stall_s"))
    assert pool is not None
    return pool


def test_the_wait_for_a_lost_pool_is_run_resources_pool_wait_s_named_in_the_stop(ray_session, caplog) -> None:
    """A pool whose node is gone and that no live node takes (here: 2 × 1,000 CPUs) stopped the run after a fixed
    5 minutes, too short for nodes that take longer to come back; ``run.resources.pool_wait_s`` sets it, and the
    warning and the error name it."""
    pool = _pool({"CPU": 1000.0}, 1.0, wait_s=0.2)
    try:
        assert (pool.wait_s, pool.stall_s) == (0.2, PACK_STALL_S)
        with caplog.at_level(logging.WARNING, logger="repeval.pipeline.embed"):
            lost_at = pool._look(None)
        assert lost_at is not None and pool.error is None
        assert "waiting up to 0.2 seconds (run.resources.pool_wait_s) for Ray to place them again" in caplog.text
        time.sleep(0.25)
        assert pool._look(lost_at) == lost_at
        assert pool.error is not None
        said = str(pool.error)
        assert said.startswith(f"node {GONE[:12]}, where the 2 embedding actors of clmr ran, died, and no live node ")
        assert (
            "took the pool (2,000 CPUs) whole within 0.2 seconds (run.resources.pool_wait_s: raise it if your nodes "
            "take longer to come back): stopped, everything written so far is kept"
        ) in said, said
    finally:
        pool.close()


def test_the_stall_of_a_pool_placed_again_without_room_is_run_resources_pool_stall_s(ray_session) -> None:
    """Ray places the pool again on the session's node (not the one it was asked for), which keeps no decode task's
    3 CPUs: after ``run.resources.pool_stall_s`` without a batch (was a fixed minute) the run stops, naming it."""
    pool = _pool({"CPU": 0.01}, 3.0, stall_s=0.2)
    try:
        assert (pool.wait_s, pool.stall_s) == (PACK_WAIT_S, 0.2)
        pool.group.wait(30)  # placed (CREATED) on the live node
        pool.beat()
        time.sleep(0.25)
        assert pool._look(None) is None
        assert pool.error is not None
        assert "(run.resources.decode_num_cpus): no batch for 0." in str(pool.error), pool.error
        assert " seconds (run.resources.pool_stall_s): stopped, everything written so far is kept" in str(pool.error)
    finally:
        pool.close()


def test_a_watch_that_cannot_look_says_so_once(ray_session, caplog) -> None:
    """A look at the group that raised (the GCS not answering, a Ray call failing) was logged at debug level, every
    second: a watch that cannot see a lost pool cannot stop the stream it holds still, and nobody was told. It is a
    warning now, once while the looks keep failing."""

    class Failing(PackedPool):
        def _look(self, lost_at: float | None) -> float | None:
            raise ConnectionError("GCS unreachable")

    pool = Failing("clmr", {"CPU": 0.01}, 1, 0.5, GONE)
    try:
        with caplog.at_level(logging.DEBUG, logger="repeval.pipeline.embed"):
            pool.watch(lambda: True)
            deadline = time.monotonic() + 30
            while caplog.text.count("could not look") < 2 and time.monotonic() < deadline:
                time.sleep(0.2)
    finally:
        pool.close()
    said = [r for r in caplog.records if "could not look" in r.getMessage()]
    assert len(said) >= 2, caplog.text
    assert [r.levelno for r in said[:2]] == [logging.WARNING, logging.DEBUG]
    assert said[0].getMessage() == (
        "could not look at the placement group of the embedding actors of clmr (ConnectionError: GCS unreachable): "
        "looking again every 1 second"
    )


def test_a_watch_that_cannot_stop_the_stream_of_a_lost_pool_says_so(ray_session, caplog) -> None:
    """A stop of the stream that raised (once the pool was lost) was said as a look at the group that failed: "could
    not look at the placement group", when the look had found the pool lost and the stream was what went on — and,
    after a look that had failed, at debug level only. It is said, at warning level, as what it is."""

    class Lost(PackedPool):  # a first look that fails (said), then one that finds the pool lost
        looks = 0

        def _look(self, lost_at: float | None) -> float | None:
            self.looks += 1
            if self.looks == 1:
                raise ConnectionError("GCS unreachable")
            self.error = PoolNodeLost("lost")
            return lost_at

    def stop() -> bool:
        raise RuntimeError("executor gone")

    pool = Lost("clmr", {"CPU": 0.01}, 1, 0.5, GONE)
    try:
        with caplog.at_level(logging.WARNING, logger="repeval.pipeline.embed"):
            pool.watch(stop)
            deadline = time.monotonic() + 30
            while "could not stop" not in caplog.text and time.monotonic() < deadline:
                time.sleep(0.2)
    finally:
        pool.close()
    assert caplog.text.count("could not look") == 1, caplog.text
    assert (
        "could not stop the stream of the embedding actors of clmr (RuntimeError: executor gone): trying again every "
        "1 second"
    ) in caplog.text, caplog.text


def test_pool_wait_and_stall_are_positive_seconds() -> None:
    """``run.resources.pool_wait_s`` / ``pool_stall_s`` take positive seconds, checked as the configuration loads —
    finite ones: YAML's ``.inf`` passed, and the watch of a pool whose node died failed every second on it (the
    warning's "waiting up to …" cannot count infinite seconds), saying it could not look at the group."""
    assert ResourcesConfig(pool_wait_s=1800, pool_stall_s=120.5).pool_wait_s == 1800
    for bad, said in ((0, "greater than 0"), (-5, "greater than 0"), (float("inf"), "finite number")):
        with pytest.raises(ValidationError, match=said):
            ResourcesConfig(pool_wait_s=bad)
        with pytest.raises(ValidationError, match=said):
            ResourcesConfig(pool_stall_s=bad)


def test_the_seconds_a_watch_names_are_counted_in_words() -> None:
    """How long a pool waited or went without a batch is said to two digits, in the singular for one: a stall of
    1.04 s under ``pool_stall_s: 1`` said "no batch for 1 seconds"."""
    said = [_seconds(s) for s in (1.04, 0.999, 1.0, 0.25, 1.5, 12.7, 1800.0)]
    assert said == ["1 second", "1 second", "1 second", "0.25 seconds", "1.5 seconds", "12 seconds", "1,800 seconds"]
