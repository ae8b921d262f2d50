"""The annotation of each field of a dataclass or ``TypedDict`` a model param is annotated with, resolved field by
field: one naming a class its module imports only for type checkers (``if TYPE_CHECKING:``) or defines nowhere left
every field unresolved, and the mapping given reached the model unchecked and unbuilt; now such a field alone is
:class:`Unresolved`, and a value given for it is refused naming the field and the fix (:func:`unresolved_error`)."""

from __future__ import annotations

import inspect
import sys
import typing
from typing import Any

from repeval.models.param_said import close_to


class Unresolved(typing.NamedTuple):
    """A field's annotation that does not resolve where its class is defined: ``text``, as written; ``name``, the name
    it could not find (None: not known); ``why``, the error's words."""

    text: str
    name: str | None
    why: str


def field_hints(kind: type) -> dict[str, Any]:
    """Each field's annotation of the dataclass or ``TypedDict`` ``kind`` (its bases' too), resolved — or, where it
    does not resolve, :class:`Unresolved`."""
    try:
        return typing.get_type_hints(kind)
    except Exception:
        pass
    hints: dict[str, Any] = {}
    for klass in reversed(kind.__mro__):
        module = getattr(sys.modules.get(klass.__module__), "__dict__", {})
        for name, written in vars(klass).get("__annotations__", {}).items():
            hints[name] = resolved(name, written, module, dict(vars(klass)))
    return hints


def resolved(name: str, written: Any, module: dict[str, Any], local: dict[str, Any] | None = None) -> Any:
    """The annotation ``written`` (of ``name``: a field, a param) resolved in its module's names ``module`` (and
    ``local``, its class'), or :class:`Unresolved`."""
    alone = type("_Annotated", (), {"__annotations__": {name: written}})
    try:
        return typing.get_type_hints(alone, dict(module), local or {})[name]
    except Exception as exc:
        text = getattr(written, "__forward_arg__", written)  # (a TypedDict's: a ForwardRef)
        return Unresolved(str(text), getattr(exc, "name", None), f"{type(exc).__name__}: {exc}")


def unresolved_error(param: str, kind: type, key: str, hint: Unresolved, required: bool) -> str:
    """Why the field ``key`` of ``kind`` given in the mapping ``param`` (``model's look``) is refused: its annotation
    does not resolve, so repeval can neither check its value nor build it as the annotation says."""
    what = hint.name or "the names it uses"
    out = f" (or leave {key} out for its default)" * (not required)
    loaded = sys.modules.get(kind.__module__)
    module = getattr(loaded, "__file__", None) or kind.__module__  # (a plugin's: its file)
    fix = f"import {what} at the top of that module, not only under `if TYPE_CHECKING:`"
    if not _checks_types(loaded):  # (a name it defines nowhere: a typo, a class not written yet)
        fix = f"define or import {what} in that module{close_to(hint.name, [*getattr(loaded, '__dict__', {})])}"
    return (
        f"{param}.{key} cannot be checked: {kind.__name__}'s field {key} is annotated {hint.text!r}, which does not "
        f"resolve in {module} ({hint.why}): {fix}{out}"
    )


def _checks_types(module: Any) -> bool:
    """Whether ``module``'s source names ``TYPE_CHECKING`` (an import under it is not made at run time); true when its
    source cannot be read."""
    try:
        return "TYPE_CHECKING" in inspect.getsource(module)
    except (OSError, TypeError):
        return True
