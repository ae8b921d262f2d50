"""What a partition's fingerprint hashes of a model's params: what the model is built with, one form for each — an
``Enum`` member however it is written, a date apart from its text — while a configuration holding neither keeps the
fingerprint it had."""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

import pytest
from annotated_plugin import annotated_config


def _clean(tmp_path: Path, params: dict[str, Any]) -> Any:
    """The clean partition a configuration whose model (:data:`~annotated_plugin.ANNOTATED_PLUGIN`'s) has ``params``
    asks for."""
    from repeval.config import parse_config
    from repeval.pipeline.partitions import ModelSpec

    cfg = parse_config(annotated_config(tmp_path, params))
    exp = cfg.experiments[0]
    return ModelSpec.of(cfg, exp.embedding_models[0]).partition(cfg, exp, exp.datasets[0], "clean")


def _stamped(tmp_path: Path, name: str, spec: Any, params_hash: str) -> Any:
    """A partition stamped with ``spec``'s fingerprint but its model params' hash, ``params_hash``."""
    from repeval.store import EmbeddingStore

    part = EmbeddingStore(str(tmp_path / "store")).partition(name, "annotated-model", "clean")
    part.stamp({**spec.fingerprint, "model": {**spec.fingerprint["model"], "params": params_hash}}, described={})
    return part


def test_an_enum_member_by_name_or_by_value_is_one_fingerprint_and_a_partition_stamped_under_either_is_reused(
    tmp_path: Path, forget_plugins: None
) -> None:
    """``mode: GREEN`` and ``mode: green`` (its value) build the same model, but the fingerprint hashed the params as
    written: a partition embedded under one conflicted with the other. It hashes the member's name now — a
    configuration writing the name keeps its fingerprint — and a partition stamped under the value's hash, as repeval
    hashed it before, serves either writing under its own fingerprint; another hash still conflicts."""
    from repeval.pipeline.partition_conflicts import accepted_spec
    from repeval.store import StoreConflict

    specs = {written: _clean(tmp_path, {"mode": written}) for written in ("GREEN", "green")}
    assert specs["GREEN"].fingerprint == specs["green"].fingerprint
    assert (
        specs["GREEN"].fingerprint["model"]["params"] == "4e6ab5e033f88246"
    )  # the name's, as commit c1eb7f5 hashed it
    for written, spec in specs.items():
        by_value = _stamped(tmp_path, f"value-{written}", spec, "edc98c3fadad9348")  # the value's, as c1eb7f5 hashed it
        assert accepted_spec(by_value, spec).fingerprint == by_value.stamped()["fingerprint"]
        with pytest.raises(StoreConflict, match=r'model.params: stored "0123456789abcdef", now "4e6ab5e033f88246"'):
            accepted_spec(_stamped(tmp_path, f"other-{written}", spec, "0123456789abcdef"), spec)


def test_a_partition_stamped_under_any_writing_of_the_same_members_is_reused_not_one_naming_others(
    tmp_path: Path, forget_plugins: None
) -> None:
    """A partition an earlier repeval stamped under another writing of the same members is reused, under its own
    fingerprint: an alias's name (``side: PORT`` is ``Side.LEFT``), also stamped before fingerprints recorded the
    windows used (``chunk_s`` in the params' hash); only the writing as before, or each member by its value, was. And
    one stamped under ``side: RIGHT`` — ``Side.RIGHT`` by its name, though ``'RIGHT'`` is ``Side.LEFT``'s value — is
    not taken for ``side: LEFT``'s, as it was."""
    from repeval.config.loader import config_hash
    from repeval.pipeline.partition_conflicts import accepted_spec
    from repeval.store import EmbeddingStore, StoreConflict

    left = _clean(tmp_path, {"side": "LEFT"})
    assert left.fingerprint["model"]["params"] == "20f1e67a8d4095f1"  # as c1eb7f5 hashed it
    port = _stamped(tmp_path, "port", left, "59e10c839d06aeb4")  # side: PORT's, as c1eb7f5 hashed it
    assert accepted_spec(port, left).fingerprint == port.stamped()["fingerprint"]
    # stamped before fingerprints recorded the windows used, too: chunk_s in the params' hash and the fingerprint's
    windowed = _clean(tmp_path, {"mode": "GREEN", "chunk_s": 10})
    older = EmbeddingStore(str(tmp_path / "store")).partition("older", "annotated-model", "clean")
    params = config_hash({"mode": "green", "chunk_s": 10})
    older.stamp({**windowed.fingerprint, "model": {**windowed.fingerprint["model"], "params": params}}, described={})
    assert accepted_spec(older, windowed).fingerprint == older.stamped()["fingerprint"]
    with pytest.raises(StoreConflict, match=r'model.params: stored "a2fcd289c8104041", now "20f1e67a8d4095f1"'):
        accepted_spec(_stamped(tmp_path, "right", left, "a2fcd289c8104041"), left)  # side: RIGHT's, as c1eb7f5's


def test_a_partition_stamped_when_the_model_got_enum_members_as_text_is_not_reused_saying_why(
    tmp_path: Path, forget_plugins: None
) -> None:
    """Until repeval built them as members, a list's items (``palette: list[Color]``), a member beside another kind
    (``shade: Color | int``; ``hue: Color | str``, text until now) and a mapping's values (``styles: dict[str,
    Color]``) reached the model as text, hashed as written: a partition stamped then was reused under the same hash
    (or any writing of the members) by a model that gets ``Color.GREEN`` now — which a plugin may read otherwise
    than ``'GREEN'``. They are hashed in a form of their own now, and such a partition conflicts, saying why; a value
    naming no member (``shade: 3``, ``hue: blue``) keeps its hash, as a configuration without them keeps its own."""
    from repeval.pipeline.partition_conflicts import accepted_spec
    from repeval.store import StoreConflict

    for params, hashed_then, text in (  # each as c1eb7f5 hashed it (the first: [green, RED], another writing)
        ({"palette": ["GREEN", "red"]}, "433f16fad3553526", "green"),
        ({"palette": ["GREEN", "red"]}, "4b91e1c2e22cd08f", "GREEN"),
        ({"shade": "GREEN"}, "eabaacfc7a4c5eda", "GREEN"),
        ({"hue": "GREEN"}, "68026480aa541c23", "GREEN"),
        ({"styles": {"a": "GREEN"}}, "5a99b557e56c5c8f", "GREEN"),
        ({"mixed": ["GREEN", 2]}, "a4f65b830d0c4a52", "GREEN"),  # list[Color | int]: as 635908e hashed it
    ):
        spec = _clean(tmp_path, params)
        assert spec.fingerprint["model"]["params"] != hashed_then
        key = next(iter(params))
        with pytest.raises(StoreConflict) as err:
            accepted_spec(_stamped(tmp_path, f"{key}-{hashed_then}", spec, hashed_then), spec)
        assert str(err.value).endswith(
            f". The stored model.params hash is this configuration's as repeval hashed it when it gave the model the "
            f"`Enum` members of param {key} as text (`'{text}'`, not `Color.GREEN`): it builds them as members now, "
            "which a model may read otherwise, so the partition's rows are not reused"
        ), err.value
    for params, hashed in (({"shade": 3}, "2a404354b7eebc67"), ({"hue": "blue"}, "79720214d6301b11")):
        assert _clean(tmp_path, params).fingerprint["model"]["params"] == hashed  # as c1eb7f5 hashed it


def test_the_conflict_with_a_partition_stamped_when_members_were_given_as_text_shows_the_text_it_was_given(
    tmp_path: Path, forget_plugins: None
) -> None:
    """The conflict said `'GREEN'`, not `Color.GREEN` whatever the members: it shows the text the model got then, as
    the partition's writing has it, and the member it is built with now."""
    from repeval.pipeline.partition_conflicts import accepted_spec
    from repeval.store import StoreConflict

    for params, hashed_then, shown in (  # each as c1eb7f5 hashed it
        ({"palette": ["red"]}, "6c6837d4174f2d39", "(`'red'`, not `Color.RED`)"),
        ({"palette": ["red"]}, "405c71caa2b9977d", "(`'RED'`, not `Color.RED`)"),  # stamped under [RED]
        ({"levels": [1]}, "4814572d52507fbb", "(`1`, not `Level.ON`)"),
    ):
        spec = _clean(tmp_path, params)
        key = next(iter(params))
        with pytest.raises(StoreConflict) as err:
            accepted_spec(_stamped(tmp_path, f"{key}-{hashed_then}", spec, hashed_then), spec)
        assert f"`Enum` members of param {key} as text {shown}: it builds them as members now" in str(err.value)


def test_a_date_value_and_its_text_are_two_fingerprints_and_a_partition_hashed_alike_before_says_why(
    tmp_path: Path, forget_plugins: None
) -> None:
    """YAML reads ``since: 2024-01-01`` as a date — the plugin gets a ``datetime.date`` — and ``since: '2024-01-01'``
    as text (a param the constructor takes as it is: no annotation, a default of None); the fingerprint hashed both as
    the text, so a partition embedded with one was taken for the other's (a scenario's alike). They differ now, the
    text keeping its fingerprint; a partition stamped before with the date conflicts, saying why — also beside an
    ``Enum`` member written by its value (which the fingerprint hashes by name now: the conflict said only that the
    params were written otherwise)."""
    from repeval.config.embed import DeformationScenario, DeformationStep
    from repeval.config.loader import config_hash
    from repeval.pipeline.partition_conflicts import accepted_spec
    from repeval.store import StoreConflict

    dated, text = _clean(tmp_path, {"since": datetime.date(2024, 1, 1)}), _clean(tmp_path, {"since": "2024-01-01"})
    assert isinstance(dated.model.params["since"], datetime.date)
    hashes = [spec.fingerprint["model"]["params"] for spec in (dated, text)]
    assert hashes[0] != hashes[1] == "10bf8ea8cc603f1f"  # the text's (and the date's), as commit c1eb7f5 hashed it

    def scenario(day: Any) -> str:  # a plugin transform's params, as the config holds them once validated
        step = DeformationStep.model_construct(type="Plugin", params={"day": day})
        return config_hash(DeformationScenario.model_construct(name="s", steps=(step,)))

    assert scenario(datetime.date(2024, 1, 1)) != scenario("2024-01-01") == "a0ef497c23361bb0"
    before = _stamped(tmp_path, "before", text, "10bf8ea8cc603f1f")
    assert accepted_spec(before, text).fingerprint == text.fingerprint
    with pytest.raises(StoreConflict) as err:
        accepted_spec(before, dated)
    assert str(err.value).partition("deletes them all")[2] == (
        ". The stored model.params hash is this configuration's as repeval hashed it before it told a date value "
        "(`2024-01-01`) from its text (`'2024-01-01'`), which it hashed alike: the partition was embedded with these "
        "params or with the same dates written as text, which cannot be told apart, so its rows are not reused"
    )
    green = _clean(tmp_path, {"since": datetime.date(2024, 1, 1), "mode": "green"})  # an Enum member by its value too
    with pytest.raises(StoreConflict) as err:
        accepted_spec(_stamped(tmp_path, "green", green, "f4dc0e1328a4c503"), green)  # as c1eb7f5 hashed it
    assert "as repeval hashed it before it told a date value (`2024-01-01`) from its text" in str(err.value)
