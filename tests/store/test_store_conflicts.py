"""A store partition's fingerprint against a run's: the conflict names what differs and how to go on; frames and
windowing as accepted."""

from __future__ import annotations

import json
import re

import pytest
from store_helpers import DIM, PROV, _block, _write

from repeval.pipeline.assemble import rows_table
from repeval.store import EmbeddingStore, Partition, PartitionWriter, StoreConflict
from repeval.store.layout import embedding_schema


def test_conflicting_fingerprint_refused(tmp_path):
    part = EmbeddingStore(str(tmp_path / "s")).partition("ds", "m", "clean")
    part.stamp({"model": "a"})
    part.check_compatible({"model": "a"})
    with pytest.raises(StoreConflict, match="different configuration") as err:
        part.check_compatible({"model": "b"})
    assert f"`repeval store rm {tmp_path / 's'} ds/m/clean --yes`" in str(err.value)  # the command that clears it
    assert 'model: stored "a", now "b"' in str(err.value)  # what differs, not two whole fingerprints


def test_conflict_names_the_differing_keys_and_the_keep_frames_setting(tmp_path):
    part = EmbeddingStore(str(tmp_path / "s")).partition("ds", "m", "clean")
    stored = {"model": {"id": "mfcc", "params": {"hop_s": 0.5}}, "keep_frames": False, "chunk_s": 10}
    part.stamp(stored)
    now = {"model": {"id": "mfcc", "params": {"hop_s": 0.25}}, "keep_frames": True, "chunk_s": 10}
    with pytest.raises(StoreConflict) as err:
        part.check_compatible(now)
    msg = str(err.value)
    assert "keep_frames: stored false, now true; model.params.hop_s: stored 0.5, now 0.25 (" in msg
    assert "chunk_s" not in msg  # equal keys are not listed
    assert "its rows have no frame-level embeddings, which this run keeps" in msg


def test_conflict_names_the_changed_parameter_inside_a_hash_and_falls_back_to_hashes(tmp_path):
    """A stamp keeps what the fingerprint's hashes stand for (``described``): the conflict names the parameter; a
    partition stamped before that (no ``described``) still gets the hashes."""
    store = EmbeddingStore(str(tmp_path / "s"))
    fp = {"model": {"family": "mfcc-stats", "params": "aaa"}, "chunk_s": 10}
    now = {"model": {"family": "mfcc-stats", "params": "bbb"}, "chunk_s": 10}
    described = {"model.params": {"n_mfcc": 20, "n_mels": 64}}
    new = store.partition("ds", "m", "clean")
    new.stamp(fp, described=described)
    new.check_compatible(fp, described)
    with pytest.raises(StoreConflict) as err:
        new.check_compatible(now, {"model.params": {"n_mfcc": 30, "n_mels": 64}})
    assert "— model.params.n_mfcc: stored 20, now 30; give" in str(err.value)  # n_mels is alike: not listed
    old = store.partition("ds", "m", "D1")
    old.stamp(fp)  # as before described was kept
    with pytest.raises(StoreConflict) as err:
        old.check_compatible(now, {"model.params": {"n_mfcc": 30, "n_mels": 64}})
    assert '— model.params: stored "aaa", now "bbb"; give' in str(err.value)
    # a deformed partition of another run.seed: the seed's part in it is said, with the setting meant for more seeds
    noisy = store.partition("ds", "m", "noise")
    noisy.stamp({**fp, "scenario": "s", "seed": 0})
    with pytest.raises(StoreConflict) as err:
        noisy.check_compatible({**fp, "scenario": "s", "seed": 1})
    assert "— seed: stored 0, now 1 (run.seed also draws each track's deformation" in str(err.value)
    assert "keep run.seed: 0 and raise run.seeds); give the model or scenario a new id" in str(err.value)


def test_conflict_says_a_parameter_the_partition_was_embedded_without_was_not_set(tmp_path):
    """A parameter added to a model whose partition was embedded without it (``patchHopSize: 31`` on an Essentia
    graph that ran at essentia's default) was said to be "stored null", as if null had been configured; it is now
    said to have been not set (the model's default), as is one stamped null (a constructor's None default: the model
    chooses) — and one taken out, to be not set now. A null outside the model's params is still said to be null."""
    part = EmbeddingStore(str(tmp_path / "s")).partition("ds", "m", "clean")
    fp = {"model": {"family": "vggish-audioset", "params": "aaa"}}
    part.stamp(fp, described={"model.params": {"graph_path": "/g.pb", "x": None}})
    now = {"model": {"family": "vggish-audioset", "params": "bbb"}}
    with pytest.raises(StoreConflict) as err:
        part.check_compatible(now, {"model.params": {"patchHopSize": 31, "x": 1, "y": None}})
    said = str(err.value)
    assert "model.params.y" not in said  # a parameter null now and absent then: alike
    assert 'model.params.graph_path: stored "/g.pb", now not set (the model\'s default); ' in said
    assert "model.params.patchHopSize: not set when it was embedded (the model's default), now 31; " in said
    assert "model.params.x: not set when it was embedded (the model's default), now 1" in said
    nulls = EmbeddingStore(str(tmp_path / "s")).partition("ds", "m", "D1")
    nulls.stamp({"model": "m", "seed": None})
    with pytest.raises(StoreConflict, match="seed: stored null, now 1"):
        nulls.check_compatible({"model": "m", "seed": 1})


def test_a_model_conflict_names_the_new_id_and_the_command_that_clears_every_scenario(tmp_path):
    """A model's parameters changed: ``repeval run`` stopped at its first partition, saying "give the model or
    scenario a new id … (`repeval store rm … ds/m/clean --yes`)"; a user who ran that met the next scenario's
    conflict, run after run. Every scenario of the model differs alike, so the error now names the id to write
    and the one command that deletes them all; a conflict of one scenario alone keeps the single command."""
    store = EmbeddingStore(str(tmp_path / "s"))
    fp = {"model": {"family": "mfcc-stats", "params": "aaa"}, "chunk_s": 10}
    clean = store.partition("ds", "m", "clean")
    clean.stamp(fp)
    with pytest.raises(StoreConflict) as err:
        clean.check_compatible({**fp, "model": {"family": "mfcc-stats", "params": "bbb"}})
    msg = str(err.value)
    assert "give the model a new id (in embedding_models, `id: m-2` with `type: mfcc-stats`)" in msg, msg
    assert f"`repeval store rm {tmp_path / 's'} ds/m/clean --yes`" in msg
    assert f"every scenario of this model differs alike: `repeval store rm {tmp_path / 's'} 'ds/m/*' --yes`" in msg
    noisy = store.partition("ds", "m", "noise")
    noisy.stamp({**fp, "scenario": "s1"})
    with pytest.raises(StoreConflict) as err:
        noisy.check_compatible({**fp, "scenario": "s2"})
    assert "give the model or scenario a new id" in str(err.value) and "'ds/m/*'" not in str(err.value)


def test_a_model_whose_embeddings_changed_is_refused_the_partitions_embedded_before(tmp_path):
    """A family raises ``embedding_version`` when the same params come to give other embeddings (msd-musicnn's 2:
    mir_ref's layer and musicnn's patch hop): the version joins the model's fingerprint, so a partition embedded
    before is refused, not completed with rows that differ; families still at 1 keep the fingerprints their
    partitions were stamped with."""
    from repeval.config.embed import EmbeddingModelConfig
    from repeval.config.loader import config_hash
    from repeval.models import build_model
    from repeval.pipeline.partitions import model_fingerprint

    before = {"family": "msd-musicnn", "params": config_hash({})}  # as fingerprints were written before versions
    now = model_fingerprint(EmbeddingModelConfig(id="msd-musicnn"))
    assert now == {**before, "version": "2"}
    assert model_fingerprint(EmbeddingModelConfig(id="mfcc-stats")) == {
        "family": "mfcc-stats",
        "params": config_hash({}),
    }
    assert build_model(EmbeddingModelConfig(id="mfcc-stats")).version == "1"  # the rows' model_version column
    part = EmbeddingStore(str(tmp_path / "s")).partition("ds", "msd-musicnn", "clean")
    part.stamp({"model": before, "chunk_s": 30})
    with pytest.raises(StoreConflict, match=re.escape('the model\'s embedding_version: stored "1", now "2"')):
        part.check_compatible({"model": now, "chunk_s": 30})


def test_a_partition_with_frames_serves_a_run_without_them(tmp_path):
    """Stored with frames, asked without: compatible (``True``: rows may not be added); any other difference is not."""
    store = EmbeddingStore(str(tmp_path / "s"))
    part = store.partition("ds", "m", "clean")
    part.stamp({"model": "a", "keep_frames": True})
    assert part.check_compatible({"model": "a", "keep_frames": False}) is True
    assert part.check_compatible({"model": "a", "keep_frames": True}) is False
    with pytest.raises(StoreConflict, match='model: stored "a", now "b"'):
        part.check_compatible({"model": "b", "keep_frames": False})
    other = store.partition("ds", "m", "D1")
    other.stamp({"model": "a", "keep_frames": False})
    with pytest.raises(StoreConflict, match="keep_frames: stored false, now true"):
        other.check_compatible({"model": "a", "keep_frames": True})  # rows without frames cannot serve it


def _stamped_with_windows(store: EmbeddingStore, fingerprint: dict, track: int, n_chunks: int) -> Partition:
    """Partition ``ds/m/D1`` stamped with ``fingerprint``, holding tracks x and y, the ``track``-th of ``n_chunks``
    windows."""
    part = store.partition("ds", "m", "D1")
    part.stamp(fingerprint)
    block = _block(["x", "y"])
    block.n_chunks[track] = n_chunks
    schema = embedding_schema(DIM)
    w = PartitionWriter(part, schema, 3)
    w.add_table(rows_table(block, schema, PROV))
    w.flush()
    return part


def test_a_partition_of_one_window_rows_deformed_before_whole_track_deformation_is_accepted_and_restamped(tmp_path):
    """A scenario with a track-level step gained ``deformed: whole track`` in its fingerprint. A partition stamped before
    it whose rows are all one window long holds what the new code computes (one window is deformed alike either way):
    accepted, and re-stamped when rows are added; one with a row of several windows is a conflict naming the entry."""
    store = EmbeddingStore(str(tmp_path / "s"))
    before = {"fp": 1}
    now = {"fp": 1, "deformed": "whole track"}
    part = _write(store, ["a", "b", "c"])  # stamped {"fp": 1}, rows of one window (n_chunks 1)
    part.finish({})
    assert part.check_compatible(now) is False  # compatible, rows may be added
    with pytest.raises(StoreConflict, match="fp: stored 1, now 2"):
        part.check_compatible({"fp": 2, "deformed": "whole track"})  # anything else still differs
    with pytest.raises(StoreConflict, match="deformed"):
        part.check_compatible({"fp": 1, "deformed": "something else"})
    part.reopen()
    part.stamp(now, {"config_hash": "def456"})
    stamp = json.loads((tmp_path / "s" / "ds" / "m" / "clean" / "_stamp.json").read_text())
    assert stamp["fingerprint"] == now and stamp["config_hash"] == "def456"
    with pytest.raises(StoreConflict, match="deformed: stored"):
        part.check_compatible(before)  # and the old code's fingerprint no longer matches it

    several = _stamped_with_windows(store, before, track=1, n_chunks=3)  # three windows, deformed window by window
    with pytest.raises(StoreConflict, match="deformed") as err:
        several.check_compatible(now)
    assert "deformed window by window" in str(err.value) and "store rm" in str(err.value)


def test_a_partition_embedded_window_by_window_alone_is_refused_for_tracks_of_several_windows(tmp_path):
    """A model with a frame geometry gained ``windows: overlapped`` in its partitions' fingerprint (each window reaches
    it with its neighbours' audio): a partition stamped before it is accepted while its rows are all one window long
    (their bits are the same), and refused, saying why, once it holds a track of several windows."""
    store = EmbeddingStore(str(tmp_path / "s"))
    before = {"fp": 1}
    now = {"fp": 1, "windows": "overlapped"}
    one = _write(store, ["a", "b"])
    one.finish({})
    assert one.check_compatible(now) is False and one.restamp(now, {"config_hash": "x"})
    assert json.loads((tmp_path / "s" / "ds" / "m" / "clean" / "_stamp.json").read_text())["fingerprint"] == now

    several = _stamped_with_windows(store, before, track=0, n_chunks=2)  # two windows, each embedded alone
    with pytest.raises(StoreConflict, match="windows: not set when it was embedded, now") as err:
        several.check_compatible(now)
    assert "embedded window by window alone" in str(err.value) and "store rm" in str(err.value)


def test_a_planned_stamp_refuses_another_experiments_model_naming_the_new_id(tmp_path):
    """The stamp a run plans for a partition (written as its stream starts) refuses another experiment of the run that
    computes it otherwise (the configuration's check refuses one model id under other params first: the run's plan is
    the last guard), in the configuration check's words — nothing written."""
    from repeval.store.partition_stamp import NewStamp

    part = EmbeddingStore(str(tmp_path / "s")).partition("low", "m", "clean")
    fp = {"model": {"family": "mfcc-stats", "params": "aaa"}, "chunk_s": 10}
    part.plan_stamp(NewStamp(fp, {"config_hash": "x"}, {"model.params": {"n_mfcc": 8}}))
    part.check_compatible(fp)
    with pytest.raises(StoreConflict) as err:
        part.check_compatible({**fp, "model": {**fp["model"], "params": "bbb"}}, {"model.params": {"n_mfcc": 12}})
    assert str(err.value) == (
        f"store partition {part.path}: two experiments of this run compute it differently — model.params.n_mfcc: "
        "stored 8, now 12 (stored: as an earlier experiment of the configuration plans it; nothing is stored yet); "
        "give the model a new id in one of them (in embedding_models, `id: m-2` with `type: mfcc-stats`)"
    )
    assert not (tmp_path / "s" / "low").exists()


def test_a_model_conflict_names_a_new_id_neither_the_store_nor_the_configuration_holds(tmp_path):
    """The id a conflict with a stored partition named (`id: m-2`) was not looked for: a store already holding m-2
    partitions (a model renamed before) or a configuration listing m-2 gave the user another conflict or refusal."""
    import yaml

    from repeval.config import parse_config
    from repeval.pipeline.partition_conflicts import accepted_spec
    from repeval.pipeline.partitions import ModelSpec
    from repeval.testing.configs import one_row_config

    d = yaml.safe_load(one_row_config(tmp_path).read_text())
    exp = d["experiments"][0]
    m = {"id": "m", "type": "mfcc-stats"}

    def spec(params: dict, ids: tuple[str, ...] = ()) -> tuple:
        models = [{**m, "params": params}] + [{**m, "id": i} for i in ids]
        cfg = parse_config({**d, "experiments": [{**exp, "embedding_models": models}]})
        e = cfg.experiments[0]
        return ModelSpec.of(cfg, e.embedding_models[0]).partition(cfg, e, e.datasets[0], "clean")

    store = EmbeddingStore(str(tmp_path / "s"))
    stored = spec({"n_mfcc": 8})
    store.partition("d", "m", "clean").stamp(stored.fingerprint, described=stored.described)
    store.partition("other", "M-2", "clean").stamp(stored.fingerprint)  # another dataset's, in another case
    with pytest.raises(StoreConflict, match=r"give the model a new id \(in embedding_models, `id: m-4` with "):
        accepted_spec(store.partition("d", "m", "clean"), spec({"n_mfcc": 12}, ("m-3",)))


def test_a_partition_stored_by_another_type_is_said_to_differ_in_type_not_in_unset_params(tmp_path):
    """A partition of model m stamped as an mfcc-stats, the run's m a chroma-stats: the conflict listed the stored
    type's params as `now not set (the model's default)`."""
    part = EmbeddingStore(str(tmp_path / "s")).partition("ds", "m", "clean")
    part.stamp({"model": {"family": "mfcc-stats", "params": "aaa"}}, described={"model.params": {"n_mfcc": 8}})
    with pytest.raises(StoreConflict) as err:
        part.check_compatible({"model": {"family": "chroma-stats", "params": "bbb"}}, {"model.params": {"hop_s": 1}})
    said = str(err.value)
    assert 'different configuration — the model\'s type: stored "mfcc-stats", now "chroma-stats": the types ' in said
    assert "differ, each with params of its own; give the model a new id" in said and "not set" not in said, said


def test_the_new_id_of_many_conflicting_partitions_is_looked_for_in_one_listing_of_the_model_folders(tmp_path):
    """Each conflicting partition of a model whose params changed listed the whole store, every file, to name the new
    id — twice or more (the check tries the frames' fingerprint too): 12 listings of 3 datasets' store, each growing
    with its files (80 for 20 datasets, 6.6 s where the check took 0.2 s), each of a bucket's many requests. The
    model folders are listed once, two levels deep (the root, then each dataset)."""
    import pyarrow.fs as pafs
    import yaml

    from repeval.config import parse_config
    from repeval.pipeline.partitions import ModelSpec
    from repeval.pipeline.preflight import check_store_partitions
    from repeval.testing.configs import one_row_config
    from repeval.testing.fs import Counting

    d = yaml.safe_load(one_row_config(tmp_path).read_text())
    exp = d["experiments"][0]
    datasets = [{**exp["datasets"][0], "name": f"d{i}"} for i in range(3)]

    def config(n_mfcc: int):
        models = [{"id": "m", "type": "mfcc-stats", "params": {"n_mfcc": n_mfcc}}]
        return parse_config({**d, "experiments": [{**exp, "datasets": datasets, "embedding_models": models}]})

    stored = config(8)
    e = stored.experiments[0]
    store = EmbeddingStore(str(tmp_path / "s"))
    for ds in e.datasets:
        spec = ModelSpec.of(stored, e.embedding_models[0]).partition(stored, e, ds, "clean")
        store.partition(ds.name, "m", "clean").stamp(spec.fingerprint, described=spec.described)
    store.partition("d2", "m-2", "clean").stamp({"model": "x"})  # renamed before: taken
    handler = Counting()
    now = config(12)
    with pytest.raises(StoreConflict) as err:
        check_store_partitions(now, now.experiments, EmbeddingStore(str(tmp_path / "s"), pafs.PyFileSystem(handler)))
    assert str(err.value).startswith("3 store partitions were computed with a different configuration"), err.value
    assert str(err.value).count("give the model a new id (in embedding_models, `id: m-3` with ") == 3, err.value
    assert handler.n["list"] == 1 + 3, handler.n  # the root, then each dataset's folder: once
