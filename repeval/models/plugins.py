"""Embedding models from outside repeval: plugins.

A plugin is a Python module that registers embedding models of its own with ``@register_model`` (``from
repeval.models import EmbeddingModel, register_model``), as repeval's families do. repeval imports it

- from a configuration's top-level ``plugins:`` list — a module name (``my_team.models``: an installed package, or
  one under the current directory) or the path of a ``.py`` file (a relative path starts from the current
  directory) — in the driver before the configuration is checked, and in every Ray worker process that builds or
  checks a model (:class:`repeval.pipeline.embedder.Embed`, :func:`repeval.pipeline.preflight.unavailable_here`),
  which is given the plugins as :class:`Plugin` records;
- from the ``repeval.models`` entry-point group of every installed distribution, when a model name is not
  registered (:func:`repeval.models.base.resolve_model`) and for ``repeval models``: an installed package's models
  need no configuration.

Each problem is one :class:`PluginError` line naming the fix: a plugin that does not import, registers no model,
registers a name another model has, or breaks what of the contract is known without building the model
(:func:`contract_problem`); ``repeval validate-model NAME --plugin SPEC`` builds it and checks the rest.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from repeval.models.base import MODELS, EmbeddingModel, ModelFamily, NameTaken, model_parameters

#: the entry-point group whose modules register embedding models (``[project.entry-points."repeval.models"]``)
ENTRY_POINT_GROUP = "repeval.models"
#: where the user guide is
GUIDE = 'README, "Your own model"'
#: how an embedding actor says a plugin model's constructor raised (a fault of its own, not of a node)
BUILD_FAILED = "failed to build"
#: the fix for a plugin file a Ray worker does not find on its node
CLUSTER_HINT = (
    "on a cluster every node needs it: put it in the job's working directory (`ray job submit --working-dir .`) "
    "and give its path relative to it, or install it as a package on every node (docs/cluster.md)"
)
#: the fix for a plugin file outside the directory a ``ray job submit`` job uploaded
OUTSIDE_UPLOAD_HINT = (
    "move the file into the directory you submit and give its path relative to it (examples/my_model.py), or put "
    "it in a package folder that the runtime env's py_modules names and give its module name (my_team.models; "
    "docs/cluster.md)"
)


class PluginError(ValueError):
    """A plugin cannot be used; the message is one line that names the fix."""


@dataclass(frozen=True)
class Plugin:
    """One entry of ``plugins:``: ``spec`` as written; ``path``, for a ``.py`` file, its absolute path where the
    configuration was read; ``upload``, for a file inside the working directory of the ``ray job submit`` job that
    read it, that directory's name (Ray's ``_ray_pkg_<hash of its content>``) and the file's path in it.

    A worker imports the file from its own node's copy of that upload (its current directory, when it has that
    name), else from ``path``, else ``spec`` from its current directory."""

    spec: str
    path: str | None = None
    upload: tuple[str, str] | None = None

    @classmethod
    def of(cls, spec: str) -> Plugin:
        if is_file_spec(spec):
            path = Path(spec).expanduser().resolve()
            return cls(spec, str(path), _in_upload(path))
        return cls(spec)


def _in_upload(path: Path) -> tuple[str, str] | None:
    """The name of the job's working directory and ``path`` inside it, when this process is the driver of a ``ray
    job submit`` job with a working directory that holds ``path``; else None."""
    from repeval.ray_cluster import job_working_dir

    here = job_working_dir()
    if here is None:
        return None
    root = Path(here).resolve()
    try:
        return root.name, path.relative_to(root).as_posix()
    except ValueError:
        return None


def _node_copy(plugin: Plugin) -> Path | None:
    """The plugin's file in this node's copy of the job's upload: the current directory when it is a copy of the
    same upload (Ray unpacks every node's copy into a directory named after its content's hash)."""
    if plugin.upload is None:
        return None
    here = Path.cwd()
    name, relative = plugin.upload
    return here / relative if here.name == name else None


def is_file_spec(spec: str) -> bool:
    """Whether a ``plugins:`` entry names a file (``./my_model.py``, ``models/x.py``) rather than a module."""
    return spec.endswith(".py") or "/" in spec or os.sep in spec or spec.startswith("~")


def plugins_of(specs: Iterable[str]) -> tuple[Plugin, ...]:
    """The :class:`Plugin` records of ``plugins:`` entries, file paths resolved from the current directory."""
    return tuple(Plugin.of(s) for s in specs)


#: what each plugin imported in this process registered (key: its file's path or its module name)
_LOADED: dict[str, tuple[str, ...]] = {}
#: model name → the plugin that registered it, as written (``repeval models`` shows it)
_ORIGIN: dict[str, str] = {}
#: the installed plugins' models once loaded, or the error their loading raised (said again on every call)
_ENTRY_POINTS: list[str] | PluginError | None = None


def plugin_of(model_name: str) -> str | None:
    """The plugin that registered ``model_name`` (as written in ``plugins:``, or its entry point), or None."""
    return _ORIGIN.get(model_name)


def load_plugins(plugins: Iterable[Plugin | str]) -> list[str]:
    """Import each plugin (once per process) and check its models; their names. Raises :class:`PluginError`."""
    names: list[str] = []
    for p in plugins:
        plugin = p if isinstance(p, Plugin) else Plugin.of(p)
        names += _load(plugin, f"plugin {plugin.spec!r}", _import_fix(plugin))
    return names


def plugins_line(specs: Iterable[str]) -> str:
    """``plugins: ./my_model.py (my-model), my_team.models (a, b)`` — what ``repeval validate`` says of a
    configuration's plugins (imported already: the configuration was checked)."""
    parts = [f"{s} ({', '.join(load_plugins([s]))})" for s in specs]
    return "plugins: " + ", ".join(parts)


def load_config_plugins(specs: Iterable[Any]) -> None:
    """:func:`load_plugins` for a configuration's ``plugins:`` list, each error said as ``plugins[i]: …`` (entries
    that are not strings are left to the schema)."""
    for i, spec in enumerate(specs):
        if isinstance(spec, str) and spec.strip():
            from repeval.uri_text import windows_fix, windows_unread

            if windows_unread(spec.strip()):  # 'C:\\team\\model.py': a module name or a file of that name here
                raise PluginError(f"plugins[{i}]: {windows_fix(spec.strip())}")
            try:
                load_plugins([spec])
            except PluginError as exc:
                raise PluginError(f"plugins[{i}]: {exc}") from None


def load_entry_points() -> list[str]:
    """Import every installed plugin — the modules of the ``repeval.models`` entry points — once per process; the
    models they registered (empty when there are none, or on a later call). Raises :class:`PluginError`, on every
    call, when one of them cannot be used (the others are loaded all the same)."""
    global _ENTRY_POINTS
    if isinstance(_ENTRY_POINTS, PluginError):
        raise _ENTRY_POINTS
    if _ENTRY_POINTS is not None:
        return []
    from importlib.metadata import entry_points

    names: list[str] = []
    problems: list[str] = []
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        dist = getattr(getattr(ep, "dist", None), "name", None) or "an installed package"
        said = f"plugin {ep.module!r} (entry point {ep.name!r} of {dist}, group {ENTRY_POINT_GROUP})"
        try:
            names += _load(
                Plugin(ep.module), said, f"fix it, or `pip uninstall {dist}`", origin=f"{dist} ({ep.module})"
            )
        except PluginError as exc:
            problems.append(str(exc))
    if problems:
        _ENTRY_POINTS = PluginError("; ".join(problems))
        raise _ENTRY_POINTS
    _ENTRY_POINTS = names
    return names


def _load(plugin: Plugin, said: str, fix: str, origin: str | None = None) -> list[str]:
    key = plugin.path or plugin.spec
    if key in _LOADED:
        return list(_LOADED[key])
    before = set(MODELS.names())
    name = _module_name(plugin)
    try:
        module = _import_file(plugin, name, said) if plugin.path else _import_module(plugin.spec, said)
    except NameTaken as exc:
        _forget(before, name if plugin.path else None)
        owner = "repeval's own model" if exc.taken_by.startswith("repeval.") else f"model {exc.taken_by}"
        where = f" (from {_ORIGIN[exc.model_name]})" if exc.model_name in _ORIGIN else ""
        raise PluginError(
            f"{said} registers embedding model {exc.model_name!r}, a name {owner}{where} has: give its class "
            f"{exc.given_by.rsplit('.', 1)[-1]} another name in @register_model(...)"
        ) from None
    except PluginError:
        _forget(before, name if plugin.path else None)
        raise
    except BaseException as exc:  # SyntaxError, ImportError, SystemExit in the plugin's top level: a plugin fault
        if isinstance(exc, KeyboardInterrupt):
            raise
        _forget(before, name if plugin.path else None)
        raise PluginError(f"{said} failed to import: {first_line(exc)} — {fix}") from None
    added = [n for n in MODELS.names() if n not in before] or [
        n for n, fam in MODELS.items() if fam.cls.__module__.split(".")[0] == module.__name__.split(".")[0]
    ]
    if not added:
        raise PluginError(
            f"{said} registers no embedding model: decorate a subclass of repeval.models.EmbeddingModel in it "
            f"with @register_model('my-model') ({GUIDE})"
        )
    for model in added:
        fam = MODELS.get(model)
        problem = contract_problem(fam)
        if problem:
            _forget(before, name if plugin.path else None)
            raise PluginError(f"{said}: embedding model {model!r} ({_qualname(fam.cls)}) {problem}")
    _LOADED[key] = tuple(added)
    for model in added:
        _ORIGIN.setdefault(model, origin or plugin.spec)
    return added


def _forget(before: set[str], module_name: str | None) -> None:
    """Undo a plugin's import that failed: the models it registered, and (a file) its module."""
    for n in set(MODELS.names()) - before:
        MODELS.remove(n)
    if module_name is not None:
        sys.modules.pop(module_name, None)


def _module_name(plugin: Plugin) -> str:
    """The name a plugin's module is imported under: a file's ``repeval_plugin_<stem>`` (the same on every node,
    so a model pickled by reference finds its class), a module's own."""
    if plugin.path is None:
        return plugin.spec
    return "repeval_plugin_" + re.sub(r"\W", "_", Path(plugin.spec).stem)


def _import_file(plugin: Plugin, name: str, said: str) -> Any:
    here = Path(plugin.spec).expanduser()
    candidates = (_node_copy(plugin), Path(str(plugin.path)), here)
    found = next((p for p in candidates if p is not None and p.is_file()), None)
    if found is None:
        from repeval.ray_cluster import job_working_dir

        if plugin.upload is None and job_working_dir() is not None:
            raise PluginError(
                f"{said} is outside the directory this job was submitted with (`--working-dir`), the only files "
                f"of yours a job sees — {OUTSIDE_UPLOAD_HINT}"
            )
        raise PluginError(
            f"{said}: no such file: {plugin.path} — fix the path (a relative one starts from the current directory, "
            f"{Path.cwd()}); {CLUSTER_HINT}"
        )
    other = sys.modules.get(name)
    if other is not None:
        other_file = getattr(other, "__file__", None)
        if other_file and Path(other_file).resolve() != found.resolve():
            raise PluginError(
                f"{said} and plugin file {other_file} have one file name ({found.name}): rename one of them"
            )
    spec = importlib.util.spec_from_file_location(name, found)
    if spec is None or spec.loader is None:  # pragma: no cover - a .py path always has a source loader
        raise PluginError(f"{said}: {found} cannot be imported as Python source — give a .py file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # before it runs: its dataclasses and pickles look it up there
    spec.loader.exec_module(module)
    return module


def _import_module(spec: str, said: str) -> Any:
    if not re.fullmatch(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*", spec):
        raise PluginError(
            f"{said} is neither a module name (my_team.models) nor the path of a .py file (./my_model.py): "
            "write one of them"
        )
    top = spec.split(".")[0]
    try:
        return importlib.import_module(spec)
    except ModuleNotFoundError as exc:
        if exc.name != top:
            raise
        here = Path.cwd()
        if str(here) not in sys.path and ((here / f"{top}.py").is_file() or (here / top).is_dir()):
            sys.path.append(str(here))  # as `python -m` does, and as Ray puts it on its workers' path
            return importlib.import_module(spec)
        raise PluginError(
            f"{said}: no module named {top!r} here — install the package that provides it (`pip install -e DIR`), "
            f"or give the path of its .py file (./{spec.replace('.', '/')}.py); {CLUSTER_HINT}"
        ) from None


def _import_fix(plugin: Plugin) -> str:
    how = f"`python {plugin.spec}`" if plugin.path else f"`python -c 'import {plugin.spec}'`"
    return f"fix it ({how} shows the traceback)"


def contract_problem(fam: ModelFamily) -> str | None:
    """What a registered model breaks of the contract (:class:`~repeval.models.base.EmbeddingModel`) that is known
    without building it, said with the fix; None when nothing. Building and running it is ``repeval
    validate-model``'s."""
    cls = fam.cls
    if not (isinstance(cls, type) and issubclass(cls, EmbeddingModel)):
        fix = "derive it from EmbeddingModel"
        if isinstance(cls, type) and any(
            f"{k.__module__}.{k.__name__}" == "torch.nn.modules.module.Module" for k in cls.__mro__
        ):
            fix += " and hold the network in an attribute (self.net = MyNet(), loaded in __init__)"
        return f"is not a subclass of repeval.models.EmbeddingModel: {fix}"
    if cls.embed is EmbeddingModel.embed and cls.embed_batch is EmbeddingModel.embed_batch:
        return (
            "has no embed method: define embed(self, audio) returning the clip's frames, a (n_frames, "
            "embedding_dim) float32 array"
        )
    from repeval.models._common import PROCESS_GROUP_ENV

    if cls.process_group not in PROCESS_GROUP_ENV:
        return (
            f"has process_group {cls.process_group!r}, which repeval has no worker environment for: leave it "
            f"'default' (or one of {', '.join(sorted(PROCESS_GROUP_ENV))})"
        )
    for flag in ("light", "uses_gpu"):
        if not isinstance(getattr(cls, flag), bool):
            return f"has {flag} = {getattr(cls, flag)!r}: set it to True or False"
    if not isinstance(cls.embedding_version, str):
        return f'has embedding_version = {cls.embedding_version!r}: make it a string ("1", "2", …)'
    for size in ("sample_rate_hz", "embedding_dim"):
        value = getattr(cls, size, None)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value <= 0):
            return f"has {size} = {value!r}: make it a positive integer (or set it in __init__)"
    try:  # (what a configuration's params may set: its constructor's named parameters)
        model_parameters(cls)
    except (TypeError, ValueError) as exc:
        return f"has a constructor whose parameters cannot be read: {first_line(exc)} — give __init__ a signature"
    return None


def _qualname(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', repr(obj))}"


def first_line(exc: BaseException) -> str:
    """``Type: message`` of ``exc``, its first line (a Ray task's error: the exception raised in the task)."""
    cause = getattr(exc, "cause", None)
    if isinstance(cause, BaseException):  # RayTaskError: what the task raised
        exc = cause
    text = str(exc).strip().splitlines()
    return type(exc).__name__ + (f": {text[0]}" if text else "")
