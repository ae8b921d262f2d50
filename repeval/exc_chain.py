"""An exception's chain: the exceptions it came of, which a check for one kind of failure looks through."""

from __future__ import annotations

from collections.abc import Iterator


def exception_chain(exc: BaseException, task_causes: bool = False) -> Iterator[BaseException]:
    """``exc``, then each exception the one before came of — raised from it (``__cause__``), else while handling it
    (``__context__``) — each once (a chain may loop); with ``task_causes``, a Ray task error's ``cause`` (what the
    task raised) before those."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        yield cur
        cause = getattr(cur, "cause", None) if task_causes else None  # RayTaskError: what the task raised
        cur = cause if isinstance(cause, BaseException) else cur.__cause__ or cur.__context__
