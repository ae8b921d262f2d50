"""What ``repeval data check`` says and writes: the missing rows' reasons, ``--out``'s list whole and never left half
written, its summary lines, and the files a run decodes only in part (no Ray)."""

from __future__ import annotations

import re
from pathlib import Path

import pyarrow.parquet as pq
from data_check_cases import invoke
from reliability_helpers import FAST_MODEL, experiment, make_catalog, write_config

from repeval.datasets import check
from repeval.testing.badaudio import make_corpus


def test_missing_rows_reasons_name_each_cause_and_its_fix():
    from repeval.datasets import missing

    assert missing.reason("a b", "/data/x (live).wav", "row 7", missing.NOT_FOUND) == (
        "missing: file not found: /data/x (live).wav (row 7 of the manifest) — restore the file, or correct its path"
    )
    assert missing.reason("g (1)", "/m/blues (1).wav", None, missing.NOT_FOUND) == (
        "missing: file not found: /m/blues (1).wav — restore the file, or correct its path"
    )
    assert missing.reason("t1", None, "row 3", missing.EMPTY_PATH).startswith(
        "missing: row 3 of the manifest has an empty audio path"
    )
    assert missing.reason("t2", None, None, missing.NOT_INDEXED) == (
        "missing: the data set's index names no audio file for this track"
    )
    assert missing.reason("odd words", None, None, missing.REPORTED) == "missing: odd words"


def _odd_mirdata_layout(root: Path, n_missing: int) -> tuple[Path, dict[str, str]]:
    """A GTZAN layout (mirdata's ``gtzan_genre``, its own index format) of one real track and ``n_missing`` tracks
    listed in the index without audio on disk, the first with ids and paths no message could delimit; the index
    path and the missing tracks' audio paths by id."""
    import json

    import numpy as np
    import soundfile as sf

    (root / "genres" / "country").mkdir(parents=True)
    sf.write(root / "genres" / "country" / "country.00000.wav", np.full(800, 0.1, np.float32), 8000)
    odd = ['blues.live (take 2), "x"', "jazz.été (b)", "rock.a\nb", " pop. spaced ( id ", "metal.(no) (row 3: x)"]
    ids = odd + [f"metal.{i:05d}" for i in range(n_missing - len(odd))]
    missing = {t: f"genres/{t.split('.')[0]}/{t}.wav" for t in ids}
    tracks = {t: {"audio": [p, None], "beats": [None, None], "tempo": [None, None]} for t, p in missing.items()}
    tracks["country.00000"] = {"audio": ["genres/country/country.00000.wav", None], "beats": [None, None],
                               "tempo": [None, None]}  # fmt: skip
    index = root / "gtzan_index.json"
    index.write_text(json.dumps({"version": "1.0", "tracks": tracks}))
    return index, {t: str(root / p) for t, p in missing.items()}


def test_out_lists_every_missing_track_of_a_mirdata_layout_with_its_id_and_path_whole(tmp_path):
    """Past the 10,000 missing tracks a report names for people, with ids and paths holding `` (``, commas, quotes,
    a newline and non-ASCII letters: each ``--out`` row is the track's own id and path, read from the loader's report
    as data."""
    import csv

    from repeval.datasets.base import LoadReport

    n = LoadReport().max_items + 7
    root = tmp_path / "gtzan"
    index, missing = _odd_mirdata_layout(root, n)
    gtzan = {"name": "gtzan_genre", "type": "mirdata", "dir": str(root), "index_path": str(index)}
    exp = {**experiment(root, [FAST_MODEL]), "datasets": [gtzan]}
    exp["task"] = {"name": "genre_classification", "type": "multiclass_classification"}
    cfg = write_config(tmp_path / "c.yaml", tmp_path, [exp])
    out = tmp_path / "bad.csv"
    res = invoke(cfg, "--out", out)
    assert res.exit_code == 1, res.output
    assert f"gtzan_genre: 1 files checked, 0 bad, {n:,} missing" in res.stdout
    assert f"… and {n - check.SHOWN:,} more missing (--out FILE lists them all)" in res.stdout
    with out.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["track_id"] for r in rows] == list(missing)  # all of them, whole, in the index's order
    for r in rows:
        path = missing[r["track_id"]]
        assert r["dataset"] == "gtzan_genre" and r["audio_path"] == path
        assert r["reason"] == f"missing: file not found: {path} — restore the file, or correct its path"


def test_a_catalogs_odd_ids_and_paths_come_out_whole(tmp_path):
    """A manifest's ids and paths with `` (``, ``: ``, commas, quotes and newlines (a quoted CSV cell), missing files
    and an empty audio cell: ``--out`` (Parquet here) keeps each whole, with its manifest row."""
    odd = ["a (row 2: b)", 'c, "d"', "e\nf (g)", "é (empty path)"]
    extra = [
        {"track_id": t, "audio_path": str(tmp_path / "gone" / f"{t}.wav"), "label": "low", "split": "test"}
        for t in odd[:3]
    ]
    extra.append({"track_id": odd[3], "audio_path": "", "label": "low", "split": "test"})
    manifest = make_catalog(tmp_path, per_class=2, seconds=0.5, extra=extra)
    cfg = write_config(tmp_path / "c.yaml", tmp_path, [experiment(manifest, [FAST_MODEL])])
    res = invoke(cfg, "--out", tmp_path / "bad.parquet")
    assert res.exit_code == 1, res.output
    assert "tones: 4 files checked, 0 bad, 4 missing" in res.stdout
    rows = {r["track_id"]: r for r in pq.read_table(tmp_path / "bad.parquet").to_pylist()}
    assert sorted(rows) == sorted(odd), list(rows)
    for tid in odd[:3]:
        path = str(tmp_path / "gone" / f"{tid}.wav")
        assert rows[tid]["audio_path"] == path, rows[tid]
        assert rows[tid]["reason"].startswith(f"missing: file not found: {path} (row "), rows[tid]
    assert rows[odd[3]]["audio_path"] == "" and "of the manifest has an empty audio path" in rows[odd[3]]["reason"]


def test_an_out_file_that_cannot_be_written_fails_after_the_summary(tmp_path):
    manifest = make_catalog(tmp_path, per_class=2, seconds=0.5)
    cfg = write_config(tmp_path / "c.yaml", tmp_path, [experiment(manifest, [FAST_MODEL])])
    (tmp_path / "taken").write_text("a file where --out needs a folder")
    full = tmp_path / "full.csv"
    full.symlink_to("/dev/full")  # every write: no space left on device
    for out, why in [(tmp_path / "taken" / "bad.csv", "File exists"), (full, "No space left on device")]:
        res = invoke(cfg, "--out", out)
        assert res.exit_code == check.OUT_ERROR_EXIT == 3, res.output
        assert res.stdout.splitlines() == ["tones: 4 files checked, 0 bad, 0 missing"]  # the summary, whole
        assert res.stderr.startswith(f"error: --out {out}: could not write it ("), res.stderr
        assert why in res.stderr and "choose a path you can write to" in res.stderr
    assert full.is_symlink()  # what --out names through a symlink is never deleted


def test_a_write_that_fails_part_way_drops_the_incomplete_file(tmp_path):
    """The file grows past what the process may write (RLIMIT_FSIZE, as a full disk): the check still prints its
    summary, the incomplete file is removed and the exit status says --out was not written."""
    import resource
    import signal
    import subprocess
    import sys

    from reliability_helpers import cli_env

    extra = [{"track_id": "gone", "audio_path": str(tmp_path / "gone.wav"), "label": "low", "split": "test"}]
    manifest = make_catalog(tmp_path, per_class=2, seconds=0.5, extra=extra)
    cfg = write_config(tmp_path / "c.yaml", tmp_path, [experiment(manifest, [FAST_MODEL])])
    out = tmp_path / "bad.csv"

    def small_files() -> None:  # the header fits, the missing row does not
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails (EFBIG) instead of killing
        resource.setrlimit(resource.RLIMIT_FSIZE, (64, 64))

    code = "from repeval.cli import entrypoint; entrypoint()"
    proc = subprocess.run(
        [sys.executable, "-c", code, "data", "check", str(cfg), "--out", str(out)],
        env=cli_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=small_files,
    )
    assert proc.returncode == 3, proc.stderr
    assert "tones: 4 files checked, 0 bad, 1 missing" in proc.stdout
    assert f"error: --out {out}: could not write it (" in proc.stderr
    assert "File too large" in proc.stderr and "the incomplete file was removed" in proc.stderr
    assert not out.exists()


def test_summary_says_when_out_lists_only_the_missing_rows_the_loader_named():
    found = check.DatasetCheck("d", checked=1, missing=12, missing_examples=["a (x)"] * check.SHOWN, missing_named=10)
    assert found.lines()[-1] == "  … and 7 more missing (--out FILE lists the first 10: the loader names no more)"
    found.missing_named = 12
    assert found.lines()[-1] == "  … and 7 more missing (--out FILE lists them all)"


def test_the_cut_files_line_speaks_of_one_file_in_the_singular():
    """ "1 of the bad files is cut short …: copy or download them again … the whole frames they hold, each row": the
    line after the bad files spoke of one file as of several."""
    one = check.DatasetCheck("d", checked=3, bad=1, cut=1).lines()[-1]
    assert one == (
        "  1 of the bad files is cut short (WAV, MP3, FLAC): copy or download it again, or set run.truncated_audio: "
        "decode to embed the whole frames it holds, its row noted in audio_note"
    )
    two = check.DatasetCheck("d", checked=3, bad=2, cut=2).lines()[-1]
    assert "2 of the bad files are cut short" in two and "download them again" in two and "they hold, each row" in two


def test_decode_lists_the_files_a_run_decodes_only_in_part_under_either_truncated_audio_setting(tmp_path):
    """``--decode`` lists the files a run would embed from part of their audio, each with the ``audio_note`` its
    rows would carry: under ``run.truncated_audio: decode`` the WAV, MP3 and FLAC cut short (not bad: exit 0) and the
    Ogg without its end; under the default the cut ones are bad, their reason naming the setting, and the Ogg is still
    listed. Without ``--decode`` nothing is listed (the notes come from decoding). Under the default, one line after the
    bad files counts the cut ones and names the setting, with ``--decode`` or without."""
    kinds = ["truncated_data_wav", "truncated_data_mp3", "truncated_data_flac", "truncated_ogg"]
    files = {b.kind: b for b in make_corpus(tmp_path / "bad", kinds)}
    rows = [{"track_id": k, "audio_path": str(b.path), "label": "low", "split": "test"} for k, b in files.items()]
    manifest = make_catalog(tmp_path, per_class=2, seconds=0.5, extra=rows)
    for setting in ("decode", "error"):
        cfg = write_config(
            tmp_path / f"{setting}.yaml", tmp_path, [experiment(manifest, [FAST_MODEL])], truncated_audio=setting
        )
        res = invoke(cfg, "--decode")
        cut = 3 if setting == "decode" else 0
        assert res.exit_code == (0 if cut else 1), res.output
        assert f"tones: 8 files checked, {3 - cut} bad, 0 missing, {cut + 1} decoded partly" in res.output
        partly = dict(re.findall(r"^  decoded partly: (\S+): (.+) \(/", res.output, re.M))
        assert set(partly) == set(kinds[3:] if not cut else kinds), res.output
        assert re.fullmatch(r"Ogg without its end page: \d+\.\d s decoded", partly["truncated_ogg"])
        for kind in kinds[:3]:
            if cut:
                fmt = kind.rsplit("_", 1)[1].upper()
                assert re.fullmatch(rf"cut {fmt}: declares \d+\.\d s, holds \d+\.\d s", partly[kind]), partly[kind]
            else:
                assert re.search(rf"bad: {kind}: truncated .* or set run\.truncated_audio: decode", res.output)
        opened = invoke(cfg).output
        assert "decoded partly" not in opened
        # the cut files are found where they open, with --decode or without: one line names the setting for them all
        hint = "3 of the bad files are cut short (WAV, MP3, FLAC): copy or download them again, or set run.truncated_audio: decode"
        for out in (res.output, opened):
            assert (out.count(hint), out.count("cut short (WAV, MP3, FLAC)")) == ((0, 0) if cut else (1, 1)), out
