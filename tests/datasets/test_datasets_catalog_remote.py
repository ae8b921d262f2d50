"""A catalog manifest at a URI (``file://``, ``s3://`` on a moto server): ``repeval validate`` reads it through its
pyarrow filesystem as the load does."""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa
import pytest
import yaml
from dataset_fixtures import catalog_config

from repeval.config import ConfigError, load_config
from repeval.config.loader import check_data_paths
from repeval.datasets import load_dataset
from repeval.datasets.manifest_check import _without_az_not_found
from repeval.datasets.manifest_format import ManifestEncodingError
from repeval.testing.badaudio import write_good
from repeval.testing.s3 import moto_s3


@pytest.fixture(scope="module")
def s3():
    """A moto S3 server with a bucket ``repeval`` (:func:`~repeval.testing.s3.moto_s3`)."""
    with moto_s3() as bucket:
        yield bucket


def _config(tmp_path: Path, manifest: str) -> object:
    """A config of one multiclass catalog experiment reading ``manifest``'s ``label`` column."""
    cfg = catalog_config(manifest)
    (path := tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    return load_config(path)


def test_validate_reads_a_manifest_at_a_uri_as_the_load_does(tmp_path, s3):
    """A Windows-1252 byte far into a manifest at a URI (``file://``, ``s3://``) stopped the load, and ``repeval
    validate`` said the config was valid: it checked local manifests only. It now streams the bytes through the
    URI's filesystem and names the row the load names; one that does not exist is named too."""
    rows = [f"t{i},audio/a{i % 3}.wav,{'ab'[i % 2]}".encode() for i in range(200)]
    rows[180] = b"t180,audio/a0.wav,Beyonc\xe9"  # row 182
    data = b"\r\n".join([b"track_id,audio_path,label", *rows]) + b"\r\n"
    (tmp_path / "m.csv").write_bytes(data)
    with s3["fs"].open_output_stream("repeval/lists/m.csv") as fh:
        fh.write(data)
    for uri in (f"file://{tmp_path}/m.csv", "s3://repeval/lists/m.csv" + s3["query"]):
        cfg = _config(tmp_path, uri)
        with pytest.raises(ManifestEncodingError) as loaded:
            load_dataset(cfg.experiments[0].datasets[0], cfg.experiments[0].task)
        assert str(loaded.value).startswith(f"{uri} row 182 is not UTF-8 (byte 0xe9 in b'Beyonc\\xe9'")
        with pytest.raises(ConfigError) as said:
            check_data_paths(cfg)
        assert f"experiments[0].datasets[0].manifest: {loaded.value}" in str(said.value)
    gone = "s3://repeval/lists/gone.csv" + s3["query"]
    with pytest.raises(ConfigError, match=r"manifest: no such file: s3://repeval/lists/gone\.csv\?.* — check"):
        check_data_paths(_config(tmp_path, gone))
    # a scheme no filesystem reads (https://) was "cannot be read from here (Unrecognized filesystem type …) — check
    # the URI, the network and the credentials": it names the schemes repeval reads and the fix, when the file is read
    for uri in ("nofs://bucket/m.csv", "https://example.org/lists/m.csv"):
        with pytest.raises(ConfigError) as said:
            _config(tmp_path, uri)
        scheme = uri.split(":", 1)[0]
        assert f"manifest: {uri}: repeval cannot read {scheme}:// URIs — it reads a local path, file://, s3://" in str(
            said.value
        ), said.value
        assert "download the file and give its path, or put it in a bucket" in str(said.value), said.value


def test_relative_audio_paths_of_a_manifest_on_an_s3_compatible_server(tmp_path, s3):
    """A manifest on an S3-compatible server (``?endpoint_override=…``) whose audio paths are relative to its folder,
    some through ``..``: the folder lost the URI's query, so each audio file was looked for on AWS itself and the load
    stopped ("Could not resolve host"); and a path with ``..`` kept it (``lists/../audio/a0.wav``), one file under two
    names. The audio URIs carry the query, their ``..`` resolved; locally too."""
    for key in ("repeval/audio/a0.wav", "repeval/lists/a1.wav"):
        with s3["fs"].open_output_stream(key) as fh:
            fh.write(b"RIFF")
    with s3["fs"].open_output_stream("repeval/lists/m.csv") as fh:
        fh.write(b"track_id,audio_path,label\nt0,../audio/a0.wav,a\nt1,./a1.wav,b\n")
    cfg = _config(tmp_path, "s3://repeval/lists/m.csv" + s3["query"])
    ds = cfg.experiments[0].datasets[0].model_copy(update={"check_files": True})
    table, report = load_dataset(ds, cfg.experiments[0].task)
    assert table.column("audio_path").to_pylist() == [
        "s3://repeval/audio/a0.wav" + s3["query"],
        "s3://repeval/lists/a1.wav" + s3["query"],
    ]
    assert report.lines() == []
    (tmp_path / "lists").mkdir()
    (tmp_path / "audio").mkdir()
    (tmp_path / "audio" / "a0.wav").write_bytes(b"RIFF")
    (tmp_path / "lists" / "m.csv").write_text("track_id,audio_path,label\nt0,../audio/a0.wav,a\n")
    local = ds.model_copy(update={"manifest": str(tmp_path / "lists" / "m.csv")})
    assert load_dataset(local, cfg.experiments[0].task)[0].column("audio_path").to_pylist() == [
        str(tmp_path / "audio" / "a0.wav")
    ]


def test_an_audio_path_climbing_out_of_its_bucket_is_left_out(tmp_path, s3):
    """``..`` steps of a relative audio path under a ``dir`` on an S3-compatible server that climb above its bucket
    (``../../x/a.wav`` under ``s3://repeval/audio``) named ``s3://x/a.wav``: another bucket's file, read without a
    word (``check_files: false``). The row is left out, named with the fix; the other paths keep ``dir``'s query."""
    (tmp_path / "m.csv").write_text("track_id,audio_path,label\nt0,a0.wav,a\nt1,sub/../b.wav,b\nt2,../../x/a.wav,a\n")
    cfg = _config(tmp_path, str(tmp_path / "m.csv"))
    audio = "s3://repeval/audio" + s3["query"]
    ds = cfg.experiments[0].datasets[0].model_copy(update={"dir": audio})
    table, report = load_dataset(ds, cfg.experiments[0].task)
    assert table.column("audio_path").to_pylist() == [f"s3://repeval/audio/{n}.wav{s3['query']}" for n in ("a0", "b")]
    assert report.other == [
        f"t2 (row 4: audio path '../../x/a.wav' climbs out of bucket s3://repeval (where relative paths start: {audio}, "
        "dataset.dir, else the manifest's folder) — correct its '..' steps, or write a file of another bucket as its "
        "whole URI (s3://BUCKET/KEY))"
    ]


def test_dot_dot_steps_between_encoded_slashes_climbing_out_of_the_bucket_are_left_out(tmp_path, s3):
    """pyarrow reads ``%2F`` in a URI's path as ``/``: ``s3://repeval/%2E%2E%2Fother/a.wav`` and
    ``s3://repeval/x%2F..%2F../other/a.wav`` were read from bucket ``other`` (checked and decoded), past the rule that
    leaves out a path whose ``..`` steps climb out of its bucket. Such steps are the steps they are: resolved within
    the bucket, or the row left out, named (a relative path under a manifest at a URI alike)."""
    s3["fs"].create_dir("r2-other")
    for key in ("r2-other/a.wav", "repeval/audio/a0.wav"):
        with s3["fs"].open_output_stream(key) as fh:
            fh.write(b"RIFF")
    q = s3["query"]
    rows = f"t0,s3://repeval/%2E%2E%2Fr2-other/a.wav{q},a\nt1,s3://repeval/x%2F..%2F../r2-other/a.wav{q},b\n"
    rows += f"t2,s3://repeval/lists%2F%2e%2e%2Faudio/a0.wav{q},a\nt3,..%2F..%2Fr2-other/a.wav,b\nt4,a0.wav,a\n"
    (tmp_path / "m.csv").write_text(f"track_id,audio_path,label\n{rows}")
    cfg = _config(tmp_path, str(tmp_path / "m.csv"))
    ds = cfg.experiments[0].datasets[0].model_copy(update={"check_files": True, "dir": f"s3://repeval/audio{q}"})
    table, report = load_dataset(ds, cfg.experiments[0].task)
    assert table.column("audio_path").to_pylist() == [f"s3://repeval/audio/a0.wav{q}"] * 2
    assert [line.split(" climbs out of ")[0] for line in report.other] == [
        f"t0 (row 2: audio path 's3://repeval/%2E%2E%2Fr2-other/a.wav{q}'",
        f"t1 (row 3: audio path 's3://repeval/x%2F..%2F../r2-other/a.wav{q}'",
        "t3 (row 5: audio path '..%2F..%2Fr2-other/a.wav'",
    ]


def test_a_hash_sign_in_a_whole_uri_is_part_of_its_files_name(tmp_path, s3):
    """``#`` in a whole URI (``s3://b/keys/C#/m.csv``, an audio path ``…/C#_major.wav``: a key's name) was kept, and
    pyarrow read it as a fragment, which names no file: the rest of the name was dropped, and with it the URI's query
    after it (``?endpoint_override=…``: the load went to AWS — "Could not resolve host"), while a relative path's
    ``#`` was percent-encoded and read. A file's name holds it, as a relative path's does."""
    from repeval.audio.decode import decode
    from repeval.store import EmbeddingStore

    write_good(tmp_path / "g.wav", 1.0, 300.0)
    q = s3["query"]
    with s3["fs"].open_output_stream("repeval/keys/C#/C#_major.wav") as fh:
        fh.write((tmp_path / "g.wav").read_bytes())
    with s3["fs"].open_output_stream("repeval/keys/C#/m.csv") as fh:
        fh.write(f"track_id,audio_path,label\nt0,s3://repeval/keys/C#/C#_major.wav{q},a\nt1,C#_major.wav,b\n".encode())
    cfg = _config(tmp_path, f"s3://repeval/keys/C#/m.csv{q}")
    ds = cfg.experiments[0].datasets[0].model_copy(update={"check_files": True})
    assert ds.manifest == f"s3://repeval/keys/C%23/m.csv{q}"
    table, report = load_dataset(ds, cfg.experiments[0].task)
    assert table.column("audio_path").to_pylist() == [f"s3://repeval/keys/C%23/C%23_major.wav{q}"] * 2
    assert report.lines() == [] and decode(table.column("audio_path")[0].as_py(), 8000).shape == (8000,)
    # a store at such a URI is where it says, not at the URI cut at '#' (file:///…/C, silently)
    (path := tmp_path / "c.yaml").write_text(f"run: {{store: 'file://{tmp_path}/C#/store'}}\n" + path.read_text())
    assert EmbeddingStore(load_config(path).run.store).root == f"{tmp_path}/C#/store"


def test_validate_gives_up_soon_on_a_cloud_manifest_it_cannot_reach(tmp_path, monkeypatch, capfd):
    """``repeval validate`` (and ``plan``) of a ``gs://`` manifest on a machine without the network or the credentials
    waited Google Cloud Storage's 15 minutes of retries, deaf to Ctrl-C, and an ``abfs://`` one stopped on a
    traceback (an ArrowException, neither OSError nor ValueError): both are now said at once, with the fix — without
    the "/bin/sh: 1: az: not found" the Azure SDK's shell printed where the Azure CLI is not installed (other lines
    written meanwhile still are)."""
    monkeypatch.setattr("repeval.datasets.manifest_check.REACH_RETRY_SECONDS", 1)
    gs = "gs://repeval/m.csv?endpoint_override=127.0.0.1:1&scheme=http"
    for uri in (gs, "abfs://data@account.dfs.core.windows.net/m.csv"):
        with pytest.raises(ConfigError) as said:
            check_data_paths(_config(tmp_path, uri))
        assert f"manifest: {uri} cannot be read from here (" in str(said.value)
        assert "or pass --skip-data-check when only the cluster reaches it" in str(said.value)
    assert "az: not found" not in capfd.readouterr().err
    with _without_az_not_found("abfs://data@account.dfs.core.windows.net/m.csv"):
        os.write(2, b"real\n/bin/sh: 1: az: not found\nerror\n")
    assert capfd.readouterr().err == "real\nerror\n"


def test_a_run_gives_up_soon_on_a_cloud_manifest_or_audio_it_cannot_reach(tmp_path, monkeypatch):
    """A run's load of a ``gs://`` manifest (or of a manifest whose audio is on ``gs://``, checked) on a machine
    without the network waited Google Cloud Storage's 15 minutes of retries, then said the client's error without the
    URI: ``repeval validate`` alone bounded them (and ``repeval run``'s check of the manifest named validate's
    --skip-data-check, which run has not, and gave up after validate's 5 seconds, not the load's minute). The load now
    bounds them too (a minute; one second here), run's check as long, and names the URI, how long it retried and the
    fix."""
    monkeypatch.setattr("repeval.cloud_reach.GCS_RETRY_SECONDS", 1)
    query = "?endpoint_override=127.0.0.1:1&scheme=http"
    gs = f"gs://repeval/m.csv{query}"
    cfg = _config(tmp_path, gs)
    with pytest.raises(ValueError) as said:
        load_dataset(cfg.experiments[0].datasets[0], cfg.experiments[0].task)
    assert str(said.value).startswith(
        f"catalog manifest: {gs} cannot be read from here (retried for 1 s: google::cloud::"
    )
    assert str(said.value).endswith(
        "check the URI, the network and the credentials on this machine (a run reads the manifest where it starts: on "
        "a cluster, the job's driver)"
    )
    # repeval run checks the manifest first, as validate does — naming the run's fix: it has no --skip-data-check
    from typer.testing import CliRunner

    from repeval.cli import app

    monkeypatch.setattr("repeval.datasets.manifest_check.REACH_RETRY_SECONDS", 2)  # validate's: not a run's
    res = CliRunner().invoke(app, ["run", str(tmp_path / "c.yaml")])
    said = " ".join(res.stderr.split())
    assert res.exit_code == 2 and f"manifest: {gs} cannot be read from here (retried for 1 s: " in said, said
    assert said.endswith(
        "credentials on this machine (a run reads the manifest where it starts: on a cluster, the job's driver)"
    )
    (tmp_path / "m.csv").write_text(f"track_id,audio_path,label\nt0,gs://repeval/a0.wav{query},a\n")
    ds = _config(tmp_path, str(tmp_path / "m.csv")).experiments[0].datasets[0].model_copy(update={"check_files": True})
    with pytest.raises(ValueError) as said:
        load_dataset(ds, cfg.experiments[0].task)
    assert str(said.value).startswith(
        f"audio files at gs://repeval (e.g. gs://repeval/a0.wav{query}) cannot be checked from here (retried for 1 s: google::"
    )
    assert str(said.value).endswith(
        "check the URI, the network and the credentials, or set check_files: false when only the cluster reaches them"
    )


def test_dot_dot_steps_of_whole_audio_uris_follow_the_rule_of_relative_paths(tmp_path, s3):
    """An audio path written as a whole URI kept its ``..`` steps (``s3://b/lists/../a.wav``: the key S3 looks up
    holds ``..``, no file; one ``file://`` file under two names) and one climbing out of its bucket was read as
    written, while a relative path had them resolved and was left out. A URI now follows the relative path's rule: a
    ``file://`` URI's steps resolved where the system finds the same file (not through a symlinked folder, one whose
    name the URI percent-encodes too: it was taken for no folder, so the steps were resolved)."""
    with s3["fs"].open_output_stream("repeval/audio/a0.wav") as fh:
        fh.write(b"RIFF")
    (tmp_path / "audio").mkdir()
    (tmp_path / "audio" / "a1.wav").write_bytes(b"RIFF")
    (tmp_path / "elsewhere" / "sub").mkdir(parents=True)
    (tmp_path / "elsewhere" / "audio").mkdir()
    (tmp_path / "elsewhere" / "audio" / "a2.wav").write_bytes(b"RIFF")
    (tmp_path / "link").symlink_to(tmp_path / "elsewhere" / "sub")
    (tmp_path / "li nk").symlink_to(tmp_path / "elsewhere" / "sub")  # its name percent-encoded in the URI
    q = s3["query"]
    paths = [f"s3://repeval/lists/../audio/a0.wav{q}", f"file://{tmp_path}/x/../audio/a1.wav",
             f"file://{tmp_path}/link/../audio/a2.wav", f"s3://repeval/../x/a.wav{q}",
             f"file://{tmp_path}/li%20nk/../audio/a2.wav"]  # fmt: skip
    rows = "".join(f"t{i},{p},a\n" for i, p in enumerate(paths))
    (tmp_path / "m.csv").write_text(f"track_id,audio_path,label\n{rows}")
    ds = _config(tmp_path, str(tmp_path / "m.csv")).experiments[0].datasets[0].model_copy(update={"check_files": True})
    table, report = load_dataset(ds, load_config(tmp_path / "c.yaml").experiments[0].task)
    assert table.column("audio_path").to_pylist() == [
        f"s3://repeval/audio/a0.wav{q}",
        f"file://{tmp_path}/audio/a1.wav",
        paths[2],
        paths[4],
    ]
    assert report.other == [
        f"t3 (row 5: audio path {paths[3]!r} climbs out of its bucket s3://repeval — correct its '..' steps)"
    ]


def test_audio_files_whose_names_a_uri_percent_encodes_are_found_and_read(tmp_path, s3):
    """A file's name with a space or a letter beyond ASCII, at a URI: written percent-encoded as a whole URI (pyarrow
    parses no space), ``check_files`` looked up the encoded name — ``my%20song.wav`` — and left the row out as missing;
    written relative to a manifest on S3, it was found, then its decode failed ("Cannot parse URI"). Both are found
    and read; two definitions naming one file so, the one encoded, are one file."""
    from repeval.audio.decode import decode
    from repeval.datasets.audio_paths import same_files

    write_good(tmp_path / "g.wav", 1.0, 300.0)
    for key in ("repeval/lists/my song.wav", "repeval/lists/café 100%.wav"):
        with s3["fs"].open_output_stream(key) as fh:
            fh.write((tmp_path / "g.wav").read_bytes())
    (tmp_path / "my song.wav").write_bytes(b"RIFF")
    q = s3["query"]
    rows = f"t0,my song.wav,a\nt1,café 100%.wav,a\nt2,s3://repeval/lists/my%20song.wav{q},a\nt3,file://{tmp_path}/my%20song.wav,a\n"
    with s3["fs"].open_output_stream("repeval/lists/m.csv") as fh:
        fh.write(f"track_id,audio_path,label\n{rows}".encode())
    ds = _config(tmp_path, f"s3://repeval/lists/m.csv{q}").experiments[0].datasets[0]
    table, report = load_dataset(
        ds.model_copy(update={"check_files": True}), load_config(tmp_path / "c.yaml").experiments[0].task
    )
    paths = table.column("audio_path").to_pylist()
    assert paths[:3] == [
        f"s3://repeval/lists/my%20song.wav{q}",
        f"s3://repeval/lists/caf%C3%A9%20100%25.wav{q}",
        f"s3://repeval/lists/my%20song.wav{q}",
    ]
    assert report.missing_audio == [] and len(paths) == 4
    assert decode(paths[1], 8000).shape == (8000,)
    named = pa.array([f"s3://repeval/lists/caf%c3%a9%20100%25.wav{q}", f"{tmp_path}/my song.wav"])  # another encoder
    assert same_files(pa.array(paths[1::2]), named).tolist() == [True, True]


def test_a_manifest_whose_server_goes_away_midway_is_named_with_the_rows_read():
    """The network lost while a manifest at a URI streams: the client's error ("AWS Error NETWORK_CONNECTION …") named
    neither the manifest nor the fix. It names both, and how many rows were read."""
    import pyarrow.parquet as pq

    from repeval.datasets.manifest import iter_manifest

    n = 300
    table = pa.table({"track_id": [f"t{i}" for i in range(n)], "audio_path": [f"a{i}.wav" for i in range(n)]})
    with moto_s3() as gone:  # a server of its own, stopped after the first batch
        with gone["fs"].open_output_stream("repeval/m.parquet") as fh:
            pq.write_table(table, fh, row_group_size=100)
        uri = "s3://repeval/m.parquet" + gone["query"]
        batches = iter_manifest(uri, batch_rows=100)
        assert next(batches)[0] == 0
    with pytest.raises(ValueError) as said:
        list(batches)
    assert str(said.value).startswith(f"catalog manifest: {uri} could not be read to the end (100 rows read: AWS Error")
    assert str(said.value).endswith("check the network and the credentials on this machine, then run the command again")


def test_audio_files_of_one_bucket_name_on_two_servers_are_each_checked_on_their_own(tmp_path, s3):
    """``check_files`` made one filesystem per scheme and bucket: a file of the bucket ``repeval`` on a second server
    (another ``?endpoint_override=``) was looked up on the first server's — found there, it passed, and its decode
    failed later. Each server is asked for its own files: the one out of reach is named."""
    with s3["fs"].open_output_stream("repeval/audio/a0.wav") as fh:
        fh.write(b"RIFF")
    here, gone = s3["query"], "?endpoint_override=127.0.0.1:1&scheme=http&region=us-east-1"
    rows = f"t0,s3://repeval/audio/a0.wav{here},a\nt1,s3://repeval/audio/a0.wav{gone},a\n"
    (tmp_path / "m.csv").write_text(f"track_id,audio_path,label\n{rows}")
    ds = _config(tmp_path, str(tmp_path / "m.csv")).experiments[0].datasets[0].model_copy(update={"check_files": True})
    with pytest.raises(
        ValueError,
        match=r"^audio files at s3://repeval \(e\.g\. s3://repeval/audio/a0\.wav\?endpoint_override=127\.0\.0\.1:1&",
    ):
        load_dataset(ds, load_config(tmp_path / "c.yaml").experiments[0].task)


def test_uris_written_with_localhost_a_space_or_encoded_dot_dot_steps_are_read_as_they_mean(tmp_path, s3):
    """Three URIs that mean one file were not read as it: ``file://localhost/…`` (RFC 8089's local host: pyarrow
    refused it, "Unsupported hostname"), a raw space in an S3 URI (``s3://b/my folder/m.csv``: "Cannot parse URI",
    while a relative path with a space was percent-encoded and read), and ``%2E%2E`` (RFC 3986's ``..``: kept as a
    name, so a path climbing out of its bucket was read). A manifest and its audio paths are read as they mean —
    ``..`` steps resolved, or the row left out when they climb out of the bucket, one rule written either way."""
    from repeval.audio.decode import decode

    write_good(tmp_path / "g.wav", 1.0, 300.0)
    q = s3["query"]
    for key in ("repeval/audio/a0.wav", "repeval/my folder/a1.wav"):
        with s3["fs"].open_output_stream(key) as fh:
            fh.write((tmp_path / "g.wav").read_bytes())
    with s3["fs"].open_output_stream("repeval/my folder/m.csv") as fh:
        fh.write(b"track_id,audio_path,label\nt0,a1.wav,a\n")
    cfg = _config(tmp_path, f"s3://repeval/my folder/m.csv{q}")
    ds = cfg.experiments[0].datasets[0].model_copy(update={"check_files": True})
    assert ds.manifest == f"s3://repeval/my%20folder/m.csv{q}"
    check_data_paths(cfg)
    table, report = load_dataset(ds, cfg.experiments[0].task)
    assert table.column("audio_path").to_pylist() == [f"s3://repeval/my%20folder/a1.wav{q}"] and report.lines() == []
    rows = (f"t0,s3://repeval/lists/%2E%2E/audio/a0.wav{q},a\nt1,s3://repeval/%2e%2e/x/a.wav{q},b\n"
            f"t2,file://localhost{tmp_path}/g.wav,a\nt3,s3://repeval/my folder/a1.wav{q},b\nt4,file://{tmp_path}/g.wav,a\n")  # fmt: skip
    (tmp_path / "m.csv").write_text(f"track_id,audio_path,label\n{rows}")
    cfg = _config(tmp_path, f"file://localhost{tmp_path}/m.csv")
    ds = cfg.experiments[0].datasets[0].model_copy(update={"check_files": True})
    assert ds.manifest == f"file://{tmp_path}/m.csv"
    check_data_paths(cfg)
    table, report = load_dataset(ds, cfg.experiments[0].task)
    paths = table.column("audio_path").to_pylist()
    assert paths == [
        f"s3://repeval/audio/a0.wav{q}",
        f"file://{tmp_path}/g.wav",
        f"s3://repeval/my%20folder/a1.wav{q}",
        f"file://{tmp_path}/g.wav",
    ]
    assert report.other == [
        f"t1 (row 3: audio path 's3://repeval/%2e%2e/x/a.wav{q}' climbs out of its bucket s3://repeval — correct its "
        "'..' steps)"
    ]
    assert [decode(p, 8000).shape for p in paths[1:3]] == [(8000,), (8000,)]
