"""The command line as a new user meets it: its help listing, where its own options may go, what an interrupted run
says to resume it, what ``schema --out`` does with a new folder and what the staged commands say (smoke tests and
plans are in test_cli_plan.py). No Ray: each runs the commands' own code with a configuration that embeds nothing."""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
from pathlib import Path

import pytest
import typer.main
from typer.testing import CliRunner

from repeval.cli import app
from repeval.cli.common import _stage
from repeval.run.status import read_status
from repeval.testing.configs import one_row_config


def _config(tmp_path: Path, run_id: str | None) -> Path:
    return one_row_config(tmp_path, run_id)


def test_every_option_says_what_it_does_and_each_group_names_its_commands():
    """``repeval store --help`` said "Inspect the embedding store." over commands that delete partitions and tracks
    (``rm``), finish removals (``settle``) and remove a lease (``unlock``); ``repeval data render --seed`` had no
    help at all. Each group's help names its commands, and every option says what it does."""
    root = typer.main.get_command(app)
    unnamed, silent = {}, []
    for name, cmd in root.commands.items():  # type: ignore[attr-defined]
        subs = getattr(cmd, "commands", None) or {}
        unnamed[name] = [s for s in subs if not re.search(rf"\b{s}\b", cmd.help or "")]
        for sub_name, sub in (subs or {name: cmd}).items():
            where = f"{name} {sub_name}" if subs else name
            silent += [f"{where} {p.opts[0]}" for p in sub.params if p.param_type_name == "option" and not p.help]
    assert {name: subs for name, subs in unnamed.items() if subs} == {}
    assert silent == [], "options without help"


def test_the_help_listing_wraps_each_commands_summary_as_one_text():
    """``repeval --help`` listed each command with its docstring's own line breaks (Typer's rich listing keeps
    them), so "validate" broke mid-sentence after "every" and again after "`ray job submit`)" — ragged lines in
    the first screen a user reads. Each listed summary is now one text that the listing wraps."""
    root = typer.main.get_command(app)
    listed = {}
    for name, cmd in root.commands.items():  # type: ignore[attr-defined]
        for sub_name, sub in (getattr(cmd, "commands", None) or {name: cmd}).items():
            listed[f"{name} {sub_name}" if sub is not cmd else name] = sub.short_help or sub.help or ""
    assert "validate" in listed and "data check" in listed and "store rm" in listed
    assert {name: text for name, text in listed.items() if "\n" in text} == {}
    assert listed["validate"].startswith("Validate a configuration file (nothing runs): local data paths must exist")
    full = CliRunner().invoke(app, ["validate", "--help"], env={"COLUMNS": "200"}).output
    # the command's own help keeps its whole text (wrapped where the terminal's width falls)
    assert "Exit status 2: the configuration is invalid" in " ".join(full.split())


def test_the_help_shows_a_flag_as_a_flag_and_an_option_with_its_type():
    """Every option of ``--help`` showed a type, flags too: ``--debug <bool>``, ``--help <bool>``, ``repeval store rm
    --yes <bool>`` — as if they took a value (``--yes true`` is an error). A flag shows none; an option taking a value
    keeps its type."""
    for args in ([], ["run"], ["store", "rm"], ["data", "render"]):
        said = CliRunner().invoke(app, [*args, "--help"], env={"COLUMNS": "200"}).output
        rows = {line.split()[1]: line for line in said.splitlines() if re.match(r"│ --", line)}
        assert "--help" in rows and "<bool>" not in said, (args, said)
    assert re.search(r"--debug +show tracebacks", said_root := CliRunner().invoke(app, ["--help"]).output), said_root
    run = CliRunner().invoke(app, ["run", "--help"], env={"COLUMNS": "200"}).output
    assert re.search(r"--run-id +<str> +run id", run) and re.search(r"--strict +exit with status 3", run), run


def test_usage_lines_show_arguments_plain():
    """Typer 0.29 wrote a required argument in braces on the usage line: ``repeval table [OPTIONS] {RUN}...``,
    ``repeval run [OPTIONS] {config}`` — a notation no user types. Every command's usage line shows its arguments as
    click does: ``RUN...``, ``CONFIG``, ``[RUNS_DIR]``."""
    root = typer.main.get_command(app)
    usage = {}
    for name, cmd in root.commands.items():  # type: ignore[attr-defined]
        for sub_name, sub in (getattr(cmd, "commands", None) or {name: cmd}).items():
            where = [name, sub_name] if sub is not cmd else [name]
            said = CliRunner().invoke(app, [*where, "--help"], env={"COLUMNS": "200"}).output
            (usage[" ".join(where)],) = re.findall(r"Usage: \S+ (.*\S)", said)
    assert {k: v for k, v in usage.items() if re.search(r"[{}]", v)} == {}
    assert usage["table"] == "table [OPTIONS] RUN..." and usage["run"] == "run [OPTIONS] CONFIG"
    assert usage["runs"] == "runs [OPTIONS] [RUNS_DIR]"
    assert usage["store show"] == "store show [OPTIONS] [STORE] DATASET/MODEL/SCENARIO..."
    assert usage["store settle"] == "store settle [OPTIONS] [STORE] [PARTITION...]"
    said = CliRunner().invoke(app, ["store", "--help"], env={"COLUMNS": "200"}).output
    assert "Usage: root store [OPTIONS] COMMAND [ARGS]..." in said, said


def test_a_usage_error_and_the_help_panel_name_an_argument_as_the_usage_line_does():
    """The usage line says ``repeval run [OPTIONS] CONFIG`` and ``repeval runs [OPTIONS] [RUNS_DIR]``, but the usage
    error below it said ``Missing argument 'config'.`` and the help panel ``config``, ``runs_dir`` (Typer 0.29 names an
    argument without a metavar by its parameter's name): one argument, two names. They say ``CONFIG``, ``RUNS_DIR``."""
    for args, name in ((["run"], "CONFIG"), (["data", "render"], "OUT"), (["validate-model"], "NAME")):
        r = CliRunner().invoke(app, args, env={"COLUMNS": "200"})
        assert r.exit_code == 2 and f"Missing argument '{name}'." in r.output, r.output
        assert re.search(rf"Usage: \S+ {' '.join(args)} \[OPTIONS\] {name}\n", r.output), r.output
    said = CliRunner().invoke(app, ["runs", "--help"], env={"COLUMNS": "200"}).output
    assert re.search(r"│ +RUNS_DIR +<str> +runs directory", said), said
    said = CliRunner().invoke(app, ["run", "--help"], env={"COLUMNS": "200"}).output
    assert re.search(r"│ +\* +CONFIG +<path> +experiment YAML file", said), said


def test_a_bare_repeval_prints_its_help_and_exits_0_and_version_says_the_versions():
    """A bare ``repeval`` (or ``repeval data``, ``repeval store``) exited 2, a usage error (Typer's no_args_is_help
    under click 8.2): it now prints the help and exits 0, as git and ray do; ``repeval --version`` did not exist."""
    import platform
    from importlib.metadata import version

    for args, what in (([], "validate"), (["data"], "render"), (["store"], "ls")):
        r = CliRunner().invoke(app, args, env={"COLUMNS": "120"})
        assert r.exit_code == 0 and "Usage:" in r.output and what in r.output, (args, r.output)
    r = CliRunner().invoke(app, ["--version"])
    assert r.exit_code == 0, r.output
    assert r.output == f"repeval {version('repeval')} (Ray {version('ray')}, Python {platform.python_version()})\n"
    r = CliRunner().invoke(app, ["--version", "validate"])  # eager: the version, not the command
    assert r.exit_code == 0 and r.output.startswith("repeval "), r.output
    r = CliRunner().invoke(app, ["nope"])  # a wrong command stays a usage error
    assert r.exit_code == 2, r.output


def test_repevals_own_options_are_taken_after_the_command_too(tmp_path):
    """``repeval validate CONFIG -v`` stopped with click's "No such option: -v", which does not say that repeval's
    own options (--debug, -v/--verbose) go before the command. They are now taken anywhere on the line (nothing
    after ``--`` moves)."""
    from repeval.cli import hoist_global_options

    assert hoist_global_options(["run", "c.yaml", "-v", "--run-id", "r", "--debug"]) == [
        "-v", "--debug", "run", "c.yaml", "--run-id", "r",
    ]  # fmt: skip
    assert hoist_global_options(["run", "c.yaml", "--", "-v"]) == ["run", "c.yaml", "--", "-v"]
    # `repeval run CONFIG --version` was "No such option: --version", though -v and --debug were taken there
    r = CliRunner().invoke(app, hoist_global_options(["run", "missing.yaml", "--version"]))
    assert r.exit_code == 0 and r.output.startswith("repeval ") and "Ray" in r.output, r.output
    out = tmp_path / "s.json"
    r = subprocess.run(
        [sys.executable, "-m", "repeval.cli", "schema", "--out", str(out), "--debug"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "experiments" in json.loads(out.read_text())["properties"]


def test_log_lines_read_as_messages_not_logger_names(tmp_path):
    """Every repeval INFO line read ``INFO repeval.pipeline.embed: rendered_notes/mfcc-stats: 240 tracks to embed``;
    the command's handler now prints repeval's INFO as the message alone and its warnings as ``WARNING: …``, while
    other packages' lines, and everything under ``--verbose``, keep the level and the logger's name."""
    code = (
        "import logging, sys\n"
        "from repeval.cli import app\n"
        "app([*sys.argv[2:], 'schema', '--out', sys.argv[1]], standalone_mode=False)\n"
        "logging.getLogger('repeval.pipeline.embed').info('240 tracks to embed')\n"
        "logging.getLogger('repeval.runner').warning('a probe failed')\n"
        "logging.getLogger('somelib').warning('their line')\n"
    )
    out = str(tmp_path / "s.json")
    plain, verbose = (
        subprocess.run([sys.executable, "-c", code, out, *flags], capture_output=True, text=True, timeout=120)
        for flags in ([], ["-v"])
    )
    assert plain.returncode == 0 and verbose.returncode == 0, plain.stderr + verbose.stderr
    lines = plain.stderr.splitlines()
    assert "240 tracks to embed" in lines and "WARNING: a probe failed" in lines, plain.stderr
    assert "WARNING somelib: their line" in lines and "repeval." not in plain.stderr, plain.stderr
    said = verbose.stderr.splitlines()
    assert "INFO repeval.pipeline.embed: 240 tracks to embed" in said, verbose.stderr
    assert "WARNING repeval.runner: a probe failed" in said, verbose.stderr


def test_schema_out_makes_its_folders(tmp_path):
    """``repeval schema --out editor/repeval.schema.json`` failed with a bare "[Errno 2] No such file or
    directory" when the folder did not exist; like ``report --out`` and ``data check --out`` it now makes it."""
    out = tmp_path / "editor" / "schemas" / "repeval.schema.json"
    res = CliRunner().invoke(app, ["schema", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "experiments" in json.loads(out.read_text())["properties"] and f"schema: {out}" in res.output
    res = CliRunner().invoke(app, ["schema", "--out", str(tmp_path / "editor")])  # a folder: into it ("Errno 21")
    assert res.exit_code == 0 and f"schema: {tmp_path / 'editor' / 'repeval.schema.json'}" in res.output, res.output
    # a folder not made yet, named with its trailing slash: made, and the schema written into it (not a file "new")
    res = CliRunner().invoke(app, ["schema", "--out", f"{tmp_path / 'new'}/"])
    written = tmp_path / "new" / "repeval.schema.json"
    assert res.exit_code == 0 and f"schema: {written}" in res.output and json.loads(written.read_text()), res.output


def test_a_command_that_cannot_write_its_output_names_its_own_option(tmp_path):
    """`repeval schema --out` and `repeval data render OUT` where a file lies on the path said "check that run.store
    and run.runs_dir are writable directories" — settings neither command reads. Each names its own output now."""
    (tmp_path / "afile").write_text("x")
    res = CliRunner().invoke(app, ["schema", "--out", str(tmp_path / "afile" / "s.json")])
    assert res.exit_code == 1 and "`repeval schema --out` another path" in res.output, res.output
    res = CliRunner().invoke(app, ["data", "render", str(tmp_path / "afile" / "notes")])
    assert res.exit_code == 1 and "`repeval data render DIR`" in res.output, res.output
    assert "run.store" not in res.output
    # a folder that cannot be made at all (ENOENT under /proc) was a bare "[Errno 2] No such file or directory"
    res = CliRunner().invoke(app, ["schema", "--out", "/proc/no-such-folder/s.json"])
    assert res.exit_code == 1 and "`repeval schema --out` another path" in res.output, res.output
    res = CliRunner().invoke(app, ["data", "render", "/proc/no-such-folder/notes"])
    assert res.exit_code == 1 and "`repeval data render DIR`" in res.output, res.output


def test_an_interrupted_run_names_the_command_line_that_resumes_it(tmp_path, capsys):
    """Ctrl-C said "rerun the same command to resume" — but a configuration without ``run.run_id`` gives each
    command a new timestamped run, so the same command started another run and trained every grid again. The
    message and ``status.json`` now give the command line that resumes this run: its ``--run-id`` when the
    configuration has none (or it was given), and the ``--store`` / ``--runs-dir`` it was given."""
    cfg = _config(tmp_path, None)
    store = str(tmp_path / "other-store")
    with pytest.raises(KeyboardInterrupt), _stage("run", cfg, None, store, False, None) as ctx:
        raise KeyboardInterrupt
    assert re.fullmatch(r"run-\d{8}-\d{6}", ctx.run_id)
    resume = f"repeval run {cfg} --run-id {ctx.run_id} --store {store}"
    assert f"`{resume}` resumes it" in read_status(ctx.run_dir)["reason"]

    named = _config(tmp_path, "named")  # the configuration names the run: no --run-id needed
    with pytest.raises(KeyboardInterrupt), _stage("embed", named, None, None, False, str(tmp_path / "r2")) as ctx:
        raise KeyboardInterrupt
    assert f"`repeval embed {named} --runs-dir {tmp_path / 'r2'}` resumes it" in read_status(ctx.run_dir)["reason"]

    res = CliRunner().invoke(app, ["evaluate", str(cfg), "--run-id", "r"])  # nothing trained: an error, no resume
    assert res.exit_code == 1 and "resumes it" not in res.output


def test_a_later_stage_without_a_run_id_says_it_starts_a_new_run(tmp_path, caplog):
    """mir_ref's staged commands (`repeval embed`, then `train`, then `evaluate`) on a configuration without
    ``run.run_id``: each started a new timestamped run, so `repeval evaluate CONFIG` after `repeval train CONFIG`
    failed with "no trained probe grid … train them first — `repeval train CONFIG`", which the user had just run.
    `train` and `evaluate` now say at once that they start a new run and how to go on with one."""
    cfg = _config(tmp_path, None)
    caplog.set_level(logging.WARNING, logger="repeval")
    with _stage("evaluate", cfg, None, None, False, None) as ctx:
        pass
    assert f"this `repeval evaluate` starts a new run, {ctx.run_id}, which holds nothing of earlier" in caplog.text
    assert "give its --run-id (`repeval runs` lists them), or set run.run_id" in caplog.text
    plan = CliRunner().invoke(app, ["plan", str(cfg)])  # the plan of such a configuration says why nothing is done
    assert (
        plan.exit_code == 0
        and "note: the configuration sets no run.run_id: each `repeval run` starts a new run" in (plan.output)
    ), plan.output
    assert "starts a new run" not in CliRunner().invoke(app, ["plan", str(cfg), "--run-id", "r1"]).output
    caplog.clear()
    with _stage("evaluate", cfg, "r1", None, False, None), _stage("embed", cfg, None, None, False, None):
        pass  # a run named on the command line, or a stage that only fills the store: nothing to say
    assert "starts a new run" not in caplog.text


def test_embed_strict_records_its_failure_as_run_strict_does(tmp_path, monkeypatch):
    """`repeval embed --strict` exited 3 for a dropped row but left ``status.json`` at "finished", so `repeval runs`
    listed the run as embedded while `repeval run --strict` records the same stop as failed, with the reason."""
    import types

    from repeval import runner

    cfg = _config(tmp_path, "r")
    monkeypatch.setattr(
        runner, "stage_embed", lambda ctx, **_: types.SimpleNamespace(text=lambda: "embedded", models_failed={})
    )
    dropped = [("d", {"missing_audio": 1}, "1 missing audio: a (row 2: a.wav)")]
    monkeypatch.setattr(runner, "not_evaluated", lambda _ctx: dropped)
    res = CliRunner().invoke(app, ["embed", str(cfg), "--strict"])
    assert res.exit_code == 3, res.output
    assert "error: --strict: dataset 'd' dropped 1 row at load" in res.output
    status = read_status(tmp_path / "runs" / "r")
    assert (status["command"], status["state"]) == ("embed", "failed"), status
    assert status["reason"] == "stopped with exit status 3 (--strict: tracks not evaluated)"


def test_a_stage_out_of_order_names_the_full_command_line_that_goes_first(tmp_path):
    """`repeval evaluate CONFIG --run-id fresh1 --store store2` with nothing trained said "train them first —
    `repeval train CONFIG`": followed literally, that trains another run (and embeds into another store). The
    commands it names now carry the run's own --run-id, --store and --runs-dir."""
    cfg = _config(tmp_path, "r")
    store, runs = str(tmp_path / "store2"), str(tmp_path / "runs2")
    res = CliRunner().invoke(app, ["evaluate", str(cfg), "--run-id", "fresh1", "--store", store, "--runs-dir", runs])
    said = " ".join(res.output.split())
    assert res.exit_code == 1, res.output
    line = f"{cfg} --run-id fresh1 --store {store} --runs-dir {runs}"
    assert f"train them first — `repeval train {line}`, or `repeval run {line}`, which also resumes" in said, said
    assert "CONFIG" not in said and "caused by" not in said


def test_stages_that_read_the_store_do_not_create_it_and_train_says_it_is_missing(tmp_path, monkeypatch):
    """`repeval train` or `evaluate` with a --store that does not exist (a typo) made an empty store folder there.
    They no longer create it, and `train` stops before Ray starts, naming the folder by its absolute path and the
    command that fills it — no status recorded: a step out of order, not a failure."""
    from repeval import ray_utils

    def no_ray(*_a, **_k):
        raise AssertionError("Ray started for a store that does not exist")

    monkeypatch.setattr(ray_utils, "init_ray", no_ray)
    monkeypatch.chdir(tmp_path)
    cfg = _config(tmp_path, "r")
    for command in ("train", "evaluate"):
        res = CliRunner().invoke(app, [command, str(cfg), "--store", "typo"])
        assert res.exit_code == 1, res.output
        assert not (tmp_path / "typo").exists()
    said = " ".join(CliRunner().invoke(app, ["train", str(cfg), "--store", "typo"]).output.split())
    assert f"no embedding store at {tmp_path / 'typo'}: the probes train on the embeddings stored there" in said, said
    assert f"run `repeval embed {cfg} --store typo` (or `repeval run {cfg} --store typo`)" in said, said
    assert read_status(tmp_path / "runs" / "r") == {}


def test_a_runs_few_resamples_warnings_are_one_line(tmp_path, caplog):
    """`repeval run --smoke-test` on the quickstart printed six long warnings (one per probe grid and test set) that a
    bootstrap interval rests on few resamples — "use a larger test set" — for test sets that are tiny by design.
    A smoke test's training says instead, once, that its intervals are not meaningful. A full run on a small test set
    (configs/medley_solos_db.yaml: 8 test clips) said some twenty alike: it says one line now, with how many, the
    metrics and the fewest resamples in full, and each at DEBUG (`repeval -v`); one alone is said as it is.
    What makes a run a smoke test is ``--smoke-test`` (``run.smoke_test``, kept in its config.yaml), not its run id: a
    full run named ``x-smoke`` was taken for one."""
    from repeval.config import load_config
    from repeval.metrics.compute import few_resamples_message
    from repeval.run.context import intervals_said_once, is_smoke_test
    from repeval.warn import SaidByTrials

    config = _config(tmp_path, "x-smoke")
    with _stage("evaluate", config, None, None, False, None) as ctx:  # a full run named x-smoke
        pass
    full = ctx.cfg
    assert ctx.run_id == "x-smoke" and not is_smoke_test(full)
    assert not is_smoke_test(load_config(ctx.run_dir / "config.yaml"))
    for _ in ("start", "resume"):  # `--smoke-test --run-id y`: run y-smoke, a smoke test each time
        with _stage("evaluate", config, "y", None, True, None) as ctx:
            pass
        assert ctx.run_id == "y-smoke" and is_smoke_test(ctx.cfg)
    smoke = ctx.cfg
    assert is_smoke_test(load_config(ctx.run_dir / "config.yaml"))  # the run's own record says so

    def trials_warn(groups: tuple[str, ...] = ("g1", "g2"), test_sets: tuple[str, ...] = ("clean", "D1", "D2")) -> None:
        said = SaidByTrials()  # as the driver says its trials' warnings (each a test set of a probe grid)
        for i, group in enumerate(groups):
            for j, test_set in enumerate(test_sets):
                metric = "f1_macro" if (i, j) != (1, 2) else "roc_auc_macro"
                text = few_resamples_message(metric, 60 - 3 * i - 7 * j, 1000, 0.05)  # as its trial said it
                rep = {"warnings": [{"kind": "log", "source": "repeval.metrics.compute", "level": logging.WARNING,
                                     "message": f"test set {test_set}: {text}"}]}  # fmt: skip
                said.add(group, "linear", 0, rep)
        said.say()

    caplog.set_level(logging.INFO, logger="repeval")
    with intervals_said_once(smoke):
        trials_warn()
        logging.getLogger("repeval.metrics.compute").warning("another warning")  # others are said
    said = [r.getMessage() for r in caplog.records]
    assert not [m for m in said if "of 1000 resamples" in m], said
    assert "another warning" in said
    assert said[-1] == (
        "smoke test: its test sets are a few tracks by design, so its bootstrap intervals are not meaningful (6 "
        "warnings that an interval rests on few resamples left unsaid; a full run says them, as one line)"
    )
    caplog.clear()
    caplog.set_level(logging.DEBUG, logger="repeval.metrics.compute")
    with intervals_said_once(full):
        trials_warn()
        logging.getLogger("repeval.metrics.compute").warning("another warning")
    said = [(r.levelno, r.getMessage()) for r in caplog.records]
    warned = [m for level, m in said if level == logging.WARNING]
    assert warned[0] == "another warning" and len(warned) == 2, warned  # said as it came; the six as one, after
    fewest = (
        "g2, probe linear (seed 0): test set D2: roc_auc_macro: its bootstrap interval rests on 43 of 1000 resamples"
    )
    assert warned[1].startswith(
        "6 warnings that a bootstrap interval rests on fewer than half its resamples, said as one (metrics f1_macro, "
        f"roc_auc_macro; `repeval -v` says each); the fewest — {fewest} (none is reported below 40)"
    ), warned[1]
    assert "use a larger test set" in warned[1] and "smoke test" not in warned[1]
    each = [m for level, m in said if level == logging.DEBUG and "of 1000 resamples" in m]
    first = "g1, probe linear (seed 0): test set clean: f1_macro: its bootstrap interval rests on 60 of 1000 resamples"
    assert len(each) == 6 and each[0].startswith(first), each
    caplog.clear()
    with intervals_said_once(full):  # one alone: as it is
        trials_warn(("g1",), ("clean",))
    assert [m for _, m in ((r.levelno, r.getMessage()) for r in caplog.records)] == [
        f"g1, probe linear (seed 0): test set clean: {few_resamples_message('f1_macro', 60, 1000, 0.05)}"
    ]
    caplog.clear()
    with pytest.raises(KeyboardInterrupt), intervals_said_once(full):  # a training stopped: its warnings still said
        trials_warn(("g1", "g2"), ("clean",))
        raise KeyboardInterrupt
    assert [m for m in caplog.messages if m.startswith("2 warnings that a bootstrap interval")], caplog.messages
