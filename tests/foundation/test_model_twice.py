"""One embedding model id that two experiments of a configuration compute otherwise on one dataset: the store keeps
one partition per dataset, model and scenario, so ``repeval validate`` and ``repeval plan`` refuse it as the run does,
in the same words, naming the fix; the run's own check stays the last guard. No Ray: each stops before embedding."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from repeval.cli import app
from repeval.config import ConfigError, load_config
from repeval.testing.configs import one_row_config

MODEL = {"id": "m", "type": "mfcc-stats", "params": {"n_mfcc": 8}}


def _two_tasks(tmp_path: Path, other: dict, dataset: str = "d") -> Path:
    """``exp.yaml`` with a second task on the dataset (or on a dataset named ``dataset``), its model ``other``."""
    cfg = one_row_config(tmp_path)
    d = yaml.safe_load(cfg.read_text())
    first = d["experiments"][0]
    first["embedding_models"] = [MODEL]
    second = {**first, "task": {**first["task"], "name": "t2"}, "embedding_models": [other]}
    second["datasets"] = [{**first["datasets"][0], "name": dataset}]
    d["experiments"].append(second)
    cfg.write_text(yaml.safe_dump(d, sort_keys=False))
    return cfg


def test_validate_and_plan_refuse_one_model_id_computed_two_ways_on_a_dataset_as_the_run_does(tmp_path):
    """Two tasks on one dataset, each with model id m under other params: `repeval validate` said the configuration
    was valid and `repeval plan` planned it, while `repeval run` refused it once it had loaded the data; all say it
    now, naming what differs and the fix."""
    cfg = _two_tasks(tmp_path, {**MODEL, "params": {"n_mfcc": 12}})
    said = (
        "experiments[1].embedding_models[0]: store partition d/m/clean: two experiments of this run compute it "
        "differently — model.params.n_mfcc: stored 8, now 12 (stored: as experiments[0].embedding_models[0] plans "
        "it; nothing is stored yet); give the model a new id in one of them (in embedding_models, `id: m-2` with "
        "`type: mfcc-stats`)"
    )
    with pytest.raises(ConfigError) as err:
        load_config(cfg)
    assert err.value.problems == [said]
    for command in (["validate", str(cfg), "--skip-data-check"], ["plan", str(cfg)]):
        res = CliRunner().invoke(app, command)
        assert res.exit_code == 2 and said in " ".join(res.output.split()), (command, res.output)
    assert not (tmp_path / "store").exists()


@pytest.mark.parametrize(
    ("other", "dataset"),
    [
        ({**MODEL, "batch_size": 2}, "d"),  # computed alike: one stream, the smaller batch
        ({**MODEL, "params": {"n_mfcc": 12}}, "other"),  # another dataset: another partition
    ],
)
def test_one_model_id_computed_alike_or_on_another_dataset_is_valid(tmp_path, other, dataset):
    cfg = load_config(_two_tasks(tmp_path, other, dataset))
    assert [e.embedding_models[0].id for e in cfg.experiments] == ["m", "m"]


def test_one_model_id_written_otherwise_on_a_dataset_names_the_params_and_the_fix(tmp_path):
    """A param at its default written out in one task, left unset in the other: hashed otherwise (the run refuses it
    too, as a later run of either would refuse the other's partition), said as written otherwise with the fix first.
    It said `model.params: stored "673d…", now "993e…"`, named no param, and gave the new id before writing them
    alike."""
    cfg = _two_tasks(tmp_path, {**MODEL, "params": {"n_mfcc": 8, "n_mels": 64}})  # n_mels: 64 is the default
    with pytest.raises(ConfigError) as err:
        load_config(cfg)
    assert err.value.problems == [
        "experiments[1].embedding_models[0]: store partition d/m/clean: two experiments of this run compute it "
        "differently — model.params.n_mels: 64 here, not written in experiments[0].embedding_models[0]; their "
        "model.params read alike (the values, with the model's defaults, keys as text) but are written otherwise: a "
        "value at its default written out or left unset, a key written as a number, null or date (`1:`) or as text "
        "(`'1':`), or a date value unquoted (`2024-01-01`) or quoted (`'2024-01-01'`): write them alike, or give the "
        "model a new id in one of them (in embedding_models, `id: m-2` with `type: mfcc-stats`)"
    ]
    d = yaml.safe_load(cfg.read_text())  # each writes out a default the other leaves unset: both named
    d["experiments"][0]["embedding_models"][0]["params"] = {"n_mfcc": 8, "n_mels": 64}
    d["experiments"][1]["embedding_models"][0]["params"] = {"n_mfcc": 8, "hop_s": 0.5}
    cfg.write_text(yaml.safe_dump(d, sort_keys=False))
    with pytest.raises(ConfigError, match=r"— model\.params\.hop_s: 0\.5 here, not written in experiments\[0\]\."
                       r"embedding_models\[0\]; model\.params\.n_mels: not written here, 64 in experiments\[0\]\."
                       r"embedding_models\[0\]; their model\.params read alike"):  # fmt: skip
        load_config(cfg)


def test_the_new_id_a_refusal_names_is_not_one_the_configuration_uses(tmp_path):
    """It named `id: m-2` where the configuration uses m-2 already: following it gave another refusal."""
    cfg = _two_tasks(tmp_path, {**MODEL, "params": {"n_mfcc": 12}})
    d = yaml.safe_load(cfg.read_text())
    d["experiments"][1]["embedding_models"].append({**MODEL, "id": "M-2", "params": {"n_mfcc": 16}})
    cfg.write_text(yaml.safe_dump(d, sort_keys=False))
    with pytest.raises(ConfigError, match=r"give the model a new id in one of them \(in embedding_models, `id: m-3` "):
        load_config(cfg)


def test_the_run_refuses_one_model_id_computed_two_ways_by_experiments_of_two_configurations(tmp_path):
    """The run's own check, the last guard: a library caller's work items (`embed_experiments`) may come from two
    configurations, each valid alone, that the configuration's check never saw together — the second plan of the
    partition is checked against the stamp the first planned, refused before anything is written or Ray is needed."""
    import pyarrow as pa

    from repeval.config import parse_config
    from repeval.pipeline.embed import embed_experiments
    from repeval.store import EmbeddingStore, StoreConflict

    d = yaml.safe_load(one_row_config(tmp_path).read_text())
    first, second = (
        parse_config({**d, "experiments": [{**d["experiments"][0], "embedding_models": [model]}]})
        for model in (MODEL, {**MODEL, "params": {"n_mfcc": 12}})
    )
    rows = pa.table({"track_id": ["a"], "audio_path": [str(tmp_path / "a.wav")], "split": ["test"]})
    work = [(cfg.experiments[0], {"d": rows}, None) for cfg in (first, second)]
    store = EmbeddingStore(str(tmp_path / "store"))

    def no_ray() -> None:
        raise AssertionError("the run went on to embed")

    with pytest.raises(StoreConflict) as err:
        embed_experiments(first, work, store, start_ray=no_ray)
    assert str(err.value) == (
        f"store partition {store.partition('d', 'm', 'clean').path}: two experiments of this run compute it "
        "differently — model.params.n_mfcc: stored 8, now 12 (stored: as an earlier experiment of the configuration "
        "plans it; nothing is stored yet); give the model a new id in one of them (in embedding_models, `id: m-2` "
        "with `type: mfcc-stats`)"
    )
    assert not (tmp_path / "store" / "d").exists()


def test_validate_and_plan_name_the_backend_one_model_id_runs_with_when_two_experiments_set_it_otherwise(tmp_path):
    """musicnn's `backend` is left out of the store's fingerprint (its backends' embeddings agree): two tasks listing
    model m with backend onnx and tf share m's stream, which ran with the first's backend, silently; `repeval
    validate` and `plan` now say which one runs and how to run each with its own."""
    musicnn = {"id": "m", "type": "msd-musicnn"}
    cfg = _two_tasks(tmp_path, {**musicnn, "params": {"backend": "tf"}}, "other")
    d = yaml.safe_load(cfg.read_text())
    d["experiments"][0]["embedding_models"] = [musicnn]  # the default backend: onnx
    cfg.write_text(yaml.safe_dump(d, sort_keys=False))
    said = (
        "note: experiments[1].embedding_models[0]: model 'm' is embedded with params.backend: \"onnx\", as "
        'experiments[0].embedding_models[0] leaves it, not "tf" as set here — one stream embeds the tracks of both '
        "(params.backend says how, not what, the model computes, and the store's fingerprint leaves it out: the "
        "embeddings are the same either way); to run each with its own, give the model a new id in one of them (in "
        "embedding_models, `id: m-2` with `type: msd-musicnn`)"
    )
    for command in (["validate", str(cfg), "--skip-data-check", "--skip-model-check"], ["plan", str(cfg)]):
        res = CliRunner().invoke(app, command)
        assert res.exit_code == 0 and said in " ".join(res.output.split()), (command, res.output)
    d["experiments"][1]["embedding_models"] = [{**musicnn, "params": {"backend": "onnx"}}]  # alike: nothing to say
    cfg.write_text(yaml.safe_dump(d, sort_keys=False))
    res = CliRunner().invoke(app, ["validate", str(cfg), "--skip-data-check", "--skip-model-check"])
    assert res.exit_code == 0 and "one stream" not in res.output, res.output


def test_the_note_of_a_backend_several_experiments_set_alike_is_said_once(tmp_path):
    """A task grid: the first task leaves musicnn's backend unset, three others set tf — one note naming the other
    places, as a dataset several experiments share is said (it was three notes of 400 characters, alike)."""
    musicnn = {"id": "m", "type": "msd-musicnn"}
    cfg = _two_tasks(tmp_path, {**musicnn, "params": {"backend": "tf"}}, "other")
    d = yaml.safe_load(cfg.read_text())
    d["experiments"][0]["embedding_models"] = [musicnn]
    d["experiments"] += [{**d["experiments"][1], "task": {**d["experiments"][1]["task"], "name": t}} for t in "34"]
    cfg.write_text(yaml.safe_dump(d, sort_keys=False))
    res = CliRunner().invoke(app, ["validate", str(cfg), "--skip-data-check", "--skip-model-check"])
    notes = [line for line in res.output.splitlines() if line.startswith("note: ")]
    assert res.exit_code == 0 and len(notes) == 1, res.output
    assert notes[0].startswith("note: experiments[1].embedding_models[0]: model 'm' is embedded with "), notes
    assert notes[0].endswith("(the same at experiments[2].embedding_models[0], experiments[3].embedding_models[0])"), (
        notes
    )


def test_the_run_warns_which_backend_the_shared_stream_of_one_model_id_runs_with(tmp_path, caplog):
    """The run says it too as it plans the stream (it ran the first's backend, silently), before Ray is needed."""
    import pyarrow as pa

    from repeval.config import parse_config
    from repeval.pipeline.embed import embed_experiments
    from repeval.store import EmbeddingStore

    d = yaml.safe_load(one_row_config(tmp_path).read_text())
    exp = d["experiments"][0]
    cfg = parse_config(
        {
            **d,
            "experiments": [
                {**exp, "task": {**exp["task"], "name": name}, "embedding_models": [model]}
                for name, model in (
                    ("t1", {"id": "m", "type": "msd-musicnn"}),
                    ("t2", {"id": "m", "type": "msd-musicnn", "params": {"backend": "tf"}}),
                )
            ],
        }
    )
    rows = pa.table({"track_id": ["a"], "audio_path": [str(tmp_path / "a.wav")], "split": ["test"]})
    work = [(e, {"d": rows}, None) for e in cfg.experiments]

    def no_ray() -> None:
        raise RuntimeError("planned")

    with caplog.at_level("WARNING", logger="repeval.pipeline.embed"), pytest.raises(RuntimeError, match="planned"):
        embed_experiments(cfg, work, EmbeddingStore(str(tmp_path / "store")), start_ray=no_ray)
    assert 'm: experiments set params.backend "onnx" and "tf"; its one stream uses "onnx", the first\'s' in caplog.text


def test_one_model_id_of_two_types_on_a_dataset_is_said_to_differ_in_type_not_in_unset_params(tmp_path):
    """Model m an mfcc-stats in one task and a chroma-stats in the other: the refusal listed the first type's params
    as `now not set (the model's default)`, as if the second had left them unset; it says the types differ."""
    with pytest.raises(ConfigError) as err:
        load_config(_two_tasks(tmp_path, {"id": "m", "type": "chroma-stats"}))
    assert err.value.problems == [
        "experiments[1].embedding_models[0]: store partition d/m/clean: two experiments of this run compute it "
        'differently — the model\'s type: stored "mfcc-stats", now "chroma-stats": the types differ, each with '
        "params of its own (stored: as experiments[0].embedding_models[0] plans it; nothing is stored yet); give the "
        "model a new id in one of them (in embedding_models, `id: m-2` with `type: chroma-stats`)"
    ]


#: a plugin model whose `how` param is left out of the store's fingerprint, and which cannot run with `how: remote`
HOW_MODEL = """
from repeval.models import EmbeddingModel, register_model

@register_model("how-model")
class HowModel(EmbeddingModel):
    sample_rate_hz = 16000
    embedding_dim = 3
    fingerprint_exempt = ("how",)

    def __init__(self, how="local"):
        super().__init__(how=how)

    @classmethod
    def availability(cls, params):
        return "the remote service is down" if params.get("how") == "remote" else None

    def embed(self, audio):
        return audio[:3].reshape(1, 3).astype("float32")
"""


def test_validate_checks_the_model_the_shared_stream_runs_not_the_last_experiment_s(tmp_path):
    """Two tasks list model m, with `how` (left out of the fingerprint) local and remote: the run builds the first's,
    which runs here; `repeval validate` checked the last's (the id's last configuration) and said m cannot run."""
    from repeval.testing.plugins import plugins_forgotten

    (tmp_path / "how_model.py").write_text(HOW_MODEL)
    cfg = _two_tasks(tmp_path, {"id": "m", "type": "how-model", "params": {"how": "remote"}}, "other")
    d = yaml.safe_load(cfg.read_text())
    d["plugins"] = [str(tmp_path / "how_model.py")]
    d["experiments"][0]["embedding_models"] = [{"id": "m", "type": "how-model"}]
    cfg.write_text(yaml.safe_dump(d, sort_keys=False))
    with plugins_forgotten():
        res = CliRunner().invoke(app, ["validate", str(cfg), "--skip-data-check"])
        assert res.exit_code == 0 and "models: 1 checked on this machine" in res.output, res.output
        assert 'is embedded with params.how: "local"' in " ".join(res.output.split()), res.output
        d["experiments"] = d["experiments"][::-1]  # the remote one first: it is the one that runs
        cfg.write_text(yaml.safe_dump(d, sort_keys=False))
        res = CliRunner().invoke(app, ["validate", str(cfg), "--skip-data-check"])
        assert res.exit_code == 1 and "'m' cannot run here: the remote service is down" in res.output, res.output
