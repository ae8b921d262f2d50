"""The base of every configuration model, and the names that become file names.

:class:`Strict` models are frozen, and an unknown key is an error that names it and suggests the closest valid one;
a model's ``key_aliases`` are the other spellings it accepts (mir_ref's). A :data:`FileName` is a name that ends up in
store and run-directory paths.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Iterable
from typing import Annotated, Any, ClassVar, NamedTuple, NoReturn, get_args, get_origin

from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationError, model_validator
from pydantic_core import PydanticCustomError

from repeval.config.yaml_keys import Twice, as_fault, key_fault, plain_key_faults
from repeval.registry import ParamProblems, did_you_mean_any, suggestions
from repeval.uri_text import SCHEME_FIX, parseable, scheme_refusal, unread_scheme, windows_fix, windows_unread


# --- reliability (issue 9): names end up in store and run-directory paths ---------------------------
def _file_name(v: str) -> str:
    if any(c in v for c in "/\\\0") or not v.strip("."):
        raise ValueError(
            f"{v!r} cannot name a file (it is part of store and run paths): no '/', '\\' or NUL, not only dots"
        )
    return v


FileName = Annotated[str, AfterValidator(_file_name)]
# --- end reliability --------------------------------------------------------------------------------

#: an environment variable in a path: ``$HOME``, ``${HOME}``, ``%USERPROFILE%``
_VARIABLE = re.compile(r"\$\{[^}]*\}?|\$\w+|%\w+%")


def _local_path(v: str, fix: str = SCHEME_FIX) -> str:
    """A path read from the configuration: ``~`` (a home folder) expanded, as a shell would — the data checks
    expanded it, and the loaders and the store took it as a folder named ``~`` —; an environment variable refused
    (neither expands it: the run would make a folder named ``$HOME``), with the path it stands for here, unless a file
    or folder of that name exists (``a$b``: the path is its name); ``~user`` of no user here refused likewise (a
    mistyped ``~/data`` made a folder named ``~data``); a URI as pyarrow parses it (:func:`repeval.uri_text.parseable`:
    ``file://localhost/p`` as ``file:///p``, a space in its path percent-encoded, ``s3://b/my%20folder/m.csv``, as an
    audio path joined to it is); a URI of a scheme no pyarrow filesystem reads (``https://``) refused, naming those it
    reads, then ``fix``, and a Windows path (``C:\\data``, ``\\\\server\\share``) on another system, naming the fix
    (unless a file or folder of that name exists: :func:`~repeval.uri_text.windows_unread`)."""
    if windows_unread(v):  # 'C:\data', 'C://data': no drive here — unless a file or folder is so named ('D:')
        raise ValueError(windows_fix(v))
    if scheme := unread_scheme(v):  # https://: known now, not when the data is read (--skip-data-check)
        raise ValueError(scheme_refusal(v, scheme, fix))
    if "://" in v:
        return parseable(v)
    path = os.path.expanduser(v) if v.startswith("~") else v
    if path.startswith("~") and not os.path.lexists(path):  # ``~data/x``: no user ``data`` here
        user = v[1:].partition("/")[0]
        raise ValueError(
            f"{v!r}: there is no user {user!r} here for '~{user}' to stand for: write ~/{v[1:]} for a folder in your "
            f"home, or ./{v} for a folder named '~{user}'"
        )
    if _VARIABLE.search(v) and not os.path.lexists(path):
        written = os.path.expandvars(v)
        unset = sorted({m.group(0) for m in _VARIABLE.finditer(written)})
        here = (
            f" ({written} here)"
            if not unset
            else f" ({' and '.join(unset)} {'is' if len(unset) == 1 else 'are'} not set here)"
        )
        raise ValueError(f"{v!r}: environment variables are not expanded in paths: write the path out in full{here}")
    return path


#: what to do with a folder of a scheme repeval does not read (``run.store: ftp://…``)
FOLDER_SCHEME_FIX = "give a local folder, or a bucket's s3:// or gs:// URI"


def _folder_path(v: str) -> str:
    """A folder repeval writes (``run.store``, ``run.runs_dir``) read as :func:`_local_path` reads a path, the fix of a
    scheme no pyarrow filesystem reads said of a folder. The ``--store`` and ``--runs-dir`` options take the same
    (:func:`repeval.cli.common.cli_path`)."""
    return _local_path(v, FOLDER_SCHEME_FIX)


#: a local path or URI of the configuration (:func:`_local_path`)
PathText = Annotated[str, AfterValidator(_local_path)]
#: ... of a folder repeval writes (:func:`_folder_path`)
FolderText = Annotated[str, AfterValidator(_folder_path)]


class Strict(BaseModel):
    """Base model: frozen, and unknown keys are errors with a suggestion."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    #: alternative spellings accepted on input: {alias: canonical field}
    key_aliases: ClassVar[dict[str, str]] = {}
    #: said after the valid keys when an unknown key is close to none of them
    other_keys: ClassVar[str] = ""

    @model_validator(mode="before")
    @classmethod
    def _check_keys(cls, data: Any) -> Any:
        """The given keys under their canonical names; what is wrong with them as keys — an unknown one (with the
        valid key it is closest to), one given in two spellings — is set aside under :data:`_UNKNOWN`, for
        :meth:`_say_unknown_keys` to say with the problems of the keys given."""
        if not isinstance(data, dict):
            return data
        aliases = cls.key_aliases
        out: dict[str, Any] = {}
        given: dict[str, str] = {}  # canonical key → the spelling it was given as
        valid = set(cls.model_fields)
        said: list[tuple[tuple[Any, ...], str]] = []  # (where, what): each unknown key, each key given twice
        meant: list[str] = []  # the valid keys the unknown ones are closest to
        data = cls._lift_strays(data, said)
        for key, value in data.items():
            fault = as_fault(key)
            if isinstance(fault, Twice):  # (the first is kept, for the other keys' checks)
                said.append(((), key_fault(fault)))
                continue
            if fault is not None:  # YAML read it as no name: said as written (on, yes, 1), the file's line with it
                known = aliases.get(fault.text, fault.text) in valid
                said.append(
                    ((), key_fault(fault, valid | set(aliases), "" if known else cls._unknown_hint(fault.text)))
                )
                if not known:
                    continue
                key = fault.text
            canonical = aliases.get(key, key)
            if canonical not in valid and (home := cls._home_of(key)):
                said.append(((), f"unknown key '{key}' here — it is a key of {home}"))
                continue
            if canonical not in valid:
                meant += [aliases.get(hint, hint) for hint in cls._suggest(key)]
                said.append(((), f"unknown key '{key}'{cls._unknown_hint(key)}"))
                continue
            if canonical in out:  # the first is kept, for the other keys' checks
                said.append(((), f"'{key}' and '{given[canonical]}' both given; keep one"))
                continue
            if isinstance(value, dict) and _free_keys(cls.model_fields[canonical].annotation):
                # a mapping of free keys: its keys (a search's all through; a model's params its own, the keys of
                # a value a parameter takes being its data)
                value, found = plain_key_faults(value, (canonical,), deep_names=canonical != "params")
                said += found
            out[canonical] = value
            given[canonical] = key
        if said:  # not a field: validation fails there (extra keys are forbidden), and the keys given are checked
            out[_UNKNOWN] = (said, meant)
        return out

    @classmethod
    def _lift_strays(cls, data: dict[Any, Any], said: list[tuple[tuple[Any, ...], str]]) -> dict[Any, Any]:
        """``data`` with the keys indented one level too deep — under a key holding a model of which they are no key,
        though they are keys here and not given here (``datasets:`` under ``task:``) — moved up where they belong,
        each said at the key it is under; so the rest is checked as meant, not as a missing key and an unknown one."""
        out = dict(data)
        for key, value in data.items():
            model = _model_of(cls.model_fields.get(cls.key_aliases.get(key, key)) if isinstance(key, str) else None)
            if model is None or not isinstance(value, dict):
                continue
            theirs = set(model.model_fields) | set(model.key_aliases)
            here = {cls.key_aliases.get(k, k) for k in out if isinstance(k, str)}
            strays = [
                k for k in value
                if isinstance(k, str) and k not in theirs and cls.key_aliases.get(k, k) in cls.model_fields
                and cls.key_aliases.get(k, k) not in here
            ]  # fmt: skip
            for k in strays:
                said.append(
                    ((key,), f"'{k}' is indented under {key}, but it is a key beside it: line it up with {key}")
                )
                out[k] = value[k]
            if strays:
                out[key] = {k: v for k, v in value.items() if k not in strays}
        return out

    @classmethod
    def _home_of(cls, key: str) -> str | None:
        """Where an unknown ``key`` that is a key of a model under this one belongs (``seeds`` at the top level: run;
        ``batch_size`` in an experiment: an embedding model's or a probe's, each named), or None."""
        homes = [
            f"'{name}'" if _is_model(field.annotation) else f"each '{name}' entry"
            for name, field in cls.model_fields.items()
            if (model := _model_of(field)) is not None and (key in model.model_fields or key in model.key_aliases)
        ]
        if not homes:
            return None
        if len(homes) == 1:
            return f"{homes[0]}: indent it under it"
        return f"{', '.join(homes[:-1])} or {homes[-1]}: indent it under the one it is for"

    @classmethod
    def _suggest(cls, key: str) -> list[str]:
        """The valid keys an unknown ``key`` may have meant: one it misspells by a letter or two; else by its words,
        those sharing the most of them (``embed_gpus`` → ``embed_num_gpus``; ``cpu`` → the three ``*_num_cpus``: each
        stage's, not the first by spelling), up to three; else, or among more, the closest by spelling."""
        choices = sorted(set(cls.model_fields) | set(cls.key_aliases))
        typo = difflib.get_close_matches(key, choices, n=1, cutoff=0.8)  # a letter or two wrong: that key
        if typo:
            return typo
        mine = _words(key)
        shared = {c: len(mine & _words(c)) for c in choices}
        best = max(shared.values(), default=0)
        if best:
            tied = [c for c in choices if shared[c] == best]
            return tied if len(tied) <= 3 else suggestions(key, tied)[:1] or tied[:1]
        return suggestions(key, choices)[:1]

    @classmethod
    def _unknown_hint(cls, key: str) -> str:
        """What follows ``unknown key 'x'``: the valid keys it may have meant (:meth:`_suggest`), else the valid keys."""
        found = cls._suggest(key)
        if found:
            return did_you_mean_any(found)
        return f" (valid keys: {', '.join(sorted(cls.model_fields))}{cls.other_keys})"

    @model_validator(mode="wrap")
    @classmethod
    def _say_unknown_keys(cls, data: Any, handler: Any) -> Any:
        """Unknown keys (and a key given twice, in two spellings) are errors, said together with the problems of the
        keys given (a value of the wrong kind): one run names every problem of the file. A required key missing that an unknown one is the closest spelling
        of is not said again; the model's whole-model checks wait until its keys are right (they would judge it
        without the misspelled key)."""
        try:
            return handler(data)
        except ValidationError as exc:
            found = exc.errors(include_url=False)
            keys = next((e["input"] for e in found if e["loc"] == (_UNKNOWN,)), None)
            if keys is None:
                raise
        said, meant = keys
        raise_faults(
            cls.__name__,
            [Fault("unknown_key", msg, loc, msg) for loc, msg in said]
            + [
                Fault(e["type"], e["msg"], e["loc"], e["input"], e.get("ctx"))
                for e in found
                if e["loc"] != (_UNKNOWN,) and not (e["type"] == "missing" and e["loc"] in {(k,) for k in meant})
            ],
        )


#: where :meth:`Strict._check_keys` sets a mapping's unknown keys aside (no key of a YAML file can be it)
_UNKNOWN = "\x00unknown keys"


#: words of a key that say nothing of what it sets, and words written for the ones the keys use
_FILLER = {"num", "n", "of", "per", "the", "number", "count"}
_SYNONYMS = {
    "worker": "actor", "parallel": "concurrent", "probe": "trial", "train": "trial", "training": "trial",
    "embedding": "embed", "decoding": "decode", "job": "task", "processor": "cpu", "core": "cpu", "layer": "hidden",
    "lr": "learning_rate", "wd": "weight_decay", "l2": "weight_decay", "sr": "sample_rate",
}  # fmt: skip


def _words(key: str) -> set[str]:
    """The words of a key (``embed_num_cpus`` → embed, cpu), singular, each of three letters or more."""
    out = set()
    for word in re.split(r"[^a-z0-9]+", key.lower()):
        word = word[:-1] if word.endswith("s") and len(word) > 3 else word
        for part in _SYNONYMS.get(word, word).split("_"):
            if len(part) >= 3 and part not in _FILLER:
                out.add(part)
    return out


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, Strict)


def _model_of(field: Any) -> type[Strict] | None:
    """The model a field holds, or a list of (``tuple[DatasetConfig, ...]``); None for another value."""
    if field is None:
        return None
    annotation = field.annotation
    if _is_model(annotation):
        return annotation  # type: ignore[no-any-return]
    args = get_args(annotation)
    if get_origin(annotation) is tuple and args and _is_model(args[0]):
        return args[0]  # type: ignore[no-any-return]
    return None


def _free_keys(annotation: Any) -> bool:
    """Whether a field holds a mapping of free keys (a model's ``params``, ``search``), not a configuration model
    (which checks its own keys)."""
    return get_origin(annotation) is dict or any(get_origin(a) is dict for a in get_args(annotation))


class Fault(NamedTuple):
    """One problem of a configuration, said as pydantic says its own: its kind (``unknown_key``, ``param``), its
    message, where (a key path), the value given, and the message's context (a pydantic error's ``ctx``)."""

    kind: str
    message: str
    loc: tuple[str | int, ...] = ()
    value: Any = None
    ctx: dict[str, Any] | None = None


def raise_faults(title: str, faults: Iterable[Fault]) -> NoReturn:
    """A validation error of ``title`` (the model's name) holding ``faults``, each at its own key path."""
    raise ValidationError.from_exception_data(
        title,
        [{"type": PydanticCustomError(f.kind, f.message, f.ctx), "loc": f.loc, "input": f.value} for f in faults],
    )


def raise_at_params(exc: ParamProblems, title: str) -> NoReturn:
    """``exc``'s problems as a validation error at each parameter's own key path (``params.<key>``)."""
    raise_faults(title, [Fault("param", msg, ("params", key), key) for key, msg in exc.problems])
