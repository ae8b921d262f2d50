"""A parameter's kind from its constructor annotation, for the ``params`` whose default says nothing of it (None):
hf-audio's ``layers: list[int] | int | None = None`` refuses ``layers: last`` at validation, not with a TypeError
in every embedding actor."""

from __future__ import annotations

import collections.abc
import dataclasses
import enum
import functools
import inspect
import types
import typing
from collections.abc import Callable, Sequence
from typing import Any

from repeval.models.param_fields import Unresolved, field_hints, resolved, unresolved_error
from repeval.models.param_said import among, close_to, either_of, items_error, literals
from repeval.models.param_values import _Choice, _fits, _kinds, _said, fixed_why, length_error, sequence_of
from repeval.words import counted, named

_UNIONS = (typing.Union, types.UnionType)


def annotated_kind_error(cls: type, key: str, value: Any) -> str | None:
    """Why ``value`` cannot stand for ``cls.__init__``'s parameter ``key`` as annotated (None when it can, or when the
    annotation is missing or of a kind not checked here: a path, a mapping, ``Any``, a class of the model's own)."""
    said = _kinds(_hint(cls, key))
    if said is None or any(_fits(value, kind) for kind in said):
        return None
    names = [n for kind in said if kind is not type(None) for n in _said(kind)] + ["null"] * (type(None) in said)
    return f"expected {either_of(names)}, got {value!r}{fixed_why(value, said)}"


def literal_error(cls: type, name: str, key: str, value: Any) -> str | None:
    """Why ``value`` is not one of the values ``cls.__init__``'s parameter ``key`` is annotated ``Literal[...]`` with
    (``Literal['mean', 'max'] | None`` takes null too, ``Literal['auto'] | int`` an integer too, ``list[Literal['a',
    'b']]`` a list of them), naming the model ``name``: a plugin's ``pooling: 'median'`` was refused by its constructor
    in every embedding actor, not by ``repeval validate``; None when it is one (or the annotation is no ``Literal``:
    :func:`literal_annotated`, or names a kind not checked here beside it)."""
    return _literal_error(_hint(cls, key), f"{name}'s {key}", value)


def _literal_error(hint: Any, param: str, value: Any) -> str | None:
    if value is None and _optional_list(hint) is not None:  # ``list[Literal['a', 'b']] | None``: null too
        return None
    hint = _optional_list(hint) or hint
    if typing.get_origin(hint) is list and (allowed := literals(typing.get_args(hint)[:1])):
        said = [repr(v) for v in allowed]
        return items_error(param, value, lambda v: among(v, allowed), said, allowed, repr(value))
    parts = typing.get_args(hint) if typing.get_origin(hint) in _UNIONS else (hint,)
    allowed = literals(parts)
    others = [p for p in parts if typing.get_origin(p) is not typing.Literal and p is not type(None)]
    each = [_kinds(p) for p in others]  # the kinds beside it (``Literal['auto'] | int``: an integer too)
    kinds = None if None in each else [k for ks in each if ks for k in ks]
    if not allowed or kinds is None:
        return None
    allowed += [None] * any(p is type(None) for p in parts)
    if among(value, allowed) or any(_fits(value, kind) for kind in kinds):
        return None
    said = [repr(v) for v in allowed if v is not None] + [n for kind in kinds for n in _said(kind)]
    return f"{param} takes {either_of(said + ['null'] * (None in allowed))}, got {value!r}{close_to(value, allowed)}"


def literal_annotated(cls: type, key: str) -> bool:
    """Whether ``cls.__init__``'s parameter ``key`` is annotated with a ``Literal`` (:func:`literal_error` judges
    its value then, not its default's kind: ``Literal['auto'] | int = 'auto'`` takes 1024)."""
    hint = _hint(cls, key)
    hint = _optional_list(hint) or hint
    parts = typing.get_args(hint) if typing.get_origin(hint) in (*_UNIONS, list) else (hint,)
    return bool(literals(parts))


def _optional_list(hint: Any) -> Any:
    """The ``list[...]`` of ``list[...] | None`` (None for any other annotation)."""
    if typing.get_origin(hint) not in _UNIONS:
        return None
    parts = [p for p in typing.get_args(hint) if p is not type(None)]
    return parts[0] if len(parts) == 1 and typing.get_origin(parts[0]) is list else None


class _EnumSlot(typing.NamedTuple):
    """Where an ``Enum`` stands in a param's annotation: ``kind``, the class; ``listed``, the items of a list name its
    members (``list[Color]``); ``nullable``, null is allowed (``| None``); ``beside``, the kinds the annotation allows
    beside it (``Color | int``: ``[int]``; ``Literal['a'] | Color``: a :class:`_Choice`); ``items_beside``, those a
    list's items may be beside it (``list[Color | int]``: ``[int]``; ``list[Color | None]``: null); ``or_list``, a
    member or a list of them (``Color | list[Color]``)."""

    kind: type[enum.Enum]
    listed: bool
    nullable: bool
    beside: list[Any]
    items_beside: tuple[Any, ...] = ()
    or_list: bool = False


def _enum(hint: Any) -> _EnumSlot | None:
    """The ``Enum`` ``hint`` names — alone or in a union (``Color``, ``Color | None``, ``Color | int``, ``Literal['a']
    | Color``), or as a list's items (``list[Color]``, ``list[Color | int]``, ``list[Color | None]``,
    ``Sequence[Color]``, ``tuple[Color, ...]``; ``| None`` too), or either (``Color | list[Color]``); None for any
    other annotation, or one with a kind beside it not checked here (a path, ``Any``)."""
    parts = typing.get_args(hint) if typing.get_origin(hint) in _UNIONS else (hint,)
    rest = [p for p in parts if p is not type(None)]
    found: list[tuple[Any, _EnumSlot | None]] = [(p, None) for p in rest if _is_enum(p)]
    found += [(p, item) for p in rest if (item := _items(p)) is not None]
    either = len(found) == 2 and found[0][1] is None and found[1][1] is not None and found[1][1].kind is found[0][0]
    if len(found) != 1 and not either:
        return None
    each = [_beside(p) for p in rest if all(p is not slot for slot, _ in found)]
    if None in each:
        return None
    beside = [k for ks in each if ks for k in ks]
    nullable = len(rest) < len(parts)
    slot, item = found[-1]
    if item is None:
        return _EnumSlot(slot, False, nullable, beside)
    return _EnumSlot(item.kind, not either, nullable, beside, tuple(item.beside), either)


def _beside(hint: Any) -> list[Any] | None:
    """The kinds ``hint`` allows beside an ``Enum`` (:func:`_kinds`; a ``Literal``'s values as a :class:`_Choice`)."""
    return [_Choice(typing.get_args(hint))] if typing.get_origin(hint) is typing.Literal else _kinds(hint)


def _items(hint: Any) -> _EnumSlot | None:
    """The ``Enum`` a list's items name (``list[Color]``, ``list[Color | int]``, ``Sequence[Color]``, ``tuple[Color,
    ...]``), with the kinds beside it: None for any other annotation."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is tuple and (len(args) != 2 or args[1] is not Ellipsis) and len(set(args)) != 1:
        return None
    if origin not in (list, tuple, collections.abc.Sequence) or not args:
        return None
    item = _enum(args[0])
    if item is None or item.listed or item.or_list:
        return None
    return item._replace(beside=[*item.beside, type(None)], nullable=False) if item.nullable else item


def _is_enum(hint: Any) -> bool:
    return isinstance(hint, type) and issubclass(hint, enum.Enum)


def _member(kind: type[enum.Enum], value: Any) -> enum.Enum | None:
    """The member of ``kind`` that ``value`` names: its name (``RED``), else its value when one member has it."""
    if isinstance(value, kind):
        return value
    if isinstance(value, str) and value in kind.__members__:
        return kind.__members__[value]
    found = [m for m in kind if m.value == value and type(m.value) is type(value)]
    return found[0] if len(found) == 1 else None


def enum_annotated(cls: type, key: str) -> bool:
    """Whether ``cls.__init__``'s parameter ``key`` is annotated with an ``Enum``, a dataclass or a union holding one
    (:func:`enum_error` judges it)."""
    hint = _hint(cls, key)
    return any(found(hint) is not None for found in (_enum, _mapping, _listed, _unions().union_of))


def enum_error(cls: type, name: str, key: str, value: Any) -> str | None:
    """Why ``value`` names no member of the ``Enum`` ``cls.__init__``'s parameter ``key`` is annotated with (``mode:
    Color = Color.RED``: ``mode: RED``, or a member's value when one member has it; ``Color | None``: null too; ``Color
    | int``: an integer too; ``list[Color]``: a list of them, ``list[Color | int]``'s integers too; a mapping's values
    — ``dict[str, Color]``, a TypedDict's or dataclass' field — each as its annotation says: ``styles.a``, and no
    mapping refused), naming the model ``name`` and the members' names: any value passed and the constructor got a
    string; None when it names one (or no ``Enum``)."""
    problem = _enum_error(_hint(cls, key), f"{name}'s {key}", value)
    if value is None and problem is not None and problem.endswith(_NO_NULL):  # the fix: its default, if it has one
        init = _init_of(cls, key)
        given = init is None or _params(init)[key].default is inspect.Parameter.empty
        problem += ": write it (the model has no default for it)" if given else ": leave it out for the model's default"
    return problem


def _enum_error(hint: Any, param: str, value: Any, depth: int = 0) -> str | None:
    if (short := length_error(hint, param, value)) is not None:  # (``tuple[Color, Color]``: its items below)
        return short
    slot = _enum(hint)
    if slot is None:
        shape = _mapping(hint, depth)
        if shape is None and (union := _unions().union_of(hint, depth)) is not None:
            return _unions().union_error(union, param, value, depth)  # (``Look | str``, ``list[Look] | Look``)
        if shape is None:
            return _listed_error(hint, param, value, depth)
        if value is None and type(None) in typing.get_args(hint):
            return None  # (null for a default of None, whatever the annotation says: check_params lets it through)
        if not isinstance(value, dict):
            return f"{param} takes {_a_mapping(shape)}, {_got(value, depth)}"
        return _mapping_error(shape, param, value, depth) or _made_error(hint, shape, param, value, depth)
    if (value is None and slot.nullable) or any(_fits(value, kind) for kind in slot.beside):
        return None
    names = [*slot.kind.__members__]
    close = names + [v for kind in slot.beside if isinstance(kind, _Choice) for v in kind.values]
    items = names + [n for kind in slot.items_beside for n in _said(kind)]
    if slot.listed:
        return items_error(param, value, lambda v: _member_or_beside(slot, v), items, names, value)
    said = names + [n for kind in slot.beside for n in _said(kind)]
    said += ["null"] * slot.nullable + [
        f"a list whose items are {either_of(items)}"
    ] * slot.or_list  # (null not an item)
    if slot.or_list and isinstance(value, list | tuple):
        wrong = [v for v in value if not _member_or_beside(slot, v)]
        why = f": {wrong[0]!r} is not one{close_to(wrong[0], names)}" if wrong else ""
        return f"{param} takes {either_of(said)}, got {value!r}{why}" if wrong else None
    if _member(slot.kind, value) is not None:
        return None
    return f"{param} takes {either_of(said)}, got {value!r}{close_to(value, close)}"


def _member_or_beside(slot: _EnumSlot, item: Any) -> bool:
    """Whether a list's ``item`` names a member of ``slot``'s ``Enum`` or is of a kind allowed beside it."""
    return _member(slot.kind, item) is not None or any(_fits(item, kind) for kind in slot.items_beside)


def _field_error(hint: Any, param: str, value: Any) -> str | None:
    """Why ``value`` does not fit a mapping's field (or value) annotated ``hint`` with a ``Literal`` or a kind checked
    here (``size: int``: ``look.size takes an integer, got 'big'``); None when it does, or is of a kind not checked."""
    if hint is None or (problem := _literal_error(hint, param, value)) is not None:
        return None if hint is None else problem
    kinds = _kinds(hint)
    if kinds is None or any(_fits(value, kind) for kind in kinds):
        return None
    return (
        f"{param} takes {either_of([n for kind in kinds for n in _said(kind)])}, got {value!r}{fixed_why(value, kinds)}"
    )


def _listed_error(hint: Any, param: str, value: Any, depth: int) -> str | None:
    """Why ``value`` is not a list of what :func:`_listed` finds ``hint`` to list (``looks: list[Look]``: each item
    checked as ``looks[0]``), or fits no field annotated ``hint`` (:func:`_field_error`); None when it fits."""
    item = _listed(hint, depth)
    if item is None:
        return _field_error(hint, param, value) if depth else None
    if value is None and type(None) in typing.get_args(hint):
        return None
    if not isinstance(value, list | tuple):
        shape = _mapping(item, depth + 1)
        one = " (for one, write it as a list's item: `- key: value`)" if isinstance(value, dict) else ""
        return f"{param} takes a list of {_a_mapping(shape, 'mappings')}, {_got(value, depth)}{one}"
    found = (_enum_error(item, f"{param}[{i}]", v, depth + 1) for i, v in enumerate(value))
    return next((e for e in found if e), None)


def _listed(hint: Any, depth: int = 0) -> Any:
    """The items' annotation of a list (``list[...]``, ``Sequence[...]``, ``tuple[..., ...]``; ``| None`` too) of
    dataclasses or mappings holding an ``Enum`` (:func:`_mapping`: ``list[Look]``); None for any other annotation."""
    parts = [
        p for p in (typing.get_args(hint) if typing.get_origin(hint) in _UNIONS else (hint,)) if p is not type(None)
    ]
    origin, args = (typing.get_origin(parts[0]), typing.get_args(parts[0])) if len(parts) == 1 else (None, ())
    if origin is tuple and (len(args) != 2 or args[1] is not Ellipsis) and len(set(args)) != 1:
        return None
    if origin not in (list, tuple, collections.abc.Sequence) or not args or depth > 4:
        return None
    return args[0] if _mapping(args[0], depth + 1) is not None else None


class _Shape(typing.NamedTuple):
    """A mapping param's annotation: ``field``, each key's annotation (None for a key it names none of); ``keys``, the
    ``Enum`` naming its keys (``dict[Color, int]``); ``made``, the dataclass built of it (``look: Look``)."""

    field: Callable[[Any], Any]
    keys: type[enum.Enum] | None = None
    made: type | None = None
    #: the dataclass or ``TypedDict`` naming its fields (``Box``: its keys checked, the dict kept)
    fields: type | None = None


def _mapping(hint: Any, depth: int = 0) -> _Shape | None:
    """For a dataclass annotation (``look: Look``: built from the mapping, recursively) or a mapping annotation holding
    an ``Enum`` at some depth (``dict[str, Color]``, ``dict[Color, int]``, ``dict[str, list[Color]]``, a ``TypedDict``
    with a ``Color`` field; ``| None`` too): its :class:`_Shape`; None for any other annotation."""
    union = typing.get_args(hint) if typing.get_origin(hint) in _UNIONS else (hint,)
    parts = [p for p in union if p is not None and p is not type(None)]  # (None: a key the mapping names no field of)
    if depth > 4 or len(parts) != 1:
        return None
    hint, keys, made = parts[0], None, None
    if typing.get_origin(hint) in (dict, collections.abc.Mapping, collections.abc.MutableMapping):
        args = typing.get_args(hint)
        if len(args) != 2:
            return None
        each: dict[Any, Any] | None = None
        inner = [args[1]]
        keys = args[0] if _is_enum(args[0]) else None
    elif typing.is_typeddict(hint) or (made := _dataclass(hint)) is not None:
        try:  # (an InitVar's field as the kind it wraps; one not resolved as Unresolved: refused when given)
            each = {
                k: getattr(h, "type", h) if isinstance(h, dataclasses.InitVar) else h
                for k, h in field_hints(hint).items()
            }
        except Exception:
            return None
        inner = list(each.values())
    else:
        return None
    if (
        made is None
        and keys is None
        and not any(
            _enum(h) or _mapping(h, depth + 1) or _listed(h, depth) or _unions().union_of(h, depth + 1) for h in inner
        )
    ):
        return None
    return _Shape(
        each.get if each is not None else (lambda _key: inner[0]), keys, made, hint if each is not None else None
    )


def _a_mapping(shape: _Shape | None, noun: str = "a mapping") -> str:
    """What a mapping param takes, in words: ``a mapping (`key: value` lines)``, of a dataclass ``a mapping of Look's
    fields``; ``noun`` ``mappings``: the items of a list of them (``- key: value`` items)."""
    of = f" of {shape.made.__name__}'s fields" if shape is not None and shape.made is not None else ""
    lines = "`- key: value` items" if noun == "mappings" else "`key: value` lines"
    return f"{noun}{of} ({lines})"


#: what :func:`_got` says of a param's own null (:func:`enum_error` adds the fix)
_NO_NULL = ", which its annotation does not allow"


def _got(value: Any, depth: int) -> str:
    """``got 'x'``; ``got null`` — and, where it is the param's own (``depth`` 0: a default of None passes before,
    ``check_params``), that its annotation allows no null."""
    if value is not None:
        return f"got {value!r}"
    return "got null" + _NO_NULL * (not depth)


def _dataclass(hint: Any) -> type | None:
    return hint if isinstance(hint, type) and dataclasses.is_dataclass(hint) else None


def _mapping_error(shape: _Shape, param: str, value: dict[Any, Any], depth: int) -> str | None:
    """Why the mapping ``value`` does not fit ``shape``: a key naming no member (``dict[Color, int]``), a dataclass'
    field it does not have or lacks, or a value its annotation refuses (``look.color``); None when it fits."""
    if shape.keys is not None and (wrong := [k for k in value if _member(shape.keys, k) is None]):
        names = [*shape.keys.__members__]
        return f"{param} takes a mapping whose keys are {either_of(names)}, got the key {wrong[0]!r}" + (
            close_to(wrong[0], names) or f": write {either_of(names)}"
        )
    if shape.keys is not None and (twice := _same_member(shape.keys, [*value])):
        keys = ", ".join(map(repr, twice[1:]))
        return f"{param} names {twice[0]} by {counted(len(twice) - 1, 'key')} ({keys}), which build one key: keep one"
    if (kind := shape.fields) is not None:
        fields = (
            init_fields(kind)
            if shape.made
            else {k: k in getattr(kind, "__required_keys__", ()) for k in field_hints(kind)}
        )
        names = [*fields]
        if unknown := [k for k in value if k not in names]:
            if shape.made and unknown[0] in {f.name for f in dataclasses.fields(kind)}:  # field(init=False)
                return f"{param}.{unknown[0]} is set by {kind.__name__} itself, not given: remove it"
            return (
                f"{param} has no field {unknown[0]!r}: write one of {kind.__name__}'s fields ({', '.join(names)}), "
                f"or remove it{close_to(unknown[0], names)}"
            )
        if lacking := [name for name, required in fields.items() if required and name not in value]:
            if (odd := next((k for k in lacking if isinstance(shape.field(k), Unresolved)), None)) is not None:
                return unresolved_error(param, kind, odd, shape.field(odd), True)  # (not "add it": refused when given)
            added = ", ".join(f"`{f}: …`" for f in lacking)
            why = "has no default for" if shape.made else "requires"
            return f"{param} lacks {named('field', lacking)}, which {kind.__name__} {why}: add {added}"
        if (bad := next((k for k in value if isinstance(shape.field(k), Unresolved)), None)) is not None:
            return unresolved_error(param, kind, bad, shape.field(bad), fields[bad])
    found = (_enum_error(shape.field(k), f"{param}.{k}", v, depth + 1) for k, v in value.items())
    return next((e for e in found if e), None)


def _same_member(kind: type[enum.Enum], keys: list[Any]) -> list[Any]:
    """The name of the first member of ``kind`` that more than one of ``keys`` names (``GREEN`` and its value
    ``green``: the built mapping would keep one), then those keys; empty when each names another."""
    by: dict[Any, list[Any]] = {}
    for key in keys:
        by.setdefault(_member(kind, key), []).append(key)
    return next(([m.name, *ks] for m, ks in by.items() if len(ks) > 1), [])


def init_fields(made: type) -> dict[str, bool]:
    """The fields a dataclass' constructor takes (an ``InitVar`` too; not a ``field(init=False)``), each with whether
    it has no default (must be given)."""
    try:
        taken = inspect.signature(made).parameters.values()
    except (TypeError, ValueError):
        return {
            f.name: f.default is f.default_factory is dataclasses.MISSING for f in dataclasses.fields(made) if f.init
        }
    named_ = (p for p in taken if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD))
    return {p.name: p.default is p.empty for p in named_}


def _made_error(hint: Any, shape: _Shape, param: str, value: Any, depth: int) -> str | None:
    """Why the dataclass ``param`` is annotated with cannot be built of ``value`` (its ``__post_init__`` refuses it:
    its own words); None when it can, or it is no dataclass."""
    if shape.made is None:
        return None
    try:
        _built(hint, value, depth)
    except Exception as exc:
        return f"{param} does not build its {shape.made.__name__}: {exc}"
    return None


def as_built(cls: type, params: dict[str, Any]) -> dict[str, Any]:
    """``params`` as ``cls``'s constructor takes them: an ``Enum``-annotated param's name (as YAML and the stored
    fingerprint hold it), or a member's value, as its member — a list's items each (``list[Color]``, ``list[Color |
    None]``, ``Color | list[Color]``), a mapping's values or keys each (``dict[str, Color]``, ``dict[Color, int]``, a
    TypedDict's field: the mapping stays a ``dict``) —; a dataclass-annotated param's mapping as the dataclass, its
    fields built so too (``look: {color: GREEN}`` is ``Look(color=Color.GREEN)``); a text naming a member is the
    member whatever kinds the annotation allows beside it (``Color | str``: ``GREEN`` is ``Color.GREEN``, ``blue`` the
    text) but a ``Literal``'s value (``Literal['auto'] | Color``: ``auto``, text), a value of another kind allowed
    beside it is as it is (``Color | int``: ``1``; ``Level | int``: ``1`` too, though an ``IntEnum`` member has it);
    a union holding a dataclass: a mapping as the dataclass it fits (:mod:`~repeval.models.param_unions`: ``Look |
    str``); a list as a tuple where the annotation allows tuples alone (``tuple[int, int]``); the others as they
    are."""
    return {key: _built(_hint(cls, key), value) for key, value in params.items()}


def _built(hint: Any, value: Any, depth: int = 0) -> Any:
    """``value`` as the constructor gets it under the annotation ``hint`` (:func:`as_built`): a list as a tuple where
    the annotation allows tuples alone (``tuple[int, int]``, ``tuple[Color, ...]``)."""
    built = _built_items(hint, value, depth)
    return tuple(built) if isinstance(built, list) and sequence_of(hint) is tuple else built


def _built_items(hint: Any, value: Any, depth: int) -> Any:
    """:func:`_built`, a list as a list."""
    slot = _enum(hint) if value is not None else None
    if slot is None:
        shape = _mapping(hint, depth) if isinstance(value, dict) else None
        if shape is None and (union := _unions().union_of(hint, depth)) is not None:
            return _unions().union_built(union, value, depth)
        if shape is None:
            item = _listed(hint, depth) if isinstance(value, list | tuple) else None
            return value if item is None else [_built(item, v, depth + 1) for v in value]
        made = {
            k if shape.keys is None else _built_item(shape.keys, (), k): v
            if (h := shape.field(k)) is None
            else _built(h, v, depth + 1)
            for k, v in value.items()
        }
        return made if shape.made is None else shape.made(**made)
    if slot.listed or (slot.or_list and isinstance(value, list | tuple)):
        if isinstance(value, list | tuple) and not any(_fits(value, kind) for kind in slot.beside):
            return [_built_item(slot.kind, slot.items_beside, v) for v in value]
        return value
    return _built_item(slot.kind, slot.beside, value)


def _built_item(kind: type[enum.Enum], beside: Sequence[Any], value: Any) -> Any:
    """``value`` as the member of ``kind`` it names — a text naming one whatever ``beside`` allows but a ``Literal``'s
    value, a value of another kind ``beside`` allows as it is — or as it is."""
    if any(_fits(value, k) for k in beside if isinstance(k, _Choice) or not isinstance(value, str)):
        return value
    member = _member(kind, value)
    return value if member is None else member  # (IntEnum's 0 is falsy)


def _unions() -> Any:
    """:mod:`repeval.models.param_unions` (which builds on this module): a union holding a dataclass."""
    from repeval.models import param_unions

    return param_unions


@functools.lru_cache(maxsize=4096)  # (read for each param by each fingerprint and check: get_type_hints is slow)
def _hint(cls: type, key: str) -> Any:
    """The annotation of ``key`` in the constructor of ``cls`` that names it (a base's, as model_parameters reads it:
    essentia's graph_path); None without one, or when it does not resolve here (not ours to judge) — its own, not
    another param's: one annotated with a name imported only under ``if TYPE_CHECKING:`` left every param of the
    constructor unchecked and unbuilt (a dataclass param's mapping reached the model)."""
    init = _init_of(cls, key)
    try:
        return typing.get_type_hints(init).get(key) if init is not None else None
    except Exception:
        written = getattr(init, "__annotations__", {}).get(key)
        hint = None if written is None else resolved(key, written, getattr(init, "__globals__", {}))
        return None if isinstance(hint, Unresolved) else hint


def _init_of(cls: type, key: str) -> Any:
    """The ``__init__`` of the first class of ``cls.__mro__`` whose own constructor names ``key`` (None: none)."""
    return next((i for k in cls.__mro__ if key in _params(i := vars(k).get("__init__"))), None)


def _params(init: Any) -> Any:
    """The parameters ``init`` (a class' own ``__init__``, or None) names."""
    try:
        return inspect.signature(init).parameters if init is not None else {}
    except (TypeError, ValueError):  # a builtin's, without a signature
        return {}
