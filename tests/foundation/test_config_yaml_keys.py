"""The configuration's YAML read for the slips YAML lets pass (:mod:`repeval.config.yaml_keys`), and its paths
(:data:`repeval.config.base.PathText`): what they refuse, and what they must not."""

from __future__ import annotations

import datetime
import hashlib
import json
from pathlib import Path

import pytest
import yaml

from repeval.config import ConfigError, load_config, parse_config

#: one experiment; ``{probe}`` its probe's keys (indented 8), ``{store}`` its store, ``{head}`` the lines above it
CONFIG = """\
{head}
run:
  store: {store}
experiments:
  - task: {{name: pitch, type: multiclass_classification}}
    datasets:
      - {{name: notes, type: catalog, manifest: m.csv, label_column: instrument}}
    deformations:
      - name: quiet
        steps: [{{type: Gain, params: {{min_gain_db: -6, max_gain_db: -6, p: 1}}}}]
    embedding_models: [{model}]
    downstream_models:
      - {probe}
"""


def _write(
    tmp_path: Path, head: str = "", probe: str = "{type: classifier}", store: str = "store", model: str = "mfcc-stats"
) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(CONFIG.format(head=head, probe=probe, store=store, model=model))
    return path


def _problems(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as err:
        load_config(path)
    return err.value.problems


def test_a_key_given_twice_in_an_anchor_merged_with_its_keys_is_said_where_it_is_merged(tmp_path):
    """An anchor under an ``x-`` key is not checked where it is written; merged (``<<``), its keys were the merging
    mapping's, and a key it gives twice was silently the last."""
    head = "x-probe: &P\n  type: classifier\n  learning_rate: 1.0e-2\n  learning_rate: 1.0e-3\n"
    assert _problems(_write(tmp_path, head, probe="<<: *P")) == [
        "experiments[0].downstream_models[0]: key 'learning_rate' is given twice (lines 3 and 4) — YAML keeps the "
        "last: keep one"
    ]
    # its own key overrides both: nothing lost, nothing said
    cfg = load_config(_write(tmp_path, head, probe="{<<: *P, learning_rate: 0.5}"))
    assert cfg.experiments[0].downstream_models[0].learning_rate == 0.5


def test_a_merging_mapping_merged_before_it_is_built_keeps_its_own_keys(tmp_path):
    """A mapping that merges an anchor and overrides a key of it (``<<: *A`` and ``learning_rate``), merged itself
    by a mapping built before it (an ``x-`` key below it): its keys were said to be given twice."""
    head = "x-a: &A {type: classifier, learning_rate: 1.0e-2, batch_size: 32}"
    path = _write(tmp_path, head, probe="&B {<<: *A, learning_rate: 1.0e-3}")
    path.write_text(path.read_text() + "x-later:\n  <<: *B\n")
    probe = load_config(path).experiments[0].downstream_models[0]
    assert (probe.learning_rate, probe.batch_size) == (1.0e-3, 32)


#: a model of a plugin whose parameters take mappings
LABEL_MAP_MODEL = """
import numpy as np
from repeval.models import EmbeddingModel, register_model

@register_model("label-map-model")
class LabelMap(EmbeddingModel):
    sample_rate_hz = 16000
    embedding_version = "1"

    def __init__(self, layer_weights: dict | None = None, labels: dict | None = None) -> None:
        super().__init__(layer_weights=layer_weights, labels=labels)
        self.embedding_dim = 4

    def embed(self, audio):
        return np.zeros((1, 4), np.float32)
"""


@pytest.fixture(scope="module")
def label_map_plugin(tmp_path_factory) -> Path:
    """:data:`LABEL_MAP_MODEL`'s file: one for the module (two plugin files of one name are refused)."""
    path = tmp_path_factory.mktemp("plugin") / "label_map.py"
    path.write_text(LABEL_MAP_MODEL)
    return path


def test_the_keys_of_a_parameters_value_are_its_data_as_yaml_reads_them(tmp_path, label_map_plugin):
    """``params`` keys name parameters: ``1:`` there is a slip. The keys of a value a parameter takes are its data
    (``layer_weights: {0: 0.5, 12: 0.5}``): they were refused as "read by YAML as the number 0, not a name"."""
    plugin = label_map_plugin  # (its models registered once)
    model = "{id: label-map-model, params: {layer_weights: {0: 0.5, 12: 0.5}, labels: [{1: one}]}}"
    cfg = load_config(_write(tmp_path, f"plugins: [{plugin}]", model=model))
    assert cfg.experiments[0].embedding_models[0].params == {"layer_weights": {0: 0.5, 12: 0.5}, "labels": [{1: "one"}]}
    # a key given twice inside one is said all the same: YAML keeps the last
    said = _problems(_write(tmp_path, f"plugins: [{plugin}]", model=model.replace("12: 0.5", "0: 0.7")))
    assert said == [
        "experiments[0].embedding_models[0].params.layer_weights.0: key '0' is given twice on line 11 — YAML keeps "
        "the last: keep one"
    ]
    # a search's keys are names all through: its axes are probe keys
    said = _problems(_write(tmp_path, probe="{type: classifier, search: {grid: {on: [1, 2]}}}"))
    assert said == [
        "experiments[0].downstream_models[0].search.grid.on: key on (line 13) is read by YAML as the boolean true, "
        "not a name — quote it ('on': …)"
    ]


def test_a_runs_config_yaml_keeps_the_keys_of_a_parameters_value_as_the_run_used_them(tmp_path, label_map_plugin):
    """The run's config.yaml wrote ``layer_weights: {0: 0.5}`` as ``{'0': 0.5}``: run again from it, the model got
    other params (``null: none`` as ``'None'``, under another fingerprint); and keys of several kinds in one mapping
    (or a date) stopped the run where its partitions' fingerprint sorted them."""
    from repeval.config.loader import config_hash
    from repeval.models import resolve_model
    from repeval.pipeline.partitions import model_fingerprint, model_settings
    from repeval.run.context import config_yaml

    plugin = label_map_plugin  # (its models registered once)
    weights = "layer_weights: {0: 0.5, 12: 0.25, 0.5: x}"
    model = f"{{id: label-map-model, params: {{{weights}, labels: {{null: none, true: one, 2024-01-01: day}}}}}}"
    cfg = load_config(_write(tmp_path, f"plugins: [{plugin}]", model=model))
    saved = tmp_path / "saved.yaml"
    saved.write_text(config_yaml(cfg))
    again = load_config(saved)
    [used], [rerun] = cfg.experiments[0].embedding_models, again.experiments[0].embedding_models
    assert (
        rerun.params
        == used.params
        == {
            "layer_weights": {0: 0.5, 12: 0.25, 0.5: "x"},
            "labels": {None: "none", True: "one", datetime.date(2024, 1, 1): "day"},
        }
    )
    assert again == cfg and config_hash(again) == config_hash(cfg)
    assert model_fingerprint(rerun) == model_fingerprint(used)
    assert model_settings(*resolve_model(used))["labels"] == {"2024-01-01": "day", "null": "none", "true": "one"}


def test_a_number_key_and_its_text_are_two_fingerprints(tmp_path, label_map_plugin):
    """``labels: {1: one}`` and ``labels: {'1': one}`` are different YAML keys, and different params to the plugin:
    the fingerprint wrote both as ``{"1": "one"}``, so a partition embedded with one was taken for the other's (a
    deformation's scenario alike). They now differ; a configuration of string keys keeps its fingerprints (the
    quickstart's, as commit c9407e4 computed them) and its hash is its JSON dump's."""
    from repeval.config.embed import DeformationScenario, DeformationStep
    from repeval.config.loader import config_hash
    from repeval.pipeline.partitions import model_fingerprint, scenario_fingerprint

    def model(labels: str) -> dict[str, str]:
        text = f"{{id: label-map-model, params: {{labels: {labels}}}}}"
        cfg = load_config(_write(tmp_path, f"plugins: [{label_map_plugin}]", model=text))
        return model_fingerprint(cfg.experiments[0].embedding_models[0])

    assert model("{1: one}") != model("{'1': one}") and model("{1: one}") == model("{1: one}")
    assert model("{null: one}") != model("{'null': one}") != model("{'None': one}")

    def scenario(params: dict) -> str:  # a plugin transform's params, as the config holds them once validated
        step = DeformationStep.model_construct(type="Plugin", params=params)
        return config_hash(DeformationScenario.model_construct(name="s", steps=(step,)))

    assert scenario({"table": {1: 0.5}}) != scenario({"table": {"1": 0.5}}) != scenario({"table": {None: 0.5}})
    cfg = load_config(Path(__file__).parents[2] / "configs" / "quickstart.yaml")
    exp = cfg.experiments[0]
    dumped = json.dumps(cfg.model_dump(mode="json"), sort_keys=True)  # (the whole config's changes with each new field)
    assert config_hash(cfg) == hashlib.sha256(dumped.encode()).hexdigest()[:16]
    assert [model_fingerprint(m)["params"] for m in exp.embedding_models] == ["44136fa355b3678a"] * 2
    [ds] = exp.datasets
    assert [scenario_fingerprint(exp, sid, ds, 0)["scenario"] for sid in exp.scenarios_for(ds)] == [
        "e14afdd89a139ec6",
        "4da2f68a7301d9ae",
    ]


def test_a_partition_stamped_before_number_keys_were_told_apart_says_why_it_conflicts(tmp_path, label_map_plugin):
    """A partition embedded with ``labels: {1: one}`` before the fingerprint told a number key from its text holds
    the hash of ``{'1': one}`` (commit c9407e4's): the run and ``repeval plan`` stopped on a conflict of two hashes,
    ``model.params: stored "65d5…", now "25b2…"``, the configuration unchanged. The conflict now says the stored hash
    is this configuration's under the earlier rule (a scenario's alike), and only then; params described alike but
    hashed apart (``{1: one}`` embedded, ``{'1': one}`` now) are said to be written otherwise."""
    from repeval.config.embed import DeformationScenario, DeformationStep
    from repeval.config.loader import config_hash
    from repeval.pipeline.partition_conflicts import accepted_spec
    from repeval.pipeline.partitions import ModelSpec, PartitionSpec
    from repeval.store import EmbeddingStore, StoreConflict

    model = "{id: label-map-model, params: {labels: {1: one}}}"
    cfg = load_config(_write(tmp_path, f"plugins: [{label_map_plugin}]", model=model))
    exp = cfg.experiments[0]
    spec = ModelSpec.of(cfg, exp.embedding_models[0]).partition(cfg, exp, exp.datasets[0], "clean")
    store = EmbeddingStore(str(tmp_path / "store"))
    said = []
    for sid, stamped, described in (("clean", "65d5d6323202e213", spec.described), ("other", "0123456789abcdef", None)):
        (part := store.partition("notes", "label-map-model", sid)).stamp(  # c9407e4's hash; another's, undescribed
            {**spec.fingerprint, "model": {**spec.fingerprint["model"], "params": stamped}}, described=described
        )
        with pytest.raises(StoreConflict) as err:
            accepted_spec(part, spec)
        said.append(str(err.value).partition("deletes them all")[2])
    assert said == [
        ". The stored model.params hash is this configuration's as repeval hashed it before it told a number, null or "
        "date key (`1:`) from its text (`'1':`), which it hashed alike: the partition was embedded with these params "
        "or with the same keys written as text, which cannot be told apart, so its rows are not reused",
        "",
    ]
    # embedded with {1: one}, run with {'1': one}: the params described alike, hashed apart — said so, not two hashes
    text = load_config(_write(tmp_path, f"plugins: [{label_map_plugin}]", model=model.replace("{1:", "{'1':")))
    as_text = ModelSpec.of(text, text.experiments[0].embedding_models[0]).partition(text, exp, exp.datasets[0], "clean")
    (part := store.partition("notes", "label-map-model", "text")).stamp(spec.fingerprint, described=spec.described)
    with pytest.raises(StoreConflict, match=r'model.params: stored "25b28c3e0cb201f7", now "65d5d6323202e213";') as err:
        accepted_spec(part, as_text)
    assert str(err.value).endswith(
        "deletes them all. Its model.params read as this configuration's (the values, with the model's defaults, keys "
        "as text) but are written otherwise: a value at its default written out or left unset, a key written as a "
        "number, null or date (`1:`) or as text (`'1':`), or a date value unquoted (`2024-01-01`) or quoted "
        "(`'2024-01-01'`)"
    )
    step = DeformationStep.model_construct(type="Plugin", params={"table": {1: 0.5}})
    scenario = DeformationScenario.model_construct(name="s", steps=(step,))
    fingerprint = {**spec.fingerprint, "scenario": config_hash(scenario), "seed": 0}
    described = {**spec.described, "scenario": json.loads(json.dumps(scenario.model_dump(mode="json")))}
    (part := store.partition("notes", "label-map-model", "s")).stamp({**fingerprint, "scenario": "1e5426432ba8f209"})
    with pytest.raises(StoreConflict, match=r"The stored scenario hash is this configuration's as repeval hashed it"):
        accepted_spec(part, PartitionSpec("s", fingerprint, described, spec.model))


#: a light model of a plugin (tried on noise while the configuration is validated) whose layer weights are keyed by
#: layer number, or null for the rest
LIGHT_WEIGHTS_MODEL = """
import numpy as np
from repeval.models import EmbeddingModel, register_model

@register_model("light-weights-model")
class LightWeights(EmbeddingModel):
    sample_rate_hz = 16000
    embedding_version = "1"
    light = True

    def __init__(self, layer_weights: dict | None = None) -> None:
        super().__init__(layer_weights=layer_weights)
        if any(not (k is None or isinstance(k, int)) for k in layer_weights or {}):
            raise ValueError(f"layer_weights are keyed by layer numbers, got {list(layer_weights)}")
        self.embedding_dim = 2

    def embed(self, audio):
        return np.zeros((1, 2), np.float32)
"""


def test_a_light_model_is_tried_with_its_params_as_the_run_gives_them(tmp_path):
    """A light model is built and run on noise while the configuration is validated: its params went through JSON,
    so ``layer_weights: {0: 0.5}`` reached it as ``{'0': 0.5}`` and a fine configuration was refused; keys of several
    kinds (``{null: 1.0, 3: 0.5}``) stopped validation with a TypeError."""
    plugin = tmp_path / "light_weights.py"
    plugin.write_text(LIGHT_WEIGHTS_MODEL)
    for weights in ("{0: 0.5, 12: 0.5}", "{null: 1.0, 3: 0.5}"):
        model = f"{{id: light-weights-model, params: {{layer_weights: {weights}}}}}"
        cfg = load_config(_write(tmp_path, f"plugins: [{plugin}]", model=model))
        assert cfg.experiments[0].embedding_models[0].params["layer_weights"] == yaml.safe_load(weights)
    model = "{id: light-weights-model, params: {layer_weights: {x: 1.0}}}"
    assert _problems(_write(tmp_path, f"plugins: [{plugin}]", model=model)) == [
        "experiments[0].embedding_models[0]: light-weights-model with params {'layer_weights': {'x': 1.0}} does not "
        "work on half a second of noise: layer_weights are keyed by layer numbers, got ['x'] — check its params"
    ]


def test_a_transform_given_a_date_key_is_said_with_its_params(tmp_path):
    """A transform's params quoted in its error: a date key (``{2024-01-01: 1}``) stopped validation with a TypeError
    where they were written as JSON."""
    path = _write(tmp_path)
    path.write_text(path.read_text().replace("p: 1}", "p: {2024-01-01: 1}}"))
    [problem] = _problems(path)
    assert problem.startswith(
        'experiments[0].deformations[0].steps[0]: Gain({"min_gain_db": -6, "max_gain_db": -6, "p": {"2024-01-01": 1}})'
    ), problem


def test_a_slip_in_a_mapping_two_places_share_is_said_once(tmp_path):
    """A YAML alias puts one mapping in two places: its key given twice was said at each, "(lines 4 and 4)"."""
    head = "x-step: &S {type: Gain, params: {min_gain_db: -6, max_gain_db: -6, p: 1, p: 0.5}}"
    path = _write(tmp_path, head)
    path.write_text(
        path.read_text().replace(
            "steps: [{type: Gain, params: {min_gain_db: -6, max_gain_db: -6, p: 1}}]", "steps: [*S, *S]"
        )
    )
    assert _problems(path) == [
        "experiments[0].deformations[0].steps[0].params.p: key 'p' is given twice on line 1 — YAML keeps the last: "
        "keep one (the same at experiments[0].deformations[0].steps[1].params.p)"
    ]


def test_a_problem_many_experiments_share_names_five_other_places_and_counts_the_rest():
    """A block 20 experiments share (a YAML anchor) at fault was one line naming the 19 others."""
    step = {"type": "Gain", "params": {"min_gain_db": -6, "max_gain_db": -6, "p": 5}}
    data = yaml.safe_load(CONFIG.format(head="", probe="{}", store="store", model="mfcc-stats"))
    one = data["experiments"][0]
    data["experiments"] = [
        {**one, "task": {"name": f"pitch{i}", "type": "multiclass_classification"}, "deformations": [[step]]}
        for i in range(20)
    ]
    with pytest.raises(ConfigError) as err:
        parse_config(data)
    (said,) = err.value.problems
    assert said.startswith("experiments[0].deformations[0].steps[0].params.p: Gain.p is 5: it must pass")
    assert said.endswith(
        "(the same at experiments[1], experiments[2], experiments[3], experiments[4], experiments[5] and 14 more)"
    ), said


def test_a_path_with_a_dollar_is_a_variable_unless_it_names_a_file_that_exists(tmp_path, monkeypatch):
    """A folder named ``a$b`` (a ``$`` is a letter of a file name) was refused as an environment variable not set."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a$b").mkdir()
    assert load_config(_write(tmp_path, store="a$b")).run.store == "a$b"
    monkeypatch.delenv("REPEVAL_NOT_SET", raising=False)
    assert _problems(_write(tmp_path, store="a$REPEVAL_NOT_SET/x")) == [
        "run.store: 'a$REPEVAL_NOT_SET/x': environment variables are not expanded in paths: write the path out in "
        "full ($REPEVAL_NOT_SET is not set here)"
    ]


def test_a_tab_in_a_line_yaml_cannot_read_is_shown_where_it_is(tmp_path):
    """The line quoted with "YAML does not allow tabs in indentation" was stripped: the tab, the one thing to fix, was
    not in it (``(line 8: 'deformations:')``)."""
    path = _write(tmp_path)
    path.write_text(path.read_text().replace("\n    deformations:", "\n  \t deformations:"))
    assert _problems(path) == [
        "not valid YAML at line 8, column 3: found character '\\t' that cannot start any token (line 8: "
        "'  → deformations:', → is the tab) — YAML does not allow tabs in indentation: indent with spaces"
    ]


def test_a_tab_past_the_indentation_is_shown_and_said_as_it_is(tmp_path):
    """A tab after the 80th character of its line was cut off the quoted line (said "→ is the tab" with no → in it),
    and a tab between a flow mapping's keys was said to be "in indentation"."""
    path = _write(tmp_path)
    text = path.read_text().replace(
        "manifest: m.csv, label_column: instrument}",
        "manifest: ./data/m.csv, label_column: instrument,\tsplit_column: part_of_the_recording}",
    )
    path.write_text(text)
    assert _problems(path) == [
        "not valid YAML at line 7, column 87: found character '\\t' that cannot start any token (line 7: "
        "'…: catalog, manifest: ./data/m.csv, label_column: instrument,→split_column: part_', → is the tab) — YAML "
        "does not allow a tab there: write spaces"
    ]


def test_a_key_of_several_blocks_below_is_said_with_each_of_them():
    """``batch_size`` in an experiment is a key of a probe and of an embedding model: only the first, the embedding
    model, was named — the thesis' batch 100 is a probe's."""
    data = yaml.safe_load(CONFIG.format(head="", probe="{}", store="store", model="mfcc-stats"))
    data["experiments"][0]["batch_size"] = 100
    with pytest.raises(ConfigError) as err:
        parse_config(data)
    assert err.value.problems == [
        "experiments[0]: unknown key 'batch_size' here — it is a key of each 'embedding_models' entry or each "
        "'downstream_models' entry: indent it under the one it is for"
    ]


def test_a_home_of_no_user_is_refused_naming_the_two_paths_it_may_mean(tmp_path, monkeypatch):
    """``~data/x`` (a slip for ``~/data/x``) stayed as written: the store made a folder named ``~data``."""
    monkeypatch.chdir(tmp_path)
    assert _problems(_write(tmp_path, store="~repeval-no-such-user/x")) == [
        "run.store: '~repeval-no-such-user/x': there is no user 'repeval-no-such-user' here for "
        "'~repeval-no-such-user' to stand for: write ~/repeval-no-such-user/x for a folder in your home, or "
        "./~repeval-no-such-user/x for a folder named '~repeval-no-such-user'"
    ]


def test_the_store_and_runs_options_read_paths_as_the_configuration_does(tmp_path, monkeypatch):
    """``--store '~/x'`` (quoted: the shell left it) opened a folder named ``~`` under the current one, and
    ``--runs-dir '$VAR/x'`` one named ``$VAR``."""
    from typer.testing import CliRunner

    from repeval.cli import app
    from repeval.store import EmbeddingStore

    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("REPEVAL_NOT_SET", raising=False)
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    EmbeddingStore(str(tmp_path / "x"))
    assert CliRunner().invoke(app, ["store", "ls", "--store", "~/x"]).exit_code == 0
    res = CliRunner().invoke(app, ["runs", "--runs-dir", "$REPEVAL_NOT_SET/runs"])
    assert res.exit_code == 2
    assert "$REPEVAL_NOT_SET is not set here" in " ".join(res.output.replace("│", " ").split())
    assert not (tmp_path / "cwd" / "~").exists() and not (tmp_path / "cwd" / "$REPEVAL_NOT_SET").exists()


def test_the_store_commands_read_a_store_given_as_their_argument_as_store_is(tmp_path, monkeypatch, caplog):
    """``repeval store show|rm|settle STORE …`` took the root as written (``rm`` only expanded ``~``): a quoted
    ``'~/x'`` opened a folder named ``~``, ``'$VAR/x'`` one named ``$VAR`` and ``~user/x`` of no user one named
    ``~user``; nor did they say, as a run does, where a store left under ``./~`` is."""
    from typer.testing import CliRunner

    from repeval.cli import app

    home, cwd = tmp_path / "home", tmp_path / "cwd"
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("REPEVAL_NOT_SET", raising=False)
    (home / "x" / "notes" / "mfcc-stats" / "clean").mkdir(parents=True)
    (cwd / "~" / "y" / "notes" / "mfcc-stats" / "clean").mkdir(parents=True)  # where run.store: ~/y wrote once
    monkeypatch.chdir(cwd)
    for args in (["show", "~/x", "notes/mfcc-stats/clean"], ["rm", "~/x", "notes/*/*"], ["settle", "~/x"]):
        res = CliRunner().invoke(app, ["store", *args])
        assert res.exit_code == 0 and f"{home}/x" in res.output, (args, res.output)
    for args, said in (
        (["show", "$REPEVAL_NOT_SET/x", "notes/mfcc-stats/clean"], "$REPEVAL_NOT_SET is not set here"),
        (["rm", "~repeval-no-such-user/x", "notes/*/*"], "there is no user 'repeval-no-such-user' here"),
        (["settle", "~repeval-no-such-user/x"], "or ./~repeval-no-such-user/x for a folder named"),
        (["ls", "$REPEVAL_NOT_SET/x"], "$REPEVAL_NOT_SET is not set here"),  # (said as 'root' there)
        (["settle", "$REPEVAL_NOT_SET/a/b"], "$REPEVAL_NOT_SET is not set here"),  # (read as a partition: a/b/c)
        (["unlock", "~repeval-no-such-user/x"], "there is no user 'repeval-no-such-user' here"),
    ):
        res = CliRunner().invoke(app, ["store", *args])
        assert res.exit_code == 2, (args, res.output)
        assert f"Invalid value for STORE: '{args[1]}': " in " ".join(res.output.replace("│", " ").split()), res.output
        assert said in " ".join(res.output.replace("│", " ").split()), res.output
    assert sorted(p.name for p in cwd.iterdir()) == ["~"]  # no folder named $REPEVAL_NOT_SET or ~repeval-no-such-user
    caplog.clear()
    for args in (["ls", "~/y"], ["show", "~/y", "notes/mfcc-stats/clean"], ["settle", "~/y"]):
        assert CliRunner().invoke(app, ["store", *args]).exit_code == 1  # no store at ~/y: said after the note
    notes = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(notes) == 3 and all(n.startswith(f"the store {home}/y has no embeddings, but ./~/y ") for n in notes)


def test_a_store_left_in_a_folder_named_tilde_is_said_once_with_its_fix(tmp_path, monkeypatch, caplog):
    """``run.store: ~/x`` wrote to ``./~/x`` before ``~`` was expanded; the same configuration then pointed at
    ``$HOME/x`` and computed every embedding again, without a word."""
    from repeval.run.context import make_context

    home, cwd = tmp_path / "home", tmp_path / "cwd"
    monkeypatch.setenv("HOME", str(home))
    (cwd / "~" / "x" / "notes" / "mfcc-stats" / "clean").mkdir(parents=True)  # a partition of the earlier store
    monkeypatch.chdir(cwd)
    cfg = load_config(_write(cwd, store="~/x"))
    make_context(cfg, "r1", read_only=True)
    assert [r.getMessage() for r in caplog.records if r.levelname == "WARNING"] == [
        f"the store {home}/x has no embeddings, but ./~/x (a folder named '~' here) holds 1 partition — where "
        f"run.store: ~/x wrote before '~' was expanded: `mv './~/x' '{home}/x'`, or point run.store (or --store) "
        "at './~/x'; else they are computed again"
    ]
    caplog.clear()
    home.mkdir()
    (cwd / "~" / "x").rename(home / "x")  # the fix it names
    assert [p.dataset for p in make_context(cfg, "r2", read_only=True).store.partitions()] == ["notes"]
    assert not [r for r in caplog.records if r.levelname == "WARNING"]
