"""A run with its store, runs directory and Ray Tune storage in an S3 bucket, end to end (issue 8): a moto server on
127.0.0.1 reached through pyarrow's S3FileSystem with ``?endpoint_override=127.0.0.1:PORT&scheme=http``. The first run
happens in a subprocess with its own embedded Ray, whose workers (the Tune trials writing checkpoints to the bucket)
inherit the credentials; started ahead, beside the tests before it, its moto server runs in a process of its own
(moto's buckets and switches are per process). The other bucket tests: test_storage_uris.py."""

from __future__ import annotations

import csv
import io
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest
import yaml

from repeval.run.split_digest import DIGEST_KEY
from repeval.testing.ahead import ahead_fixture
from repeval.testing.configs import notes_dataset, render_notes
from repeval.testing.processes import FAILS_ITS_FIRST_START, again_if_ray_timed_out
from repeval.testing.s3 import CREDENTIALS, moto_s3
from repeval.testing.s3 import bucket_files as _files

REPO = Path(__file__).resolve().parents[2]


def _run_cli(
    args: list[str], tmp: Path, environ: dict[str, str], timeout: float = 1500, merged: bool = False
) -> subprocess.CompletedProcess[str]:
    """``python ARGS`` from ``tmp``, in ``environ`` and the bucket's credentials; ``merged``: stderr (the log) into
    stdout, unbuffered, in the order it was written."""
    env = {k: v for k, v in environ.items() if not k.startswith("RAY_")}
    # an embedded Ray of its own: Ray's temp dir and Tune's lock files under the test's short TMPDIR
    env.update({"TMPDIR": str(tmp), "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0", **CREDENTIALS})
    if merged:
        env["PYTHONUNBUFFERED"] = "1"
    return again_if_ray_timed_out(  # the tests running meanwhile start Rays too: once more if its own timed out
        lambda: subprocess.run(
            [sys.executable, *args], cwd=tmp, env=env, stdout=subprocess.PIPE, text=True, timeout=timeout, check=False,
            stderr=subprocess.STDOUT if merged else subprocess.PIPE,
        )
    )  # fmt: skip


def test_the_background_s3_run_runs_once_more_when_its_ray_start_timed_out(tmp_path: Path) -> None:
    """``first_s3_run``'s process (``_run_cli``), run while other tests start Rays, starts once more when its Ray did
    not start in time (it failed the bucket test), not when it failed for another reason."""
    env, ray, other = {**os.environ, "PYTHONPATH": str(REPO)}, tmp_path / "ray.txt", tmp_path / "other.txt"
    again, failed = (
        _run_cli(["-c", FAILS_ITS_FIRST_START, str(p), p.stem], tmp_path, env, 60, True) for p in (ray, other)
    )
    assert again.returncode == 0 and again.stdout == "ran\n", again.stdout
    assert failed.returncode == 1 and "something else" in failed.stdout, failed.stdout
    assert ray.read_text().count("start") == 2 and other.read_text().count("start") == 1


def first_s3_run(environ: dict[str, str]) -> Iterator[dict[str, Any]]:
    """The first run of ``test_run_with_store_runs_and_tune_on_s3``: ``jobs/run.py --smoke-test`` with every output in
    the bucket of a moto server of its own, in a process with an embedded Ray of its own (~20-25 s). Started as soon as
    the tests are collected (``ahead_fixture``): it runs while the tests before this module do. On the notes of
    ``rendered_notes``, rendered here by its ``render_notes`` (a fixture cannot be). Yields the bucket (query,
    filesystem), the run's directory (its config ``s3.yaml``), the store and runs-dir options it was given and what it
    said; the server stops and the directory goes after the test."""
    tmp = Path(tempfile.mkdtemp(prefix="rv-s3-", dir="/tmp"))  # short: Ray's unix sockets live under it
    try:
        # in a process of its own: the tests running meanwhile change this one's environment and its moto state
        with moto_s3(own_process=True) as bucket:
            manifest = render_notes(tmp / "notes")
            cfg = {
                "run": {"run_id": "s3run"},
                "experiments": [
                    {
                        "task": {"name": "instrument", "type": "multiclass_classification", "label": "instrument"},
                        "datasets": [notes_dataset(manifest)],
                        "deformations": [[{"type": "AddGaussianSNR", "params": {"min_snr_db": 10, "max_snr_db": 10}}]],
                        "embedding_models": ["mfcc-stats"],
                        "downstream_models": [
                            {"name": "linear", "type": "classifier", "hidden_units": [], "epochs": 3}
                        ],
                        "metrics": ["accuracy"],
                    }
                ],
            }
            (tmp / "s3.yaml").write_text(yaml.safe_dump(cfg))
            q = bucket["query"]
            uris = ["--store", f"s3://repeval/e2e/store{q}", "--runs-dir", f"s3://repeval/e2e/runs{q}"]
            first = _run_cli(
                [str(REPO / "jobs" / "run.py"), "s3.yaml", "--smoke-test", *uris], tmp, environ, merged=True
            )
            yield {**bucket, "tmp": tmp, "uris": uris, "first": first}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


s3_run = ahead_fixture("s3_run", first_s3_run, scope="module")


def test_run_with_store_runs_and_tune_on_s3(
    s3_run: dict[str, Any], monkeypatch: pytest.MonkeyPatch, ray_session: Any
) -> None:
    """`jobs/run.py --smoke-test` with every output in the bucket (``s3_run``: run ahead); a rerun resumes from the
    bucket alone."""
    from typer.testing import CliRunner

    from repeval.cli import app

    s3, tmp, uris, first = s3_run, s3_run["tmp"], s3_run["uris"], s3_run["first"]
    for key, value in CREDENTIALS.items():  # the bucket's, for the commands run in this process
        monkeypatch.setenv(key, value)

    def _cli(args: list[str]) -> Any:  # `repeval ARGS` run from tmp, as _run_cli runs it, with the bucket's credentials
        with monkeypatch.context() as m:
            m.chdir(tmp)
            m.delenv("RAY_ADDRESS", raising=False)
            return CliRunner().invoke(app, args)

    q = s3["query"]
    assert first.returncode == 0, first.stdout[-8000:]
    # pyarrow reaches the results with the bucket's endpoint (the line without it named AWS's S3), after the
    # upload that puts them there (said after them: "pushed … files" came last)
    results = f"results: s3://repeval/e2e/runs/s3run-smoke/results.parquet{q}"
    assert results in first.stdout, first.stdout[-3000:]
    pushed = first.stdout.rindex("pushed ")
    assert pushed < first.stdout.index(results), first.stdout[pushed - 500 :]
    assert pq.read_table(results.removeprefix("results: ")).num_rows > 0
    # the next commands reach the bucket as the run did: its endpoint in the URI, quoted for the shell (the '&');
    # they named the run without its query, so pasted they went to AWS's S3, not this server
    next_uri = shlex.quote(f"s3://repeval/e2e/runs/s3run-smoke{q}")
    hint = f"next: `repeval report {next_uri}` (HTML report), `repeval table {next_uri} --preset robustness`"
    assert hint in first.stdout, first.stdout[-2000:]

    files = _files(s3["fs"], "repeval/e2e")
    for part in ("clean", "D1"):
        assert f"store/notes/mfcc-stats/{part}/_manifest.json" in files
    assert "store/_lease.json" not in files  # the run's lease on the bucket's store (held while it embeds): let go
    run = "runs/s3run-smoke"
    for name in ("config.yaml", "splits/instrument__notes.parquet", "results.parquet"):
        assert f"{run}/{name}" in files, sorted(files)
    assert any(f.startswith(f"{run}/groups/") for f in files)
    tune = [f for f in files if f.startswith(f"{run}/tune/instrument__notes__mfcc-stats")]
    assert any("/checkpoint_" in f for f in tune), "Tune did not persist checkpoints to the bucket"
    # Tune's TensorBoard files (written locally by tensorboardX without its own s3:// writer) are synced to the bucket
    assert any("/events.out.tfevents" in f for f in tune), "Tune did not sync its TensorBoard files to the bucket"
    assert not [p.name for p in tmp.iterdir() if p.name.startswith(("s3:", "file:"))], "a URI became a local path"
    with s3["fs"].open_input_file(f"repeval/e2e/{run}/results.parquet") as f:
        results = pq.read_table(f).to_pylist()
    assert {r["scenario"] for r in results} == {"clean", "D1"}

    # a rerun from a clean machine state: everything comes back from the bucket, nothing is recomputed (in this
    # process, on the session's Ray, which has seen nothing of the first run: a process of its own cost ~20 s)
    def uploaded() -> dict[str, int | None]:  # each of the run's files in the bucket (not tune/'s): its upload time
        found = s3["fs"].get_file_info(pafs.FileSelector("repeval/e2e/runs/s3run-smoke", recursive=True))
        return {i.path: i.mtime_ns for i in found if i.type == pafs.FileType.File and "/tune/" not in i.path}

    before = uploaded()
    again = _cli(["run", "s3.yaml", "--smoke-test", *uris])
    assert again.exit_code == 0, again.output[-5000:]
    # only what the rerun changed is uploaded again (its state, its training session's record): it pushed more,
    # files written anew with the bytes they had
    now = uploaded()
    pushed = sorted(p.rsplit("/s3run-smoke/", 1)[1] for p in now if now[p] != before.get(p))
    assert pushed == ["environment.json", "status.json"], pushed
    assert "nothing to embed: 2 partitions already complete" in again.stdout, again.stdout[-2000:]
    assert "nothing to train: 1 probe grid already done" in again.stdout, again.stdout[-2000:]

    # the commands that only read the bucket run in this process (each `repeval` process costs seconds of imports)
    plan = _cli(["plan", "s3.yaml", "--smoke-test", *uris])
    assert plan.exit_code == 0, plan.output[-3000:]
    assert "probe trainings:    1 (1 done)" in plan.stdout and "2 complete" in plan.stdout, plan.stdout
    # the full configuration in that run directory is not: 8 of its 48 tracks are not embedded clean (its test
    # tracks are all in D1), so its grid trains again; the plan counts those rows (48 clean and 8 in D1 in all)
    full = _cli(["plan", "s3.yaml", "--run-id", "s3run-smoke", *uris])
    assert "probe trainings:    1 (0 done)" in full.stdout, full.stdout
    assert "; 1 complete; 8 of 56 rows to embed)" in full.stdout, full.stdout

    runs = _cli(["runs", f"s3://repeval/e2e/runs{q}"])
    assert runs.exit_code == 0, runs.output[-3000:]
    # its test set's digest, from the footer of the split file in the bucket, where the run kept it
    assert re.search(r"s3run-smoke\s+evaluated\s+instrument\s+mfcc-stats\s+[0-9a-f]{8}\s", runs.stdout), runs.stdout
    with s3["fs"].open_input_file(f"repeval/e2e/{run}/splits/instrument__notes.parquet") as f:
        assert DIGEST_KEY in (pq.ParquetFile(f).metadata.metadata or {})
    listing = _cli(["store", "ls", f"s3://repeval/e2e/store{q}"])
    assert listing.exit_code == 0, listing.output[-3000:]
    assert re.search(r"notes/mfcc-stats/clean\s+complete", listing.stdout), listing.stdout

    # tables and the report straight from the bucket; the report lands next to the run's results there
    run_uri = f"s3://repeval/e2e/{run}{q}"
    table = _cli(["table", run_uri, "--format", "csv"])
    assert table.exit_code == 0, table.output[-3000:]
    rows = list(csv.DictReader(io.StringIO(table.stdout.strip())))
    assert rows and {r["model"] for r in rows} == {"mfcc-stats"}, table.stdout
    report = _cli(["report", run_uri])
    assert report.exit_code == 0, report.output[-3000:]
    assert "report: s3://repeval/e2e/runs/s3run-smoke/report.html" in report.stdout, report.stdout
    with s3["fs"].open_input_file(f"repeval/e2e/{run}/report.html") as f:
        html = f.read().decode()
    assert "<html" in html and "s3run-smoke" in html
