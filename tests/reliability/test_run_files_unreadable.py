"""Run files and folders this user may not read or list: the next command, `repeval runs`, `table` and `report` say
so and name them, never retrain, move aside or read them as empty (real Parquet files, no Ray)."""

from __future__ import annotations

import html
import os

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from run_files_cases import GRID, _failure, _two_runs

from repeval.rundir import EVALUATION_KEY
from repeval.tuning.results import FAILED_SCHEMA, typed_table


def _unreadable_to_this_user(code: str, *args: str) -> list[str]:
    """What Python ``code`` prints, run where files of mode 0 cannot be read: as root (who reads any file), in a
    process without the capabilities that read them."""
    import shutil
    import subprocess
    import sys

    drop = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--inh-caps=-all", "--"]
    # root reads any file: setpriv (util-linux, on every Debian/Ubuntu/RHEL system) runs the check without that
    assert os.geteuid() != 0 or shutil.which("setpriv"), "as root this check needs setpriv (util-linux) on PATH"
    return subprocess.run(
        [*(drop if os.geteuid() == 0 else []), sys.executable, "-c", code, *args],
        capture_output=True, text=True, check=True,
    ).stdout.split("\n")  # fmt: skip


def test_a_grid_result_this_user_may_not_read_is_not_trained_again_nor_its_failures_moved_aside(tmp_path):
    """A grid's results and failed.parquet whole but not readable by this user (another user's files in a shared run
    directory) were taken as "cut short or corrupted": the grid was trained again (hours, for a large grid) and the
    failures file moved aside. Now the command stops on the PermissionError, naming the file, and nothing is moved."""
    run = tmp_path / "r"
    (run / "groups").mkdir(parents=True)
    for path in (run / "groups" / f"{GRID}.parquet", run / "failed.parquet"):
        pq.write_table(typed_table([_failure("m")], FAILED_SCHEMA), path)
        path.chmod(0)
    code = (
        "import sys, types\nfrom pathlib import Path\nfrom repeval.run.groups import group_trained\n"
        "from repeval.run.train import read_failed\nrun = Path(sys.argv[1])\n"
        "for call in (lambda: group_trained(types.SimpleNamespace(run_dir=run), 'GRID', {}),\n"
        "             lambda: read_failed(run / 'failed.parquet')):\n"
        "    try:\n        print('returned', call())\n    except PermissionError as exc:\n"
        "        print('raised', exc.errno)\n"
    ).replace("GRID", GRID)
    said = _unreadable_to_this_user(code, str(run))
    assert said[:2] == ["raised 13", "raised 13"], said
    assert sorted(p.name for p in run.iterdir()) == ["failed.parquet", "groups"]  # nothing moved aside


def test_results_this_user_may_not_read_are_said_so_not_cut_short(tmp_path):
    """`repeval runs` and the report said of a results.parquet this user may not read that it was "cut short or
    corrupted" and told to rerun `repeval evaluate` — which rewrites a file whose content may be whole; then they
    repeated pyarrow's whole message, the file's path in it. Now they say "permission denied", this user may not read
    it, and to check its owner and permissions."""
    run = tmp_path / "r"
    run.mkdir()
    pq.write_table(typed_table([_failure("m")], FAILED_SCHEMA), run / "results.parquet")
    (run / "results.parquet").chmod(0)
    code = (
        "import sys\nfrom pathlib import Path\nimport pyarrow.fs as pafs\nfrom repeval.report.runs import run_info\n"
        "from repeval.report.results import load_run\n"
        "print(run_info(pafs.LocalFileSystem(), sys.argv[1], 'r')['results_unreadable'])\n"
        "try:\n    load_run(Path(sys.argv[1]))\nexcept ValueError as exc:\n    print(exc)\n"
    )
    listed, reported = _unreadable_to_this_user(code, str(run))[:2]
    for said in (listed, reported):
        # said once, plainly: not pyarrow's "[Errno 13] Failed to open local file '<path>'. Detail: …"
        assert (
            "results.parquet is unreadable (permission denied): this user may not read it: check its owner and "
            "permissions (`ls -l`)" in said
        ), said
        assert "cut short" not in said and "repeval evaluate" not in said and "Errno" not in said, said


def test_error_records_of_a_store_partition_this_user_may_not_read_are_said_so_not_damaged(tmp_path):
    """An error file of a store partition this user may not read (another user's, whole) was "not a readable Parquet
    file ([errno 13] Permission denied) — delete that file", and its error folder pyarrow's "[Errno 13] Cannot list
    directory …" without a fix: what `repeval runs` (its partial count) and the report said. Now both say permission
    denied and to check its owner and permissions."""
    from repeval.store import EmbeddingStore
    from repeval.store.layout import ERROR_SCHEMA

    root = tmp_path / "store"
    EmbeddingStore(str(root))
    for scenario in ("clean", "noise"):
        (root / "d" / "m" / scenario / "_errors").mkdir(parents=True)
        pq.write_table(ERROR_SCHEMA.empty_table(), root / "d" / "m" / scenario / "_errors" / "part-1-a.parquet")
    unread = [root / "d" / "m" / "clean" / "_errors" / "part-1-a.parquet", root / "d" / "m" / "noise" / "_errors"]
    code = (
        "import sys\nfrom repeval.report.left_out import store_errors\n"
        "print('\\n'.join(store_errors(sys.argv[1], [('d', 'm', 'clean'), ('d', 'm', 'noise')]).problems))\n"
    )
    for path in unread:
        path.chmod(0)
    try:
        said = _unreadable_to_this_user(code, str(root))[:2]
    finally:
        for path in unread:
            path.chmod(0o755)
    fix = "permission denied — this user may not read it: check its owner and permissions (`ls -l`)"
    for (scenario, path), line in zip((("clean", unread[0]), ("noise", unread[1])), said, strict=True):
        assert line == f"d/m/{scenario}: store partition d/m/{scenario} in {root}: {path}: {fix}", said


def test_a_failed_parquet_this_user_may_not_read_is_said_so_in_repeval_runs(tmp_path):
    """`repeval runs` said of a failed.parquet this user may not read that it was "cut short or corrupted" and to
    delete it or let the next command move it aside — losing failures that may be whole. Now it says this user may
    not read it, and to check its owner and permissions."""
    import ast

    run = tmp_path / "runs" / "r"
    run.mkdir(parents=True)
    (run / "config.yaml").write_text("experiments: []\n")
    pq.write_table(typed_table([_failure("m")], FAILED_SCHEMA), run / "failed.parquet")
    (run / "failed.parquet").chmod(0)
    code = "import sys\nfrom repeval.report.runs import runs_text\nprint(repr(runs_text(sys.argv[1])))\n"
    text = ast.literal_eval(_unreadable_to_this_user(code, str(tmp_path / "runs"))[0])
    assert (
        "r: failed.parquet is unreadable (permission denied): its failures are not known (?); this user may not read "
        "it: check its owner and permissions (`ls -l`)"
    ) in text, text
    assert "cut short" not in text and "move it aside" not in text, text


def test_repeval_runs_lists_a_run_whose_folder_or_groups_this_user_may_not_list(tmp_path):
    """A run directory, or its groups/ folder, that this user may not list (another user's, in a shared runs
    directory) stopped `repeval runs` — every run's line — on pyarrow's PermissionError, with the fix of a full disk
    ("check that run.store and run.runs_dir are writable"). Now the others are listed, and each says what is not known
    and to check its owner and permissions. Its record has the listed runs' keys: one list of them (``_record``). A
    symbolic link into another user's folder — a run's, or one in it — is said of that run alone (it stopped the
    listing of the folder holding it: the run unknown, or every run)."""
    import ast

    from repeval.report.runs import _record

    for name in ("r", "s", "t"):
        (tmp_path / "runs" / name / "groups").mkdir(parents=True)
        (tmp_path / "runs" / name / "config.yaml").write_text("experiments: []\n")
        pq.write_table(
            typed_table([_failure("m")], FAILED_SCHEMA), tmp_path / "runs" / name / "groups" / f"{GRID}.parquet"
        )
    (tmp_path / "runs" / "r" / "groups").chmod(0)
    (tmp_path / "runs" / "s").chmod(0)
    # and a summary.parquet this user may not read: "rerun `repeval evaluate`" was its fix, as for one cut short
    results = pa.table({"value": [0.5]}).replace_schema_metadata({EVALUATION_KEY: b"h"})
    for name in ("results.parquet", "summary.parquet"):
        pq.write_table(results, tmp_path / "runs" / "t" / name)
    (tmp_path / "runs" / "t" / "summary.parquet").chmod(0)
    # symbolic links into another user's folder: a run's tune/, and a run — each stopped the listing of the folder
    # that holds it (the run said unreadable, nothing in it known; every run, the runs directory "not readable")
    (tmp_path / "alice" / "tune").mkdir(parents=True)
    (tmp_path / "runs" / "t" / "tune").symlink_to(tmp_path / "alice" / "tune")
    (tmp_path / "runs" / "u").symlink_to(tmp_path / "alice" / "u")
    (tmp_path / "alice").chmod(0)
    code = (
        "import sys\nfrom repeval.report.runs import list_runs, runs_text\nprint(repr(runs_text(sys.argv[1])))\n"
        "print(repr([list(i) for i in list_runs(sys.argv[1])]))\n"
    )
    said = _unreadable_to_this_user(code, str(tmp_path / "runs"))
    text = ast.literal_eval(said[0])
    # the unlisted run's record has the listed runs' keys, in their order (`repeval runs --json`, and runs_text
    # reads each): one list of them, not a second one written by hand that drifted (a KeyError)
    keys = ast.literal_eval(said[1])
    assert len(keys) == 4 and keys[0] == keys[1] == keys[2] == keys[3], keys
    with pytest.raises(KeyError, match="not a key of a run's record: grids_missing"):
        _record("r", {"grids_missing": []})
    mine = "this user may not read it: check its owner and permissions (`ls -l`)"
    assert f"r: groups/ cannot be listed (permission denied): its trained grids are not counted; {mine}" in text, text
    assert f"s: the run directory cannot be listed (permission denied): nothing in it is known; {mine}" in text, text
    assert f"t: summary.parquet is unreadable (permission denied): {mine}" in text, text
    assert f"u: the run directory cannot be listed (permission denied): nothing in it is known; {mine}" in text, text
    assert [line.split()[:2] for line in text.splitlines()[1:5]] == [
        ["r", "started"],
        ["s", "unreadable"],
        ["t", "evaluated"],
        ["u", "unreadable"],
    ]


def test_repeval_runs_over_a_runs_directory_this_user_may_not_list_says_so_not_a_full_disks_fix(tmp_path):
    """`repeval runs` of a runs directory this user may not list (another user's) stopped on pyarrow's error with the
    fix of a full disk ("check that run.store and run.runs_dir are writable"). Now it says the folder cannot be read
    and the fix: its owner and permissions."""
    (tmp_path / "runs" / "r").mkdir(parents=True)
    (tmp_path / "runs").chmod(0)
    code = (
        "import sys\nimport typer\nfrom repeval.cli.errors import _guard\nfrom repeval.report.runs import runs_text\n"
        "sys.stderr = sys.stdout\ntry:\n    _guard(lambda: runs_text(sys.argv[1]))\nexcept typer.Exit as exc:\n"
        "    print('exit', exc.exit_code)\n"
    )
    try:
        said = _unreadable_to_this_user(code, str(tmp_path / "runs"))
    finally:
        (tmp_path / "runs").chmod(0o755)  # pytest's clean-up removes it
    assert said[:2] == [
        f"error: {tmp_path / 'runs'} cannot be read (permission denied): this user may not list it — check its owner "
        "and permissions (`ls -ld`), or list a runs directory of your own",
        "exit 1",
    ], said


def test_a_report_over_run_files_this_user_may_not_read_names_them_not_reports_out_option(tmp_path):
    """`repeval report` of a run whose config.yaml this user may not read stopped on a bare PermissionError, and one
    whose confusion matrix it may not read too — both followed by the hint for a report it cannot write ("write it
    elsewhere with --out"), which sends the reader to the wrong folder. Now an unreadable config.yaml is a warning
    naming it and its permissions, the report written with the configuration results.parquet recorded; an
    unreadable confusion matrix is left out, said with its permissions, the report written, without the --out
    hint."""
    import ast

    from repeval.testing.results import FakeRunSpec, make_run_dir

    spec = {"models": ("a",), "probes": ("M1",), "seeds": (0,), "scenarios": ("clean",), "n_resamples": 10}
    first = make_run_dir(tmp_path / "1", FakeRunSpec(run_id="r1", **spec))  # type: ignore[arg-type]
    second = make_run_dir(tmp_path / "2", FakeRunSpec(run_id="r2", **spec))  # type: ignore[arg-type]
    (first / "config.yaml").chmod(0)
    matrix = sorted((second / "confusion").glob("*.json"))[0]
    matrix.chmod(0)
    code = (
        "import logging, sys\nfrom pathlib import Path\nfrom typer.testing import CliRunner\n"
        "from repeval.cli import app\nfrom repeval.report.html import write_report\nsaid = []\n"
        "class Keep(logging.Handler):\n    def emit(self, record):\n        said.append(record.getMessage())\n"
        "logging.getLogger('repeval').addHandler(Keep())\n"
        "print(repr(write_report([Path(sys.argv[1])], Path(sys.argv[3])).is_file()))\nprint(repr(said))\n"
        "res = CliRunner().invoke(app, ['report', sys.argv[2], '--out', sys.argv[3]])\n"
        "print(repr((res.exit_code, res.output)))\n"
    )
    out = tmp_path / "out" / "report.html"
    written, warned, failed = map(
        ast.literal_eval, _unreadable_to_this_user(code, str(first), str(second), str(out))[:3]
    )
    assert written, warned
    # (a fake run records no configuration in its results: the report goes on without one)
    assert (
        f"{first / 'config.yaml'} is unreadable (permission denied); the report uses no configuration; this user "
        "may not read it: check its owner and permissions (`ls -l`)" in warned
    ), warned
    code, output = failed
    assert code == 0 and f"{matrix} is unreadable (permission denied): left out of the report's confusion " in output
    assert "this user may not read it: check its owner and permissions (`ls -l`)" in output, output
    assert "--out" not in output and out.is_file(), output


def test_confusion_probes_and_splits_this_user_may_not_read_are_said_in_the_report(tmp_path):
    """A run's confusion/ or probes/ folder this user may not read (another user's, in a shared run directory) left
    the confusion matrices out, and the probes chosen on clean test, without a word; an unreadable probes/ file was a
    warning with pyarrow's error and no fix, an unreadable split file too. Now each is said — in a warning and in
    the report's notes — naming the file (one line per folder, with how many more), what the report leaves out and
    the fix (its owner and permissions); the report is written."""
    import ast

    first, second = _two_runs(tmp_path)
    split = first / "splits" / "instrument_recognition__tinysol.parquet"
    split.parent.mkdir()
    pq.write_table(typed_table([_failure("m")], FAILED_SCHEMA), split)  # any Parquet file: it is not read
    probe_file = sorted((first / "probes").glob("*.parquet"))[0]
    matrices = sorted((second / "confusion").glob("*.json"))
    (second / "splits").mkdir()
    pq.write_table(typed_table([_failure("m")], FAILED_SCHEMA), second / "splits" / split.name)
    for path in (first / "confusion", probe_file, split, second / "probes", second / "splits", *matrices):
        path.chmod(0)
    code = (
        "import logging, sys\nfrom pathlib import Path\nfrom repeval.report.html import write_report\nsaid = []\n"
        "class Keep(logging.Handler):\n    def emit(self, record):\n        said.append(record.getMessage())\n"
        "logging.getLogger('repeval').addHandler(Keep())\n"
        "out = write_report([Path(sys.argv[1]), Path(sys.argv[2])], Path(sys.argv[3]))\n"
        "print(repr(said))\nprint(repr(out.read_text()))\n"
    )
    warned, page = map(
        ast.literal_eval,
        _unreadable_to_this_user(code, str(first), str(second), str(tmp_path / "out" / "report.html"))[:2],
    )
    mine = "this user may not read it: check its owner and permissions (`ls -l`)"
    theirs = "this user may not read them: check their owner and permissions (`ls -l`)"
    for note in (
        f"{first / 'confusion'} is unreadable (permission denied): the run's confusion matrices are left out; {mine}",
        f"{probe_file} is unreadable (permission denied): the probes of its grid are chosen on clean test, not on "
        f"their validation criterion; {mine}",
        f"{split} is unreadable (permission denied): its test tracks are not known: its results are ranked with "
        "another run's when both scored as many test tracks in each fold, not checked to be the same tracks and "
        f"labels, and described as if every label were annotated (which labels each track annotates is not known); "
        f"{mine}",
        f"{second / 'splits'} is unreadable (permission denied): the run's test tracks are not known: the run's "
        "results are ranked with another run's when both scored as many test tracks in each fold, not checked to be "
        "the same tracks and labels, and described as if every label were annotated (which labels each track "
        f"annotates is not known); {mine}",
        f"{second / 'probes'} is unreadable (permission denied): the probes of the run's grids are chosen on clean "
        f"test, not on their validation criterion; {mine}",
        f"{matrices[0]} and {len(matrices) - 1} other files in {second / 'confusion'} are unreadable (permission "
        f"denied): left out of the report's confusion matrices; {theirs}",
    ):
        assert any(note in w for w in warned), (note, warned)
        assert '<p class="rv-note rv-unread">' + html.escape(note) in page, note  # at the top of the report
    assert "Confusion matrices" not in page  # none read: left out, as said
    # each model's probe choice gives the same cause as the note (it said "no validation record (probes/*.parquet)")
    for where in (probe_file, second / "probes"):
        assert html.escape(f"its validation record could not be read ({where}: permission denied)") in page, where
    assert "no validation record" not in page


def test_a_load_report_this_user_may_not_read_is_named_in_the_report(tmp_path):
    """The report read a run's ``load_report.json`` this user may not read (another user's) as none: the rows its
    datasets dropped at load — tracks not evaluated — went untold. It is now a note at the top of the report and a
    warning, naming the file and its permissions."""
    import ast
    import json

    from repeval.testing.results import FakeRunSpec, make_run_dir

    spec = {"models": ("a",), "probes": ("M1",), "seeds": (0,), "scenarios": ("clean",), "n_resamples": 10}
    run = make_run_dir(tmp_path / "1", FakeRunSpec(run_id="r1", **spec))  # type: ignore[arg-type]
    load = {"loads": [{"dataset": "cat", "tasks": ["label"], "rows": 3, "problems": {"missing_audio": 2},
                       "lines": ["2 rows without their audio file"], "not_evaluated": 2}]}  # fmt: skip
    (run / "load_report.json").write_text(json.dumps(load))
    (run / "load_report.json").chmod(0)
    code = (
        "import sys\nfrom pathlib import Path\nimport pandas as pd\nfrom repeval.report.left_out import dropped_at_load\n"
        "from repeval.report.results import Run\nrun = Run('r1', Path(sys.argv[1]), pd.DataFrame())\n"
        "print(repr(dropped_at_load(run)))\nprint(repr(run.unread))\n"  # the notes atop the report
    )
    dropped, notes = map(ast.literal_eval, _unreadable_to_this_user(code, str(run))[:2])
    assert dropped == [] and notes == [
        f"{run / 'load_report.json'} is unreadable (permission denied): the dataset rows dropped at load are not in the "
        "report; this user may not read it: check its owner and permissions (`ls -l`)"
    ], notes


def test_models_left_out_this_user_may_not_read_are_not_read_as_none(tmp_path):
    """A run's ``models_left_out.json`` this user may not read (another user's, in a shared run directory) was read
    as none: ``repeval evaluate`` ended 0 without naming the models left out, the report left them unsaid, and the
    training stage's record replaced the file — the embedding stage's record of them lost. The stages now stop naming
    the file and its permissions, nothing written; the report says it in its notes and a warning."""
    import ast
    import json

    from repeval.testing.results import FakeRunSpec, make_run_dir

    spec = {"models": ("a",), "probes": ("M1",), "seeds": (0,), "scenarios": ("clean",), "n_resamples": 10}
    run = make_run_dir(tmp_path / "1", FakeRunSpec(run_id="r1", **spec))  # type: ignore[arg-type]
    body = json.dumps({"embed": {"clap": "failed to build"}})
    (run / "models_left_out.json").write_text(body)
    (run / "models_left_out.json").chmod(0)
    code = (
        "import sys\nfrom pathlib import Path\nimport pandas as pd\nfrom repeval.report.left_out import "
        "models_left_out_block\nfrom repeval.report.results import Run\n"
        "from repeval.run.left_out import left_out_models, record_left_out\nrun = Path(sys.argv[1])\n"
        "for call in (lambda: left_out_models(run), lambda: record_left_out(run, 'train', {'b': 'no track'})):\n"
        "    try:\n        print(repr(('returned', call())))\n    except PermissionError as exc:\n"
        "        print(repr(('raised', exc.errno, str(exc))))\n"
        "report = Run('r1', run, pd.DataFrame())\nprint(repr(models_left_out_block([report])))\nprint(repr(report.unread))\n"
    )
    said = [ast.literal_eval(line) for line in _unreadable_to_this_user(code, str(run))[:4]]
    error = (
        f"{run / 'models_left_out.json'} is unreadable (permission denied): the embedding models the run left out are "
        "not known — this user may not read it: check its owner and permissions (`ls -l`)"
    )
    assert said[:2] == [("raised", 13, error)] * 2, said
    assert (run / "models_left_out.json").read_text() == body  # the embedding stage's record kept
    assert said[2:] == [
        "",
        [
            f"{run / 'models_left_out.json'} is unreadable (permission denied): the embedding models the run left out "
            "are not in the report; this user may not read it: check its owner and permissions (`ls -l`)"
        ],
    ], said


def test_a_run_directory_this_user_may_not_look_into_is_said_so_by_table_and_report(tmp_path):
    """`repeval table` of a run directory this user may not look into (another user's folder) said the permission
    error of its ``results.parquet`` with the fix of a write — "check that run.store and run.runs_dir are writable
    directories with free space" — and `repeval report` named ``results.parquet`` as the file to check. Both name the
    run directory and the permissions to check."""
    run = tmp_path / "locked" / "r1"
    run.mkdir(parents=True)
    run.parent.chmod(0)
    code = (
        "import sys\nfrom typer.testing import CliRunner\nfrom repeval.cli import app\n"
        "for command in ('table', 'report'):\n    print(repr(CliRunner().invoke(app, [command, sys.argv[1]]).output))\n"
    )
    try:
        said = _unreadable_to_this_user(code, str(run))[:2]
    finally:
        run.parent.chmod(0o755)
    line = (
        f"error: {run} cannot be read (permission denied): this user may not read it: check the owner and permissions "
        "of it and of the folders above it (`ls -ld`)\n"
    )
    assert said == [repr(line)] * 2, said
