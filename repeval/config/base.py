"""The base of every configuration model, and the names that become file names.

:class:`Strict` models are frozen, and an unknown key is an error that names it and suggests the closest valid one;
a model's ``key_aliases`` are the other spellings it accepts (mir_ref's). A :data:`FileName` is a name that ends up in
store and run-directory paths.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

from pydantic import AfterValidator, BaseModel, ConfigDict, model_validator

from repeval.registry import closest


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
        if not isinstance(data, dict):
            return data
        aliases = cls.key_aliases
        out: dict[str, Any] = {}
        given: dict[str, str] = {}  # canonical key → the spelling it was given as
        valid = set(cls.model_fields)
        for key, value in data.items():
            if not isinstance(key, str):
                raise ValueError(f"keys must be strings, got {key!r}")
            canonical = aliases.get(key, key)
            if canonical not in valid:
                hint = closest(key, sorted(valid | set(aliases)))
                msg = f"unknown key '{key}'"
                if hint:
                    msg += f" — did you mean '{hint}'?"
                else:
                    msg += f" (valid keys: {', '.join(sorted(valid))}{cls.other_keys})"
                raise ValueError(msg)
            if canonical in out:
                raise ValueError(f"'{key}' and '{given[canonical]}' both given; keep one")
            out[canonical] = value
            given[canonical] = key
        return out
