"""A stream's resource limits are re-read promptly while Ray Data still has none (``prompt_stream_limits``).

These call Ray Data's own ``ResourceManager.get_global_limits`` (through repeval's wrapper) on an object with
the attributes it reads, so a Ray upgrade that changes them fails here rather than silently slowing streams."""

from __future__ import annotations

import time
from types import SimpleNamespace

from ray.data._internal.execution.interfaces.execution_options import ExecutionOptions, ExecutionResources
from ray.data._internal.execution.resource_manager import ResourceManager

from repeval.ray_utils import PROMPT_LIMITS_S, PROMPT_LIMITS_WINDOW_S, prompt_stream_limits


def _reader(answers: list[ExecutionResources]) -> SimpleNamespace:
    """What ``get_global_limits`` reads of a ResourceManager; the coordinator's answers in order (the last repeats)."""
    calls = []

    def total() -> ExecutionResources:
        calls.append(1)
        return answers[min(len(calls), len(answers)) - 1]

    return SimpleNamespace(
        GLOBAL_LIMITS_UPDATE_INTERVAL_S=ResourceManager.GLOBAL_LIMITS_UPDATE_INTERVAL_S,
        _options=ExecutionOptions(),
        _get_total_resources=total,
        _object_store_memory_limit_fraction=0.5,
        _global_limits=ExecutionResources.zero(),
        _global_limits_last_update_time=0,
        calls=calls,
    )


def _cpus(n: float) -> ExecutionResources:
    return ExecutionResources(cpu=n, gpu=0, object_store_memory=10**9)


def test_install_is_idempotent_and_keeps_rays_method():
    assert prompt_stream_limits()
    patched = ResourceManager.get_global_limits
    assert prompt_stream_limits()
    assert ResourceManager.get_global_limits is patched
    assert getattr(patched, "_repeval_prompt", False)
    assert not getattr(patched.__wrapped__, "_repeval_prompt", False)  # Ray's own method underneath


def test_zero_limits_are_read_again_promptly_then_at_rays_cadence():
    prompt_stream_limits()
    rm = _reader([ExecutionResources.zero(), _cpus(2), _cpus(4)])
    assert ResourceManager.get_global_limits(rm).cpu == 0  # the coordinator's cache is still empty
    time.sleep(3 * PROMPT_LIMITS_S)  # well inside Ray's one-second interval
    assert ResourceManager.get_global_limits(rm).cpu == 2  # read again: two CPUs, two tasks at once
    assert len(rm.calls) == 2
    time.sleep(3 * PROMPT_LIMITS_S)
    assert ResourceManager.get_global_limits(rm).cpu == 2  # non-zero: Ray's cadence, no new read yet
    assert len(rm.calls) == 2


def test_no_rereads_between_prompt_intervals():
    prompt_stream_limits()
    rm = _reader([ExecutionResources.zero()])
    for _ in range(50):  # a scheduling loop spinning faster than PROMPT_LIMITS_S
        ResourceManager.get_global_limits(rm)
    assert len(rm.calls) == 1


def test_a_cluster_without_cpus_is_not_polled_after_the_window():
    prompt_stream_limits()
    rm = _reader([ExecutionResources.zero()])
    rm._repeval_first_limits_read = time.time() - PROMPT_LIMITS_WINDOW_S - 1
    ResourceManager.get_global_limits(rm)
    time.sleep(3 * PROMPT_LIMITS_S)
    ResourceManager.get_global_limits(rm)
    assert len(rm.calls) == 1  # Ray's one-second interval again
