"""Faults on real ``repeval run`` processes: Ctrl-C, then kill -9 of the driver at three points
(during embedding, between embedding and training, during training — the grids' shared Tune
experiment running), each followed by a rerun. No process of a killed driver's embedded Ray may
outlive it, and the test's own Ray must not be touched.

One chain on one store: every rerun must recompute only what is missing (counted from its
summary line and the store), the store must stay consistent after every fault, and the final
store and results must equal an uninterrupted run's (embeddings bit for bit).
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import typer
from reliability_helpers import (
    FAST_MODEL,
    SLOW_MODEL,
    Proc,
    assert_same_store,
    check_store,
    complete,
    expected_ids,
    experiment,
    live_processes,
    make_catalog,
    node_processes,
    results_of,
    wait_for,
    write_config,
)
from typer.testing import CliRunner

from repeval import cli, ray_signals
from repeval.cli import common, errors
from repeval.store.lock import holder
from repeval.testing.ahead import ahead_fixture
from repeval.testing.processes import RAY_START_TIMED_OUT

#: the embedding stage's summary line: rows written, rows already in store, errors ("nothing to embed: …": none)
SUMMARY = re.compile(r"(?:embedded (\d+) rows|nothing to embed).*?\b(\d+) rows already in store(?:, (\d+) errors?)?")
#: how the summary line starts, of work done or not
SUMMARY_MARK = ("embedded ", "nothing to embed")


def stop_when(proc: Proc, predicate, timeout: float = 900) -> None:
    """SIGSTOP the driver as soon as ``predicate()`` holds, re-checked while it is stopped (so the fault
    lands exactly at that point: the driver is the only writer of the store and the run directory)."""
    while True:
        wait_for(predicate, proc, timeout, poll_s=0.05)
        os.kill(proc.pid, signal.SIGSTOP)
        if predicate():
            return
        os.kill(proc.pid, signal.SIGCONT)


#: how long the processes of a killed driver's embedded Ray may take to end. Ray 2.60 kills its GCS and raylet with
#: the driver, but its dashboard and runtime-env agents gave up only a minute later (after failing to report the
#: raylet's death to the dead GCS); repeval's watchdog ends them within a second or so
ORPHANS_END_S = 30


def watchdogs(p: Proc) -> list[int]:
    """The watchdog the driver ``p`` started with its embedded Ray (repeval/ray_watchdog.py)."""
    return [pid for pid, cmdline in live_processes(lambda stat: stat[1] == p.pid) if "ray_watchdog.py" in cmdline]


def gone_or_fail(p: Proc) -> None:
    """Wait until nothing of the killed driver ``p``'s embedded Ray is left (its processes keep the session that
    ``Proc`` starts, whatever their parent or process group)."""
    deadline = time.monotonic() + ORPHANS_END_S
    while (left := p.descendants_left()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not left, f"the killed driver's Ray left {left}"


def kill9(p: Proc, test_ray) -> None:
    """kill -9 of the driver ``p``; then none of its embedded Ray's processes may be left, while the test's own Ray
    (``test_ray``, another user of the machine) keeps all of its processes and answers."""
    ours = node_processes(test_ray.get_runtime_context().get_node_id())
    os.kill(p.pid, signal.SIGKILL)
    try:
        gone_or_fail(p)
    finally:
        p.wait()
    assert len(ours) >= 4, ours  # its GCS, raylet, dashboard agent and runtime-env agent
    assert ours <= node_processes(test_ray.get_runtime_context().get_node_id())
    assert test_ray.cluster_resources().get("CPU") == 2


def groups(run_dir: Path) -> list[Path]:
    return sorted((run_dir / "groups").glob("*.parquet"))


def trial_dirs(run_dir: Path) -> list[Path]:
    """Trial directories of the batch experiment that trains the run's probe grids together, once Tune has
    saved the experiment's state (what ``Tuner.restore`` needs)."""
    exp = sorted((run_dir / "tune").glob("groups-*"))
    if not exp or not list(exp[0].glob("experiment_state-*.json")):
        return []
    return sorted(p for p in exp[0].iterdir() if p.is_dir())


def parse_summary(line: str) -> tuple[int, int, int]:
    m = SUMMARY.search(line)
    assert m, line
    rows, already, errors = (int(g or 0) for g in m.groups())
    return rows, already, errors


@dataclass
class CtrlC:
    """A ``repeval run`` (fast + slow model, one deformation) Ctrl-C'd during embedding, in ``root``: its catalog (as
    ``fault_catalog``'s), configuration, store and run directory; its exit status and output."""

    root: Path
    manifest: Path
    config: Path
    status: int
    err: str
    text: str


def ctrl_c_during_embedding(environ: dict[str, str]) -> Iterator[CtrlC]:
    """The fault chain's first run, Ctrl-C'd once the fast model's partitions are complete, the slow model's pipeline
    running. A terminal sends SIGINT to the whole foreground process group (the driver and Ray's processes). Started
    as soon as the tests are collected (``ahead_fixture``): its embedded Ray starts and its run embeds while the tests
    before this module do. The folder goes at the end."""
    root = Path(tempfile.mkdtemp(prefix="rvctrlc-"))
    try:
        manifest = make_catalog(root / "catalog", per_class=12)  # fault_catalog's 24 tones
        cfg = write_config(root / "config.yaml", root, [experiment(manifest, [FAST_MODEL, SLOW_MODEL])])
        fast_parts = set(expected_ids(manifest, [FAST_MODEL["id"]]))
        for again in (False, True):  # once more if its Ray did not start in time (the tests meanwhile start theirs)
            p = Proc(["run", str(cfg)], root, environ=environ)
            try:
                stop_when(p, lambda: complete(root / "store") == fast_parts)
                break
            except BaseException:
                p.wait(timeout=0)  # ended before the fault point (or never reached it): reaped, what is left killed
                if again or RAY_START_TIMED_OUT not in "".join(p.err):
                    raise
            shutil.rmtree(root / "store", ignore_errors=True)
            shutil.rmtree(root / "runs", ignore_errors=True)
        os.killpg(p.pid, signal.SIGINT)
        os.kill(p.pid, signal.SIGCONT)
        status = p.wait()
        yield CtrlC(root, manifest, cfg, status, "".join(p.err), p.text())
    finally:
        shutil.rmtree(root, ignore_errors=True)


ctrl_c_run = ahead_fixture("ctrl_c_run", ctrl_c_during_embedding)


def unreaped_children() -> set[int]:
    """This process' children that have ended and that it has not reaped (zombies)."""
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            state, ppid = stat.read_text().rsplit(")", 1)[1].split()[:2]
        except (OSError, IndexError, ValueError):
            continue  # ended meanwhile
        if state == "Z" and int(ppid) == os.getpid():
            found.add(int(stat.parent.name))
    return found


#: a ``sitecustomize`` that fails the run's start, the first time as ``ray.init`` does when its node is slow to start
FAILED_START = f"""
import os, sys
from pathlib import Path

starts = Path(os.environ["STARTS"])
with starts.open("a") as f:
    f.write("start\\n")
n = len(starts.read_text().split())
sys.exit("Exception: {RAY_START_TIMED_OUT}." if n == 1 else f"start {{n}} failed")
"""


def test_a_ctrl_c_run_whose_ray_start_timed_out_starts_once_more_and_one_ended_early_is_reaped(tmp_path):
    """The background first run starts once more when its Ray did not start in time; one that ends before its fault
    point for another reason fails its test, leaving no unreaped process behind. (Nothing here may change this
    process' temporary folder, ``tempfile.tempdir``: the background runs, this module's among them, make theirs there
    meanwhile.)"""
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "sitecustomize.py").write_text(FAILED_START)
    environ = {**os.environ, "PYTHONPATH": str(tmp_path / "site"), "STARTS": str(tmp_path / "starts")}
    before = unreaped_children()
    with pytest.raises(AssertionError, match="start 2 failed"):
        next(ctrl_c_during_embedding(environ))
    assert (tmp_path / "starts").read_text().split() == ["start", "start"]
    assert unreaped_children() <= before


def test_ctrl_c_and_kill9_at_three_points_then_resume_equals_uninterrupted(
    reference_run, ray_session, ctrl_c_run, caplog
):
    fast, slow = FAST_MODEL["id"], SLOW_MODEL["id"]
    expected = expected_ids(ctrl_c_run.manifest, [fast, slow])
    total = sum(len(v) for v in expected.values())  # per model: 24 tracks clean + 4 test tracks deformed
    tmp_path, cfg = ctrl_c_run.root, ctrl_c_run.config
    store, run_dir = tmp_path / "store", tmp_path / "runs" / "r"
    slow_parts = {n for n in expected if f"/{slow}/" in n}
    fast_parts = set(expected) - slow_parts
    args = ["run", str(cfg)]

    def done() -> int:
        return sum(check_store(store, expected).values())

    # 1. Ctrl-C during embedding — the fast model's partitions are complete, the slow model's pipeline is
    #    running (ctrl_c_during_embedding)
    assert ctrl_c_run.status == 130, ctrl_c_run.text
    assert "interrupted" in ctrl_c_run.err and f"`repeval run {cfg}` resumes it" in ctrl_c_run.err
    assert "Traceback" not in ctrl_c_run.text
    n1 = done()  # check_store asserts the store is consistent
    assert complete(store) == fast_parts
    assert n1 < total

    # 2. kill -9 of the driver during embedding: some of the slow model's rows are stored, not all. On a fast
    #    machine the stream can end within one poll of its first part file, so the driver sleeps after each
    #    committed part (a driver-side pause: what is computed and written is unchanged)
    p = Proc(args, tmp_path, env={"REPEVAL_TESTING_PART_PAUSE_S": "0.5"})
    stop_when(p, lambda: done() > n1 and not complete(store) & slow_parts)
    kill9(p, ray_session)  # nothing of its embedded Ray is left
    n2 = done()
    assert n1 < n2 < total and not complete(store) & slow_parts
    assert holder(store) is not None  # the lock file stays behind; the kernel released the lock itself

    # 3. kill -9 between embedding and training: right after the embedding summary line; the driver and its
    #    watchdog at once (`pkill -9 -f repeval`)
    killed = Proc(args, tmp_path)
    rows, already, errors = parse_summary(killed.wait_line(SUMMARY_MARK))
    test_ray = node_processes(ray_session.get_runtime_context().get_node_id())
    for pid in [killed.pid, *watchdogs(killed)]:
        os.kill(pid, signal.SIGKILL)
    assert (rows, already, errors) == (total - n2, n2, 0), "the rerun must compute exactly what was missing"
    assert complete(store) == set(expected)
    assert done() == total
    assert groups(run_dir) == []

    # 4. kill -9 during training: the two probe grids run as one Tune experiment (their trial actors shared);
    #    the driver dies once the experiment has started its trials, before any grid is committed
    p = Proc(args, tmp_path)
    # the watchdog of this run, started before its Ray, ends what the killed run's Ray left
    wait_for(lambda: watchdogs(p) or list(p.tmpdir.glob("ray/session_*/logs/raylet.out")), p)
    assert watchdogs(p), "no watchdog started with the embedded Ray"
    gone_or_fail(killed)
    assert test_ray <= node_processes(ray_session.get_runtime_context().get_node_id())
    killed.wait()
    assert parse_summary(p.wait_line(SUMMARY_MARK)) == (0, total, 0)
    stop_when(p, lambda: bool(trial_dirs(run_dir)))
    assert groups(run_dir) == []
    kill9(p, ray_session)  # nothing of its embedded Ray is left

    # 5. the last rerun resumes that experiment, commits both grids and ends equal to the uninterrupted run. It runs
    #    in this process, on the test's Ray: what it must show is the resume, which a process (and an embedded Ray, ~10 s)
    #    of its own would not change
    with caplog.at_level(logging.INFO, logger="repeval"):
        res = CliRunner().invoke(cli.app, args)
    assert res.exit_code == 0, res.output[-4000:]
    assert parse_summary(res.stdout) == (0, total, 0)
    assert "trained 2 probe grids, 0 already done, 0 failed probe trainings" in res.stdout
    assert "resuming Tune experiment" in caplog.text
    assert assert_same_store(store, reference_run.store) == total  # rows lost: 0, duplicated: 0
    assert results_of(run_dir) == results_of(reference_run.run_dir)


def test_sigterm_in_a_blocking_ray_call_marks_the_run_interrupted(ray_session, fault_catalog, tmp_path, capsys):
    """SIGTERM (`ray job stop`, a scheduler's time limit, `kill`) is a cluster's Ctrl-C: the command unwinds and its
    ``status.json`` says the run was interrupted. Ray's driver handler raised ``SystemExit`` and nothing was recorded:
    the run stayed ``started`` (``repeval runs`` showed it as running). The signal lands while the driver waits in
    ``ray.wait``, as in Tune's loop, where it comes out as ``SystemExit(1)``; the command still exits with the
    shell's status for a death by SIGTERM, 128 + 15 = 143 (it exited 1 here, 15 elsewhere)."""
    cfg = write_config(tmp_path / "config.yaml", tmp_path, [experiment(fault_catalog, [FAST_MODEL])])
    sleeper = ray_session.remote(lambda: time.sleep(120))
    previous = signal.getsignal(signal.SIGTERM)
    ref = sleeper.remote()

    def train() -> None:  # a command's body, as `repeval train` runs it
        with common._stage("train", cfg, None, None, False, None):
            threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGTERM)).start()
            ray_session.wait([ref], timeout=120)

    try:
        ray_signals.exit_on_sigterm()  # what the CLI's entry point and init_ray do
        with pytest.raises(typer.Exit) as stopped:
            errors._guard(train)
    finally:
        signal.signal(signal.SIGTERM, previous)
        ray_signals._sigterms.clear()
        ray_session.cancel(ref, force=True)
    assert stopped.value.exit_code == 143
    assert f"`repeval train {cfg}` resumes it" in capsys.readouterr().err
    status = json.loads((tmp_path / "runs" / "r" / "status.json").read_text())
    assert status["state"] == "interrupted" and "SIGTERM" in status["reason"], status


def test_sigterm_outside_ray_exits_143(monkeypatch: pytest.MonkeyPatch) -> None:
    """A SIGTERM that does not land in a Ray call (the handler's own ``SystemExit``) exits 143 too, not 15.

    And it stops the printing of the job's worker output: ``ray job stop`` SIGTERMs the driver and Ray tears the
    job's workers down; one caught starting an actor or running a task aborted in Ray's C++ code, and with
    ``log_to_driver`` (a job attaches with it) its "*** SIGABRT received" or "Check failed: …
    ActorCreationTaskDone()" and stack dump were printed into the job's log after repeval's "terminated" line. The
    handler drops the printing ``ray.init`` adds (Ray 2.60 names it ``ray_print_logs``), and only that."""
    import inspect

    import ray._private.worker as ray_worker

    assert '"ray_print_logs"' in inspect.getsource(ray_worker.connect)  # the name ray.init registers it under
    dispatcher = ray_worker.global_worker_stdstream_dispatcher
    printed: list[object] = []
    other = ("another", printed.append)
    monkeypatch.setattr(dispatcher, "handlers", [("ray_print_logs", printed.append), other])
    previous = signal.getsignal(signal.SIGTERM)
    try:
        ray_signals.exit_on_sigterm()
        with pytest.raises(SystemExit) as raw:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)  # the handler runs in the main thread at once; the sleep is cut short
        assert raw.value.code == 143 and dispatcher.handlers == [other]
        dispatcher.emit({"lines": ["a worker's abort"]})
        assert printed == [{"lines": ["a worker's abort"]}]  # only the other handler saw it
        with pytest.raises(typer.Exit) as stopped:
            errors._guard(lambda: os.kill(os.getpid(), signal.SIGTERM) or time.sleep(5))
        assert stopped.value.exit_code == 143
    finally:
        signal.signal(signal.SIGTERM, previous)
        ray_signals._sigterms.clear()


def test_a_job_stopped_by_sigterm_is_resumed_by_submitting_it_again(tmp_path, monkeypatch, capsys):
    """``ray job stop`` on a run submitted as a job: its ``status.json`` said `` `repeval run CONFIG …` resumes it``,
    and so did ``repeval runs`` — not the job to submit again. The run records how the job was submitted (its
    submission id, and the ``ray job submit`` command with the entrypoint that carries the run on), and both say to
    submit it again, the command line from the checkout named as well, each once. A run no job started is told
    ``repeval run`` alone."""
    import shlex

    from reliability_helpers import make_catalog

    from repeval.report.runs import runs_text

    cfg = write_config(tmp_path / "config.yaml", tmp_path, [experiment(make_catalog(tmp_path, 2, 0.1), [FAST_MODEL])])
    job = {"runtime_env": {"working_dir": "gcs://_ray_pkg_0123456789abcdef.zip"}, "metadata": {"job_submission_id": "raysubmit_X1"}}  # fmt: skip
    monkeypatch.setenv("RAY_JOB_CONFIG_JSON_ENV_VAR", json.dumps(job))  # as Ray sets it for a job's driver
    upload = tmp_path / "upload"  # the job's working directory: Ray's copy, data/ shipped despite .gitignore
    (upload / "data").mkdir(parents=True)
    (upload / ".gitignore").write_text("/data/\n/store/\n")
    monkeypatch.chdir(upload)
    monkeypatch.setitem(errors._state, "script", "jobs/run.py")  # what jobs/_common.py runs it as

    def run() -> None:
        with common._stage("run", cfg, None, None, False, None):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)  # the handler raises at once

    previous = signal.getsignal(signal.SIGTERM)
    try:
        ray_signals.exit_on_sigterm()
        with pytest.raises(typer.Exit):
            errors._guard(run)
    finally:
        signal.signal(signal.SIGTERM, previous)
        ray_signals._sigterms.clear()
    submit = (  # submitted with --working-dir alone, from a folder without cluster/runtime_env.yaml: again so
        f"RAY_RUNTIME_ENV_IGNORE_GITIGNORE=1 ray job submit --working-dir . -- python jobs/run.py {shlex.quote(str(cfg))}"
    )
    resume = f"repeval run {shlex.quote(str(cfg))}"
    hint = f"submit the job again to resume it: `{submit}`, or run `{resume}` from the checkout"
    assert capsys.readouterr().err.strip().endswith(hint), hint
    status = json.loads((tmp_path / "runs" / "r" / "status.json").read_text())
    assert status["job"] == {"id": "raysubmit_X1", "submit": submit}, status
    assert status["state"] == "interrupted" and status["reason"] == (
        f"stopped by SIGTERM (`ray job stop`, a scheduler, `kill`); {hint} (finished work is kept)"
    ), status
    listed = runs_text(str(tmp_path / "runs"))
    assert f"r: {status['reason']}" in listed.splitlines(), listed
    assert listed.count("ray job submit") == 1 and listed.count(resume) == 1, listed
    # `repeval table`/`report` on it: why it has no results, and the job that finishes it, once
    from repeval.report.results import load_run

    with pytest.raises(ValueError) as no_results:
        load_run(tmp_path / "runs" / "r")
    said = str(no_results.value)
    assert said.endswith(
        "was interrupted (stopped by SIGTERM (`ray job stop`, a scheduler, `kill`)) before the test stage wrote "
        f"results; submit the job again to finish it: `{submit}`, or run `{resume}` from the checkout — finished work "
        "is kept"
    ), said
    # run from the checkout, not as a job: `repeval run` alone, and the job's record gone
    monkeypatch.delenv("RAY_JOB_CONFIG_JSON_ENV_VAR")
    monkeypatch.delitem(errors._state, "script")
    with common._stage("run", cfg, None, None, False, None):
        pass
    status = json.loads((tmp_path / "runs" / "r" / "status.json").read_text())
    assert "job" not in status and status["state"] == "finished", status
