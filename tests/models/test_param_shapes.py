"""Model params of the shapes an ``Enum`` or a dataclass takes in an annotation — a member or a list of them, a list
holding nulls, a mapping's keys, beside a ``Literal``, a dataclass built of a mapping —: checked by ``repeval
validate``, built as the constructor takes them, and fingerprinted apart from what repeval gave the model before."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from annotated_plugin import annotated_config, model_got

AT = "experiments[0].embedding_models[0].params"


def _built(tmp_path: Path, params: dict[str, Any]) -> dict[str, Any]:
    """What :data:`~annotated_plugin.ANNOTATED_PLUGIN`'s model got of ``params``' new shapes: each ``Enum`` member as
    ``Class.NAME``, each dataclass as ``(Class, its fields)``."""
    return model_got(annotated_config(tmp_path, params))


def test_an_enum_or_a_list_of_it_a_list_with_nulls_enum_keys_and_a_literal_beside_it_are_checked_and_built(
    tmp_path: Path, forget_plugins: None
) -> None:
    """``either: Color | list[Color]``, ``holes: list[Color | None]``, ``weights: dict[Color, int]`` (its keys) and
    ``pick: Literal['auto', 'off'] | Color`` took any value and the constructor got the text, in every embedding actor:
    they are checked now as ``mode: Color`` is — one line naming the model, the param, the members and the fix —, and
    the model gets the members (a ``Literal``'s value as its text; a TypedDict's ``Optional[Color]`` field null or a
    member, its ``int`` field an integer)."""
    from repeval.config import ConfigError, parse_config

    wrong = {
        "either": ["GREEN", "BLU"],
        "holes": ["RED", None, "BLUE"],
        "weights": {"GREEN": 1, "BLUE": 2},
        "pick": "GREN",
        "box": {"color": None, "count": "two"},
    }
    with pytest.raises(ConfigError) as refused:
        parse_config(annotated_config(tmp_path, wrong))
    assert refused.value.problems == [
        f"{AT}.either: annotated-model's either takes RED, GREEN or a list whose items are RED or GREEN, got "
        "['GREEN', 'BLU']: 'BLU' is not one",
        f"{AT}.holes: annotated-model's holes takes a list whose items are RED, GREEN or null, got ['RED', None, "
        "'BLUE']: 'BLUE' is not one",
        f"{AT}.weights: annotated-model's weights takes a mapping whose keys are RED or GREEN, got the key 'BLUE': "
        "write RED or GREEN",
        f"{AT}.pick: annotated-model's pick takes RED, GREEN, 'auto' or 'off', got 'GREN' — did you mean 'GREEN'?",
        f"{AT}.box: annotated-model's box.count takes an integer, got 'two'",
    ]
    with pytest.raises(ConfigError, match=r"either takes RED, GREEN or a list whose items are RED or GREEN, got 3$"):
        parse_config(annotated_config(tmp_path, {"either": 3}))
    good = {
        "either": "green",
        "holes": [None, "GREEN"],
        "weights": {"RED": 1, "green": 2},
        "pick": "off",
        "box": {"color": None, "count": 2},
    }
    assert _built(tmp_path, good) == {
        "either": "Color.GREEN",
        "holes": [None, "Color.GREEN"],
        "weights": {"Color.RED": 1, "Color.GREEN": 2},
        "pick": "off",
        "box": {"color": None, "count": 2},
    }
    again = {"either": ["RED", "green"], "pick": "GREEN", "box": {"color": "green", "count": 0}}
    assert _built(tmp_path, again) == {
        "either": ["Color.RED", "Color.GREEN"],
        "pick": "Color.GREEN",
        "box": {"color": "Color.GREEN", "count": 0},
    }


def test_a_dataclass_param_is_built_from_its_mapping_its_fields_checked(tmp_path: Path, forget_plugins: None) -> None:
    """``frame: Frame`` (a dataclass) got the mapping YAML reads — a ``dict``, where the model reads ``frame.look`` —
    and any field passed. The dataclass is built now, its dataclass fields too; a field it does not have, one without a
    default left out, a field's value of another kind and what its own ``__post_init__`` refuses are each refused by
    ``repeval validate`` naming the field and the fix; a list of them (``looks: list[Look]``) alike, item by item."""
    from repeval.config import ConfigError, parse_config

    for frame, said in (
        (
            {"look": {"colour": "GREEN"}},
            "frame.look has no field 'colour': write one of Look's fields (color, size), or remove it — did you "
            "mean 'color'?",
        ),
        ({"corner": "tl"}, "frame lacks field look, which Frame has no default for: add `look: …`"),
        ({"look": {}, "corner": "tr"}, "frame.corner takes 'tl' or 'br', got 'tr'"),
        ({"look": {"size": "big"}}, "frame.look.size takes an integer, got 'big'"),
        ({"look": {}, "margin": -1}, "frame does not build its Frame: margin -1 is below 0"),
        ("tl", "frame takes a mapping of Frame's fields (`key: value` lines), got 'tl'"),
    ):
        with pytest.raises(ConfigError) as refused:
            parse_config(annotated_config(tmp_path, {"frame": frame}))
        assert refused.value.problems == [f"{AT}.frame: annotated-model's {said}"]
    with pytest.raises(ConfigError) as refused:  # a list of them: each item
        parse_config(annotated_config(tmp_path, {"looks": [{"color": "RED"}, {"color": "GREN"}], "frame": None}))
    assert refused.value.problems == [
        f"{AT}.looks: annotated-model's looks[1].color takes RED or GREEN, got 'GREN' — did you mean 'GREEN'?"
    ]
    got = _built(tmp_path, {"frame": {"look": {"color": "green"}, "corner": "br"}, "looks": [{"size": 3}]})
    look = ("Look", {"color": "Color.GREEN", "size": 1})
    assert got == {
        "frame": ("Frame", {"look": look, "corner": "br", "margin": 0}),
        "looks": [("Look", {"color": "Color.RED", "size": 3})],
    }


def test_a_dataclass_init_var_is_taken_and_fingerprinted_and_a_field_it_sets_itself_refused(
    tmp_path: Path, forget_plugins: None
) -> None:
    """``grid: Grid`` (a frozen, keyword-only dataclass) was refused its ``InitVar`` ``scale``, which its constructor
    takes but no field keeps, as a field Grid has not: it is built now, and fingerprinted as written (``scale: 3`` and
    ``scale: 5`` build other models); ``cells``, a ``field(init=False)`` Grid sets itself, is refused saying so."""
    from repeval.config import ConfigError, parse_config

    grid = {"color": "GREEN", "scale": 3}
    assert _built(tmp_path, {"grid": grid}) == {"grid": ("Grid", {"color": "Color.GREEN", "steps": [], "cells": 6})}
    hashed = [_spec(tmp_path, {"grid": {**grid, "scale": n}}).fingerprint["model"]["params"] for n in (3, 5)]
    assert hashed[0] != hashed[1]
    with pytest.raises(ConfigError) as refused:
        parse_config(annotated_config(tmp_path, {"grid": {"color": "GREEN", "cells": 3}}))
    assert refused.value.problems == [
        f"{AT}.grid: annotated-model's grid.cells is set by Grid itself, not given: remove it"
    ]


def test_null_where_the_annotation_allows_none_and_one_mapping_for_a_list_of_dataclasses_are_refused_naming_the_fix(
    tmp_path: Path, forget_plugins: None
) -> None:
    """``solid: Look = Look()`` took null and the constructor got None where it reads ``solid.size``; ``maybe: Color |
    None | list[Color]`` was said to take "a list whose items are RED or GREEN or null"; ``looks: {color: RED}`` (one
    Look, not a list) was told "a list of mappings", not of what nor how one is written."""
    from repeval.config import ConfigError, parse_config

    with pytest.raises(ConfigError) as refused:
        parse_config(annotated_config(tmp_path, {"solid": None, "maybe": "BLU", "looks": {"color": "RED"}}))
    assert refused.value.problems == [
        f"{AT}.solid: annotated-model's solid takes a mapping of Look's fields (`key: value` lines), got null, which its "
        "annotation does not allow: leave it out for the model's default",
        f"{AT}.maybe: annotated-model's maybe takes RED, GREEN, null or a list whose items are RED or GREEN, got 'BLU'",
        f"{AT}.looks: annotated-model's looks takes a list of mappings of Look's fields (`- key: value` items), got "
        "{'color': 'RED'} (for one, write it as a list's item: `- key: value`)",
    ]
    assert _built(tmp_path, {"maybe": None, "looks": None}) == {"maybe": None, "looks": None}


def test_a_member_named_by_two_keys_of_a_mapping_is_refused(tmp_path: Path, forget_plugins: None) -> None:
    """``weights: {GREEN: 1, green: 2}`` (``dict[Color, int]``: ``green`` is GREEN's value) built one key, the other's
    value lost without a word: it is refused, naming the keys."""
    from repeval.config import ConfigError, parse_config

    with pytest.raises(ConfigError) as refused:
        parse_config(annotated_config(tmp_path, {"weights": {"RED": 0, "GREEN": 1, "green": 2}}))
    assert refused.value.problems == [
        f"{AT}.weights: annotated-model's weights names GREEN by 2 keys ('GREEN', 'green'), which build one key: keep one"
    ]


def test_a_typeddict_param_lacking_a_key_or_with_one_it_has_not_is_refused(
    tmp_path: Path, forget_plugins: None
) -> None:
    """``box: Box`` (a TypedDict with an ``Enum`` field) took ``{color: GREEN}`` without its ``count`` and ``{…, size:
    2}``, a key Box has not, and the constructor got them: each is refused as a dataclass' field is."""
    from repeval.config import ConfigError, parse_config

    for box, said in (
        ({"color": "GREEN"}, "box lacks field count, which Box requires: add `count: …`"),
        (
            {"color": None, "count": 1, "cout": 2},
            "box has no field 'cout': write one of Box's fields (color, count), or remove it — did you mean 'count'?",
        ),
    ):
        with pytest.raises(ConfigError) as refused:
            parse_config(annotated_config(tmp_path, {"box": box}))
        assert refused.value.problems == [f"{AT}.box: annotated-model's {said}"]


def _spec(tmp_path: Path, params: dict[str, Any]) -> Any:
    from repeval.config import parse_config
    from repeval.pipeline.partitions import ModelSpec

    cfg = parse_config(annotated_config(tmp_path, params))
    exp = cfg.experiments[0]
    return ModelSpec.of(cfg, exp.embedding_models[0]).partition(cfg, exp, exp.datasets[0], "clean")


def _conflict(tmp_path: Path, spec: Any, params_hash: str) -> str:
    """What the conflict of a partition stamped with ``spec``'s fingerprint but the params' hash ``params_hash`` says."""
    from repeval.pipeline.partition_conflicts import accepted_spec
    from repeval.store import EmbeddingStore, StoreConflict

    part = EmbeddingStore(str(tmp_path / "store")).partition(params_hash, "annotated-model", "clean")
    part.stamp({**spec.fingerprint, "model": {**spec.fingerprint["model"], "params": params_hash}}, described={})
    with pytest.raises(StoreConflict) as err:
        accepted_spec(part, spec)
    return str(err.value)


def test_a_partition_stamped_when_the_model_got_these_shapes_as_text_or_a_mapping_is_not_reused_saying_why(
    tmp_path: Path, forget_plugins: None
) -> None:
    """A partition embedded when the model got these params as written (the text ``'GREEN'``, a ``dict`` for a
    dataclass) — or, for a dataclass holding an ``Enum``, a ``dict`` of its members, as session 59's repeval built it —
    was reused under the same hash by the model built with members and dataclasses now: they are fingerprinted in
    a form of their own, and such a partition conflicts, saying why."""
    for params, hashed_then in (  # as 1673aaa hashed them
        ({"either": "GREEN"}, "809499a57844330f"),
        ({"holes": ["GREEN", None]}, "3ca4b04ddf228d36"),
        ({"weights": {"GREEN": 2}}, "267cf7e7dacf015f"),
        ({"pick": "GREEN"}, "fde42379be337dd0"),
    ):
        spec = _spec(tmp_path, params)
        assert spec.fingerprint["model"]["params"] != hashed_then
        key = next(iter(params))
        assert _conflict(tmp_path, spec, hashed_then).endswith(
            f"`Enum` members of param {key} as text (`'GREEN'`, not `Color.GREEN`): it builds them as members now, "
            "which a model may read otherwise, so the partition's rows are not reused"
        )
    one, many = "as a mapping (a `dict`, not a `{}`)", "as mappings (`dict`s, not `{}`s)"
    for params, hashed_then, said in (  # as 1673aaa hashed them: the mapping as written, its member as a member
        ({"frame": {"look": {"size": 2}}}, "8332c9c6e91d3e5b", "param frame " + one.format("Frame")),
        ({"look": {"color": "GREEN"}}, "11db2ff9a67c273e", "param look " + one.format("Look")),
        (
            {"frame": {"look": {"size": 2}}, "palette": ["GREEN"]},
            "f1db57c40d962ee8",
            "param frame " + one.format("Frame"),
        ),
        ({"looks": [{"color": "GREEN"}, {"size": 3}]}, "94c30f782d1f7e8d", "param looks " + many.format("Look")),
        (
            {"frame": {"look": {"size": 2}}, "looks": [{"size": 3}]},
            "53cc027b91ce76a8",
            f"params frame {one.format('Frame')}, looks {many.format('Look')}",
        ),
        (  # look's member as a member then, looks' and either's as text
            {"look": {"color": "GREEN"}, "either": "GREEN", "looks": [{"color": "GREEN"}]},
            "b3ad6bb17765f624",
            f"params look {one.format('Look')}, looks {many.format('Look')} and the `Enum` members of param either as "
            "text",
        ),
    ):
        spec = _spec(tmp_path, params)
        built = "the dataclass" if said.startswith(("param frame", "param look ")) else "the dataclasses"
        built += " and members" * ("`Enum`" in said)
        assert _conflict(tmp_path, spec, hashed_then).endswith(
            f". The stored model.params hash is this configuration's as repeval hashed it when it gave the model {said}: "
            f"it builds {built} now, which a model may read otherwise, so the partition's rows are not reused"
        )
    assert (
        _spec(tmp_path, {"pick": "auto"}).fingerprint["model"]["params"] == "99f4cc9ca34bfc15"
    )  # a Literal's: as then


def test_the_conflict_builds_the_params_once_to_show_what_the_model_got_as_text(
    tmp_path: Path, forget_plugins: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Showing the text a partition's model got (``first_given_as_text``) built the params twice — once itself, once
    to learn which held members given as text —: once is enough."""
    import sys

    from repeval.pipeline import partition_conflicts

    shown = partition_conflicts.first_given_as_text
    module = sys.modules[shown.__module__]
    built = module.as_built  # type: ignore[attr-defined]
    calls: list[dict[str, Any]] = []

    def counted(cls: type, params: dict[str, Any]) -> dict[str, Any]:
        calls.append(params)
        return built(cls, params)

    spec = _spec(tmp_path, {"palette": ["GREEN"]})
    monkeypatch.setattr(module, "as_built", counted)
    found = shown(spec.model.family.cls, {"palette": ["GREEN"]})
    assert found is not None and (found[0], found[1].name) == ("GREEN", "GREEN")
    assert len(calls) == 1, calls


def test_a_model_spec_builds_the_params_once_for_its_forms(
    tmp_path: Path, forget_plugins: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``ModelSpec.of`` built the params (each dataclass, its ``__post_init__`` run) once for each form it keeps — the
    fingerprint's, the writings, the forms hashed before, the dataclass params: six times. It builds them for the
    model's fingerprint and once for the rest."""
    from repeval.config import parse_config
    from repeval.models import param_fingerprints
    from repeval.models.param_kinds import as_built
    from repeval.pipeline import partitions

    cfg = parse_config(annotated_config(tmp_path, {"frame": {"look": {"color": "GREEN"}}, "either": "GREEN"}))
    calls: list[dict[str, Any]] = []

    def counted(cls: type, params: dict[str, Any]) -> dict[str, Any]:
        calls.append(params)
        return as_built(cls, params)

    for module in (partitions, param_fingerprints):
        monkeypatch.setattr(module, "as_built", counted, raising=False)
    spec = partitions.ModelSpec.of(cfg, cfg.experiments[0].embedding_models[0])
    assert spec.as_mapping == (("frame", "Frame", False),) and spec.as_text == ("frame", "either")
    assert len(calls) == 2, calls


def test_the_schema_says_how_params_of_each_annotated_kind_are_written() -> None:
    """An editor's hover on a model's ``params`` (the JSON Schema, ``repeval schema``) said only "the model's
    constructor parameters": it says how an ``Enum`` member, a list or mapping of them and a dataclass are written."""
    from repeval.config.jsonschema import config_json_schema

    said = config_json_schema()["$defs"]["EmbeddingModelConfig"]["properties"]["params"]["description"]
    for written in ("`mode: GREEN`", "`dict[Color, int]`", "`Literal`", "dataclass (`look: {color: GREEN, size: 2}`)"):
        assert written in said, said
