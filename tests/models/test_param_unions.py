"""Model params annotated with a union holding a dataclass beside other members (``Look | str``, ``list[Look] | Look``,
``Color | Look``): built as the dataclass of a mapping that fits it, the other members' values kept as they are built,
and a value that fits no member refused naming the members and the bad key; a dataclass whose field's annotation does
not resolve (``Price.amount``) built, a value for that field refused; a tuple param (``tuple[int, int]``,
``tuple[float, ...]``) built as a tuple, its length and items checked — by ``repeval validate`` and by ``repeval
validate-model --param`` alike."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from annotated_plugin import annotated_config, model_got

AT = "experiments[0].embedding_models[0].params"

#: a plugin whose params are unions holding a dataclass
UNION_PLUGIN = """
from __future__ import annotations  # (its annotations are text, resolved by repeval)

import dataclasses
import enum
from typing import TYPE_CHECKING, Any

import numpy as np

from repeval.models import EmbeddingModel, register_model

if TYPE_CHECKING:  # (not imported when repeval checks the params: Price.amount's annotation does not resolve)
    from decimal import Decimal


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"


@dataclasses.dataclass
class Look:
    color: Color = Color.RED
    size: int = 1

    def __post_init__(self):
        if self.size < 0:
            raise ValueError(f"size {self.size} is below 0")


@dataclasses.dataclass
class Price:
    amount: Decimal | None = None
    currency: str = "EUR"


@dataclasses.dataclass
class Fee:
    amount: Decimal  # (no default: it must be given, and cannot be)
    currency: str = "EUR"


@dataclasses.dataclass
class Spot:
    at: tuple[int, int] = (0, 0)


@register_model("union-model")
class UnionModel(EmbeddingModel):
    sample_rate_hz = 16000
    embedding_dim = 2

    def __init__(
        self, look: Look | str = "plain", looks: list[Look] | Look | None = None, hue: Color | Look | None = None,
        lines: list[Look] | str = "none",
        price: Price | None = None, pair: tuple[int, int] = (1, 2), scales: tuple[float, ...] = (1.0,),
        span: tuple[int, str | None] | None = None, hues: tuple[Color, ...] = (), spot: Spot | None = None,
        raw: Look | dict[str, Any] | None = None, fee: Fee | None = None, ends: tuple[Color, Color] | None = None,
        twins: tuple[Look, Look] | None = None, duo: tuple[Look, Look] | Look | None = None, **params,
    ):
        super().__init__(**params)
        if not isinstance(pair, tuple) or isinstance(look, dict):  # (validate-model's build: a tuple, a Look)
            raise TypeError(f"pair {pair!r}, look {look!r}")
        self.got = dict(look=look, looks=looks, hue=hue, price=price)
        self.got.update(pair=pair, scales=scales, span=span, hues=hues, spot=spot, raw=raw, fee=fee, ends=ends, twins=twins, duo=duo)

    def embed(self, audio):
        if len(audio) == 0:
            raise ValueError("no audio")
        return np.zeros((1, 2), np.float32)


@register_model("loose-model")
class LooseModel(UnionModel):  # a param annotated with a name imported only for type checkers, beside a dataclass
    def __init__(self, look: Look | None = None, rate: Decimal | None = None, **params):
        super().__init__(**params)
        self.got = dict(look=look, rate=rate)
"""


def _config(tmp_path: Path, params: dict[str, Any]) -> dict[str, Any]:
    return annotated_config(tmp_path, params, UNION_PLUGIN, "union-model")


def _got(tmp_path: Path, params: dict[str, Any]) -> dict[str, Any]:
    """What the model got of ``params`` (checked as ``repeval validate`` checks them)."""
    return model_got(_config(tmp_path, params), "got")


def test_a_union_holding_a_dataclass_builds_it_of_a_mapping_and_keeps_its_other_members(
    tmp_path: Path, forget_plugins: None
) -> None:
    """``look: Look | str`` given a mapping, ``looks: list[Look] | Look`` given one mapping or a list of them and
    ``hue: Color | Look`` given a mapping: the model got the mapping (a ``dict``), where ``Look | None`` built it; now
    the dataclass, and a text, a member's name or null as before."""
    assert _got(tmp_path, {"look": {"color": "GREEN"}, "looks": {"size": 2}, "hue": {"size": 3}}) == {
        "look": ("Look", {"color": "Color.GREEN", "size": 1}),
        "looks": ("Look", {"color": "Color.RED", "size": 2}),
        "hue": ("Look", {"color": "Color.RED", "size": 3}),
    }
    assert _got(tmp_path, {"look": "dotted", "looks": [{"color": "green"}, {}], "hue": "GREEN"}) == {
        "look": "dotted",
        "looks": [("Look", {"color": "Color.GREEN", "size": 1}), ("Look", {"color": "Color.RED", "size": 1})],
        "hue": "Color.GREEN",
    }
    assert _got(tmp_path, {"looks": None, "hue": None}) == {"looks": None, "hue": None}


def test_a_value_fitting_no_member_of_a_union_holding_a_dataclass_is_refused_naming_them_and_the_bad_key(
    tmp_path: Path, forget_plugins: None
) -> None:
    """A mapping no member builds (a field the dataclass has not, a value its field refuses, one its ``__post_init__``
    refuses), a list of such mappings or a value of no member's kind passed, and the constructor got it as it was:
    each is one line naming the members and why the mapping builds none."""
    from repeval.config import ConfigError, parse_config

    wrong = {
        "look": {"colour": "GREEN"},
        "looks": [{"size": 1}, {"size": "big"}],
        "hue": {"size": -1},
    }
    with pytest.raises(ConfigError) as refused:
        parse_config(_config(tmp_path, wrong))
    mapping, items = "a mapping of Look's fields (`key: value` lines)", "a list of mappings of Look's fields"
    assert refused.value.problems == [
        f"{AT}.look: union-model's look takes {mapping} or a string, got {{'colour': 'GREEN'}}: as a Look, it has no "
        "field 'colour': write one of Look's fields (color, size), or remove it — did you mean 'color'?",
        f"{AT}.looks: union-model's looks takes {mapping}, {items} (`- key: value` items) or null, got [{{'size': 1}}, "
        "{'size': 'big'}]: as a list of Looks, item 1's size takes an integer, got 'big'",
        f"{AT}.hue: union-model's hue takes {mapping}, RED, GREEN or null, got {{'size': -1}}: as a Look, it does not "
        "build: size -1 is below 0",
    ]
    with pytest.raises(ConfigError) as refused:
        parse_config(_config(tmp_path, {"look": 3, "hue": "GREN", "lines": {"size": 2}}))
    assert refused.value.problems == [
        f"{AT}.look: union-model's look takes {mapping} or a string, got 3",
        f"{AT}.hue: union-model's hue takes {mapping}, RED, GREEN or null, got 'GREN' — did you mean 'GREEN'?",
        f"{AT}.lines: union-model's lines takes {items} (`- key: value` items) or a string, got {{'size': 2}} (for "
        "one, write it as a list's item: `- key: value`)",
    ]


def test_a_mapping_its_dataclass_refuses_is_the_other_mapping_member_s(tmp_path: Path, forget_plugins: None) -> None:
    """``raw: Look | dict[str, Any]`` given a mapping of Look's fields whose ``__post_init__`` refuses it: ``repeval
    validate`` let it through (the dict member takes it), and building the model raised Look's error (``repeval run``
    failed with "error: size -1 is below 0"); the model gets the mapping, and one Look takes, a Look."""
    assert _got(tmp_path, {"raw": {"size": -1}}) == {"raw": {"size": -1}}
    assert _got(tmp_path, {"raw": {"size": 2}}) == {"raw": ("Look", {"color": "Color.RED", "size": 2})}


def test_a_union_param_is_fingerprinted_as_the_dataclass_built(tmp_path: Path, forget_plugins: None) -> None:
    """A union param built as its dataclass is hashed as one (``{"Look()": {…}}``), apart from the mapping the model
    got before: a partition stamped then is not reused (it conflicts, naming the param)."""
    from repeval.config import parse_config
    from repeval.models import resolve_model
    from repeval.models.param_fingerprints import dataclass_params, member_names

    cfg = parse_config(_config(tmp_path, {"look": {"color": "GREEN"}, "hue": "GREEN"}))
    fam, params = resolve_model(cfg.experiments[0].embedding_models[0])
    assert member_names(fam.cls, params) == {
        "look": {"Look()": {"color": {"Color": "GREEN"}}},
        "hue": {"Color": "GREEN"},
    }
    assert dataclass_params(fam.cls, params) == (("look", "Look", False),)


def test_a_partition_stamped_when_a_union_param_was_given_as_written_conflicts_saying_why(
    tmp_path: Path, forget_plugins: None
) -> None:
    """Partitions stamped by 27afef18's repeval, which gave these union and tuple params to the model as written (a
    ``dict``, a list of them, the text ``'GREEN'``), are not reused by the model built with the dataclass or member now: each
    conflicts, saying what the model got then."""
    from test_param_shapes import _conflict

    from repeval.config import parse_config
    from repeval.pipeline.partitions import ModelSpec

    mapping, text = "as a mapping (a `dict`, not a `Look`)", "the `Enum` members of param hue as text"
    for params, hashed_then, said in (  # as 27afef18 hashed them
        ({"looks": [{"size": 2}]}, "26a1e4965d12049b", "param looks as mappings (`dict`s, not `Look`s)"),
        ({"looks": {"size": 2}}, "4d7d4713c1e4fe9d", f"param looks {mapping}"),
        ({"hue": {"size": 3}}, "040408fd535d8077", f"param hue {mapping}"),
        ({"hue": "GREEN"}, "68026480aa541c23", f"{text} (`'GREEN'`, not `Color.GREEN`)"),
        (
            {"ends": ["GREEN", "red"]},
            "cacfa9c64ce2d37e",
            f"{text.replace('hue', 'ends')} (`'GREEN'`, not `Color.GREEN`)",
        ),
        ({"twins": [{"size": 2}, {}]}, "257cd38f6d729cc9", "param twins as mappings (`dict`s, not `Look`s)"),
    ):
        cfg = parse_config(_config(tmp_path, params))
        exp = cfg.experiments[0]
        spec = ModelSpec.of(cfg, exp.embedding_models[0]).partition(cfg, exp, exp.datasets[0], "clean")
        assert spec.fingerprint["model"]["params"] != hashed_then
        built = "the dataclasses" if "mappings" in said else "them as members" if "Enum" in said else "the dataclass"
        assert _conflict(tmp_path, spec, hashed_then).endswith(
            f"hashed it when it gave the model {said}: it builds {built} now, which a model may read otherwise, so the "
            "partition's rows are not reused"
        )


def test_validate_model_param_says_what_repeval_validate_says(tmp_path: Path, forget_plugins: None) -> None:
    """``repeval validate-model --param`` refuses a union param's and a tuple param's value with the configuration
    check's words, and builds the model with the dataclass and the tuple (its constructor refuses a mapping or a
    list)."""
    from typer.testing import CliRunner

    from repeval.cli import app

    plugin = _config(tmp_path, {})["plugins"][0]
    base = ["validate-model", "union-model", "--plugin", plugin]
    r = CliRunner().invoke(app, [*base, "--param", "look={colour: GREEN}", "--param", "pair=[1]"])
    said = " ".join(r.output.split())
    assert r.exit_code == 1
    assert (
        "params.look: union-model's look takes a mapping of Look's fields (`key: value` lines) or a string, got "
        "{'colour': 'GREEN'}: as a Look, it has no field 'colour'" in said
    )
    assert "params.pair: expected a list of 2 integers, got [1] (1 item, not 2)" in said
    r = CliRunner().invoke(app, [*base, "--param", "look={color: GREEN}", "--param", "pair=[1, 2]"])
    assert r.exit_code == 0, r.output


def test_a_dataclass_field_whose_annotation_does_not_resolve_is_refused_when_given(
    tmp_path: Path, forget_plugins: None
) -> None:
    """``Price.amount: Decimal | None``, ``Decimal`` imported only for type checkers: no field of ``Price`` resolved,
    and ``price: {amount: 1.5}`` (or ``{currency: USD}``) reached the model as the mapping, unchecked; now its other
    fields are checked and built, and a value for ``amount`` is refused naming the field and the fix."""
    from typer.testing import CliRunner

    from repeval.cli import app
    from repeval.config import ConfigError, parse_config

    assert _got(tmp_path, {"price": {"currency": "USD"}}) == {"price": ("Price", {"amount": None, "currency": "USD"})}
    said = (
        "union-model's price.amount cannot be checked: Price's field amount is annotated 'Decimal | None', which does "
        f"not resolve in {tmp_path / f'annotated_{tmp_path.name}.py'} (NameError: name 'Decimal' is not defined): import "
        "Decimal at the top of that module, not only under `if TYPE_CHECKING:` (or leave amount out for its default)"
    )
    with pytest.raises(ConfigError) as refused:
        parse_config(_config(tmp_path, {"price": {"amount": 1.5, "currency": "USD"}}))
    assert refused.value.problems == [f"{AT}.price: {said}"]
    with pytest.raises(ConfigError, match=r"price.currency takes a string, got 3$"):
        parse_config(_config(tmp_path, {"price": {"currency": 3}}))
    plugin = _config(tmp_path, {})["plugins"][0]
    r = CliRunner().invoke(app, ["validate-model", "union-model", "--plugin", plugin, "--param", "price={amount: 1}"])
    assert r.exit_code == 1 and said in " ".join(r.output.split()), r.output


def test_a_required_field_whose_annotation_does_not_resolve_is_refused_so_when_left_out(
    tmp_path: Path, forget_plugins: None
) -> None:
    """``Fee.amount: Decimal`` (no default; ``Decimal`` imported only for type checkers) left out was refused saying
    to add it, which is refused in turn: it says the import to move at once."""
    from repeval.config import ConfigError, parse_config

    with pytest.raises(ConfigError) as refused:
        parse_config(_config(tmp_path, {"fee": {"currency": "USD"}}))
    assert refused.value.problems == [
        f"{AT}.fee: union-model's fee.amount cannot be checked: Fee's field amount is annotated 'Decimal', which does "
        f"not resolve in {tmp_path / f'annotated_{tmp_path.name}.py'} (NameError: name 'Decimal' is not defined): "
        "import Decimal at the top of that module, not only under `if TYPE_CHECKING:`"
    ]


def test_a_field_annotated_with_a_name_its_module_defines_nowhere_is_refused_saying_so(
    tmp_path: Path, forget_plugins: None
) -> None:
    """``amount: Decmal | None`` in a module that imports ``Decimal`` and names no ``TYPE_CHECKING``: the refusal said
    to import ``Decmal`` "not only under `if TYPE_CHECKING:`"; it says to define or import it, and the name meant."""
    from repeval.config import ConfigError, parse_config

    plugin = UNION_PLUGIN.replace("if TYPE_CHECKING:", "if True:").replace("TYPE_CHECKING", "Any")
    plugin = plugin.replace("amount: Decimal | None = None", "amount: Decmal | None = None")
    with pytest.raises(ConfigError) as refused:
        parse_config(annotated_config(tmp_path, {"price": {"amount": 1}}, plugin, "union-model"))
    assert refused.value.problems == [
        f"{AT}.price: union-model's price.amount cannot be checked: Price's field amount is annotated 'Decmal | None', "
        f"which does not resolve in {tmp_path / f'annotated_{tmp_path.name}.py'} (NameError: name 'Decmal' is not "
        "defined): define or import Decmal in that module — did you mean 'Decimal'? (or leave amount out for its "
        "default)"
    ]


def test_a_tuple_param_is_built_as_a_tuple_its_length_and_items_checked(tmp_path: Path, forget_plugins: None) -> None:
    """``pair: tuple[int, int]``, ``scales: tuple[float, ...]``, ``hues: tuple[Color, ...]`` and a dataclass' ``at:
    tuple[int, int]`` field: the model got the list written, and a list of any length or items passed (``[1]``,
    ``[1, 'b']``); now a tuple, and a list of the wrong length or an item of the wrong kind is refused at its key."""
    from repeval.config import ConfigError, parse_config

    given = {"pair": [3, 4], "scales": [1, 2.5], "span": [1, None], "hues": ["GREEN", "red"], "spot": {"at": [1, 2]}}
    assert _got(tmp_path, given) == {
        "pair": (3, 4),
        "scales": (1, 2.5),
        "span": (1, None),
        "hues": ("Color.GREEN", "Color.RED"),
        "spot": ("Spot", {"at": (1, 2)}),
    }
    wrong = {"pair": [1], "scales": ["a"], "span": [1, 2], "spot": {"at": [1, 2, 3]}}
    with pytest.raises(ConfigError) as refused:
        parse_config(_config(tmp_path, wrong))
    assert refused.value.problems == [
        f"{AT}.pair: expected a list of 2 integers, got [1] (1 item, not 2)",
        f"{AT}.scales: expected a list of numbers, got ['a']",
        f"{AT}.span: expected a list of 2 items (an integer, a string or null) or null, got [1, 2]: item 1 (2) is not a "
        "string or null",
        f"{AT}.spot: union-model's spot.at takes a list of 2 integers, got [1, 2, 3] (3 items, not 2)",
    ]
    with pytest.raises(
        ConfigError, match=r"pair: expected a list of 2 integers, got \[1, 'b'\]: item 1 \('b'\) is not an"
    ):
        parse_config(_config(tmp_path, {"pair": [1, "b"]}))


def test_a_tuple_of_fixed_length_of_enum_members_or_dataclasses_is_built_and_checked(
    tmp_path: Path, forget_plugins: None
) -> None:
    """``ends: tuple[Color, Color]``, ``twins: tuple[Look, Look]``: the model got a tuple of the texts and mappings
    written, of any length, unchecked (``tuple[Color, ...]`` was built and checked); now of members and dataclasses,
    their number and each item checked."""
    from repeval.config import ConfigError, parse_config

    assert _got(tmp_path, {"ends": ["GREEN", "red"], "twins": [{"size": 2}, {}]}) == {
        "ends": ("Color.GREEN", "Color.RED"),
        "twins": (("Look", {"color": "Color.RED", "size": 2}), ("Look", {"color": "Color.RED", "size": 1})),
    }
    with pytest.raises(ConfigError) as refused:
        parse_config(_config(tmp_path, {"ends": ["GREEN"], "twins": [{}, {"size": "big"}]}))
    assert refused.value.problems == [
        f"{AT}.ends: union-model's ends takes a list of 2 items, got ['GREEN'] (1 item, not 2)",
        f"{AT}.twins: union-model's twins[1].size takes an integer, got 'big'",
    ]
    with pytest.raises(ConfigError) as refused:  # (beside a dataclass too)
        parse_config(_config(tmp_path, {"duo": [{}]}))
    assert refused.value.problems[0].endswith(
        "got [{}]: as a list of Looks, it takes a list of 2 items, got [{}] (1 item, not 2)"
    )
    with pytest.raises(ConfigError, match=r"ends takes a list whose items are RED or GREEN, got \['GREEN', 'BLU'\]"):
        parse_config(_config(tmp_path, {"ends": ["GREEN", "BLU"]}))


def test_a_tuple_param_keeps_the_fingerprint_of_the_list_written(tmp_path: Path, forget_plugins: None) -> None:
    """A tuple param is hashed as the list written (the form a partition stamped before tuples were built holds):
    its partitions keep their fingerprint, and no earlier writing of them is looked for."""
    from repeval.config import parse_config
    from repeval.config.loader import config_hash
    from repeval.pipeline.partitions import ModelSpec

    written = {"pair": [3, 4], "scales": [0.5]}
    cfg = parse_config(_config(tmp_path, written))
    spec = ModelSpec.of(cfg, cfg.experiments[0].embedding_models[0])
    assert spec.params == written and type(spec.params["pair"]) is list
    assert spec.fingerprint["params"] == config_hash(written) and spec.earlier == ()


def test_a_param_whose_annotation_does_not_resolve_leaves_the_others_checked_and_built(
    tmp_path: Path, forget_plugins: None
) -> None:
    """``rate: Decimal | None`` (``Decimal`` imported only for type checkers) beside ``look: Look | None``: no param of
    the constructor resolved, so ``look``'s mapping reached the model unbuilt and unchecked; now ``look`` is built and
    checked, and ``rate`` passes as written (not ours to judge)."""
    from repeval.config import ConfigError, parse_config

    config = annotated_config(tmp_path, {"look": {"color": "GREEN"}, "rate": 1.5}, UNION_PLUGIN, "loose-model")
    assert model_got(config, "got") == {"look": ("Look", {"color": "Color.GREEN", "size": 1}), "rate": 1.5}
    config["experiments"][0]["embedding_models"][0]["params"] = {"look": {"size": "big"}}
    with pytest.raises(ConfigError, match=r"params.look: loose-model's look.size takes an integer, got 'big'$"):
        parse_config(config)
