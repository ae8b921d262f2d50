"""The base of every configuration model, and the names that become file names.

:class:`Strict` models are frozen, and an unknown key is an error that names it and suggests the closest valid one;
a model's ``key_aliases`` are the other spellings it accepts (mir_ref's). A :data:`FileName` is a name that ends up in
store and run-directory paths.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated, Any, ClassVar, NamedTuple, NoReturn

from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationError, model_validator
from pydantic_core import PydanticCustomError

from repeval.registry import ParamProblems, closest


# --- reliability (issue 9): names end up in store and run-directory paths ---------------------------
def _file_name(v: str) -> str:
    if any(c in v for c in "/\\\0") or not v.strip("."):
        raise ValueError(
            f"{v!r} cannot name a file (it is part of store and run paths): no '/', '\\' or NUL, not only dots"
        )
    return v


FileName = Annotated[str, AfterValidator(_file_name)]
# --- end reliability --------------------------------------------------------------------------------


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
        said: list[str] = []  # each unknown key (with the closest valid one), each key given twice
        meant: list[str] = []  # the valid keys the unknown ones are closest to
        for key, value in data.items():
            if not isinstance(key, str):
                raise ValueError(f"keys must be strings, got {key!r}")
            canonical = aliases.get(key, key)
            if canonical not in valid:
                hint = closest(key, sorted(valid | set(aliases)))
                if hint:
                    meant.append(aliases.get(hint, hint))
                    said.append(f"unknown key '{key}' — did you mean '{hint}'?")
                else:
                    said.append(f"unknown key '{key}' (valid keys: {', '.join(sorted(valid))}{cls.other_keys})")
                continue
            if canonical in out:  # the first is kept, for the other keys' checks
                said.append(f"'{key}' and '{given[canonical]}' both given; keep one")
                continue
            out[canonical] = value
            given[canonical] = key
        if said:  # not a field: validation fails there (extra keys are forbidden), and the keys given are checked
            out[_UNKNOWN] = (said, meant)
        return out

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
            [Fault("unknown_key", msg, (), msg) for msg in said]
            + [
                Fault(e["type"], e["msg"], e["loc"], e["input"], e.get("ctx"))
                for e in found
                if e["loc"] != (_UNKNOWN,) and not (e["type"] == "missing" and e["loc"] in {(k,) for k in meant})
            ],
        )


#: where :meth:`Strict._check_keys` sets a mapping's unknown keys aside (no key of a YAML file can be it)
_UNKNOWN = "\x00unknown keys"


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
