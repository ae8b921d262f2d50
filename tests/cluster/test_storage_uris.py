"""Store, runs directory and Ray Tune storage on filesystem URIs (issue 8).

- ``file://`` URIs and plain paths: used in place (no staging).
- S3: a moto server on 127.0.0.1 (``moto[server]``'s ThreadedMotoServer) reached through pyarrow's
  S3FileSystem with ``?endpoint_override=127.0.0.1:PORT&scheme=http`` and credentials from the
  environment. The end-to-end run with every output in a bucket: test_s3_run.py.
"""

from __future__ import annotations

import json
import os
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest
import yaml

from repeval.rundir import RunLocation, TuneStorage, join_uri
from repeval.testing.s3 import bucket_files as _files
from repeval.testing.s3 import denied_user as _user_denied
from repeval.testing.s3 import moto_s3

REPO = Path(__file__).resolve().parents[2]


# --- local paths and file:// URIs ------------------------------------------------------------------


def test_join_uri_keeps_the_query() -> None:
    q = "?endpoint_override=127.0.0.1:9000&scheme=http"
    assert join_uri(f"s3://bucket/runs{q}", "r1", "tune") == f"s3://bucket/runs/r1/tune{q}"
    assert join_uri("s3://bucket/runs/", "r1") == "s3://bucket/runs/r1"
    assert join_uri("file:///tmp/runs", "r1") == "file:///tmp/runs/r1"


def test_local_paths_and_file_uris_are_used_in_place(tmp_path: Path) -> None:
    for runs_dir in (str(tmp_path / "runs"), f"file://{tmp_path}/runs"):
        loc = RunLocation.open(runs_dir, "r1")
        assert not loc.staged and loc.local == tmp_path / "runs" / "r1"
        assert loc.tune_storage == str(tmp_path / "runs" / "r1" / "tune")
        assert loc.push() == 0 and loc.pull() == 0
    assert RunLocation.open("runs", "r2").local == Path("runs").resolve() / "r2"


def test_make_context_with_a_file_uri(tmp_path: Path) -> None:
    from repeval.config import load_config
    from repeval.runner import make_context

    cfg = load_config(REPO / "configs" / "quickstart.yaml")
    run = cfg.run.model_copy(update={"runs_dir": f"file://{tmp_path}/runs", "store": f"file://{tmp_path}/store"})
    ctx = make_context(cfg.model_copy(update={"run": run}), "r1")
    assert ctx.run_dir == tmp_path / "runs" / "r1" and (ctx.run_dir / "config.yaml").is_file()
    assert ctx.tune_storage == str(tmp_path / "runs" / "r1" / "tune")
    assert ctx.store.root == str(tmp_path / "store") and isinstance(ctx.store.fs, pafs.LocalFileSystem)
    # `--store` overrides run.store: the run's config.yaml names the store it used (the report reads it there)
    other = make_context(cfg.model_copy(update={"run": run}), "r2", store=f"file://{tmp_path}/other")
    assert other.store.root == str(tmp_path / "other")
    assert yaml.safe_load((other.run_dir / "config.yaml").read_text())["run"]["store"] == f"file://{tmp_path}/other"


def test_tune_storage_on_a_local_path(tmp_path: Path) -> None:
    st = TuneStorage(str(tmp_path / "tune"))
    assert not st.exists("exp") and st.read_text("exp.repeval.json") is None
    st.write_text("exp.repeval.json", '{"fingerprint": "a"}')
    (tmp_path / "tune" / "exp").mkdir()
    (tmp_path / "tune" / "exp" / "x.json").write_text("{}")
    st.move("exp", "exp.stale")
    assert not st.exists("exp") and (tmp_path / "tune" / "exp.stale" / "x.json").is_file()
    assert st.uri("exp") == f"{tmp_path}/tune/exp" and st.read_text("exp.repeval.json") == '{"fingerprint": "a"}'


# --- S3 (moto on loopback) -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def s3() -> Iterator[dict[str, Any]]:
    """A moto S3 server on 127.0.0.1 with a bucket ``repeval``; yields the URI query, credentials and a filesystem."""
    with moto_s3() as bucket:
        yield bucket


def test_run_directory_staging_round_trip_on_s3(s3: dict[str, Any], caplog: pytest.LogCaptureFixture) -> None:
    runs = "s3://repeval/unit/runs" + s3["query"]
    loc = RunLocation.open(runs, "r1")
    assert loc.staged and loc.local.is_dir() and loc.display == "s3://repeval/unit/runs/r1"
    assert loc.tune_storage == "s3://repeval/unit/runs/r1/tune" + s3["query"]
    (loc.local / "groups").mkdir()
    pq.write_table(pa.table({"x": [1, 2]}), loc.local / "groups" / "g.parquet")
    (loc.local / "config.yaml").write_text("a: 1\n")
    (loc.local / "results.parquet.tmp").write_text("partial")  # being written: never uploaded
    (loc.local / "tune").mkdir()
    (loc.local / "tune" / "local-only").write_text("Tune writes to the bucket itself")
    with caplog.at_level("INFO", logger="repeval.rundir"):
        assert loc.push() == 2
        assert loc.push() == 0  # nothing changed
        (loc.local / "config.yaml").write_text("a: 2\n")
        assert loc.push() == 1
    pushed = [r.getMessage() for r in caplog.records if r.getMessage().startswith("pushed")]
    assert pushed == ["pushed 2 files to s3://repeval/unit/runs/r1", "pushed 1 file to s3://repeval/unit/runs/r1"]
    assert set(_files(s3["fs"], "repeval/unit/runs/r1")) == {"groups/g.parquet", "config.yaml"}

    # Tune's own files in the bucket are never pulled; everything else is
    s3["fs"].create_dir("repeval/unit/runs/r1/tune/exp")
    with s3["fs"].open_output_stream("repeval/unit/runs/r1/tune/exp/big.ckpt") as f:
        f.write(b"x" * 1000)
    again = RunLocation.open(runs, "r1")
    assert again.local != loc.local
    assert sorted(p.relative_to(again.local).as_posix() for p in again.local.rglob("*") if p.is_file()) == [
        "config.yaml",
        "groups/g.parquet",
    ]
    assert (again.local / "config.yaml").read_text() == "a: 2\n"
    remote = {rel: info.mtime_ns for rel, info in again._remote_files()}  # each file's time in the bucket, kept
    assert {rel: (again.local / rel).stat().st_mtime_ns for rel in remote} == remote and None not in remote.values()
    assert pq.read_table(again.local / "groups" / "g.parquet").column("x").to_pylist() == [1, 2]
    assert again.push() == 0
    # a file written anew with the bytes it had (a resumed run's evaluation rewriting its results) is not uploaded
    # again: a finished run resumed said "pushed 7 files" of files it had not changed
    for text, pushed in (("a: 2\n", 0), ("a: 3\n", 1), ("a: 3\n", 0)):  # as pulled, then changed, then as pushed
        (again.local / "config.yaml").write_text(text)
        assert again.push() == pushed, text
    assert s3["fs"].open_input_stream("repeval/unit/runs/r1/config.yaml").read() == b"a: 3\n"


def test_a_pulled_group_record_keeps_its_time_against_a_partition_embedded_anew(
    s3: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A remote run directory's files were pulled with the pull's time: a group record an earlier repeval wrote (no
    partition writes in it) looked newer than a partition embedded anew after it, and the grid was not trained again.
    A pulled record keeps its time in the bucket, so the partition's newer part file tells it."""
    from types import SimpleNamespace

    from repeval.run import groups
    from repeval.store import EmbeddingStore
    from repeval.store.layout import write_table_atomic

    monkeypatch.setattr(groups, "REWRITE_SLACK_S", 0.0)  # else the partition must be written a minute after the record
    earlier = {"partitions": {"clean": [2, 0, "cfg"]}}  # [rows, errors, config hash]: an earlier repeval's record
    _put(s3["fs"], "repeval/mtimes/runs/r1/groups/g.inputs.json", json.dumps(earlier).encode())
    store = EmbeddingStore(str(tmp_path / "store"))
    write_table_atomic(store.fs, store.partition("ds", "m", "clean").path, pa.table({"track_id": ["a", "b"]}))
    loc = RunLocation.open("s3://repeval/mtimes/runs" + s3["query"], "r1")  # pulled after the partition's write
    ctx: Any = SimpleNamespace(run_dir=loc.local, store=store)
    (clean,) = groups.recorded_inputs(ctx, "g", "ds", "m")["partitions"].values()
    assert clean[:3] == [2, 0, "cfg"] and clean[3].startswith("embedded anew at ")


def test_tune_storage_on_s3(s3: dict[str, Any]) -> None:
    st = TuneStorage("s3://repeval/unit/tune" + s3["query"])
    assert st.uri("exp") == "s3://repeval/unit/tune/exp" + s3["query"]
    assert not st.exists("exp") and st.read_text("exp.repeval.json") is None
    st.write_text("exp.repeval.json", '{"fingerprint": "b"}')
    s3["fs"].create_dir("repeval/unit/tune/exp")
    with s3["fs"].open_output_stream("repeval/unit/tune/exp/state.json") as f:
        f.write(b"{}")
    assert st.exists("exp") and st.read_text("exp.repeval.json") == '{"fingerprint": "b"}'
    st.move("exp", "exp.stale-1")
    assert not st.exists("exp")
    assert _files(s3["fs"], "repeval/unit/tune/exp.stale-1") == {"state.json": 2}
    st.delete("exp.stale-1")  # how an older stale copy is pruned
    assert not st.exists("exp.stale-1") and st.exists("exp.repeval.json")
    st.delete("exp.repeval.json")
    assert not st.exists("exp.repeval.json")


def test_a_store_in_a_bucket_is_leased_and_unlock_removes_a_gone_runs_lease(s3: dict[str, Any]) -> None:
    """No flock on S3: a run's lease keeps `store settle` (and `store rm`, another run) out, naming the fix; `store
    unlock` says whose lease it is, refuses --yes while its pid runs on this host, and with --force removes it."""
    from typer.testing import CliRunner

    from repeval.cli import app
    from repeval.store import EmbeddingStore
    from repeval.store.lock import StoreLock

    uri = "s3://repeval/leased/store" + s3["query"]
    holder = StoreLock(EmbeddingStore(uri), "gone")  # a run that died holding it (the test ends before a renewal)
    holder.acquire()
    try:
        res = CliRunner().invoke(app, ["store", "settle", uri])
        assert res.exit_code == 1 and "is in use by run 'gone'" in res.output, res.output
        said = " ".join(res.output.split())
        assert f"`repeval store unlock {shlex.quote(uri)} --yes`" in said, res.output  # its '&' quoted for a shell
        res = CliRunner().invoke(app, ["store", "unlock", uri])
        assert res.exit_code == 0 and "the lease of run 'gone'" in res.output, res.output
        # its pid (this test's) runs on this host: refused, naming it, but for --force
        assert f"pid {os.getpid()}, is still running on this host" in " ".join(res.output.split()), res.output
        res = CliRunner().invoke(app, ["store", "unlock", uri, "--yes"])
        assert res.exit_code == 1 and "not removed" in res.output and "--force" in res.output, res.output
        assert "store/_lease.json" in _files(s3["fs"], "repeval/leased")
        res = CliRunner().invoke(app, ["store", "unlock", uri, "--yes", "--force"])
        assert res.exit_code == 0 and "removed the lease of run 'gone'" in res.output, res.output
        assert "store/_lease.json" not in _files(s3["fs"], "repeval/leased")
        res = CliRunner().invoke(app, ["store", "settle", uri])
        assert res.exit_code == 0 and "nothing to settle" in res.output, res.output
        assert CliRunner().invoke(app, ["store", "unlock", uri]).output.startswith(f"{uri}: no lease")
        assert "store/_lease.json" not in _files(s3["fs"], "repeval/leased")  # settle's own lease: let go
    finally:
        holder.release()  # its lease is gone: it deletes nothing (another's might be there by now)


# --- finished trial checkpoints found on any storage (resume without retraining) --------------------


def _put(fs: pafs.FileSystem, path: str, data: bytes) -> None:
    fs.create_dir(str(Path(path).parent), recursive=True)
    with fs.open_output_stream(path) as f:
        f.write(data)


def _write_checkpoints(fs: pafs.FileSystem, exp: str) -> None:
    """Three trials' checkpoints in Tune's layout — two whole, one with its probes file cut short — and a
    directory named like a checkpoint one level too deep (not a trial's)."""
    import json

    from repeval.tuning.checkpoint import MEMBERS_FILE, PROBES_FILE, SUMMARY_FILE, trial_key

    for trial, unit, cut in (("t_00000", 0, False), ("t_00001", 1, False), ("t_00002", 2, True)):
        ck = f"{exp}/{trial}/checkpoint_000000"
        probes, members = b"weights" * (unit + 1), json.dumps([{"unit": unit}]).encode()
        files = {PROBES_FILE: len(probes), MEMBERS_FILE: len(members)}
        summary = {
            "key": trial_key({"unit": unit, "use_gpu": False}),
            "metrics": {"train_seconds": 1.0},
            "files": files,
        }
        _put(fs, f"{ck}/{PROBES_FILE}", probes[:-1] if cut else probes)
        _put(fs, f"{ck}/{MEMBERS_FILE}", members)
        _put(fs, f"{ck}/{SUMMARY_FILE}", json.dumps(summary).encode())
    nested = {"key": trial_key({"unit": 5, "use_gpu": False}), "metrics": {}, "files": {}}  # whole, but not a trial's
    _put(fs, f"{exp}/t_00000/members/checkpoint_9/{SUMMARY_FILE}", json.dumps(nested).encode())


@pytest.mark.parametrize("kind", ["path", "file-uri", "s3"])
def test_finished_checkpoints_are_found_and_opened_on_every_storage(kind: str, tmp_path: Path, request) -> None:
    """What a rerun reuses: the driver lists the whole checkpoints of an experiment (one listing, local or in a
    bucket), and a trial opens the path or URI it is given — an S3 URI with its endpoint query included."""
    from repeval.tuning.checkpoint import open_finished, trial_key
    from repeval.tuning.tuner import _finished_checkpoints

    if kind == "s3":
        s3 = request.getfixturevalue("s3")
        fs, root, storage = s3["fs"], "repeval/finished/tune", "s3://repeval/finished/tune" + s3["query"]
    else:
        fs, root = pafs.LocalFileSystem(), str(tmp_path / "tune")
        storage = root if kind == "path" else f"file://{root}"
    _write_checkpoints(fs, f"{root}/exp")
    found = _finished_checkpoints(TuneStorage(storage), "exp")
    keys = {trial_key({"unit": u, "use_gpu": False}): u for u in (0, 1)}
    assert set(found) == set(keys)  # the cut-short checkpoint and the nested directory are not offered
    for key, src in found.items():
        assert src == TuneStorage(storage).uri(f"exp/t_0000{keys[key]}/checkpoint_000000")
        opened = open_finished(src)
        assert opened is not None and opened[2]["key"] == key
    assert _finished_checkpoints(TuneStorage(storage), "missing") == {}


def test_open_run_takes_a_run_directory_whole(s3: dict[str, Any], tmp_path: Path) -> None:
    """`repeval table|report RUN`: a path, a file:// URI (used in place) or a bucket URI (pulled, query kept)."""
    from repeval.run_open import open_run

    local = open_run(str(tmp_path / "runs" / "r1"))
    assert local.local == tmp_path / "runs" / "r1" and not local.staged
    in_place = open_run(f"file://{tmp_path}/runs/r1")
    assert Path(in_place.local) == tmp_path / "runs" / "r1" and not in_place.staged
    _put(s3["fs"], "repeval/openrun/runs/r1/results.parquet", b"x")
    _put(s3["fs"], "repeval/openrun/runs/r1/tune/big.bin", b"y")
    remote = open_run(f"s3://repeval/openrun/runs/r1/{s3['query']}")
    assert remote.staged and remote.uri == f"s3://repeval/openrun/runs/r1{s3['query']}"
    assert (remote.local / "results.parquet").read_bytes() == b"x" and not (remote.local / "tune").exists()
    with pytest.raises(ValueError, match="not a bucket"):
        open_run("s3://repeval")
    with pytest.raises(FileNotFoundError, match="no run directory at s3://repeval/openrun/runs/typo "):
        open_run(f"s3://repeval/openrun/runs/typo{s3['query']}")


def test_a_bucket_run_sharing_an_id_is_labelled_by_its_uri(s3: dict[str, Any], tmp_path: Path, caplog) -> None:
    """`repeval table runs/demo s3://bucket/…/runs/demo`: two runs with one id are told apart by their runs
    directories, but a bucket's run was labelled after the temporary folder it was staged in (``demo@tmp…``), and
    the same URI given twice was compared with itself. The label now comes from the URI the user gave."""
    from repeval.report.results import load_runs
    from repeval.run_open import open_run
    from repeval.testing.results import FakeRunSpec, make_run_dir

    spec = FakeRunSpec(run_id="demo", models=("msd-musicnn",), probes=("M1",), seeds=(0,), n_resamples=5)
    local = make_run_dir(tmp_path / "runs", spec)
    pafs.copy_files(str(local), "repeval/label/runs/demo", source_filesystem=pafs.LocalFileSystem(),
                    destination_filesystem=s3["fs"])  # fmt: skip
    uri = f"s3://repeval/label/runs/demo{s3['query']}"
    caplog.set_level("WARNING", logger="repeval.report.results")
    runs = load_runs([local, open_run(uri).local, open_run(uri).local])
    assert [r.run_id for r in runs] == ["demo", "demo@label/runs"], [r.run_id for r in runs]
    assert set(runs[1].results["run_id"]) == {"demo@label/runs"}
    assert "run id 'demo' of s3://repeval/label/runs/demo is also that of" in caplog.text
    assert "run 'demo' given twice (s3://repeval/label/runs/demo)" in caplog.text


def test_a_bucket_out_of_reach_is_one_error_line_naming_what_to_check(tmp_path: Path) -> None:
    """Without network or credentials, pyarrow's errors named no fix ("AWS Error NETWORK_CONNECTION …"), and gs://'s
    ran to 800 characters (its message twice) after google-cloud-cpp's 15 minutes of retries, Ctrl-C held off until
    then. The error line now says what to check, and for gs:// how to fail sooner (the URI's retry_limit_seconds)."""
    from typer.testing import CliRunner

    from repeval.cli import app

    store = "gs://repeval-bucket/store?endpoint_override=127.0.0.1:9&scheme=http&retry_limit_seconds=1"
    res = CliRunner().invoke(app, ["plan", str(REPO / "configs" / "quickstart.yaml"), "--store", store])
    assert res.exit_code == 1, res.output
    (line,) = [ln for ln in res.output.splitlines() if ln.strip()]
    assert line.startswith("error: google::cloud::Status(UNAVAILABLE: Retry policy exhausted"), line
    assert "error_info" not in line and "GOOGLE_APPLICATION_CREDENTIALS" in line, line
    assert line.endswith(
        "retry a request for 1 s before it fails: ?retry_limit_seconds=N on the URI sets another limit"
    ), line  # the URI's limit, not repeval's 60 s
    # an S3 server out of reach (the AWS SDK's own retries make the CLI take ~12 s: its error, asked once)
    from repeval.cloud_reach import bucket_error

    s3 = pafs.S3FileSystem(
        endpoint_override="127.0.0.1:9", scheme="http", access_key="k", secret_key="s", region="us-east-1",
        retry_strategy=pafs.AwsStandardS3RetryStrategy(max_attempts=1), connect_timeout=0.5,
    )  # fmt: skip
    with pytest.raises(OSError) as e:
        s3.get_file_info("b/store")
    said, check = bucket_error(str(e.value))
    assert said == str(e.value) and "AWS Error NETWORK_CONNECTION" in said
    assert "cannot reach the S3 server" in check and "?endpoint_override=http://HOST:PORT&scheme=http" in check
    refused = "When getting information for key 'store' in bucket 'b': AWS Error ACCESS_DENIED during HeadObject"
    assert "AWS_ACCESS_KEY_ID" in bucket_error(refused)[1]
    assert bucket_error("[Errno 28] No space left on device") == ("[Errno 28] No space left on device", "")


def test_a_bucket_run_file_these_credentials_may_not_read_is_noted_and_the_rest_reported(
    s3: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """One key of a bucket's run refused (AccessDenied on its history) stopped `repeval table|report RUN` whole, where a
    local run's unreadable file is noted and the rest built. The bucket's run does as the local one now: the refused
    file named with the credentials to check, left out, the rest built (exit 0); refused results fail it (exit 1)."""
    from moto.core.authorization import enable_iam_authentication
    from typer.testing import CliRunner

    from repeval.cli import app
    from repeval.rundir import CONFIG_KEY, EVALUATION_KEY
    from repeval.testing.results import DEFAULT_EXPERIMENTS, FakeRunSpec, make_run_dir

    spec = FakeRunSpec(
        run_id="demo", experiments=DEFAULT_EXPERIMENTS[:1], models=("msd-musicnn",), probes=("M1",), seeds=(0,),
        scenarios=("clean", "D1"), n_resamples=5, n_test=20,
    )  # fmt: skip
    local = make_run_dir(tmp_path / "runs", spec)
    # as an evaluation writes them: results.parquet records its configuration and its summary.parquet
    table = pq.read_table(local / "results.parquet")
    recorded = {CONFIG_KEY: (local / "config.yaml").read_bytes(), EVALUATION_KEY: b"e1"}
    pq.write_table(
        table.replace_schema_metadata({**(table.schema.metadata or {}), **recorded}), local / "results.parquet"
    )
    pq.write_table(pa.table({"x": [1]}).replace_schema_metadata({EVALUATION_KEY: b"e1"}), local / "summary.parquet")
    (local / "report.html").write_text("an earlier report")  # the report's own: written anew, not read
    (local / "groups").mkdir()  # files the report does not read (results.parquet holds the grids' results)
    (local / "groups" / "g.parquet").write_bytes(b"a grid's results")
    (local / "environment.json").write_text("[]")
    for run in ("curves", "results", "stale"):
        pafs.copy_files(str(local), f"repeval/refused/{run}", source_filesystem=pafs.LocalFileSystem(),
                        destination_filesystem=s3["fs"])  # fmt: skip
    s3["fs"].delete_file("repeval/refused/stale/summary.parquet")  # an evaluation stopped before writing it
    with s3["fs"].open_output_stream("repeval/refused/stale/config.yaml") as f:  # by a command that stopped after
        f.write(b"experiments: []\n")
    user = _user_denied(
        s3, "refused/curves/history.parquet", "refused/curves/config.yaml", "refused/curves/summary.parquet",
        "refused/curves/report.html", "refused/curves/groups/g.parquet", "refused/curves/environment.json",
        "refused/results/results.parquet",
    )  # fmt: skip
    for k, v in user.items():
        monkeypatch.setenv(k, v)
    said = (
        "s3://repeval/refused/{}.parquet is unreadable (access denied): left out — this user may not read it: check "
        "the S3 credentials (AWS_ACCESS_KEY_ID"
    )
    caplog.set_level("WARNING", logger="repeval.report.results")
    with enable_iam_authentication():
        table = CliRunner().invoke(app, ["table", f"s3://repeval/refused/curves{s3['query']}", "--format", "csv"])
        report = CliRunner().invoke(app, ["report", f"s3://repeval/refused/curves{s3['query']}"])
        failed = CliRunner().invoke(app, ["table", f"s3://repeval/refused/results{s3['query']}"])
        stale = CliRunner().invoke(app, ["table", f"s3://repeval/refused/stale{s3['query']}"])
    assert table.exit_code == 0 and "msd-musicnn" in table.stdout, table.output
    assert report.exit_code == 0, report.output
    assert caplog.text.count(said.format("curves/history")) == 2, caplog.text  # a warning each, as a local run's
    # a refused config.yaml or summary.parquet is not taken for one missing: no configuration "rewritten by a later
    # command", no evaluation "stopped after writing results.parquet" to run again (only the stale run's, below)
    config = "s3://repeval/refused/curves/config.yaml is unreadable (access denied): the report uses the configuration "
    assert caplog.text.count(config + "results.parquet recorded — this user may not read it") == 2, caplog.text
    assert caplog.text.count("config.yaml was rewritten") == caplog.text.count("summary.parquet is missing") == 1, (
        caplog.text
    )
    assert "report.html" not in caplog.text, caplog.text
    # nor of those they never read: a local run's unreadable groups/ file or environment.json is not said either
    assert "groups/g.parquet" not in caplog.text and "environment.json" not in caplog.text, caplog.text
    # a summary.parquet truly missing (the one above), a config.yaml truly rewritten: said of the run's URI, not of
    # the folder staging it
    assert stale.exit_code == 0 and "s3://repeval/refused/stale: summary.parquet is missing" in caplog.text, caplog.text
    assert "s3://repeval/refused/stale: config.yaml was rewritten by a later command" in caplog.text, caplog.text
    with s3["fs"].open_input_file("repeval/refused/curves/report.html") as f:
        assert "history.parquet is unreadable (access denied)" in f.read().decode()  # the report's notes say it too
    # refused results stop it: said so, not "left out"
    results = said.format("results/results").replace("left out — ", "")
    assert failed.exit_code == 1 and failed.stderr.startswith(f"error: {results}"), failed.output


def test_a_bucket_run_with_a_file_these_credentials_may_not_read_stops_naming_it(
    s3: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`repeval run` going on with a bucket's run one of whose files these credentials may not read stopped on
    pyarrow's "When reading information for key …", with the fix of a bucket that cannot be listed, read and written:
    it now names the run's file, the run, and that this user may not read it."""
    from moto.core.authorization import enable_iam_authentication
    from typer.testing import CliRunner

    from repeval.cli import app
    from repeval.testing.configs import one_row_config

    with s3["fs"].open_output_stream("repeval/stops/runs/r/environment.json") as f:
        f.write(b"[]")
    for k, v in _user_denied(s3, "stops/runs/r/environment.json").items():
        monkeypatch.setenv(k, v)
    cfg = one_row_config(tmp_path, "r")
    with enable_iam_authentication():
        res = CliRunner().invoke(app, ["run", str(cfg), "--runs-dir", f"s3://repeval/stops/runs{s3['query']}"])
    said = " ".join(res.output.split())
    assert res.exit_code == 1, said
    assert said.startswith(
        "error: s3://repeval/stops/runs/r/environment.json is unreadable (access denied): a file of run "
        "s3://repeval/stops/runs/r, which this command copies here to go on with the run, so it stops before changing "
        "anything — this user may not read it: check the S3 credentials (AWS_ACCESS_KEY_ID"
    ), said
    assert "When reading information for key" not in said and "read and write the bucket" not in said, said
