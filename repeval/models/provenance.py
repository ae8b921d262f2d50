"""What a store partition records of a plugin model's making (``model_code``): the plugin file that defines the
model's class and the files its params or class attributes name (its weights), each as a digest of its content — and
what changed since, said by the embedding stage, ``repeval plan`` and the training stage (README, "Your own model").

Digests are taken once per process and file version (a cache keyed by path, inode, change times and size): a run that
checks many partitions reads each file once. A file up to :data:`WHOLE_FILE_BYTES` is hashed whole; a larger one
(multi-GB weights) by its size and samples of its content — its first and last :data:`EDGE_BYTES` and
:data:`N_SAMPLES` blocks spread between them — which a retrained checkpoint changes while costing a few MB of reads.
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path
from typing import Any

from repeval.models.base import ModelFamily, model_parameters

#: a file up to this size is hashed whole
WHOLE_FILE_BYTES = 64 * 2**20
#: of a larger file: its first and last bytes hashed
EDGE_BYTES = 2**20
#: of a larger file: blocks of :data:`SAMPLE_BYTES` spread evenly between its edges, hashed too
N_SAMPLES = 16
SAMPLE_BYTES = 64 * 2**10

#: (path, inode, mtime and ctime in ns, size) → its digest: a file is read once per process and version
_DIGESTS: dict[tuple[str, int, int, int, int], str] = {}


def file_digest(path: str | os.PathLike[str]) -> tuple[int, str] | None:
    """``(size in bytes, digest)`` of the file at ``path``: a SHA-256 of its content, or — past
    :data:`WHOLE_FILE_BYTES` — of its size and sampled content (``sampled:`` prefixed); None when it cannot be read."""
    try:
        resolved = str(Path(path).expanduser().resolve())
        stat = os.stat(resolved)
        key = (resolved, stat.st_ino, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_size)
        if key not in _DIGESTS:
            _DIGESTS[key] = _digest(resolved, stat.st_size)
    except (OSError, ValueError):
        return None
    return stat.st_size, _DIGESTS[key]


def _digest(path: str, size: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        if size <= WHOLE_FILE_BYTES:
            for block in iter(lambda: f.read(2**20), b""):
                h.update(block)
            return h.hexdigest()
        h.update(str(size).encode())
        step = (size - 2 * EDGE_BYTES) // (N_SAMPLES + 1)
        where = [(0, EDGE_BYTES)] + [(EDGE_BYTES + step * (i + 1), SAMPLE_BYTES) for i in range(N_SAMPLES)]
        for at, n in [*where, (size - EDGE_BYTES, EDGE_BYTES)]:
            f.seek(at)
            h.update(f.read(n))
    return "sampled:" + h.hexdigest()


def _named_file(value: Any) -> str | None:
    """``value`` when it is a string (or path) naming an existing file, as the model would open it."""
    if not isinstance(value, str | os.PathLike) or (isinstance(value, str) and (not value or "\n" in value)):
        return None
    try:
        return os.fspath(value) if Path(value).expanduser().is_file() else None
    except (OSError, ValueError):  # a name too long, a NUL byte: not a path
        return None


def named_files(fam: ModelFamily, params: dict[str, Any]) -> dict[str, str]:
    """The files a model's params (its constructor's defaults included) and its class' own attributes name: where
    each is named (``params.weights_path``, ``MyModel.WEIGHTS``) → the path as given."""
    found: dict[str, str] = {}
    try:
        defaults = {k: p.default for k, p in model_parameters(fam.cls).items()}
    except (TypeError, ValueError):
        defaults = {}
    for key, value in {**defaults, **params}.items():
        if (path := _named_file(value)) is not None:
            found[f"params.{key}"] = path
    for klass in fam.cls.__mro__:
        if klass.__module__.startswith("repeval.") or klass is object:
            continue  # repeval's base classes name no weights of the plugin's
        for attr, value in vars(klass).items():
            if not attr.startswith("__") and (path := _named_file(value)) is not None:
                found.setdefault(f"{klass.__name__}.{attr}", path)
    return found


def plugin_code(fam: ModelFamily, params: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """For a model a plugin registered, what a store partition records of its making (``model_code``): the plugin as
    written, a SHA-256 of the file that defines the model's class (not of other modules it imports) and, under
    ``files``, each file its ``params`` or class attributes name (:func:`named_files`: its weights) with its size and
    digest; None for repeval's own models (their ``embedding_version`` and repeval's version say it)."""
    from repeval.models.plugins import plugin_of

    origin = plugin_of(fam.name)
    source = getattr(sys.modules.get(fam.cls.__module__), "__file__", None)
    found = file_digest(source) if origin is not None and source else None
    if origin is None or found is None:
        return None
    code: dict[str, Any] = {"plugin": origin, "sha256": found[1]}
    files = {}
    for where, path in named_files(fam, params or {}).items():
        digest = file_digest(path)
        if digest is not None:
            files[where] = {"path": path, "size": digest[0], "sha256": digest[1]}
    if files:
        code["files"] = files
    return code


def code_changes(recorded: Any, now: dict[str, Any]) -> list[str]:
    """What differs between the ``model_code`` a partition recorded and ``now``: ``its plugin my_model.py``, ``its
    file w.npy (params.weights_path)``; a file the record does not have (recorded before repeval recorded files) is
    not a change."""
    if not isinstance(recorded, dict):
        return []
    changes = [f"its plugin {now['plugin']}"] if recorded.get("sha256") != now["sha256"] else []
    before = recorded.get("files")
    before = before if isinstance(before, dict) else {}
    for where, file in now.get("files", {}).items():
        old = before.get(where)
        if isinstance(old, dict) and (old.get("sha256"), old.get("size")) != (file["sha256"], file["size"]):
            changes.append(f"its file {file['path']} ({where})")
    return changes


#: the end of the note, by who says it: the embedding stage records the files as they are now, the others only read
RECORDED_BY = {
    "embed": "said once: the partitions record the files as they are now",
    "plan": "`repeval run` says it once, then records the files as they are now",
    "train": "said once per model; `repeval embed` or `repeval run` records the files as they are now",
}


def changed_code_note(
    part: Any, model_id: str, fam: ModelFamily, code: dict[str, Any], by: str, reused: bool = True
) -> str | None:
    """The warning that rows of ``part`` were embedded with another version of the plugin or of a file it names
    (``code``: :func:`plugin_code` now), naming the model, what changed and the fix; None when nothing did.
    ``by``: who says it, a key of :data:`RECORDED_BY`; ``reused``: the run reuses some of its rows — else it reuses
    none, and the rows it embeds join them in the partition."""
    changes = code_changes((part.stamped() or {}).get("model_code"), code)
    if not changes:
        return None
    what = changes[0] if len(changes) == 1 else ", ".join(changes[:-1]) + " and " + changes[-1]
    use = (
        ", so its stored embeddings are reused"
        if reused
        else "; this run reuses none of its stored embeddings, but those it computes now join them"
    )
    return (
        f"{model_id}: {what} {'has' if len(changes) == 1 else 'have'} changed since store partition {part.name} was "
        f"embedded with it, and its embedding_version is still {fam.cls.embedding_version!r}{use}: if the change "
        "alters what the model computes, raise embedding_version in "
        f"{code['plugin']} (the store then refuses the partitions it embedded before; `{part.rm_command()}` deletes "
        f"this one, `repeval store ls` lists the others) — otherwise nothing to do ({RECORDED_BY[by]})"
    )
