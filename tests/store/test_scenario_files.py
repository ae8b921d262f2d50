"""The audio files a deformation step reads (``sounds_path``, ``ir_path``) are in its partitions' fingerprint: a noise
or impulse response file replaced under the same path is a conflict naming it, not old deformed rows completed with
new ones; a scenario that reads no files keeps the fingerprint it had."""

from __future__ import annotations

import json
import shutil

import pytest
import yaml

from repeval.config.loader import config_hash
from repeval.pipeline.partitions import ModelSpec
from repeval.store import EmbeddingStore, StoreConflict

#: ``config_hash`` of the fingerprints of :func:`_specs`' partitions that read no files, as repeval computed them
#: before files joined the fingerprint (commit 41e5ef0)
BEFORE = {"clean": "44e2f97143cbc5df", "gain": "14b798e099910a54"}


def _specs(tmp_path):
    """The partitions of a config with a scenario reading a folder of noises, one reading an impulse response file
    and one reading none (relative paths, from ``tmp_path``)."""
    from repeval.config import load_config

    cfg = {
        "run": {"store": "store", "seed": 3},
        "experiments": [
            {
                "task": {"name": "instrument", "type": "multiclass_classification"},
                "datasets": [{"name": "notes", "type": "catalog", "manifest": "m.csv", "label_column": "instrument"}],
                "deformations": [
                    {"name": "gain", "steps": [{"type": "Gain", "params": {"p": 1}}]},
                    {
                        "name": "bg",
                        "steps": [{"type": "AddBackgroundNoise", "params": {"sounds_path": "noise", "p": 1}}],
                    },
                    {"name": "ir", "steps": [{"type": "ApplyImpulseResponse", "params": {"ir_path": ["irs/r.wav"]}}]},
                ],
                "embedding_models": [{"id": "mfcc-stats"}],
                "downstream_models": [{"name": "linear", "hidden_units": []}],
                "metrics": ["accuracy"],
            }
        ],
    }
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    loaded = load_config(tmp_path / "c.yaml")
    exp = loaded.experiments[0]
    spec = ModelSpec.of(loaded, exp.embedding_models[0])
    return {sid: spec.partition(loaded, exp, exp.datasets[0], sid) for sid in ("clean", "gain", "bg", "ir")}


def test_replacing_a_noise_or_impulse_response_file_changes_the_partitions_fingerprint(
    tmp_path, monkeypatch, shared_data
):
    """Replacing ``noise/b.wav`` (or an impulse response) with another recording under the same name left the
    scenario's fingerprint — its steps' text and the run's seed — as it was: the next run completed the partition,
    its earlier tracks deformed with the old noise and its new ones with the new, and kept them all as one scenario.
    The fingerprint now holds what the files are (names under the folder, sizes, content); the conflict names the
    file."""
    sol = shared_data / "tinysol_mini" / "audio"
    violin, flute, bassoon = (
        sol / "Strings/Violin/ordinario/Vn-ord-C5-ff-3c-N.wav",
        sol / "Winds/Flute/ordinario/Fl-ord-C4-mf-N-T14d.wav",
        sol / "Winds/Bassoon/ordinario/Bn-ord-C2-mf-N-N.wav",
    )
    monkeypatch.chdir(tmp_path)
    (tmp_path / "noise" / "sub").mkdir(parents=True)
    (tmp_path / "irs").mkdir()
    shutil.copy(violin, tmp_path / "noise" / "a.wav")
    shutil.copy(flute, tmp_path / "noise" / "sub" / "b.wav")
    shutil.copy(violin, tmp_path / "irs" / "r.wav")
    (tmp_path / "m.csv").write_text("track_id,audio_path,instrument\n")

    first = _specs(tmp_path)
    assert {sid: config_hash(first[sid].fingerprint) for sid in BEFORE} == BEFORE, json.dumps(
        {sid: first[sid].fingerprint for sid in BEFORE}
    )
    assert first["bg"].described["files"] == {
        "steps[0].sounds_path": {
            "a.wav": f"{violin.stat().st_size} bytes, sha256 {_sha256(violin)}",
            "sub/b.wav": f"{flute.stat().st_size} bytes, sha256 {_sha256(flute)}",
        }
    }
    assert list(first["ir"].described["files"]) == ["steps[0].ir_path[0]"]
    shutil.copy(violin, tmp_path / "noise" / "a.wav")  # written again, the same bytes: the same partition
    assert _specs(tmp_path)["bg"].fingerprint == first["bg"].fingerprint

    store = EmbeddingStore(str(tmp_path / "store"))
    part = store.partition("notes", "mfcc-stats", "bg")
    part.check_compatible(first["bg"].fingerprint, first["bg"].described)
    part.stamp(first["bg"].fingerprint, described=first["bg"].described)
    shutil.copy(bassoon, tmp_path / "noise" / "sub" / "b.wav")  # another recording under the same name
    shutil.copy(flute, tmp_path / "irs" / "r.wav")
    now = _specs(tmp_path)
    for sid in ("bg", "ir"):
        assert now[sid].fingerprint["files"] != first[sid].fingerprint["files"], sid
    assert {sid: config_hash(now[sid].fingerprint) for sid in BEFORE} == BEFORE
    with pytest.raises(StoreConflict) as err:
        part.check_compatible(now["bg"].fingerprint, now["bg"].described)
    assert (
        f'files.steps[0].sounds_path.sub/b.wav: stored "{flute.stat().st_size} bytes, sha256 {_sha256(flute)}", '
        f'now "{bassoon.stat().st_size} bytes, sha256 {_sha256(bassoon)}" (the audio files a step of the scenario '
        "reads (sounds_path, ir_path) are not those its tracks were deformed with: one was replaced, added or removed)"
    ) in str(err.value)
    # a partition an earlier repeval stamped, without the files: which ones deformed it is not known
    earlier = store.partition("notes", "mfcc-stats", "ir")
    earlier.stamp({k: v for k, v in first["ir"].fingerprint.items() if k != "files"})
    with pytest.raises(StoreConflict, match="this partition was stamped before, so which files deformed its tracks"):
        earlier.check_compatible(now["ir"].fingerprint, now["ir"].described)
    (tmp_path / "noise" / "a.wav").rename(tmp_path / "noise" / "c.wav")  # one renamed: a conflict too
    now = _specs(tmp_path)["bg"]
    with pytest.raises(StoreConflict) as err:
        part.check_compatible(now.fingerprint, now.described)
    assert (
        f'files.steps[0].sounds_path.a.wav: stored "{violin.stat().st_size} bytes, sha256 {_sha256(violin)}", now '
        f'not there; files.steps[0].sounds_path.c.wav: not there when it was embedded, now "{violin.stat().st_size} '
        f'bytes, sha256 {_sha256(violin)}"'
    ) in str(err.value)
    # a folder of more files than a stamp lists (a noise corpus): their hash alone, the conflict one line
    monkeypatch.setattr("repeval.pipeline.partitions.DESCRIBED_FILES", 1)
    now = _specs(tmp_path)["bg"]
    assert "files" not in now.described and "files" in now.fingerprint
    with pytest.raises(StoreConflict, match=r"— files: stored \"[0-9a-f]+\", now \"[0-9a-f]+\" \(the audio files"):
        part.check_compatible(now.fingerprint, now.described)


def _sha256(path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()
