"""End to end on real recordings: Medley-solos-DB (small) through mirdata's own loader — and what the run reports
recomputed without repeval: the stored embeddings from the decoded audio (soundfile, soxr, librosa), the test scores
from the store and the kept probe checkpoints (scikit-learn), the seeds' mean and sample std, and the deltas."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from repeval import runner
from repeval.config import parse_config


def _logmel_stats(audio: np.ndarray) -> np.ndarray:
    """logmel-stats at its defaults as its module docstring defines it, with librosa: ln(mel power + 1e-6) of
    uncentred periodic-Hann frames (n_fft 2048, hop 512, 64 Slaney bands at 22050 Hz); each 1-s window's (43 frames,
    hop 22) mean and std; their mean over windows."""
    import librosa

    mel = librosa.feature.melspectrogram(y=audio, sr=22050, n_fft=2048, hop_length=512, center=False, n_mels=64)
    feats = np.log(mel + 1e-6).T
    windows = [feats[s : s + 43] for s in range(0, max(1, len(feats) - 43 + 1), 22)]
    return np.mean([np.concatenate([w.mean(0), w.std(0)]) for w in windows], axis=0)


def _partition(store, scenario: str) -> tuple[pd.DataFrame, np.ndarray]:
    t = pq.read_table(store / "medley_solos_db" / "logmel-stats" / scenario)
    emb = t.column("embedding").combine_chunks()
    return t.drop(["embedding"]).to_pandas(), emb.flatten().to_numpy().reshape(len(emb), emb.type.list_size)


def _recomputed(run_dir, store, scenarios: list[str]) -> pd.DataFrame:
    """Each tested probe's accuracy and macro-F1 per scenario, from the store's rows, the run's splits and the
    probe checkpoints ``tested.json`` names, with scikit-learn (standardised on the training split)."""
    import torch
    from sklearn.metrics import accuracy_score, f1_score
    from sklearn.preprocessing import StandardScaler

    splits = pd.read_parquet(run_dir / "splits" / "instrument_classification__medley_solos_db.parquet")
    split_of = dict(zip(splits["track_id"], splits["split"], strict=True))
    label_of = {t: lab[0] for t, lab in zip(splits["track_id"], splits["label"], strict=True)}
    classes = sorted(set(label_of.values()))
    parts = {sc: _partition(store, sc) for sc in ["clean", *scenarios]}

    def rows(scenario: str, split: str) -> tuple[np.ndarray, np.ndarray]:
        df, x = parts[scenario]
        at = {t: i for i, t in enumerate(df["track_id"])}
        ids = sorted(t for t in at if split_of[t] == split)
        return x[[at[t] for t in ids]], np.array([classes.index(label_of[t]) for t in ids])

    scaler = StandardScaler().fit(rows("clean", "train")[0].astype(np.float64))
    tested_file = run_dir / "groups" / "instrument_classification__medley_solos_db__logmel-stats.tested.json"
    tested = json.loads(tested_file.read_text())  # the probes tested: every seed, each with its checkpoint
    out = []
    for entry in tested:
        sd = torch.load(run_dir / "tune" / entry["path"] / "probes.pt")[entry["member"]]
        w, b = sd["net.0.weight"].double().numpy(), sd["net.0.bias"].double().numpy()  # a linear probe
        for sc in parts:
            x, y = rows(sc, "test")
            pred = (scaler.transform(x.astype(np.float64)) @ w.T + b).argmax(1)
            out.append((entry["seed"], sc, "accuracy", accuracy_score(y, pred)))
            out.append((entry["seed"], sc, "f1_macro", f1_score(y, pred, average="macro", zero_division=0)))
    return pd.DataFrame(out, columns=["seed", "scenario", "metric", "mine"])


def test_medley_solos_db_through_mirdata(ray_session, shared_data, tmp_path):
    home = shared_data / "medley_solos_db_small"
    cfg = parse_config(
        {
            "run": {
                "run_id": "medley",
                "store": str(tmp_path / "store"),
                "runs_dir": str(tmp_path / "runs"),
                "seeds": 2,
            },
            "experiments": [
                {
                    "task": {"name": "instrument_classification", "type": "multiclass_classification"},
                    "datasets": [
                        {
                            "name": "medley_solos_db",
                            "type": "mirdata",
                            "dir": str(home),
                            "index_path": str(home / "medley_solos_db_index_small.json"),
                        }
                    ],
                    "deformations": [
                        [{"type": "Mp3Compression", "params": {"min_bitrate": 32, "max_bitrate": 32, "p": 1}}],
                        [{"type": "Gain", "params": {"min_gain_db": -12, "max_gain_db": -12, "p": 1}}],
                    ],
                    "embedding_models": ["logmel-stats"],
                    "downstream_models": [{"hidden_units": [], "standardize": True, "epochs": 30, "batch_size": 16}],
                    "metrics": ["accuracy", "f1_macro"],
                }
            ],
        }
    )
    ctx = runner.make_context(cfg)
    s = runner.stage_embed(ctx)
    assert s.errors == 0
    rows = ctx.rows[(0, "medley_solos_db")]
    splits = rows.column("split").to_pylist()
    # Medley-solos-DB's official subsets (training / validation / test) are kept
    assert splits.count("train") == 80 and splits.count("validation") == 9 and splits.count("test") == 8
    assert s.computed == 97 + 2 * 8  # every clip clean, the 8 test clips in each scenario
    # the stored embeddings, recomputed from the file: clean, and -12 dB (the gain its row records) on D2
    import soundfile as sf
    import soxr

    store = tmp_path / "store"
    ids, paths = rows.column("track_id").to_pylist(), rows.column("audio_path").to_pylist()
    test_id = min(t for t, sp in zip(ids, splits, strict=True) if sp == "test")
    audio, sr = sf.read(paths[ids.index(test_id)], dtype="float32", always_2d=True)
    audio = soxr.resample(audio.mean(axis=1), sr, 22050)
    for scenario, gain in (("clean", 1.0), ("D2", 10 ** (-12 / 20))):
        df, x = _partition(store, scenario)
        row = int(np.flatnonzero(df["track_id"] == test_id)[0])
        if scenario == "D2":
            assert json.loads(df["deformation_params"][row])[0]["amplitude_ratio"] == pytest.approx(gain)
            assert set(df["split"]) == {"test"} and len(df) == 8  # only the test split is deformed
        ref = _logmel_stats((audio * np.float32(gain)).astype(np.float32))
        np.testing.assert_allclose(x[row], ref, rtol=1e-5, atol=1e-5 * np.abs(ref).max())
    runner.stage_train(ctx)
    res = runner.stage_evaluate(ctx).to_pandas()
    agg = res[res["label"].isna()]
    assert set(agg["scenario"]) == {"clean", "D1", "D2"}
    assert agg["value"].between(0, 1).all()
    assert len(agg) == 2 * 3 * 2  # seeds x scenarios x metrics
    # every value from the store and the checkpoints, without repeval's metrics
    mine = _recomputed(ctx.run_dir, store, ["D1", "D2"])
    both = agg.merge(mine, on=["seed", "scenario", "metric"], validate="one_to_one")
    assert len(both) == len(agg)
    np.testing.assert_allclose(both["value"], both["mine"], atol=1e-9)
    # delta: deformed minus clean of the same probe and seed (no track failed: the same tracks)
    clean = both[both["scenario"] == "clean"].set_index(["seed", "metric"])["mine"]
    deformed = both[both["scenario"] != "clean"]
    pairs = list(zip(deformed["seed"], deformed["metric"], strict=True))
    expected = deformed["mine"].to_numpy() - clean.loc[pairs].to_numpy()
    np.testing.assert_allclose(deformed["delta"], expected, atol=1e-9)
    # summary: mean and sample standard deviation (n - 1) over the seeds
    summary = pd.read_parquet(ctx.run_dir / "summary.parquet")
    summary = summary[summary["label"].isna()].set_index(["scenario", "metric"])
    for (sc, metric), values in mine.groupby(["scenario", "metric"])["mine"]:
        assert summary.loc[(sc, metric), "mean"] == pytest.approx(values.mean(), abs=1e-9)
        assert summary.loc[(sc, metric), "std"] == pytest.approx(values.std(ddof=1), abs=1e-9)
        assert summary.loc[(sc, metric), "n_seeds"] == 2


@pytest.mark.parametrize("name", ["tinysol"])
def test_tinysol_mini_rows(shared_data, name):
    from repeval.config import parse_config as pc
    from repeval.datasets import load_dataset

    home = shared_data / "tinysol_mini"
    exp = pc(
        {
            "experiments": [
                {
                    "task": {"name": "instrument_classification", "type": "multiclass_classification"},
                    "datasets": [
                        {
                            "name": name,
                            "type": "mirdata",
                            "dir": str(home),
                            "index_path": str(home / "tinysol_index_mini.json"),
                        }
                    ],
                    "embedding_models": ["mfcc-stats"],
                    "downstream_models": [{}],
                }
            ]
        }
    ).experiments[0]
    rows, _ = load_dataset(exp.datasets[0], exp.task)
    assert rows.num_rows == 12
    assert all(len(lab) == 1 for lab in rows.column("label").to_pylist())
