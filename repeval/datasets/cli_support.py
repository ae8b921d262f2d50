"""Support for ``repeval datasets`` (list loaders and their tasks) and ``repeval data download NAME``."""

from __future__ import annotations

import logging
import re
import socket
import urllib.error
from typing import Any

from repeval.exc_chain import exception_chain
from repeval.registry import unknown_name_message

log = logging.getLogger(__name__)


def _registry() -> tuple[Any, dict[str, Any]]:
    import repeval.datasets  # noqa: F401  (registers every loader)
    from repeval.datasets.base import DATASET_INFO, DATASETS

    return DATASETS, DATASET_INFO


def list_datasets(include_unwired_mirdata: bool = False) -> list[dict[str, Any]]:
    """One dict per registered loader: ``name``, ``type`` (mirdata/custom/catalog), ``description``
    and ``tasks`` (``label``, ``task_type``, ``splits``, ``description``).

    ``include_unwired_mirdata`` adds every other mirdata data set (loadable through the generic
    loader with ``task.label`` naming a track attribute).
    """
    registry, infos = _registry()
    out = []
    for name in registry.names():
        info = infos.get(name)
        out.append(
            {
                "name": name,
                "type": info.kind if info else "custom",
                "description": info.description if info else "",
                "tasks": [
                    {
                        "label": lab.name,
                        "task_type": lab.task_type,
                        "splits": lab.splits,
                        "description": lab.description,
                    }
                    for lab in (info.labels if info else ())
                ],
            }
        )
    if include_unwired_mirdata:
        from repeval.datasets.mirdata_loader import mirdata_names

        for name in mirdata_names():
            if name not in registry:
                out.append(
                    {
                        "name": name,
                        "type": "mirdata",
                        "description": "mirdata data set (generic loader: task.label = a track attribute)",
                        "tasks": [],
                    }
                )
    return out


def describe_dataset(name: str) -> str:
    """``repeval datasets NAME``: what a loader reads and its tasks; for repeval's own loaders also where the data
    comes from and the on-disk layout ``dataset.dir`` must have (the loader module's documentation)."""
    import inspect

    entries = {d["name"]: d for d in list_datasets(include_unwired_mirdata=True)}
    if name not in entries:
        raise ValueError(unknown_name_message("dataset", name, set(entries)))
    d = entries[name]
    lines = [f"{name} ({d['type']})" + (f": {d['description']}" if d["description"] else "")]
    for t in d["tasks"]:
        lines.append(f"  task label '{t['label']}' ({t['task_type']}): {t['description']}; splits: {t['splits']}")
    if d["type"] == "mirdata":
        what = "NAME" if name == "mirdata" else name  # the generic loader reads the mirdata data set dataset.name names
        lines.append(
            (
                "dataset.name NAME: any mirdata data set (`repeval datasets --all-mirdata` lists them); "
                if what == "NAME"
                else ""
            )
            + f"get it with `repeval data download {what} --data-home DIR` (needs network access; it fetches mirdata's "
            f"index of it too) and set dataset.dir to DIR — without dir, mirdata's default folder "
            f"~/mir_datasets/{what} is read; for data already here, `repeval data download {what} --index-only` "
            "fetches only mirdata's index (mirdata 1.0 ships none), or set dataset.index_path to a local index JSON"
        )
        return "\n".join(lines)
    registry, _ = _registry()
    loader = registry.get(name)
    module = inspect.getmodule(getattr(loader, "func", loader))  # mtg_jamendo_<subset> are partials of one loader
    doc = inspect.getdoc(module) if module is not None else None
    if doc:
        lines += ["", terminal_text(doc)]
    return "\n".join(lines)


#: a reference to code in a docstring (``:class:`~repeval.datasets.manifest.ManifestRowError```): its name is said
_ROLE = re.compile(r":[a-z]+:`(~?)([^`]+)`")


def terminal_text(doc: str, width: int | None = None) -> str:
    """A module's documentation (reStructuredText) as a terminal shows it (``repeval datasets NAME``): each paragraph
    and list item as one text wrapped to ``width`` (the terminal's, at most 100 columns) — not the source's line
    breaks —, a literal block (after ``::``, a folder layout) as it is, ````key```` as `key` and a reference to code
    (``:data:`~x.OBSERVED```) as its name."""
    import shutil
    import textwrap

    width = width or max(40, min(shutil.get_terminal_size((100, 24)).columns, 100))

    def inline(text: str) -> str:
        text = _ROLE.sub(lambda m: f"`{m[2].rpartition('.')[2] if m[1] else m[2]}`", text)
        return re.sub(r"\*\*([^*]+)\*\*", r"\1", text.replace("``", "`"))

    out: list[str] = []
    literal = False
    for block in re.split(r"\n\s*\n", doc.strip()):
        if literal and block.startswith((" ", "\t")):  # a literal block's lines, kept
            out.append(block)
            continue
        literal = block.rstrip().endswith("::")
        if literal:
            block = block.rstrip()[:-1].rstrip(":").rstrip() + ":"
        items = re.split(r"\n(?=- )", block) if block.startswith("- ") else [block]
        for item in items:
            bullet = item.startswith("- ")
            text = inline(" ".join(item[2:].split() if bullet else item.split()))
            indent = "  " if bullet else ""
            first = "- " if bullet else ""
            out.append(
                textwrap.fill(text, width, initial_indent=first, subsequent_indent=indent, break_on_hyphens=False)
            )
    return "\n\n".join(out).replace("\n\n- ", "\n- ")


def check_dataset_name(name: str, type_: str, subset: str | None = None) -> None:
    """Raise ``ValueError`` naming the closest valid loader when ``name`` is unknown for ``type_``."""
    if type_ == "catalog":
        return
    registry, infos = _registry()
    from repeval.datasets.mirdata_loader import mirdata_names

    mirdata = set(mirdata_names())
    if type_ == "mirdata":
        if name not in mirdata:
            msg = unknown_name_message("mirdata dataset", name, mirdata)
            if name in registry:
                msg = f"'{name}' is a repeval loader, not a mirdata data set — set type: custom. " + msg
            raise ValueError(msg)
        return
    custom = {n for n in registry.names() if getattr(infos.get(n), "kind", "custom") != "catalog"}
    if name not in custom:
        if name in mirdata:
            raise ValueError(f"'{name}' is a mirdata data set without a repeval loader — set type: mirdata")
        raise ValueError(unknown_name_message("dataset", name, custom | mirdata))
    if name == "mtg_jamendo":
        from repeval.datasets.mtg_jamendo import SUBSETS

        if subset not in SUBSETS:
            hint = unknown_name_message("MTG-Jamendo subset", subset, set(SUBSETS)) if subset else ""
            raise ValueError(hint or f"dataset 'mtg_jamendo' needs subset: one of {', '.join(SUBSETS)}")


#: dataset keys only the ``catalog`` loader reads (a manifest and its columns)
CATALOG_KEYS = (
    "manifest",
    "delimiter",
    "decimal",
    "track_id_column",
    "audio_column",
    "label_column",
    "split_column",
    "label_separator",
    "annotated_column",
)
#: what a dataset key that applies to some loaders only is for (the error says it; so does the JSON Schema's)
KEY_SCOPES = {
    "catalog": "is for 'catalog' datasets (a manifest and its columns)",
    "index_path": "is mirdata's index file, for data sets read through mirdata (type: mirdata)",
    "subset": "is for the 'mtg_jamendo' loader (type: custom)",
    "unannotated": "is for multilabel data sets that annotate only some labels per track (openmic2018, or a "
    "catalog with annotated_column)",
}


def masked_loaders() -> list[str]:
    """The loaders whose rows say which labels each track annotates (so ``unannotated`` applies)."""
    from repeval.datasets.mirdata_loader import SPECS

    return sorted(n for n, spec in SPECS.items() if any(lab.annotated is not None for lab in spec.labels))


def mirdata_kind_loaders() -> list[str]:
    """The ``type: custom`` loaders that read their data set through mirdata (so ``index_path`` applies)."""
    registry, infos = _registry()
    return sorted(n for n in registry.names() if getattr(infos.get(n), "kind", "custom") == "mirdata")


def check_dataset_keys(name: str, type_: str, given: set[str]) -> None:
    """Raise ``ValueError`` when ``given`` (the keys a dataset entry sets) holds one its loader never reads: a
    manifest key on a mirdata or custom data set, ``index_path`` on a data set not read through mirdata, ``subset``
    on any loader but ``mtg_jamendo``, ``unannotated`` on one whose rows do not say which labels a track annotates. Left in a config, each would be silently ignored."""
    bad: list[tuple[str, str]] = []
    if type_ != "catalog":
        bad += [(k, KEY_SCOPES["catalog"]) for k in CATALOG_KEYS if k in given]
    if "index_path" in given:
        through_mirdata = type_ == "mirdata" or (type_ == "custom" and name in mirdata_kind_loaders())
        if not through_mirdata:
            bad.append(("index_path", KEY_SCOPES["index_path"]))
    if "subset" in given and not (type_ == "custom" and name == "mtg_jamendo"):
        bad.append(("subset", KEY_SCOPES["subset"]))
    masked = (type_ != "catalog" and name in masked_loaders()) or (type_ == "catalog" and "annotated_column" in given)
    if "unannotated" in given and not masked:
        bad.append(("unannotated", KEY_SCOPES["unannotated"]))
    if bad:
        key, why = bad[0]
        more = f" (also: {', '.join(k for k, _ in bad[1:])})" if len(bad) > 1 else ""
        raise ValueError(f"key '{key}' does not apply to {type_} dataset '{name}' — it {why}; remove it{more}")


def _offline(exc: BaseException) -> bool:
    """Whether ``exc`` (or an exception of its chain) is a network that could not be reached (urllib's or requests')."""
    named = {"ConnectionError", "ConnectTimeout", "ReadTimeout", "NewConnectionError", "MaxRetryError"}
    return any(
        isinstance(cur, urllib.error.URLError | socket.gaierror | socket.timeout | ConnectionError | TimeoutError)
        or type(cur).__name__ in named
        for cur in exception_chain(exc)
    )


def download(name: str, data_home: str | None = None, partial: list[str] | None = None, force: bool = False) -> str:
    """Download a mirdata data set (and its index) into ``data_home``; returns the data path. ``partial=["index"]``:
    only mirdata's index of it, into mirdata's package folder (where a dataset without ``index_path`` reads it),
    whose path it returns.

    Raises ``RuntimeError`` naming the fix when the network is unreachable, and ``ValueError``
    for data sets mirdata does not know (the custom loaders' data sets are manual downloads).
    """
    from repeval.datasets.mirdata_loader import mirdata_names

    names = set(mirdata_names())
    if name not in names:
        registry, _ = _registry()
        if name in registry:
            raise ValueError(
                f"'{name}' is not a mirdata data set, so `repeval data download` cannot fetch it — download it by "
                "hand (see the loader's docs: `repeval datasets`) and set dataset.dir"
            )
        raise ValueError(unknown_name_message("mirdata dataset", name, names))
    import mirdata

    if partial == ["index"]:  # the index goes to mirdata's package folder: no (empty) data home made for it
        import tempfile

        with tempfile.TemporaryDirectory() as scratch:
            dataset = mirdata.initialize(name, data_home=scratch)
            if dataset._index_data.remote is None:
                raise ValueError(
                    f"mirdata has no index of '{name}' to download: set dataset.index_path to a local index JSON"
                )
            _download(dataset, name, partial, force)
        log.info("downloaded mirdata's index of %s to %s", name, dataset.index_path)
        return str(dataset.index_path)
    dataset = mirdata.initialize(name, data_home=data_home)
    _download(dataset, name, partial, force)
    log.info("downloaded %s to %s", name, dataset.data_home)
    return str(dataset.data_home)


def _download(dataset: Any, name: str, partial: list[str] | None, force: bool) -> None:
    """``dataset.download``, an unreachable network said with the fix."""
    try:
        dataset.download(partial_download=partial, force_overwrite=force)
    except Exception as exc:
        if not _offline(exc):
            raise
        if partial == ["index"]:
            fix = (
                f"`repeval data download {name} --index-only` on a machine with internet access, copy the index it "
                "writes here and set dataset.index_path to it"
            )
        else:
            fix = (
                f"`repeval data download {name}` on a machine with internet access and copy {dataset.data_home} here, "
                "or point dataset.dir at an existing copy and dataset.index_path at a local mirdata index JSON"
            )
        raise RuntimeError(
            f"could not download '{name}': the network is unreachable ({type(exc).__name__}: {exc}). Run {fix}"
        ) from exc
