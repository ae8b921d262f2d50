"""The pipeline's UDFs and planning, without Ray: chunking, seeded deformation, reassembly, each model's rate."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest
from stages_cases import NOISE, SR, _decode_rows, _embed

from repeval.config.embed import EmbeddingModelConfig
from repeval.models import build_model
from repeval.pipeline.assemble import TrackAssembler
from repeval.pipeline.embedder import Embed
from repeval.pipeline.stages import DecodeDeform
from repeval.pipeline.todo import plan_todo


def test_decode_deform_chunks_and_seeds(files):
    out = _decode_rows(files, ["short", "long"], [["clean", "D1"], ["clean", "D1", "D2"]])
    short = out["track_id"] == "short"
    assert list(out["scenario"][short]) == ["clean", "D1"] and set(out["n_chunks"][short]) == {1}
    long_ = out["track_id"] == "long"
    # 23 s in 5 s windows: 4 × 5 s + 3 s; three scenarios each
    assert (out["chunk"][long_] == np.repeat(np.arange(5), 3)).all()
    assert list(out["n_chunks"][long_]) == [0] * 12 + [5] * 3
    assert [len(a) for a in out["audio"][long_ & (out["scenario"] == "clean")]] == [40000] * 4 + [24000]
    # parameters sampled once per (track, scenario) and recorded on every chunk; noise differs per chunk
    for sid in ("D1", "D2"):
        params = set(out["deformation_params"][long_ & (out["scenario"] == sid)])
        assert len(params) == 1 and json.loads(params.pop())[0]["type"] in ("AddGaussianSNR", "Gain")
    clean = out["audio"][long_ & (out["scenario"] == "clean")]
    d2 = out["audio"][long_ & (out["scenario"] == "D2")]
    # the same gain on every chunk
    gains = [float(np.dot(d, c) / np.dot(c, c)) for d, c in zip(d2, clean, strict=True)]
    assert gains[0] < 1 and np.allclose(gains, gains[0], rtol=1e-4)
    d1 = out["audio"][long_ & (out["scenario"] == "D1")]
    assert not np.allclose(d1[0][:1000] - clean[0][:1000], d1[1][:1000] - clean[1][:1000])


def test_decode_deform_is_reproducible_and_seed_dependent(files):
    a = _decode_rows(files, ["long", "short"], [["D1"], ["D1"]])
    b = _decode_rows(files, ["short", "long"], [["D1"], ["D1"]])  # other order, same per-track results
    c = _decode_rows(files, ["long", "short"], [["D1"], ["D1"]], seed=1)
    key = lambda o: {(t, int(ch)): x.tobytes() for t, ch, x in zip(o["track_id"], o["chunk"], o["audio"], strict=True)}  # noqa: E731
    assert key(a) == key(b)
    assert key(a) != key(c)
    assert dict(zip(a["track_id"], a["deformation_params"], strict=True)) == dict(
        zip(b["track_id"], b["deformation_params"], strict=True)
    )


def test_decode_errors_become_rows(files):
    out = _decode_rows(files, ["bad", "short"], [["clean", "D1"], ["clean"]])
    bad = out["track_id"] == "bad"
    assert list(out["stage"][bad]) == ["decode", "decode"] and all("cannot decode" in e for e in out["error"][bad])
    assert list(out["n_chunks"][bad]) == [1, 1]
    assert list(out["error"][~bad]) == [""]


def test_scenario_indices_as_input(files):
    udf = DecodeDeform(SR, {"D1": NOISE}, 0, chunk_s=None, scenario_ids=["clean", "D1"])
    batch = {
        "track_id": np.array(["short"]),
        "audio_path": np.array([str(files / "short.wav")]),
        "split": np.array(["test"]),
        "scenarios": [np.array([0, 1], np.int16)],
    }
    (out,) = list(udf(batch))
    assert out.column("scenario").to_pylist() == ["clean", "D1"]


def test_embed_and_reassemble_long_track_in_any_order(files):
    emb, rows, out = _embed(files, ["long", "short", "bad"], [["clean"], ["clean", "D1"], ["clean"]])
    assert emb.model_version == "1"
    model = build_model(EmbeddingModelConfig(id="mfcc-stats", params={"sample_rate_hz": SR}))
    clean_chunks = [
        a
        for t, s, a in zip(rows["track_id"], rows["scenario"], rows["audio"], strict=True)
        if t == "long" and s == "clean"
    ]
    expected_frames = np.concatenate([model.embed(a) for a in clean_chunks])

    def assemble(order):
        asm = TrackAssembler(keep_frames=True)
        blocks, errors = [], []
        for i in order:  # one row per batch, in the given order
            b, e = asm.add({k: v[i : i + 1] for k, v in out.items()})
            blocks += [b] if b is not None else []
            errors += list(zip(e.track_id, e.stage, strict=True))
        assert not asm.pending
        return blocks, errors

    n = len(out["track_id"])
    fwd, err_fwd = assemble(range(n))
    rev, err_rev = assemble(reversed(range(n)))
    assert err_fwd == err_rev == [("bad", "decode")]
    get = {}
    for blocks in (fwd, rev):
        for b in blocks:
            for i in range(len(b)):
                get.setdefault((b.track_id[i], b.scenario[i]), []).append(
                    (b.embedding[i].tobytes(), int(b.n_frames[i]), int(b.n_chunks[i]), b.frames[i])
                )
    assert set(get) == {("long", "clean"), ("short", "clean"), ("short", "D1")}
    (e1, nf1, nc1, fr1), (e2, *_rest) = get[("long", "clean")]
    assert e1 == e2  # arrival order does not change a bit
    assert nc1 == 5 and nf1 == len(expected_frames)
    np.testing.assert_array_equal(fr1, expected_frames)
    np.testing.assert_allclose(np.frombuffer(e1, np.float32), expected_frames.mean(axis=0), rtol=1e-5, atol=1e-5)


def test_embed_error_in_one_chunk_fails_the_track(files, monkeypatch):
    emb, rows, _ = _embed(files, ["long"], [["clean"]], keep_frames=False)
    rows["audio"][1] = np.full(100, np.nan, np.float32)
    out = emb(rows)
    asm = TrackAssembler(keep_frames=False)
    block, errors = asm.add(out)
    assert block is None and errors.track_id == ["long"] and errors.stage == ["embed"]


def test_plan_todo_is_vectorised_and_exact():
    rows = pa.table(
        {"track_id": ["a", "b", "c", "d"], "audio_path": ["p"] * 4, "split": ["train", "test", "test", "val"]}
    )
    masks = {"clean": np.array([True, False, True, False]), "D1": np.array([False, True, True, False])}
    todo = plan_todo(rows, masks)
    assert todo.column("track_id").to_pylist() == ["a", "b", "c"]
    assert todo.column("scenarios").to_pylist() == [[0], [1], [0, 1]]
    assert plan_todo(rows, {}).num_rows == 0


def test_decode_embed_equals_decode_then_embed(files) -> None:
    """The fused UDF yields what DecodeDeform followed by Embed yields (here in this process), cuts the decoded
    batches at the model's ``batch_size``, and builds the model once per process."""
    from repeval.pipeline import embedder
    from repeval.pipeline.embedder import DecodeEmbed

    names = ["short", "long", "bad"]
    batch = {
        "track_id": np.array(names),
        "audio_path": np.array([str(files / f"{n}.wav") for n in names]),
        "split": np.array(["test"] * len(names)),
        "scenarios": [np.array(["clean", "D1"]) for _ in names],
    }
    mcfg = EmbeddingModelConfig(id="mfcc-stats", params={"sample_rate_hz": SR})  # the model at the stream's rate
    decode = DecodeDeform(SR, {"D1": NOISE}, 3, chunk_s=5.0)
    expected = [Embed(mcfg, threads=1)(t) for t in decode(batch)]
    embedder._PROCESS_EMBEDDERS.clear()
    got = list(DecodeEmbed(decode, mcfg, threads=1, batch_size=3)(batch))
    assert len(embedder._PROCESS_EMBEDDERS) == 1
    built = next(iter(embedder._PROCESS_EMBEDDERS.values()))
    list(DecodeEmbed(decode, mcfg, threads=1)(batch))
    assert list(embedder._PROCESS_EMBEDDERS.values()) == [built]  # the second task reused the built model
    assert embedder.process_embedder(mcfg, threads=1) is built  # what a worker's warm-up builds, the tasks find
    other = EmbeddingModelConfig(id="logmel-stats", params={"sample_rate_hz": SR})
    list(DecodeEmbed(decode, other, threads=1)(batch))
    assert len(embedder._PROCESS_EMBEDDERS) == 1 and built not in embedder._PROCESS_EMBEDDERS.values()  # released
    n = sum(len(b["track_id"]) for b in expected)
    assert n > 3 and all(len(b["track_id"]) <= 3 for b in got) and sum(len(b["track_id"]) for b in got) == n
    for key in ("track_id", "scenario", "chunk", "error", "deformation_params"):
        assert np.concatenate([b[key] for b in got]).tolist() == np.concatenate([b[key] for b in expected]).tolist()
    np.testing.assert_array_equal(
        np.concatenate([b["embedding"] for b in got]), np.concatenate([b["embedding"] for b in expected])
    )


def test_streams_decode_at_each_models_declared_rate_and_actors_refuse_another():
    """The stream's rate is the one the model declares (no class sets ``sample_rate_hz`` before it is built: the
    stream fell back to ``run.sample_rate_hz``, feeding 16 kHz models 22.05 kHz audio); an actor whose model runs
    at another rate than its stream's refuses to start."""
    import pytest

    from repeval.models import MODELS
    from repeval.pipeline.partitions import model_rate

    checked = 0
    for name, fam in MODELS.items():
        params = dict(fam.default_params)
        declared = fam.cls.declared_sizes(params)[0]
        if declared is not None:
            assert model_rate(fam, params) == declared, name
            checked += 1
    assert checked >= 15  # every family that declares its rate without weights (the HF ones need their config)
    assert model_rate(MODELS.get("msd-musicnn"), {}) == 16000 and model_rate(MODELS.get("openl3"), {}) == 48000
    assert model_rate(MODELS.get("mfcc-stats"), {"sample_rate_hz": 8000}) == 8000
    with pytest.raises(ValueError, match="runs at 22050 Hz but its stream decodes at 16000 Hz"):
        Embed(EmbeddingModelConfig(id="mfcc-stats"), threads=1, sample_rate_hz=16000)
    assert Embed(EmbeddingModelConfig(id="mfcc-stats"), threads=1, sample_rate_hz=22050).model.sample_rate_hz == 22050


def test_a_scenario_is_checked_at_each_models_rate_before_the_store_is_touched(tmp_path):
    """A low-pass at 9–10 kHz validates at 44.1 kHz; a 16 kHz model's stream deformed every test track with it — a
    filter above the Nyquist frequency, which did nothing. The run now fails while planning, naming the scenario,
    the step, the model and the rate, before any partition of the store is stamped."""
    from repeval.config import parse_config
    from repeval.pipeline.embed import embed_experiments
    from repeval.store import EmbeddingStore

    (tmp_path / "m.csv").write_text("track_id,audio_path,instrument,split\na,a.wav,x,test\n")
    lowpass = {"type": "LowPassFilter", "params": {"min_cutoff_freq": 9000, "max_cutoff_freq": 10000}}
    exp = {
        "task": {"name": "instrument_classification", "type": "multiclass_classification"},
        "datasets": [{"name": "notes", "type": "catalog", "manifest": str(tmp_path / "m.csv"), "label_column": "x"}],
        "deformations": [[{"type": "Gain", "params": {}}], {"name": "lp", "steps": [lowpass]}],
        "embedding_models": [{"id": "mfcc-stats", "params": {"sample_rate_hz": 16000}}],
        "downstream_models": [{"type": "classifier", "hidden_units": []}],
    }
    cfg = parse_config({"experiments": [exp]})
    rows = pa.table({"track_id": ["a"], "audio_path": [str(tmp_path / "a.wav")], "split": ["test"]})
    store = EmbeddingStore(str(tmp_path / "store"))
    with pytest.raises(
        ValueError,
        match=r"^deformation scenario 'lp', step 1: LowPassFilter.*max_cutoff_freq is 10000 Hz, at or above the "
        r"Nyquist frequency \(8000 Hz\) .*\(embedding model mfcc-stats hears audio at 16000 Hz\)$",
    ):
        embed_experiments(cfg, [(cfg.experiments[0], {"notes": rows}, None)], store)
    assert not list((tmp_path / "store").rglob("_stamp.json"))
