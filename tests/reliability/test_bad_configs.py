"""Bad configurations through the real CLI (``repeval validate`` and ``repeval run``) in subprocesses.

Each must fail with one line on stderr that names the key path and the fix, exit status 2, no
traceback (unless ``--debug``), and before any compute: Ray is never started and no store or run
directory is created.

Cost: a CLI process spends ~3 s of CPU importing (audiomentations, scipy), so every case goes
through both commands in one subprocess per command (the typer app called once per case, exactly
as the ``repeval`` entry point calls it, with stdout/stderr captured per case), and a few cases
also run as separate ``python -m repeval.cli`` processes (exit status of the process itself, no
``ray`` session directory under its TMPDIR).
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import yaml
from bad_configs_cases import CASES, _base, _ds, _exp
from reliability_helpers import REPO, cli_env

from repeval.testing.ahead import ahead_fixture
from repeval.testing.badaudio import write_good

#: cases whose error is several lines (``N problems:`` and one line each)
MANY = {"every_problem_in_one_run"}


def _run(
    args: list[str], cwd: Path, environ: dict[str, str] | None = None
) -> tuple[subprocess.CompletedProcess, list[str]]:
    tmp = Path(tempfile.mkdtemp(prefix="rvcfg-"))
    try:
        res = subprocess.run(
            [sys.executable, "-m", "repeval.cli", *args],
            cwd=cwd,
            env=cli_env(tmp, environ),
            capture_output=True,
            text=True,
            timeout=600,
        )
        return res, os.listdir(tmp)
    finally:
        subprocess.run(["rm", "-rf", str(tmp)], check=False)


BATCH = r"""
import contextlib, io, json, sys
from repeval.cli import app
out = {}
for name, args in json.loads(sys.argv[1]).items():
    o, e = io.StringIO(), io.StringIO()
    code = 0
    with contextlib.redirect_stdout(o), contextlib.redirect_stderr(e):
        try:
            app(args, prog_name="repeval")
        except SystemExit as exc:
            code = exc.code
    ray = sys.modules.get("ray")
    out[name] = [code, o.getvalue(), e.getvalue(), bool(ray is not None and ray.is_initialized())]
print("RESULTS " + json.dumps(out))
"""


#: cases that also run as their own ``python -m repeval.cli`` processes
SEPARATE = ("dataset_key_typo", "missing_manifest", "impossible_pca_size")


def _batch(
    jobs: dict[str, list[str]], cwd: Path, environ: dict[str, str]
) -> dict[str, tuple[subprocess.CompletedProcess, bool]]:
    tmp = Path(tempfile.mkdtemp(prefix="rvcfg-"))
    try:
        res = subprocess.run(
            [sys.executable, "-c", BATCH, json.dumps(jobs)],
            cwd=cwd,
            env=cli_env(tmp, environ),
            capture_output=True,
            text=True,
        )
        assert res.returncode == 0, res.stderr[-3000:]
        assert "ray" not in os.listdir(tmp)
    finally:
        subprocess.run(["rm", "-rf", str(tmp)], check=False)
    line = next(x for x in res.stdout.splitlines() if x.startswith("RESULTS "))
    results = json.loads(line.removeprefix("RESULTS "))
    return {k: (subprocess.CompletedProcess(jobs[k], c, o, e), started) for k, (c, o, e, started) in results.items()}


def run_cases(environ: dict[str, str]) -> Iterator[dict[str, Any]]:
    """Every case through ``validate`` and ``run``: ~20 ``repeval`` processes' start-up. Started as soon as the tests
    are collected (``ahead_fixture``), their waiting overlaps the tests before this module."""
    root = Path(tempfile.mkdtemp(prefix="rv-badcfg-"))
    try:
        write_good(root / "a.wav")
        (root / "manifest.csv").write_text("track_id,audio_path,label\na,a.wav,x\n")
        (root / "empty.csv").write_text("track_id,audio_path,label\n")
        (root / "zero.csv").write_bytes(b"")
        (root / "semicolon.csv").write_text("track_id;audio_path;label\na;a.wav;x\n")
        batches: dict[str, dict[str, list[str]]] = {"validate": {}, "run": {}}
        for name, (mutate, _) in CASES.items():
            path = root / f"{name}.yaml"
            if isinstance(mutate, str):
                path.write_text(mutate)
            else:
                d = copy.deepcopy(_base(root))
                text = mutate(d)  # a text edit of the YAML, or None (d changed)
                path.write_text(text if isinstance(text, str) else yaml.safe_dump(d, sort_keys=False))
            for command in batches:
                batches[command][name] = [command, str(path)]
        batches["run"]["--debug"] = ["--debug", "run", str(root / "negative_patience.yaml")]
        out: dict[str, Any] = {"root": root}
        with ThreadPoolExecutor(max_workers=2) as pool:
            futures = {command: pool.submit(_batch, jobs, root, environ) for command, jobs in batches.items()}
            separate = {
                (n, c): pool.submit(_run, [c, str(root / f"{n}.yaml")], root, environ)
                for n in SEPARATE
                for c in batches
            }
            for command, fut in futures.items():
                out[command] = fut.result()
            out["separate"] = {k: f.result() for k, f in separate.items()}
        yield out
    finally:
        shutil.rmtree(root, ignore_errors=True)


outcomes = ahead_fixture("outcomes", run_cases, scope="module")


def _check(res: subprocess.CompletedProcess, name: str) -> None:
    err = res.stderr.strip()
    assert res.returncode == 2, f"exit {res.returncode}\n{res.stdout}\n{res.stderr[-3000:]}"
    assert res.stdout == ""
    assert len(err.splitlines()) == 1 or name in MANY, err
    assert err.startswith("error: ")
    for fragment in CASES[name][1]:
        assert fragment in err, f"{fragment!r} not in {err!r}"
    assert "Traceback" not in res.stderr


def test_at_least_twenty_cases():
    assert len(CASES) >= 20


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("command", ["validate", "run"])
def test_bad_config_fails_with_one_line_naming_key_and_fix(outcomes, name, command):
    res, ray_started = outcomes[command][name]
    _check(res, name)
    assert not ray_started  # before any compute
    assert not (outcomes["root"] / "store").exists() and not (outcomes["root"] / "runs").exists()


@pytest.mark.parametrize("name", SEPARATE)
@pytest.mark.parametrize("command", ["validate", "run"])
def test_bad_config_in_its_own_process(outcomes, name, command):
    res, tmp_entries = outcomes["separate"][(name, command)]
    _check(res, name)
    assert "ray" not in tmp_entries  # Ray would have created $TMPDIR/ray/session_*


def test_debug_shows_the_traceback(outcomes):
    res, _ = outcomes["run"]["--debug"]
    assert res.returncode == 2
    assert "Traceback" in res.stderr and "patience" in res.stderr


def test_skip_data_check_validates_a_config_meant_for_another_machine(tmp_path):
    """The data, and the noise and impulse responses its deformation steps read, are on the cluster's shared
    filesystem, not on the laptop that prepares the job: ``--skip-data-check`` checks the rest of the steps (tried on a
    stand-in recording) and names each file path it left unchecked. It refused the missing noise folder before."""
    d = _base(tmp_path)
    _ds(d).update(manifest=str(tmp_path / "elsewhere.csv"))
    noise, irs = str(tmp_path / "elsewhere" / "noise"), str(tmp_path / "elsewhere" / "ir.wav")
    _exp(d)["deformations"] += [
        [{"type": "AddBackgroundNoise", "params": {"sounds_path": noise, "min_snr_db": 3, "max_snr_db": 3, "p": 1}}],
        [{"type": "ApplyImpulseResponse", "params": {"ir_path": [irs], "p": 1}}],
    ]
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(d))
    res, _ = _run(["validate", "--skip-data-check", str(path)], REPO)
    assert res.returncode == 0, res.stderr
    assert "valid (1 experiment)" in res.stdout
    assert [line for line in res.stdout.splitlines() if "not checked" in line] == [
        f"note: experiments[0].deformations[1].steps[0]: AddBackgroundNoise.sounds_path {noise!r} not checked "
        "(--skip-data-check): it must exist and hold audio files on each machine that deforms tracks (the run checks "
        "it and records what the files hold)",
        f"note: experiments[0].deformations[2].steps[0]: ApplyImpulseResponse.ir_path {irs!r} not checked "
        "(--skip-data-check): it must exist and hold audio files on each machine that deforms tracks (the run checks "
        "it and records what the files hold)",
    ], res.stdout
