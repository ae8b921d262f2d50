"""What a partition's fingerprint hashes of a model's params annotated with an ``Enum`` or a dataclass
(:mod:`repeval.models.param_kinds` builds them): one form for a member however it is written, and a form of their own
for the params repeval built otherwise before (an ``Enum`` member given as text, a dataclass given as a mapping), so a
partition stamped then is not reused."""

from __future__ import annotations

import dataclasses
import enum
import itertools
import math
from collections.abc import Iterator
from typing import Any

from repeval.models.param_kinds import _enum, _hint, _member, as_built


def given_as_text_before(cls: type, params: dict[str, Any], built: dict[str, Any] | None = None) -> list[str]:
    """The keys of ``params`` holding an ``Enum`` member the model is built with where repeval gave it the text until
    it built them as members: a member beside another kind (``Color | int``, ``Color | str``, ``Literal['a'] |
    Color``), a list's items (``list[Color]``, ``list[Color | None]``, ``Color | list[Color]``) and a mapping's values
    or keys (``dict[str, Color]``, ``dict[Color, int]``) — only an ``Enum`` alone (``mode: Color``, ``| None`` too) was
    built as its member before; and the keys holding a dataclass, which the model got as a mapping (its fields' members
    too) until it was built (:func:`given_as_mapping_before`). A plugin may read the text otherwise than the member
    (``mode == Color.GREEN`` is false for ``'GREEN'``): rows a partition holds from then are not this model's, so such
    params are fingerprinted in a form of their own (:func:`member_names`) and no earlier writing of them is reused.
    ``built``: ``params`` as :func:`~repeval.models.param_kinds.as_built` gives them, when the caller has them."""
    built = as_built(cls, params) if built is None else built
    out = []
    for key, value in built.items():
        slot = _enum(_hint(cls, key))
        plain = slot is not None and not slot.listed and not slot.beside and not slot.or_list
        if not plain and _holds_member(value):
            out.append(key)
    return out


def given_as_mapping_before(built: dict[str, Any]) -> list[str]:
    """The keys of ``built`` (params as the model gets them) holding a dataclass built from a mapping, which the model
    got as the mapping (a ``dict``) before."""
    return [key for key, value in built.items() if _holds_made(value)]


def dataclass_params(
    cls: type, params: dict[str, Any], built: dict[str, Any] | None = None
) -> tuple[tuple[str, str, bool], ...]:
    """The params of ``params`` holding a dataclass built from the mapping written (:func:`given_as_mapping_before`),
    each with the dataclass' name and whether it holds them in a list or mapping (``('look', 'Look', False)``,
    ``('looks', 'Look', True)``: of a list or mapping of them, the first's name). ``built``: as in
    :func:`given_as_text_before`."""
    built = as_built(cls, params) if built is None else built
    return tuple((key, _first_made(built[key]), not _made(built[key])) for key in given_as_mapping_before(built))


def _first_made(value: Any) -> str:
    if _made(value):
        return type(value).__name__
    inner = value if isinstance(value, list | tuple) else value.values() if isinstance(value, dict) else []
    return next((_first_made(v) for v in inner if _holds_made(v)), "dataclass")


def first_given_as_text(cls: type, params: dict[str, Any]) -> tuple[Any, enum.Enum] | None:
    """The first ``Enum`` member of ``params`` that repeval gave the model as text before
    (:func:`given_as_text_before`), as ``(the text as written, the member)`` — what a conflict shows of it; None
    when there is none."""
    built = as_built(cls, params)
    for key in given_as_text_before(cls, params, built):
        if (found := _first_member(params[key], built[key])) is not None:
            return found
    return None


def _first_member(written: Any, built: Any) -> tuple[Any, enum.Enum] | None:
    if isinstance(built, enum.Enum):
        return written, built
    if isinstance(built, list | tuple) and isinstance(written, list | tuple):
        pairs: Any = zip(written, built, strict=False)
    elif isinstance(built, dict) and isinstance(written, dict):
        pairs = [*((written.get(k), v) for k, v in built.items()), *zip(written, built, strict=False)]
    else:
        return None
    return next((f for w, b in pairs if (f := _first_member(w, b)) is not None), None)


def _holds_member(value: Any) -> bool:
    if isinstance(value, enum.Enum) or _made(value):
        return True
    if isinstance(value, list | tuple):
        return any(_holds_member(v) for v in value)
    return isinstance(value, dict) and any(_holds_member(k) or _holds_member(v) for k, v in value.items())


def _holds_made(value: Any) -> bool:
    if _made(value):
        return True
    if isinstance(value, list | tuple):
        return any(_holds_made(v) for v in value)
    return isinstance(value, dict) and any(_holds_made(v) for v in value.values())


def _made(value: Any) -> bool:
    """Whether ``value`` is a dataclass instance (not a dataclass)."""
    return dataclasses.is_dataclass(value) and not isinstance(value, type)


def member_names(cls: type, params: dict[str, Any], built: dict[str, Any] | None = None) -> dict[str, Any]:
    """``params`` as the model gets them (:func:`as_built`), each ``Enum`` member written as its name: one form for
    a member however it is written (``mode: GREEN``, or its value ``mode: green``), which a partition's fingerprint
    hashes; equal to ``params`` when they name none (their hash as it always was). A member given as text before
    (:func:`given_as_text_before`: ``palette: [GREEN]``, ``shade: GREEN``, ``styles: {a: GREEN}``) is written
    ``{"Color": "GREEN"}``, a form no text takes, so a partition stamped when the model got ``'GREEN'`` conflicts; a
    mapping's key so (``dict[Color, int]``) as ``'{"Color": "GREEN"}'``, and a dataclass as ``{"Look()": {its fields as
    written}}`` (a key no field's name is, where the mapping repeval gave before had its fields). ``built``: as in
    :func:`given_as_text_before`."""
    built = as_built(cls, params) if built is None else built
    text = set(given_as_text_before(cls, params, built))
    return {k: _marked(v, params[k]) if k in text else _named(v) for k, v in built.items()}


def _marked(value: Any, written: Any) -> Any:
    """``value`` with each ``Enum`` member in it (a list's item, a mapping's value or key) as ``{class name: its
    name}`` (a key as that JSON's text) and each dataclass as ``{"module.Class": {field: value}}`` of the fields
    ``written`` names (the mapping it was built from)."""
    if isinstance(value, enum.Enum):
        return {type(value).__name__: value.name}
    if _made(value):
        return {_made_name(value): {f: _marked(v, written[f]) for f, v in _given(value, written).items()}}
    if isinstance(value, list | tuple) and _holds_member(value):
        items = written if isinstance(written, list | tuple) and len(written) == len(value) else [None] * len(value)
        return [_marked(v, w) for v, w in zip(value, items, strict=True)]
    if isinstance(value, dict) and _holds_member(value):
        same = isinstance(written, dict) and len(written) == len(value)
        each = list(written.values()) if same else [None] * len(value)
        return {_marked_key(k): _marked(v, w) for (k, v), w in zip(value.items(), each, strict=True)}
    return value


def _given(value: Any, written: Any) -> dict[str, Any]:
    """The fields of the dataclass instance ``value`` that ``written`` (the mapping it was built from) gives, as built;
    an ``InitVar``, which the instance does not keep, as written."""
    fields = {f.name for f in dataclasses.fields(value)}
    given = written if isinstance(written, dict) else {}
    return {f: getattr(value, f) if f in fields else w for f, w in given.items()}


def _made_name(value: Any) -> str:
    """A dataclass instance's class as its fingerprint names it: ``Look()``, a form no field's name takes (nor the
    plugin's file name, which may change)."""
    return f"{type(value).__qualname__}()"


def _marked_key(key: Any) -> Any:
    """A mapping's key as :func:`_marked` writes it: an ``Enum`` member as the JSON text of ``{class name: its name}``
    (a text no member's name is: ``{"Color": "GREEN"}``), any other key as it is."""
    return f'{{"{type(key).__name__}": "{key.name}"}}' if isinstance(key, enum.Enum) else key


def mapping_forms(
    cls: type, params: dict[str, Any], most: int = 64, built: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    """The params a partition's fingerprint hashed when repeval gave a dataclass param (``look: Look``) as the mapping
    written — its fields' ``Enum`` members as members (``{"Color": "GREEN"}`` in the hash), or as written where it
    gave them as text too (``looks: list[Look]``) —, before it built the dataclass: none when no param holds one. Each
    other param holding a member given as text before is in either form: as hashed now (``palette: [GREEN]``, built
    as members then too) or as written (``either: GREEN``, given as text then); each mix of them, up to ``most`` forms
    in all (beyond, each in its first form or each as written). ``built``: as in :func:`given_as_text_before`."""
    built = as_built(cls, params) if built is None else built
    keys = given_as_mapping_before(built)
    if not keys:
        return []
    text = set(given_as_text_before(cls, params, built))
    form = {k: _marked(v, params[k]) if k in text else _named(v) for k, v in built.items()}
    for key in keys:
        as_dict = _as_mapping(built[key], params[key])
        form[key] = _marked(as_dict, params[key]) if _holds_member(as_dict) else params[key]
    either = [k for k in form if k in text and form[k] != params[k]]
    combos: Iterator[tuple[bool, ...]] = itertools.product((False, True), repeat=len(either))
    if 2 ** len(either) > most:
        combos = iter([(False,) * len(either), (True,) * len(either)])
    return [{**form, **{k: params[k] for k, written in zip(either, combo, strict=True) if written}} for combo in combos]


def _as_mapping(value: Any, written: Any) -> Any:
    """``value`` with each dataclass in it as the mapping of the fields ``written`` names (what the model got)."""
    if _made(value):
        return {f: _as_mapping(v, written[f]) for f, v in _given(value, written).items()}
    if isinstance(value, list | tuple) and isinstance(written, list | tuple) and len(written) == len(value):
        return [_as_mapping(v, w) for v, w in zip(value, written, strict=True)]
    if isinstance(value, dict) and isinstance(written, dict) and len(written) == len(value):
        return {k: _as_mapping(v, w) for (k, v), w in zip(value.items(), written.values(), strict=True)}
    return value


def member_writings(
    cls: type, params: dict[str, Any], most: int = 64, built: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    """Each way a configuration may have written ``params``' ``Enum`` members (a list's items each): by a name of the
    member (an alias too) or by its value — where the value names that member, not another's name (``A = 'B'``) — as
    a partition's fingerprint hashed them before members were hashed by name (:func:`member_names`, the first of
    them). Mixed writings (``palette: [green, RED]``) are among them, up to ``most`` in all; beyond, each member by its
    name or each by its value. (Only those of params without a member given as text before are reused:
    :func:`given_as_text_before`; the others name why a partition stamped under one conflicts.) ``built``: as there."""
    built = as_built(cls, params) if built is None else built
    spots: list[tuple[str, int | None, list[Any]]] = [
        (k, None, _forms(v)) for k, v in built.items() if isinstance(v, enum.Enum)
    ]
    spots += [
        (k, i, _forms(x))
        for k, v in built.items()
        if isinstance(v, list | tuple)
        for i, x in enumerate(v)
        if isinstance(x, enum.Enum)
    ]
    combos: Iterator[tuple[Any, ...]] = itertools.product(*(forms for _, _, forms in spots))
    if math.prod(len(forms) for _, _, forms in spots) > most:
        combos = iter([tuple(forms[0] for _, _, forms in spots), tuple(forms[-1] for _, _, forms in spots)])
    out = []
    for combo in combos:
        written = {k: list(v) if isinstance(v, list | tuple) else v for k, v in built.items()}
        for (key, i, _), form in zip(spots, combo, strict=True):
            if i is None:
                written[key] = form
            else:
                written[key][i] = form
        out.append(written)
    return out


def _forms(member: enum.Enum) -> list[Any]:
    """The ways a configuration names ``member``: its name, its aliases' names, and its value when that names it."""
    kind = type(member)
    names: list[Any] = [n for n, m in kind.__members__.items() if m is member]
    return names + [member.value] * (_member(kind, member.value) is member and member.value not in names)


def _named(value: Any) -> Any:
    """``value`` with an ``Enum`` member (or each of a list's) as its name, and a tuple (``tuple[int, int]``, built of
    the list written) as that list, as the fingerprint hashed it before tuples were built; anything else as it is."""
    if isinstance(value, enum.Enum):
        return value.name
    if isinstance(value, tuple) or (isinstance(value, list) and any(isinstance(v, enum.Enum | tuple) for v in value)):
        return [_named(v) for v in value]
    return value
