"""Model parameters read without building the model: the configuration check and the constructors' defaults."""

from __future__ import annotations

import abc
import dataclasses
import inspect
import json
from typing import Any

import pytest
from annotated_plugin import annotated_config

from repeval.config.embed import EmbeddingModelConfig
from repeval.models import musicnn_tf
from repeval.models.base import EmbeddingModel, check_params, resolve_model
from repeval.models.musicnn_tf import MSDMusiCNN


@pytest.mark.parametrize(
    ("model_id", "key", "bad", "said"),
    [
        ("mert-v1-95m", "frames", "nativ", "expected 'window' or 'native', got 'nativ' — did you mean 'native'?"),
        ("hf-audio", "frames", "mean", "expected 'window' or 'native', got 'mean'"),
        ("maest", "token_pooling", "max", "expected 'concat', 'cls' or 'mean', got 'max'"),
        (
            "pesto",
            "output",
            "feature",
            "expected 'activations' or 'features', got 'feature' — did you mean 'features'?",
        ),
    ],
)
def test_a_param_of_a_few_values_is_refused_by_the_config_check_naming_them(
    model_id: str, key: str, bad: str, said: str
) -> None:
    """hf encoders' ``frames`` (``window`` or ``native``), maest's ``token_pooling`` and pesto's ``output`` were
    checked only by the constructor: a config with another value passed ``repeval check`` and failed when the model
    was built, in the embedding actor. Now the configuration check refuses it at its key, naming the valid values (and
    the close one); the valid values pass."""
    with pytest.raises(ValueError, match=f"params.{key}") as refused:
        EmbeddingModelConfig(id=model_id, params={key: bad})
    assert said in str(refused.value)
    family, _ = resolve_model(EmbeddingModelConfig(id=model_id))
    for good in family.cls.param_choices[key]:
        check_params(EmbeddingModelConfig(id=model_id, params={key: good}))


def test_a_param_that_defaults_to_none_is_checked_against_its_annotation() -> None:
    """hf-audio's ``layers: list[int] | int | None = None`` took ``layers: last``: the configuration was valid and
    every embedding actor failed to build the model ("TypeError: '>=' not supported between instances of 'str' and
    'int'"). A default of None says nothing of a parameter's kind; its annotation does, and is now checked (a kind
    it does not know, a path or ``Any``, is left to the constructor)."""
    with pytest.raises(ValueError, match=r"params\.layers") as refused:
        EmbeddingModelConfig(id="hf-audio", params={"layers": "last", "normalize": "yes"})
    said = str(refused.value)
    assert "expected a list of integers, an integer or null, got 'last'" in said
    assert "params.normalize\n  expected true, false or null, got 'yes'" in said
    for good in ([4, 5], 6, -1, None):
        check_params(EmbeddingModelConfig(id="hf-audio", params={"layers": good, "normalize": True}))


def test_a_param_a_base_constructor_names_is_checked_against_its_annotation() -> None:
    """essentia's ``embedding_dim: int | None = None`` and ``graph_path: str | None = None`` are its base class'
    constructor's (maest's own ``__init__`` does not name them): their annotations were read from the family's own
    constructor only, so ``embedding_dim: '512'`` was valid and reached the model. The constructor that names the
    parameter is read, as the parameters are."""
    with pytest.raises(ValueError, match=r"params\.embedding_dim\n  expected an integer or null, got '512'"):
        EmbeddingModelConfig(id="maest", params={"embedding_dim": "512"})
    with pytest.raises(ValueError, match=r"params\.graph_path\n  expected a string or null, got 3"):
        EmbeddingModelConfig(id="effnet-discogs", params={"graph_path": 3})
    check_params(EmbeddingModelConfig(id="maest", params={"embedding_dim": 512, "graph_path": "m.pb"}))


def test_a_number_yaml_read_as_text_is_refused_naming_how_to_write_it() -> None:
    """YAML reads ``hop_s: 1e-1`` (exponent notation without a dot and a signed exponent) as the text '1e-1': the
    check said "expected a number, got '1e-1'" — a number, to whoever wrote it. It now says how to write it."""
    import yaml

    from repeval.models.param_numbers import with_number_hint

    params = yaml.safe_load("{hop_s: 1e-1, n_mfcc: 2e1}")
    with pytest.raises(ValueError) as refused:
        EmbeddingModelConfig(id="mfcc-stats", params=params)
    said = str(refused.value)
    assert "expected a number, got '1e-1' (YAML reads this exponent notation as text: write 0.1)" in said
    assert "expected an integer, got '2e1' (YAML reads this exponent notation as text: write 20)" in said
    with pytest.raises(ValueError, match=r"got '1e1' \(YAML reads this exponent notation as text: write 10\)"):
        EmbeddingModelConfig(id="hf-audio", params={"layers": "1e1"})  # (a None default: its annotation's kinds)
    assert with_number_hint("expected true, false or null, got '1e1'", "1e1").endswith("got '1e1'")


def test_the_exponent_hint_never_says_to_write_a_value_refused_too() -> None:
    """The hint said to write what the check refuses as well: ``n_mfcc: 1e-1`` (an integer) "write 0.1", ``layers:
    [1e1, 2.5]`` "write [10, 2.5]", ``scales: [1e-3, abc]`` "write [0.001, abc]". It is given only where what it says
    to write is of the kind expected."""
    import yaml

    with pytest.raises(ValueError) as refused:
        EmbeddingModelConfig(id="mfcc-stats", params=yaml.safe_load("{n_mfcc: 1e-1}"))
    assert "expected an integer, got '1e-1'" in str(refused.value) and "YAML reads" not in str(refused.value)
    for layers in ("[1e1, 2.5]", "[1e1, abc]", "[1e-1, 2]"):
        with pytest.raises(ValueError) as refused:
            EmbeddingModelConfig(id="hf-audio", params=yaml.safe_load(f"{{layers: {layers}}}"))
        assert "YAML reads" not in str(refused.value) and "expected a list of integers" in str(refused.value), layers


def _with_default(cls: type[EmbeddingModel], key: str, value: Any) -> type[EmbeddingModel]:
    """A subclass of ``cls`` whose constructor's ``key`` defaults to ``value`` (a plugin's own default)."""

    def __init__(self: Any, **params: Any) -> None:
        params.setdefault(key, value)
        cls.__init__(self, **params)

    kinds = inspect.Parameter
    __init__.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [
            kinds("self", kinds.POSITIONAL_OR_KEYWORD),
            kinds(key, kinds.KEYWORD_ONLY, default=value),
            kinds("params", kinds.VAR_KEYWORD),
        ]
    )
    return type(f"Own{cls.__name__}", (cls,), {"__init__": __init__})


def _families() -> list[tuple[str, str, Any]]:
    return [
        ("repeval.models.musicnn_tf:MSDMusiCNN", "hop_s", 1.5),
        ("repeval.models.crepe:CrepeTiny", "hop_s", 0.05),
        ("repeval.models.neuralfp:NeuralFPModel", "hop_s", 0.25),
        ("repeval.models.pesto_pitch:Pesto", "hop_s", 0.02),
        ("repeval.models.pesto_pitch:Pesto", "output", "features"),
        ("repeval.models.mule:MULE", "hop_frames", 100),
        ("repeval.models.handcrafted:LogMelStats", "hop_s", 0.25),
        ("repeval.models.handcrafted:LogMelStats", "hop_length", 256),
        ("repeval.models.handcrafted:LogMelStats", "window_s", 2.0),
        ("repeval.models.handcrafted:LogMelStats", "n_fft", 1024),
        ("repeval.models.handcrafted:LogMelStats", "sample_rate_hz", 16000),
        ("repeval.models.handcrafted:LogMelStats", "n_mels", 32),
        ("repeval.models.handcrafted:MFCCStats", "n_mfcc", 13),
        ("repeval.models.essentia_tf:MAEST", "token_pooling", "cls"),
    ]


@pytest.mark.parametrize(("where", "key", "value"), _families())
def test_frames_and_sizes_stated_without_the_model_follow_the_constructors_default(
    where: str, key: str, value: Any
) -> None:
    """The frame geometry (where a window's frames lie: the pipeline's seams), sizes and hop ``repeval plan`` states
    are read without building the model: musicnn's frame geometry read ``hop_s`` with a hard-coded 3.0, and crepe's,
    neuralfp's, pesto's, mule's, the handcrafted statistics' and maest's theirs — a subclass (a plugin) with another
    default was given the frames of the default it does not run with. Now each reads the constructor's default,
    as it reads ``params``."""
    import importlib

    module, name = where.split(":")
    cls = getattr(importlib.import_module(module), name)
    own = _with_default(cls, key, value)
    stated = [cls.frame_geometry({key: value}), cls.declared_sizes({key: value}), cls.declared_hop_s({key: value})]
    assert stated != [cls.frame_geometry({}), cls.declared_sizes({}), cls.declared_hop_s({})]
    assert [own.frame_geometry({}), own.declared_sizes({}), own.declared_hop_s({})] == stated


class _OwnMSDMusiCNN(MSDMusiCNN):
    """A plugin's msd-musicnn with defaults of its own: half-hop patches of the mean pooling."""

    def __init__(self, layer: str | None = "mean_pool", hop_s: float = 1.5, **params: Any) -> None:
        super().__init__(layer=layer, hop_s=hop_s, **params)


def test_a_musicnn_subclass_keeps_itself_and_its_defaults_on_either_backend() -> None:
    """musicnn's ``variant`` (its backend's class) gave the built-in class of the checkpoint: a subclass or plugin of
    ``msd-musicnn`` was swapped for ``msd-musicnn`` when its config was resolved, so its model was built with
    ``msd-musicnn``'s defaults (3-s hops of the dense layer). Now it keeps itself; on ``backend: tf`` it runs as a
    TensorFlow variant of itself, which pickles by name — made again by name in a process that has not resolved it."""
    import pickle

    from repeval.models import build_model, musicnn_tf
    from repeval.models.base import MODELS, register_model

    register_model("own-msd-musicnn")(_OwnMSDMusiCNN)
    try:
        onnx, _ = resolve_model(EmbeddingModelConfig(id="own-msd-musicnn"))
        tf, _ = resolve_model(EmbeddingModelConfig(id="own-msd-musicnn", params={"backend": "tf"}))
        model = build_model(EmbeddingModelConfig(id="own-msd-musicnn"))
    finally:
        MODELS.remove("own-msd-musicnn")
    assert onnx.cls is _OwnMSDMusiCNN
    assert (model.layer, model.embedding_dim, model.hop_frames) == ("mean_pool", 753, musicnn_tf._patch_hop(1.5))
    assert tf.cls.process_group == "tf" and issubclass(tf.cls, _OwnMSDMusiCNN)
    assert tf.cls.frame_geometry({}) == onnx.cls.frame_geometry({}) != MSDMusiCNN.frame_geometry({})
    pickled = pickle.dumps(tf.cls)
    assert pickle.loads(pickled) is tf.cls
    delattr(musicnn_tf, tf.cls.__name__)  # as in a fresh process
    again = pickle.loads(pickled)
    assert again.__qualname__ == tf.cls.__qualname__ and again.process_group == "tf"
    assert issubclass(again, _OwnMSDMusiCNN) and again.__init__ is _OwnMSDMusiCNN.__init__


class _Described(abc.ABC):  # noqa: B024 - a mixin of a plugin's, with a metaclass of its own
    """A plugin's mixin whose type is ``abc.ABCMeta``."""


class _DescribedMSDMusiCNN(MSDMusiCNN, _Described):
    """A plugin's msd-musicnn with a mixin of another metaclass (``abc.ABC``)."""


class _TFOnlyMSDMusiCNN(musicnn_tf._TF_MSDMusiCNN):
    """A plugin's msd-musicnn on TensorFlow alone: a subclass of a variant, which has the variant's type."""


def test_a_musicnn_tensorflow_variant_of_a_class_with_a_metaclass_or_a_subclass_of_one_pickles() -> None:
    """A TensorFlow variant's type (``_TFVariant``, how it pickles) made ``backend: tf`` of a plugin class with an
    ``abc.ABC`` mixin a TypeError (metaclass conflict), and a plugin's subclass of a variant — which has its type —
    unpicklable (KeyError: '_onnx_class'). Now the variant's type is made with the class's metaclass, and a subclass
    pickles by its name."""
    import pickle

    from repeval.models.base import MODELS, register_model

    register_model("described-msd-musicnn")(_DescribedMSDMusiCNN)
    try:
        tf, _ = resolve_model(EmbeddingModelConfig(id="described-msd-musicnn", params={"backend": "tf"}))
    finally:
        MODELS.remove("described-msd-musicnn")
    assert isinstance(tf.cls, abc.ABCMeta) and issubclass(tf.cls, _DescribedMSDMusiCNN)
    pickled = pickle.dumps(tf.cls)
    delattr(musicnn_tf, tf.cls.__name__)  # as in a fresh process
    again = pickle.loads(pickled)
    assert again.__qualname__ == tf.cls.__qualname__ and again.process_group == "tf"
    assert issubclass(again, _DescribedMSDMusiCNN) and type(again) is type(tf.cls)
    assert pickle.loads(pickle.dumps(_TFOnlyMSDMusiCNN)) is _TFOnlyMSDMusiCNN


@pytest.mark.parametrize(
    ("model_id", "params", "said"),
    [
        ("msd-vgg", {"layer": "dense"}, "expected 'pool5', got 'dense'"),
        ("mtt-musicnn", {"layer": "pool5"}, "expected 'dense', 'penultimate', 'mean_pool' or 'max_pool'"),
        ("msd-musicnn", {"backend": "tff"}, "expected 'onnx' or 'tf', got 'tff' — did you mean 'tf'?"),
        ("basic-pitch", {"outputs": ["notes"]}, "expected a list of one or more of 'contour', 'note'"),
        ("basic-pitch", {"outputs": "note"}, "got 'note' — write it as a list: [note]"),
        ("basic-pitch", {"outputs": []}, "or 'onset', got []"),
    ],
)
def test_musicnn_layers_and_basic_pitch_outputs_are_refused_by_the_config_check(
    model_id: str, params: dict[str, Any], said: str
) -> None:
    """musicnn's ``layer`` (of its architecture: vgg has ``pool5`` alone) and basic-pitch's ``outputs`` were refused
    only when the model was built, in the embedding actor; musicnn's ``backend`` in words of its own. Now the
    configuration check refuses each at its key naming the valid values, and the valid values pass."""
    (key,) = params
    with pytest.raises(ValueError, match=f"params.{key}") as refused:
        EmbeddingModelConfig(id=model_id, params=params)
    assert said in str(refused.value)
    family, _ = resolve_model(EmbeddingModelConfig(id=model_id))
    choices = family.cls.param_choices[key]
    nulls = [None] if key != "backend" else []  # layer and outputs: null is the model's default
    for good in [*nulls, *([list(choices), choices[-1:]] if key == "outputs" else choices)]:
        check_params(EmbeddingModelConfig(id=model_id, params={key: good}))


def test_a_param_annotated_literal_is_refused_by_the_config_check_naming_the_model_and_its_values(
    tmp_path: Any, forget_plugins: None
) -> None:
    """A plugin's ``pooling: Literal['mean', 'max'] = 'mean'`` took ``pooling: median``: ``repeval validate`` passed
    and the constructor raised in every embedding actor. The check reads the ``Literal`` now: one line naming the
    model, the param and its values (``| None``: null too); the values it names pass."""
    from repeval.config import ConfigError, parse_config

    with pytest.raises(ConfigError) as refused:
        parse_config(annotated_config(tmp_path, {"pooling": "maxx", "norm": "l1"}))
    assert refused.value.problems == [
        "experiments[0].embedding_models[0].params.pooling: annotated-model's pooling takes 'mean' or 'max', got "
        "'maxx' — did you mean 'max'?",
        "experiments[0].embedding_models[0].params.norm: annotated-model's norm takes 'l2', 'none' or null, got 'l1'",
    ]
    for good in ({"pooling": "max", "norm": None}, {"norm": "none"}):
        parse_config(annotated_config(tmp_path, good))


def test_a_list_of_numbers_yaml_read_as_text_is_refused_naming_how_to_write_it(
    tmp_path: Any, forget_plugins: None
) -> None:
    """YAML reads ``[1e-3, 1e-4]`` as two texts: a scalar said how to write it, a list did not (and a param whose
    default is a list was not checked against its annotation at all: ``scales: list[float] = [1.0]`` took them).
    A list now says the list to write."""
    import yaml

    from repeval.config import ConfigError, parse_config

    with pytest.raises(ConfigError) as refused:
        parse_config(annotated_config(tmp_path, yaml.safe_load("{scales: [1e-3, 0.5]}")))
    assert refused.value.problems == [
        "experiments[0].embedding_models[0].params.scales: expected a list of numbers, got ['1e-3', 0.5] (YAML reads "
        "exponent notation as text: write [0.001, 0.5])"
    ]
    with pytest.raises(ValueError, match=r"got \['1e1', 2\] \(YAML reads exponent notation as text: write \[10, 2\]\)"):
        EmbeddingModelConfig(id="hf-audio", params=yaml.safe_load("{layers: [1e1, 2]}"))
    parse_config(annotated_config(tmp_path, {"scales": [0.001, 0.5]}))


def test_a_literal_beside_another_kind_or_in_a_list_is_checked_as_annotated(
    tmp_path: Any, forget_plugins: None
) -> None:
    """``size: Literal['auto'] | int | None = 'auto'`` refused ``size: 1024`` and ``size: null`` (the Literal's values
    alone were read, and the default's kind, a string), and ``modes: list[Literal['a', 'b']]`` took ``[a, c]``,
    refused by the constructor in every embedding actor. The annotation decides now: the Literal's values and the kinds
    beside it; a list's items."""
    from repeval.config import ConfigError, parse_config

    parse_config(annotated_config(tmp_path, {"size": 1024, "modes": ["b", "a"]}))
    parse_config(annotated_config(tmp_path, {"size": None}))
    with pytest.raises(ConfigError) as refused:
        parse_config(annotated_config(tmp_path, {"size": "autoo", "modes": ["a", "bb"]}))
    at = "experiments[0].embedding_models[0].params"
    assert refused.value.problems == [
        f"{at}.size: annotated-model's size takes 'auto', an integer or null, got 'autoo' — did you mean 'auto'?",
        f"{at}.modes: annotated-model's modes takes a list whose items are 'a' or 'b', got ['a', 'bb']: 'bb' is not "
        "one — did you mean 'b'?",
    ]
    with pytest.raises(ConfigError, match=r"modes takes a list whose items are 'a' or 'b', got 'a' \(a list: write"):
        parse_config(annotated_config(tmp_path, {"modes": "a"}))


def test_a_param_annotated_with_an_enum_takes_a_members_name_and_the_model_gets_the_member(
    tmp_path: Any, forget_plugins: None
) -> None:
    """A plugin's ``mode: Color = Color.RED`` took any value and its constructor got a string, in every embedding
    actor. The check names the members now (a member's value passes too); the model is built with the member, while
    the params stored in the partition's fingerprint keep the name (JSON, the same run after run)."""
    from repeval.config import ConfigError, parse_config
    from repeval.models import build_model
    from repeval.models.validate import validate_model
    from repeval.pipeline.partitions import model_fingerprint

    with pytest.raises(ConfigError) as refused:
        parse_config(annotated_config(tmp_path, {"mode": "GREN"}))
    assert refused.value.problems == [
        "experiments[0].embedding_models[0].params.mode: annotated-model's mode takes RED or GREEN, got 'GREN' — did "
        "you mean 'GREEN'?"
    ]
    with pytest.raises(ConfigError, match=r"mode takes RED or GREEN, got None$"):
        parse_config(annotated_config(tmp_path, {"mode": None}))
    for written in ("GREEN", "green"):
        cfg = parse_config(annotated_config(tmp_path, {"mode": written})).experiments[0].embedding_models[0]
        stored = model_fingerprint(cfg)
        mode = build_model(cfg).mode  # type: ignore[attr-defined]
        assert (type(mode).__name__, mode.name) == ("Color", "GREEN")
        assert (model_fingerprint(cfg), cfg.params) == (stored, {"mode": written})  # the name, as written
        assert json.loads(json.dumps(resolve_model(cfg)[1])) == {"mode": written}
    built = [c for c in validate_model(cfg, isolate=False).checks if c.name == "build"]  # repeval validate-model
    assert [c.ok for c in built] == [True], built


def test_a_list_of_literal_values_or_null_is_checked_as_annotated(tmp_path: Any, forget_plugins: None) -> None:
    """``tags: list[Literal['x', 'y']] | None`` took ``[x, z]`` (a list inside a union was not read): refused now like
    ``list[Literal[...]]``, null and the values it names passing."""
    from repeval.config import ConfigError, parse_config

    with pytest.raises(ConfigError) as refused:
        parse_config(annotated_config(tmp_path, {"tags": ["x", "z"]}))
    assert refused.value.problems == [
        "experiments[0].embedding_models[0].params.tags: annotated-model's tags takes a list whose items are 'x' or "
        "'y', got ['x', 'z']: 'z' is not one"
    ]
    for good in (["y", "x"], None):
        parse_config(annotated_config(tmp_path, {"tags": good}))


def test_an_enum_beside_another_kind_or_as_a_lists_items_is_checked_and_built_as_its_members(
    tmp_path: Any, forget_plugins: None
) -> None:
    """``shade: Color | int`` took ``shade: BLUE`` and ``palette: list[Color]`` took ``[RED, BLUE]`` (an ``Enum`` was
    read alone, or beside null), and the constructor got the texts, in every embedding actor. They are checked now
    as an ``Enum`` alone is — one line naming the model, the param and the members — and the model is built with the
    members (a list's items each — an ``IntEnum``'s member of value 0, falsy, too —, a member's value too; an integer
    beside them as it is)."""
    from repeval.config import ConfigError, parse_config
    from repeval.models import build_model

    wrong = {"shade": "BLUE", "palette": ["RED", "BLUE"], "accent": "RED", "tint": "BLUE"}
    with pytest.raises(ConfigError) as refused:
        parse_config(annotated_config(tmp_path, wrong))
    at = "experiments[0].embedding_models[0].params"
    assert refused.value.problems == [
        f"{at}.shade: annotated-model's shade takes RED, GREEN or an integer, got 'BLUE'",
        f"{at}.palette: annotated-model's palette takes a list whose items are RED or GREEN, got ['RED', 'BLUE']: "
        "'BLUE' is not one",
        f"{at}.accent: annotated-model's accent takes a list whose items are RED or GREEN, got 'RED' (a list: write "
        "[RED])",
        f"{at}.tint: annotated-model's tint takes RED, GREEN or null, got 'BLUE'",
    ]

    def shown(value: Any) -> Any:  # a member as Color.NAME (the plugin's class: Level.OFF too), a text as itself
        if isinstance(value, list | tuple):
            return [shown(v) for v in value]
        return f"{type(value).__name__}.{value.name}" if type(value).__name__ in ("Color", "Level") else value

    for params, given in (
        (
            {"shade": 3, "palette": ["green", "RED"], "accent": None, "levels": ["OFF", 1]},
            (3, ["Color.GREEN", "Color.RED"], None, None, ["Level.OFF", "Level.ON"]),
        ),
        (
            {"shade": "GREEN", "palette": [], "accent": ["RED"], "tint": "green"},
            ("Color.GREEN", [], ["Color.RED"], "Color.GREEN", []),
        ),
    ):
        cfg = parse_config(annotated_config(tmp_path, params)).experiments[0].embedding_models[0]
        assert shown(build_model(cfg).given) == list(given)  # type: ignore[attr-defined]


def test_an_enum_in_a_mapping_param_is_checked_and_built_and_a_text_naming_a_member_beside_str_is_the_member(
    tmp_path: Any, forget_plugins: None
) -> None:
    """``styles: dict[str, Color]`` took ``{a: BLUE}`` and the dataclass field of ``look: Look`` took ``{color: GREN}``,
    and the constructor got the texts: they are checked now as a param of its own is (its key named) and built with
    the members. ``hue: Color | str`` gave the constructor the text ``'GREEN'`` where ``shade: Color | int`` gave the
    member: a text naming a member is the member now whatever kinds are beside it, any other text as it is. (The
    dataclass is built: :func:`test_a_dataclass_param_is_built_from_its_mapping_its_fields_checked`.)"""
    from repeval.config import ConfigError, parse_config
    from repeval.models import build_model

    with pytest.raises(ConfigError) as refused:
        parse_config(annotated_config(tmp_path, {"styles": {"a": "RED", "b": "BLUE"}, "look": {"color": "GREN"}}))
    at = "experiments[0].embedding_models[0].params"
    assert refused.value.problems == [
        f"{at}.styles: annotated-model's styles.b takes RED or GREEN, got 'BLUE'",
        f"{at}.look: annotated-model's look.color takes RED or GREEN, got 'GREN' — did you mean 'GREEN'?",
    ]
    for params, held in (
        (
            {"styles": {"a": "GREEN", "b": "red"}, "look": {"color": "green", "size": 2}, "hue": "GREEN"},
            ({"a": "Color.GREEN", "b": "Color.RED"}, ("Look", {"color": "Color.GREEN", "size": 2}), "Color.GREEN"),
        ),
        ({"hue": "blue"}, (None, None, "blue")),
    ):
        cfg = parse_config(annotated_config(tmp_path, params)).experiments[0].embedding_models[0]
        got = build_model(cfg).held  # type: ignore[attr-defined]

        def shown(v: Any) -> Any:
            if dataclasses.is_dataclass(v) and not isinstance(v, type):
                return (type(v).__name__, {f.name: shown(getattr(v, f.name)) for f in dataclasses.fields(v)})
            if isinstance(v, dict):
                return {k: shown(x) for k, x in v.items()}
            return f"{type(v).__name__}.{v.name}" if type(v).__name__ == "Color" else v

        assert tuple(shown(v) for v in got) == held


def test_a_lists_items_of_an_enum_beside_another_kind_are_checked_and_built(
    tmp_path: Any, forget_plugins: None
) -> None:
    """``mixed: list[Color | int]`` took ``[GREN]`` and the constructor got the texts: its items are checked as
    ``list[Color]``'s are, an integer too, and built with the members (an integer as it is)."""
    from repeval.config import ConfigError, parse_config
    from repeval.models import build_model

    with pytest.raises(ConfigError) as refused:
        parse_config(annotated_config(tmp_path, {"mixed": ["GREN", 2]}))
    assert refused.value.problems == [
        "experiments[0].embedding_models[0].params.mixed: annotated-model's mixed takes a list whose items are RED, "
        "GREEN or an integer, got ['GREN', 2]: 'GREN' is not one — did you mean 'GREEN'?"
    ]
    cfg = parse_config(annotated_config(tmp_path, {"mixed": ["GREEN", 2, "red"]})).experiments[0].embedding_models[0]
    got = build_model(cfg).mixed  # type: ignore[attr-defined]
    assert [v if isinstance(v, int) else f"{type(v).__name__}.{v.name}" for v in got] == ["Color.GREEN", 2, "Color.RED"]


def test_a_mapping_param_holding_an_enum_given_no_mapping_is_refused(tmp_path: Any, forget_plugins: None) -> None:
    """``styles: dict[str, Color]`` took ``styles: GREEN`` and the constructor got the text where it reads a mapping:
    a mapping param holding an ``Enum`` is refused anything but a mapping (or null, its default)."""
    from repeval.config import ConfigError, parse_config

    with pytest.raises(ConfigError) as refused:
        parse_config(annotated_config(tmp_path, {"styles": "GREEN", "look": ["GREEN"]}))
    at = "experiments[0].embedding_models[0].params"
    assert refused.value.problems == [
        f"{at}.styles: annotated-model's styles takes a mapping (`key: value` lines), got 'GREEN'",
        f"{at}.look: annotated-model's look takes a mapping of Look's fields (`key: value` lines), got ['GREEN']",
    ]
    parse_config(annotated_config(tmp_path, {"styles": None, "look": None}))
