"""Starting or attaching to Ray, and reading the cluster's resources."""

from __future__ import annotations

import logging
import os
from typing import Any

log = logging.getLogger(__name__)


def init_ray(num_cpus: int | None = None, **kwargs: Any) -> None:
    """Attach to ``RAY_ADDRESS`` when set (``ray job submit``), else start an embedded Ray.

    The embedded instance binds its dashboard to 127.0.0.1 and is quiet by default.
    """
    import ray

    if ray.is_initialized():
        return
    os.environ.setdefault("RAY_DATA_DISABLE_PROGRESS_BARS", "0")
    if os.environ.get("RAY_ADDRESS"):
        log.info("attaching to Ray cluster at %s", os.environ["RAY_ADDRESS"])
        ray.init(log_to_driver=True, **kwargs)
        return
    opts: dict[str, Any] = {
        # worker stdout/stderr (per-trial chatter) only with `repeval -v`; failures are recorded anyway
        "log_to_driver": log.isEnabledFor(logging.DEBUG) or os.environ.get("REPEVAL_WORKER_LOGS") == "1",
        "include_dashboard": False,
        "dashboard_host": "127.0.0.1",
        "logging_level": logging.WARNING,
        "configure_logging": True,
    }
    if num_cpus is not None:
        opts["num_cpus"] = num_cpus
    opts.update(kwargs)
    ray.init(**opts)


def cluster_gpus() -> float:
    import ray

    return float(ray.cluster_resources().get("GPU", 0.0))


def cluster_cpus() -> float:
    import ray

    return float(ray.cluster_resources().get("CPU", 1.0))
