"""Load and validate a YAML configuration; turn validation failures into key-path errors."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from repeval.config.schema import Config
from repeval.config.stdin import STDIN, stdin_text
from repeval.config.yaml_keys import Loader
from repeval.json_keys import date_values, json_text, other_keys, sorted_json
from repeval.registry import did_you_mean


class ConfigError(ValueError):
    """A configuration is invalid. ``problems`` holds one ``key.path: message`` per fault."""

    def __init__(self, problems: list[str], source: str | None = None) -> None:
        self.problems = problems
        self.source = source
        where = f"{source}: " if source else ""
        if len(problems) == 1:
            text = f"{where}{problems[0]}"
        else:
            text = f"{where}{len(problems)} problems:\n" + "\n".join(f"  - {p}" for p in problems)
        super().__init__(text)


def _key_path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in {"function-after", "function-before", "function-wrap"} or "[" in str(part):
            # pydantic's internal validator/union tags are not key names
            continue
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"


def _format(err: ValidationError) -> list[str]:
    problems = []
    for e in err.errors():
        msg = e["msg"]
        msg = msg.removeprefix("Value error, ")
        loc = tuple(p for p in e["loc"] if not (isinstance(p, str) and p in {"str", "int", "list[...]", "tuple[...]"}))
        path = _key_path(loc)
        if e["type"] == "missing":
            msg = "required key is missing"
        elif e["type"] == "literal_error":
            expected = e.get("ctx", {}).get("expected", "")
            msg = f"got {e.get('input')!r}; expected {expected}"
            if isinstance(e.get("input"), str):  # a misspelled dataset type, task type, aggregation, …
                msg += did_you_mean(e["input"], re.findall(r"'([^']*)'", expected))
        elif e["type"] in ("tuple_type", "list_type"):  # reliability (issue 9): name the fix, not pydantic's type
            msg = _not_a_list(e.get("input"))
        elif e["type"] in ("model_type", "dict_type", "model_attributes_type"):  # not "instance of TaskConfig"
            msg = _not_a_mapping(e.get("input"))
        elif e["type"] in _BOUNDS and _scalar(e.get("input")):  # the value given, with the bound it breaks
            msg += f", got {e['input']!r}"
        else:
            msg += _number_hint(e["type"], loc, e.get("input"))
            if e["type"] in _KINDS and _scalar(e.get("input")) and " — got" not in msg:
                msg += f", got {e['input']!r}"
        # a whole-file check whose message starts with the key path it is about: that path, not "(top level)"
        line = msg if not loc and msg.startswith(("experiments[", "run.", "plugins[")) else f"{path}: {msg}"
        if line not in problems:
            problems.append(line)
    return _said_once(_said_once(problems, _KEY_PLACE), _EXPERIMENT_PLACE)


def _number_hint(kind: str, loc: tuple[Any, ...], value: Any) -> str:
    """The fix for a number written as something else: a list of values for a probe's setting (one value; several are
    a ``search: {grid: ...}``), or an integer in exponent notation (YAML reads ``1e3`` as text)."""
    if kind not in ("int_type", "float_type", "int_parsing", "float_parsing"):
        return ""
    key = str(loc[-1]) if loc else ""
    if isinstance(value, list) and len(loc) >= 2 and "downstream_models" in loc:
        values = ", ".join(str(v) for v in value[:4]) + (", …" if len(value) > 4 else "")
        return (
            f" — got a list ({values}): a probe's {key} takes one value; to train one configuration per value, "
            f"write it as a grid axis, search: {{grid: {{{key}: [{values}]}}}}"
        )
    if kind == "int_parsing" and isinstance(value, str) and re.fullmatch(r"[0-9.]+[eE][+-]?[0-9]+", value.strip()):
        try:
            number = float(value)
        except ValueError:
            return ""
        if number.is_integer():
            return f" — got the text {value!r} (YAML reads an exponent without a dot as text): write {int(number)}"
    return ""


#: pydantic's errors of a value out of bounds, and of a value of another kind, each said with the value given
_BOUNDS = {"greater_than", "greater_than_equal", "less_than", "less_than_equal", "too_short", "too_long"}
_KINDS = {"int_parsing", "int_type", "float_parsing", "float_type", "bool_parsing", "bool_type", "string_type",
          "int_from_float"}  # fmt: skip


def _scalar(value: Any) -> bool:
    return isinstance(value, str | int | float | bool) or value is None


def _not_a_mapping(value: Any) -> str:
    """The fix for a value where a mapping (``key: value`` lines) belongs: a list (its keys written as list items,
    each with a ``- ``), or a single value."""
    if isinstance(value, list):
        return f"expected a mapping (key: value lines), got a list of {len(value)} — remove the '- ' before its keys"
    if value is None:
        return (
            "expected a mapping (key: value lines), got no value (the key is empty): write its keys under it, indented"
        )
    shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
    return (
        f"expected a mapping (key: value lines), got {type(value).__name__} {shown} — write its keys under it, indented"
    )


def _not_a_list(value: Any) -> str:
    """The fix for a value where a list belongs; a mapping (a YAML list item written without its ``-``) or an
    empty key is named as such, not printed whole."""
    if value is None:
        return (
            "expected a list, got no value (the key is empty): write its entries under it, each starting with '- ' "
            "([] for none)"
        )
    if isinstance(value, dict):
        keys = ", ".join(str(k) for k in list(value)[:4]) + (", …" if len(value) > 4 else "")
        return f"expected a list, got a mapping (keys: {keys}) — make it a list item: start its first key with '- '"
    shown = repr(value) if len(repr(value)) <= 80 else repr(value)[:77] + "..."
    return f"expected a list (e.g. [{value!s}]), got {type(value).__name__} {shown}"


def parse_config(data: Any, source: str | None = None, smoke_test: bool = False, files: bool = True) -> Config:
    """Validate an already-parsed mapping — as a smoke test's (``--smoke-test``: as ``run.smoke_test`` validates it)
    when ``smoke_test``; not ``files`` (``repeval validate --skip-data-check``): the files deformation steps read
    (``sounds_path``, ``ir_path``) need not exist here. Raises :class:`ConfigError`."""
    if not isinstance(data, dict):
        raise ConfigError(["the file must be a mapping with an 'experiments:' list"], source)
    context = {key: True for key, on in (("smoke_test", smoke_test), ("skip_files", not files)) if on}
    try:
        return Config.model_validate(data, context=context or None)
    except ValidationError as exc:
        raise ConfigError(_format(exc), source) from None


def _near_config(p: Path) -> str:
    """The fix of a configuration path that is no file: a YAML file beside it of a name close to its own
    (``quickstart.yml`` for ``quickstart.yaml``, a letter off), else "check the path"."""
    import difflib

    try:
        names = [q.name for q in p.parent.iterdir() if q.suffix in (".yaml", ".yml") and q.is_file()]
    except OSError:  # no such folder, or not readable: nothing to suggest
        names = []
    near = difflib.get_close_matches(p.name, names, n=1, cutoff=0.8)
    return f"did you mean {p.parent / near[0]}?" if near else "check the path"


def load_config(path: str | Path, smoke_test: bool = False, files: bool = True) -> Config:
    """Read a YAML file (``-``: standard input, :data:`STDIN`) safely and validate all of it before anything runs
    (``smoke_test``, ``files``: :func:`parse_config`)."""
    if str(path) == STDIN:
        return _parse_text(stdin_text(), "stdin", smoke_test, files)
    p = Path(path)
    if p.is_dir():
        found = sorted(q.name for q in p.iterdir() if q.suffix in (".yaml", ".yml") and q.is_file())
        hint = f" in it: {', '.join(found[:5])}{', …' if len(found) > 5 else ''}" if found else ""
        raise ConfigError([f"{p} is a directory; give a YAML config file{hint}"])
    if not p.is_file():
        raise ConfigError([f"config file not found — {_near_config(p)}"], str(p))  # the path once: the source names it
    return _parse_text(p.read_text(encoding="utf-8"), str(p), smoke_test, files)


def _parse_text(text: str, source: str, smoke_test: bool, files: bool) -> Config:
    """The configuration YAML ``text`` (of ``source``: a file's path, ``stdin``) holds, validated (:func:`parse_config`);
    YAML it is not said with the line and the usual slip."""
    try:
        data = yaml.load(text, Loader=Loader)  # a SafeLoader (yaml_keys.Loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = str(getattr(exc, "problem", exc))
        shown, line = "", ""
        if mark is not None and mark.line < len(lines := text.splitlines()):
            line = lines[mark.line]
            shown = f" (line {mark.line + 1}: {_shown_line(line, mark.column)})"
        before = line[: mark.column] if mark is not None else ""
        raise ConfigError([f"not valid YAML{where}: {problem}{shown}{_yaml_hint(problem, before)}"], source) from None
    return parse_config(data, source, smoke_test, files)


def _shown_line(line: str, column: int = 0) -> str:
    """A line of a file YAML cannot read, as an error quotes it: its first 80 characters, without the indentation —
    unless it holds a tab, shown as ``→`` with the spaces before it, so that the user sees where it is (stripped, a
    tab of the indentation left nothing to see), and, when the error's ``column`` lies past them, the 80 around it."""
    if "\t" not in line:
        return repr(line.strip()[:80])
    text, one = line.rstrip().replace("\t", "→"), line.count("\t") == 1
    start = column - 60 if column >= 80 else 0
    shown = ("…" if start else "") + text[start : start + 80]
    return f"{shown!r}, → {'is the tab' if one else 'marks each tab'}"


def _yaml_hint(problem: str, before: str = "") -> str:
    """The usual slip behind a YAML parser's ``problem`` (``before``: the line up to where it stopped), and its fix."""
    if "'\\t'" in problem:
        if before.strip():  # after a key, a value or a '-': not the indentation
            return " — YAML does not allow a tab there: write spaces"
        return " — YAML does not allow tabs in indentation: indent with spaces"
    if "mapping values are not allowed" in problem:
        return (
            " — a key needs a space after its colon (name: x), and a value holding ': ' needs quotes; check this line "
            "and the one above it"
        )
    if "expected <block end>" in problem or "did not find expected" in problem:
        return (
            " — check this line's indentation against the lines above it: the keys of one mapping line up, and a list "
            "item's keys line up after its '- '"
        )
    return ""


def config_hash(obj: Any, keys_as_text: bool = False) -> str:
    """A stable short hash of any JSON-serialisable configuration fragment: a model's as its JSON dump, unless a
    mapping in it has a key that is not a string (``{1: x}``, which the dump writes as ``{'1': x}``) or a value is a
    date (``2024-01-01``, which it writes as the text): :func:`sorted_json` tells each from its text. ``keys_as_text``:
    the hash as repeval computed it before (such a key or date hashed as its text), to recognise a store partition
    stamped then."""
    if hasattr(obj, "model_dump"):
        raw = obj.model_dump()
        obj = raw if (other_keys(raw) or date_values(raw)) and not keys_as_text else obj.model_dump(mode="json")
    text = json_text(obj, sort_keys=True) if keys_as_text else sorted_json(obj)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# --- reliability (issue 9): local data paths are checked before anything runs ------------------------
def check_data_paths(cfg: Config, source: str | None = None, unreached_fix: str | None = None) -> None:
    """Raise :class:`ConfigError` naming every dataset key whose local path does not exist, a mirdata dataset without
    ``dir`` whose data is not in mirdata's default folder or without ``index_path`` whose mirdata index is not on
    this machine, and the mirdata split mistakes its load would stop on.

    Local paths are checked, and a catalog's manifest at a URI (``s3://``, ``file://``, any pyarrow filesystem) is
    read through its filesystem as the load reads it (:func:`~repeval.datasets.manifest_check.reach_problem`; other
    URIs are not checked; one it cannot reach named with ``unreached_fix`` after the fix, default ``repeval validate``'s
    --skip-data-check); relative paths are resolved from the current directory, as the loaders do.
    :func:`load_config` does not call this (a config stays valid on a machine without the data); the CLI does, before
    any compute.
    """
    problems = []
    for ei, exp in enumerate(cfg.experiments):
        for di, ds in enumerate(exp.datasets):
            for key, is_dir in (("manifest", False), ("dir", True), ("index_path", False)):
                value = getattr(ds, key, None)
                if not value:
                    continue
                remote = "://" in str(value)
                if key == "manifest" and ds.type == "catalog" and (remote or Path(str(value)).expanduser().is_file()):
                    problems += [
                        f"experiments[{ei}].datasets[{di}].{msg}"
                        for msg in _manifest_problems(ds, exp.task, unreached_fix)
                    ]
                    continue
                if remote:
                    continue
                path = Path(str(value)).expanduser()
                if path.is_dir() if is_dir else path.exists():
                    continue
                what = "directory" if is_dir else "file"
                hint, beside = _path_hint(str(value), path, is_dir, source)
                problems.append(  # found beside the config file: nothing to fetch or write
                    f"experiments[{ei}].datasets[{di}].{key}: no such {what}: {path.resolve()} — {hint}"
                    + ("" if beside else f", or {_fetch_hint(ds, key, path, exp.task.type)}")
                )
            if ds.type != "catalog":  # read through mirdata: its data and index, and its splits when here
                from repeval.datasets import mirdata_check as mc

                if mc.reads_through_mirdata(ds):
                    if default := mc.default_data_problem(ds) or mc.default_index_problem(ds):
                        problems.append(f"experiments[{ei}].datasets[{di}].{default}")
                    problems += [f"experiments[{ei}].datasets[{di}].{msg}" for msg in mc.split_problems(ds, exp.task)]
    if problems:
        raise ConfigError(_said_once(problems), source)


def _manifest_problems(ds: Any, task: Any, unreached_fix: str | None = None) -> list[str]:
    """What the load of a catalog would refuse of its manifest, local or at a URI (one that cannot be reached or does
    not exist named alone), and of its ``split_type: all`` split column (:func:`_fixed_fold_splits`)."""
    from repeval.datasets.manifest_check import VALIDATE_FIX, manifest_problems, reach_problem

    if "://" in str(ds.manifest) and (unreached := reach_problem(str(ds.manifest), fix=unreached_fix or VALIDATE_FIX)):
        return [unreached]
    found = manifest_problems(ds, task)
    if not found and (fixed := _fixed_fold_splits(ds)):
        found.append(f"split_column: {fixed}")
    return found


#: the place of a problem of a dataset (:func:`check_data_paths`), and of an experiment (:func:`_format`)
_DATASET_PLACE = re.compile(r"^(experiments\[\d+\]\.datasets\[\d+\])(\..*)$", re.S)
_EXPERIMENT_PLACE = re.compile(r"^(experiments\[\d+\])([.:].*)$", re.S)
#: the place of a key's fault that names its line (:func:`repeval.config.yaml_keys.key_fault`): a mapping several
#: places share (a YAML alias, a ``<<`` merge) says it at each
_KEY_PLACE = re.compile(r"^(\S+?)(: key .*\blines? \d+.*)$", re.S)


def _said_once(problems: list[str], where: re.Pattern[str] = _DATASET_PLACE) -> list[str]:
    """``problems`` (each ``<place><what>``, ``where`` matching the two) with those of one dataset (or experiment)
    that several experiments share (a YAML anchor, as the README advises) said once, naming the other places: a
    manifest missing from three experiments, a deformation of the thesis' six, was as many long lines saying the
    same. A problem of no place said again is said once."""
    alike: dict[str, list[str]] = {}
    for p in problems:
        m = where.match(p)
        place, what = (m.group(1), m.group(2)) if m else ("", p)
        if place not in (places := alike.setdefault(what, [])):
            places.append(place)
    out = []
    for what, places in alike.items():
        others = [p for p in places[1:] if p]
        more = f" and {len(others) - _PLACES_SAID} more" if len(others) > _PLACES_SAID else ""
        out.append(
            f"{places[0]}{what}" + (f" (the same at {', '.join(others[:_PLACES_SAID])}{more})" if others else "")
        )
    return out


#: the other places of a problem said by name (:func:`_said_once`): a block 1,000 experiments share is not a line
#: of 1,000 places
_PLACES_SAID = 5


#: what a k-fold dataset's split column does (:func:`_fixed_fold_splits`, :func:`unchecked_fold_splits`)
_FOLD_SPLITS = (
    "split_type: all rotates k folds over the tracks whose split_column cell is empty; a track the column gives a "
    "split keeps it in every fold"
)
_FOLD_FIX = "drop split_column to rotate stratified folds over every track, or use split_type: single"


def _split_cells(ds: Any) -> tuple[int, int]:
    """``(filled, rows)``: how many rows of the manifest's ``split_column`` give their track a split, of how
    many rows with a track id (a blank line, a spreadsheet's empty rows and a row without an id are no track). Reads
    those two columns, streaming."""
    import contextlib

    import pyarrow.compute as pc

    from repeval.datasets.catalog import iter_manifest, manifest_columns
    from repeval.datasets.manifest_check import matched_columns

    ds = matched_columns(ds, manifest_columns(str(ds.manifest), ds.delimiter))

    def given(column: Any) -> Any:
        return pc.not_equal(pc.utf8_trim_whitespace(pc.fill_null(column, "")), "")

    filled = total = 0
    columns = list(dict.fromkeys([ds.track_id_column, ds.split_column]))
    with contextlib.closing(iter_manifest(str(ds.manifest), columns, delimiter=ds.delimiter)) as batches:
        for _, batch in batches:
            track = given(batch.column(ds.track_id_column))
            filled += int(pc.sum(pc.and_(track, given(batch.column(ds.split_column)))).as_py() or 0)
            total += int(pc.sum(track).as_py() or 0)
    return filled, total


def _fixed_fold_splits(ds: Any) -> str | None:
    """The problem of a ``split_type: all`` catalog whose manifest's ``split_column`` gives every track its
    split: its folds cannot rotate, and the load would stop (:func:`repeval.datasets.load.check_rotation`)."""
    if ds.split_type != "all" or not ds.split_column:
        return None
    filled, total = _split_cells(ds)
    if not total or filled < total:
        return None
    return (
        f"split_type is all, but every row of the manifest's column {ds.split_column!r} gives its track a split, "
        f"so the {ds.n_folds} folds cannot rotate (each would train and test the same tracks) — {_FOLD_FIX}"
    )


def _unread(ds: Any) -> bool:
    """Whether ``repeval validate`` could not read a catalog's manifest: at a URI it cannot reach from here (which
    :func:`check_data_paths` names)."""
    from repeval.datasets.manifest_check import reach_problem

    return "://" in str(ds.manifest) and reach_problem(str(ds.manifest)) is not None


def fold_split_warnings(cfg: Config, data_checked: bool) -> list[str]:
    """What ``repeval validate`` warns of each ``split_type: all`` catalog with a ``split_column`` (every row filled
    is an error of :func:`check_data_paths`): some rows filled — those tracks are tested in no fold or in every one;
    a manifest not read (``data_checked`` false: ``--skip-data-check``; else one at a URI not reached) — whether the folds can
    rotate depends on its cells, which the run reads."""
    out = []
    for ei, exp in enumerate(cfg.experiments):
        for di, ds in enumerate(exp.datasets):
            if ds.type != "catalog" or ds.split_type != "all" or not ds.split_column:
                continue
            where = f"experiments[{ei}].datasets[{di}].split_column"
            if not data_checked or _unread(ds):
                out.append(
                    f"{where}: {_FOLD_SPLITS} — if every row of column {ds.split_column!r} has a split the run stops "
                    f"at the load: {_FOLD_FIX}"
                )
                continue
            filled, total = _split_cells(ds)
            if 0 < filled < total:
                out.append(
                    f"{where}: {filled} of {total} rows of the manifest's column {ds.split_column!r} give their track "
                    f"a split: {_FOLD_SPLITS}, so those tracks are tested in no fold or in every one and the mean "
                    f"over folds is not a k-fold estimate — {_FOLD_FIX}"
                )
    return out


def decimal_warnings(cfg: Config, data_checked: bool) -> list[str]:
    """What ``repeval validate`` warns of each regression catalog whose manifest's first target cells look like
    numbers with a decimal comma read with a decimal point (:func:`~repeval.datasets.manifest_check.decimal_comma_warning`);
    nothing with ``--skip-data-check`` or of a manifest at a URI not reached (the load notes it)."""
    from repeval.datasets.manifest_check import decimal_comma_warning

    out = []
    for ei, exp in enumerate(cfg.experiments):
        for di, ds in enumerate(exp.datasets):
            if not data_checked or ds.type != "catalog" or _unread(ds):
                continue
            if warning := decimal_comma_warning(ds, exp.task):
                out.append(f"experiments[{ei}].datasets[{di}].{warning}")
    return out


def _path_hint(value: str, path: Path, is_dir: bool, source: str | None) -> tuple[str, bool]:
    """How to fix a local data path that does not exist: where relative paths start from, and the slip that makes a
    right path wrong — writing it relative to the config file (it is read from the current directory; a path with
    an environment variable is refused when the file is read: :data:`repeval.config.base.PathText`); and whether it
    is there, beside the config file."""
    if not is_dir and (render := _render_left(path)):
        return render, True
    if not path.is_absolute() and source is not None:
        beside = Path(source).parent / path
        if beside.resolve() != path.resolve() and (beside.is_dir() if is_dir else beside.exists()):
            return (
                f"relative paths start from the current directory ({Path.cwd()}), not the config file's folder, "
                f"where it is ({beside.resolve()}): run repeval from {Path(source).parent.resolve()} or write the "
                "path from here or in full"
            ), True
    return f"fix the path (relative paths start from {Path.cwd()})", False


def _render_left(path: Path) -> str | None:
    """Where a manifest ``repeval data render`` wrote is, when it is not at ``path``: a render in the other format
    listing other clips kept it as ``<name>.replaced`` (the set is now the other manifest's); an interrupted render set
    it aside (the next render of its folder finishes it). ``None``: no render's trace."""
    from repeval.datasets.render_output import last_replaced, other_format, set_aside

    other = other_format(path)
    if other is None:
        return None
    if other.is_file():
        kept = last_replaced(path)
        why = (
            f"`repeval data render --format {other.suffix[1:]}` kept this one as {kept.name}, which lists clips "
            "rendered before"
            if kept is not None
            else "the same folder's manifest in the other format"
        )
        return f"{other} is beside it ({why}): set manifest: {other}"
    if (aside := set_aside(path)).is_file():
        return (
            f"a `repeval data render` into {path.parent} was interrupted, its manifest set aside as {aside.name}"
            ": render it again (the same command) to finish it"
        )
    return None


#: what ``repeval data render --kind`` writes for each task type, and the label columns of its manifest
RENDER_KINDS = {
    "multiclass_classification": ("notes", {"instrument", "pitch_class", "pitch", "dynamics"}),
    "multilabel_classification": ("mixtures", {"instruments"}),
    "key_estimation": ("keys", {"key"}),
}


def _fetch_hint(ds: Any, key: str, path: Path, task_type: str | None = None) -> str:
    """How to get a missing data path: mirdata data sets download, repeval's own loaders are manual downloads, and
    a catalog's ``manifest.csv`` (or ``.parquet``) with a label column the renderer writes the ``repeval data render``
    command that writes one for the task's type there."""
    from repeval.datasets.mirdata_check import reads_through_mirdata

    if key == "dir" and reads_through_mirdata(ds):
        return f"fetch it with `repeval data download {ds.name} --data-home {path}` (needs network access)"
    if key == "index_path":  # (only a dataset read through mirdata takes one)
        return (
            f"fetch mirdata's own index with `repeval data download {ds.name} --index-only` (needs network access) "
            "and remove index_path: a dataset without it reads that one"
        )
    if ds.type == "custom" and key == "dir":
        return f"download '{ds.name}' by hand into it (`repeval datasets {ds.name}` gives the source and layout)"
    if ds.type == "catalog" and key == "dir":
        return (
            "point it at the folder the manifest's relative audio paths start from, or remove it (they then start "
            "from the manifest's folder)"
        )
    kind, columns = RENDER_KINDS.get(task_type or "", ("", set()))
    fmt = {"manifest.csv": "", "manifest.parquet": " --format parquet"}.get(path.name)
    rendered = getattr(ds, "label_column", None) in columns and fmt is not None and not (kind == "notes" and fmt)
    if rendered:  # (notes are rendered with a CSV manifest only)
        folder = Path(str(ds.manifest)).parent
        what = {"notes": "the quickstart's notes", "mixtures": "instrument mixtures", "keys": "chord progressions"}
        return (
            f"write it first: `repeval data render {folder}{'' if kind == 'notes' else ' --kind ' + kind}{fmt}` "
            f"renders {what[kind]} with that manifest"
        )
    return (
        "write the manifest first (`repeval data render DIR` renders the quickstart's notes; `--kind mixtures` "
        "instrument mixtures for tagging, `--kind keys` chord progressions for key estimation)"
    )


# --- end reliability ---------------------------------------------------------------------------------
