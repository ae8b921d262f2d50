"""``repeval data check``: the bad-audio corpus's files found before a run, each with the reason of the error record the
run's decode stage would write (no Ray)."""

from __future__ import annotations

import threading
from pathlib import Path

import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from data_check_cases import invoke
from reliability_helpers import FAST_MODEL, experiment, make_catalog, write_config

from repeval.audio.decode import _open, error_reason, iter_blocks
from repeval.config import load_config
from repeval.datasets import check
from repeval.testing.badaudio import make_corpus

#: the corpus's kinds whose damage lies past the header: only a whole decode finds them (a WAV of 0 frames,
#: ``zero_length_audio``, is found where it opens)
MID_FILE = {"zero_filled_flac", "nan_samples", "inf_samples"}


def run_reason(path: str) -> str | None:
    """The reason of the error record the run's decode stage writes for ``path`` (FAST_MODEL's rate), or ``None``."""
    try:
        for _ in iter_blocks(path, FAST_MODEL["params"]["sample_rate_hz"]):
            pass
    except Exception as exc:
        return error_reason(exc)
    return None


def open_reason(path: str) -> str | None:
    """What the run's decode stage says where it opens ``path`` (header checks), or ``None``."""
    try:
        _open(path).close()
    except Exception as exc:
        return error_reason(exc)
    return None


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """6 good tones plus every bad-audio kind (``check_files: false``, as in the run's corpus test: the unreadable
    paths reach the decoder) and the same catalog with the loader's file check (they are dropped as missing)."""
    root = tmp_path_factory.mktemp("check")
    files = make_corpus(root / "bad")
    extra = [{"track_id": f"bad-{b.kind}", "audio_path": str(b.path), "label": "low", "split": "test"} for b in files]
    manifest = make_catalog(root, per_class=3, seconds=0.5, extra=extra)
    unchecked = write_config(root / "unchecked.yaml", root, [experiment(manifest, [FAST_MODEL], check_files=False)])
    checked = write_config(root / "checked.yaml", root, [experiment(manifest, [FAST_MODEL])])
    return root, files, unchecked, checked


def bad_rows(path: Path) -> dict[str, dict[str, str]]:
    table = pq.read_table(path) if path.suffix == ".parquet" else pacsv.read_csv(path)
    assert table.column_names == ["dataset", "track_id", "audio_path", "reason"]
    rows = table.to_pylist()
    assert {r["dataset"] for r in rows} <= {"tones"}
    return {r["track_id"]: r for r in rows}


def test_header_check_lists_what_the_run_refuses_where_a_file_opens(corpus):
    root, files, unchecked, _ = corpus
    res = invoke(unchecked, "--out", root / "bad.csv")
    assert res.exit_code == 1, res.output
    found = bad_rows(root / "bad.csv")
    invalid = {f"bad-{b.kind}": b for b in files if not b.valid}
    assert set(found) == {t for t, b in invalid.items() if b.kind not in MID_FILE}
    for tid, row in found.items():
        b = invalid[tid]
        assert row["audio_path"] == str(b.path)
        assert row["reason"] == open_reason(str(b.path)) == run_reason(str(b.path)), b.kind  # the run's words
        assert b.reason in row["reason"].lower(), (b.kind, row["reason"])
    n_files = 6 + len(files)
    assert f"tones: {n_files} files checked, {len(found)} bad, 0 missing" in res.stdout
    assert res.stdout.count("  bad: ") == check.SHOWN and "more bad (--out FILE lists them all)" in res.stdout
    assert "checking audio" not in res.stderr  # no progress bar off a terminal


def test_decode_also_finds_damage_past_the_header_as_the_run_does(corpus):
    root, files, unchecked, _ = corpus
    res = invoke(unchecked, "--decode", "--workers", "3", "--out", root / "bad.parquet")
    assert res.exit_code == 1, res.output
    found = bad_rows(root / "bad.parquet")
    invalid = {f"bad-{b.kind}": b for b in files if not b.valid}
    assert set(found) == set(invalid)  # exactly the files the run makes error records of (test_pipeline_faults)
    for tid, b in invalid.items():
        assert found[tid]["reason"] == run_reason(str(b.path)), b.kind
        assert b.reason in found[tid]["reason"].lower(), (b.kind, found[tid]["reason"])
    # rows in the manifest's order, whatever thread finished first
    assert list(found) == [f"bad-{b.kind}" for b in files if not b.valid]
    assert f"{len(invalid)} bad, 0 missing" in res.stdout


def test_missing_files_are_counted_as_the_loader_drops_them(corpus, tmp_path):
    _, files, _, checked = corpus
    out = tmp_path / "not" / "yet" / "bad.parquet"  # folders that do not exist: created
    res = invoke(checked, "--out", out)
    assert res.exit_code == 1, res.output
    unreadable = {"dangling_path", "fifo", "directory", "symlink_loop"}  # not regular files: the loader drops them
    bad = sum(not b.valid and b.kind not in MID_FILE | unreadable for b in files)
    assert f"tones: {6 + len(files) - 4} files checked, {bad} bad, 4 missing" in res.stdout
    assert "  missing: bad-fifo (row " in res.stdout
    assert res.stdout.splitlines()[-1] == f"bad and missing files: {out}"
    # --out lists the missing rows too: every row to fix
    found = bad_rows(out)
    assert len(found) == bad + 4
    for b in files:
        if b.kind in unreadable:
            row = found[f"bad-{b.kind}"]
            assert row["audio_path"] == str(b.path)
            assert row["reason"].startswith(f"missing: file not found: {b.path} (row "), row["reason"]
            assert row["reason"].endswith("of the manifest) — restore the file, or correct its path")


def test_good_files_exit_0_once_per_path_across_experiments(tmp_path):
    manifest = make_catalog(tmp_path, per_class=2, seconds=0.5)
    other = {**FAST_MODEL, "id": "mfcc-other", "params": {**FAST_MODEL["params"], "sample_rate_hz": 4000}}
    # two experiments (two tasks) over one dataset: its files are checked once
    exps = [experiment(manifest, [FAST_MODEL]), experiment(manifest, [other])]
    exps[1]["task"] = {**exps[1]["task"], "name": "pitch2"}
    cfg = write_config(tmp_path / "c.yaml", tmp_path, exps)
    res = invoke(cfg, "--decode")
    assert res.exit_code == 0, res.output
    assert res.stdout.splitlines() == ["tones: 4 files checked, 0 bad, 0 missing"]
    (found,) = check.dataset_files(load_config(cfg))
    assert found.rows.num_rows == 4 and found.lowest_rate_hz == 4000  # the lower of the two models' rates


def test_missing_rows_of_a_dataset_several_tasks_load_are_listed_once(tmp_path):
    """Two tasks load the catalog apart, each dropping the row whose file is gone and the one with an empty audio
    cell: ``--out`` lists each row once (their reports united as data), the summary counts it once."""
    extra = [
        {"track_id": "gone (1)", "audio_path": str(tmp_path / "gone.wav"), "label": "low", "split": "test"},
        {"track_id": "empty", "audio_path": "", "label": "low", "split": "test"},
    ]
    manifest = make_catalog(tmp_path, per_class=2, seconds=0.5, extra=extra)
    exps = [experiment(manifest, [FAST_MODEL]), experiment(manifest, [FAST_MODEL])]
    exps[1]["task"] = {**exps[1]["task"], "name": "pitch2"}
    (found,) = check.dataset_files(load_config(write_config(tmp_path / "c.yaml", tmp_path, exps)))
    assert found.n_missing == 2 and found.missing_examples == [
        "empty (row 7: empty path)",
        f"gone (1) (row 6: {tmp_path / 'gone.wav'})",
    ]
    assert found.missing.table().select(["track_id", "audio_path", "row"]).to_pylist() == [
        {"track_id": "empty", "audio_path": None, "row": "row 7"},
        {"track_id": "gone (1)", "audio_path": str(tmp_path / "gone.wav"), "row": "row 6"},
    ]


def test_missing_files_that_exist_under_other_letter_case_are_named_with_the_fix(tmp_path):
    """A manifest written on macOS or Windows (file systems that ignore case) names ``Audio/x.WAV`` for
    ``audio/x.wav``: on Linux the row is dropped as missing, and the summary said only "missing", leaving the user to
    spot the capital letter. The load now notes the files that exist under other case, and the check prints it."""
    extra = [
        {"track_id": "cased", "audio_path": "Audio/low-000.WAV", "label": "low", "split": "test"},
        {"track_id": "gone", "audio_path": "audio/ghost.wav", "label": "low", "split": "test"},
    ]
    manifest = make_catalog(tmp_path, per_class=2, seconds=0.5, extra=extra)
    res = invoke(write_config(tmp_path / "c.yaml", tmp_path, [experiment(manifest, [FAST_MODEL])]))
    assert res.exit_code == 1 and "tones: 4 files checked, 0 bad, 2 missing" in res.stdout, res.output
    assert res.stdout.splitlines()[-1] == (
        f"  note: 1 of the first 2 missing audio files exists under other upper/lower case (e.g. "
        f"{tmp_path / 'Audio' / 'low-000.WAV'} is {tmp_path / 'audio' / 'low-000.wav'}): paths are case-sensitive "
        "here — correct their case in the manifest"
    )
    (tmp_path / "audio" / "LOW-000.wav").write_bytes(b"")  # two files alike but for case: no guess is made
    assert (
        "note:" not in invoke(write_config(tmp_path / "c.yaml", tmp_path, [experiment(manifest, [FAST_MODEL])])).stdout
    )


def test_one_row_per_distinct_path_the_first_naming_it():
    import pyarrow as pa

    one = pa.table({"track_id": ["a", "b", "c"], "audio_path": ["x.wav", "y.wav", "x.wav"], "label": [["l"]] * 3})
    two = pa.table({"track_id": ["d", "e"], "audio_path": ["z.wav", "y.wav"], "label": [["l"]] * 2})
    got = check._unique_paths([one, two])
    assert got.to_pylist() == [
        {"track_id": "a", "audio_path": "x.wav"},
        {"track_id": "b", "audio_path": "y.wav"},
        {"track_id": "d", "audio_path": "z.wav"},
    ]


def test_bad_configuration_and_options_exit_2(corpus, tmp_path):
    _, _, unchecked, _ = corpus
    broken = tmp_path / "broken.yaml"
    broken.write_text(unchecked.read_text().replace("label_column:", "label_colum:"))
    res = invoke(broken)
    assert res.exit_code == 2 and "label_colum" in res.stderr, res.output
    res = invoke(unchecked, "--dataset", "nope")
    assert res.exit_code == 2 and "valid: tones" in res.stderr, res.output
    res = invoke(unchecked, "--out", tmp_path / "bad.txt")
    assert res.exit_code == 2 and ".csv or .parquet" in res.stderr, res.output
    res = invoke(unchecked, "--workers", "0")
    assert res.exit_code == 2, res.output


def test_file_uris_are_checked_through_pyarrow(tmp_path):
    files = {b.kind: b for b in make_corpus(tmp_path / "bad", ["truncated_data_wav", "nan_samples", "mp3"])}
    rows = [
        {"track_id": kind, "audio_path": b.path.as_uri(), "label": "low", "split": "test"} for kind, b in files.items()
    ]
    manifest = make_catalog(tmp_path, per_class=2, seconds=0.5, extra=rows)
    cfg = write_config(tmp_path / "c.yaml", tmp_path, [experiment(manifest, [FAST_MODEL])])
    res = invoke(cfg, "--decode", "--out", tmp_path / "bad.csv")
    assert res.exit_code == 1, res.output
    found = bad_rows(tmp_path / "bad.csv")
    assert set(found) == {"truncated_data_wav", "nan_samples"}
    for kind, row in found.items():
        uri = files[kind].path.as_uri()
        assert row["audio_path"] == uri and row["reason"] == run_reason(uri)
        assert files[kind].reason in row["reason"].lower()


def test_few_frames_are_decoded_at_the_lowest_model_rate(tmp_path):
    import numpy as np
    import soundfile as sf

    path = str(tmp_path / "two_frames.wav")
    sf.write(path, np.full(2, 0.1, np.float32), 48000, subtype="PCM_16")
    # at its own rate it has samples; at 8 kHz, as a run decodes it for an 8 kHz model, less than one
    assert check.check_file(path, 48000) is None
    reason = check.check_file(path, 8000)
    assert reason is not None and "less than one sample at 8000 Hz" in reason
    assert reason == run_reason(path)
    assert check.check_file(path) is None  # the header check does not decode


def test_results_come_in_order_with_bounded_files_in_flight():
    workers = 2
    window = check.IN_FLIGHT_PER_WORKER * workers
    pulled = 0
    enough = threading.Event()

    def paths():
        nonlocal pulled
        for i in range(50):
            pulled += 1
            if pulled > window:
                enough.set()
            yield str(i)

    def check_one(path: str) -> str | None:
        if path == "0":  # the first file finishes last: only once the window behind it is full
            enough.wait(10)
        return None if int(path) % 3 else f"bad {path}"

    out = check._in_order(check_one, paths(), workers)
    results = [next(out)]
    assert pulled == window + 1  # a full window in flight, the next path waiting — not all 50 submitted
    results += list(out)
    assert [p for p, _ in results] == [str(i) for i in range(50)]
    assert [r for _, r in results] == [None if i % 3 else f"bad {i}" for i in range(50)]


def test_progress_bar_counts_files_when_asked(tmp_path, capsys):
    manifest = make_catalog(tmp_path, per_class=2, seconds=0.5)
    cfg = load_config(write_config(tmp_path / "c.yaml", tmp_path, [experiment(manifest, [FAST_MODEL])]))
    (found,) = check.check_datasets(check.dataset_files(cfg), progress=True).datasets  # as on a terminal
    assert (found.checked, found.bad, found.missing) == (4, 0, 0)
    err = capsys.readouterr().err
    assert "checking audio: 100%" in err and "4/4" in err


def _flac_without_frames(path: Path, declared: int) -> Path:
    """A FLAC of 1 s at 8 kHz cut where its metadata ends, its STREAMINFO declaring ``declared`` samples (0: none, as
    an encoder given no audio, or a streaming one, writes)."""
    import numpy as np
    import soundfile as sf

    sf.write(path, np.full(8000, 0.1, np.float32), 8000, format="FLAC")
    raw = bytearray(path.read_bytes())
    pos, last = 4, False
    while not last:  # the metadata blocks: a 4-byte header each (last-block flag, type, length)
        last = bool(raw[pos] & 0x80)
        pos += 4 + int.from_bytes(raw[pos + 1 : pos + 4], "big")
    raw[21] = raw[21] & 0xF0 | declared >> 32
    raw[22:26] = (declared & 0xFFFFFFFF).to_bytes(4, "big")
    path.write_bytes(bytes(raw[:pos]))
    return path


def _wav_data_size_0(path: Path, riff_bytes: int) -> Path:
    """A WAV of 800 samples whose data chunk declares 0 bytes and RIFF chunk ``riff_bytes`` (a writer that never went
    back to fill in the sizes)."""
    import numpy as np
    import soundfile as sf

    sf.write(path, np.full(800, 0.1, np.float32), 8000, subtype="PCM_16")
    raw = bytearray(path.read_bytes())
    at = raw.index(b"data")
    raw[4:8], raw[at + 4 : at + 8] = riff_bytes.to_bytes(4, "little"), bytes(4)
    path.write_bytes(bytes(raw))
    return path


def test_files_without_audio_frames_are_found_without_decoding(tmp_path):
    """A WAV, FLAC or Ogg file with no audio frames is found by the header check, with the run's reason (it names
    the file, says it has no audio and the fix); so is a row whose file is missing, and ``--out`` lists both."""
    import numpy as np
    import soundfile as sf

    empty = tmp_path / "empty"
    empty.mkdir()
    sf.write(empty / "empty.wav", np.zeros(0, np.float32), 8000, subtype="PCM_16")
    sf.write(empty / "empty.ogg", np.zeros(0, np.float32), 8000, format="OGG", subtype="VORBIS")
    words = {
        "empty.wav": ["no audio samples: ", " holds 0 audio frames (an empty WAV recording", "re-export it"],
        "empty.ogg": ["no audio samples: ", " holds 0 audio frames (an empty OGG recording", "re-export it"],
        "empty.flac": ["no audio samples: ", " holds 0 audio frames (an empty FLAC recording", "re-export it"],
        "cut.flac": ["truncated FLAC: ", " declares 8,000 samples but ends after its header", "download it again"],
        "unsized.wav": ["no audio samples: ", "'s WAV data chunk declares 0 bytes, but 1,600 bytes follow it",
                        "`sox --ignore-length in.wav out.wav`"],
    }  # fmt: skip
    _flac_without_frames(empty / "empty.flac", 0)
    _flac_without_frames(empty / "cut.flac", 8000)
    _wav_data_size_0(empty / "unsized.wav", 36)
    gone = tmp_path / "gone.wav"
    extra = [{"track_id": n, "audio_path": str(empty / n), "label": "low", "split": "test"} for n in words]
    extra.append({"track_id": "gone", "audio_path": str(gone), "label": "low", "split": "test"})
    manifest = make_catalog(tmp_path, per_class=2, seconds=0.5, extra=extra)
    cfg = write_config(tmp_path / "c.yaml", tmp_path, [experiment(manifest, [FAST_MODEL])])
    out = tmp_path / "reports" / "today" / "bad.csv"
    res = invoke(cfg, "--out", out)  # the header check: nothing is decoded
    assert res.exit_code == 1, res.output
    assert "tones: 9 files checked, 5 bad, 1 missing" in res.stdout
    found = bad_rows(out)
    assert list(found) == ["gone", *words]  # the missing row first, then the bad files in the manifest's order
    assert found["gone"]["audio_path"] == str(gone)
    # the manifest's CSV line 11 (its header is line 1)
    assert found["gone"]["reason"].startswith(f"missing: file not found: {gone} (row 11 of the manifest)")
    for name, expected in words.items():
        path = str(empty / name)
        reason = found[name]["reason"]
        assert reason == open_reason(path) == run_reason(path), name  # the run refuses it where it opens, alike
        assert path in reason, reason
        for w in expected:
            assert w in reason, (name, reason)


def test_only_what_libsndfile_reads_as_no_frames_is_refused(tmp_path):
    """A WAV whose RIFF size is unfilled too (8 bytes) is read whole by libsndfile, whatever its data chunk says:
    the header check lets it be, as the run decodes it."""
    from repeval.audio.decode import decode

    path = str(_wav_data_size_0(tmp_path / "riff8.wav", 8))
    assert check.check_file(path) is None and open_reason(path) is None
    assert len(decode(path, 8000)) == 800
