"""The store commands over a store they cannot read all of: folders and files this user may not read, stray files, a
folder that holds no partition."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from store_helpers import DIM, PROV, _block, _write
from typer.testing import CliRunner

from repeval.pipeline.assemble import rows_table
from repeval.store import EmbeddingStore, PartitionWriter
from repeval.store.layout import embedding_schema


def _as_unprivileged(*commands: list[str]) -> list[dict[str, object]]:
    """Each ``repeval`` command (this checkout's, by Typer's test runner: one process) run where a folder of mode 0
    cannot be listed: as root (who lists any), in a process without the capabilities that read it (setpriv,
    util-linux); each one's exit code, stdout and stderr."""
    import os
    import shutil
    import subprocess
    import sys

    import repeval

    code = (
        "import json, sys; from typer.testing import CliRunner; from repeval.cli import app; "
        "said = [CliRunner().invoke(app, c) for c in json.loads(sys.argv[1])]; "
        "print(json.dumps([dict(code=r.exit_code, out=r.stdout, err=r.stderr) for r in said]))"
    )
    drop = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--inh-caps=-all", "--"]
    assert os.geteuid() != 0 or shutil.which("setpriv"), "as root this check needs setpriv (util-linux) on PATH"
    env = {**os.environ, "PYTHONPATH": str(Path(repeval.__file__).parents[1])}
    command = [*(drop if os.geteuid() == 0 else []), sys.executable, "-c", code, json.dumps(commands)]
    return json.loads(subprocess.run(command, capture_output=True, text=True, env=env, check=True).stdout)


def test_store_ls_lists_every_partition_it_can_read_and_says_each_it_cannot_with_a_read_fix(tmp_path):
    """`repeval store ls` stopped on a partition folder this user may not list with a raw "[Errno 13] Cannot list
    directory …", and on a partition whose _errors is a file with "[Errno 20]"; `repeval store show` ended a folder it
    may not read with "check that run.store and run.runs_dir are writable directories with free space", a write's fix.
    Now each partition it cannot read is listed as unreadable and said on stderr with its fix (its owner and
    permissions; the file moved aside), so is a folder above the partitions it may not list, the others listed, exit 1;
    and a read-only command's permission error gets a read fix."""
    from repeval.cli import app

    root = tmp_path / "s"
    store = EmbeddingStore(str(root))
    for scenario in ("clean", "D1", "D2"):
        part = store.partition("ds", "m", scenario)
        w = PartitionWriter(part, embedding_schema(DIM), 10)
        w.add_table(rows_table(_block(["a", "b"]), embedding_schema(DIM), PROV))
        w.flush()
    (root / "ds" / "m" / "D2" / "_errors").write_text("not a folder")
    res = CliRunner().invoke(app, ["store", "ls", str(root)])
    assert res.exit_code == 1, res.output
    assert re.search(r"ds/m/D1\s+incomplete\s+2", res.stdout) and re.search(r"ds/m/D2\s+unreadable", res.stdout)
    assert res.stderr == (
        f"store partition ds/m/D2 in {root}: {root}/ds/m/D2/_errors cannot be listed (not a directory): its error "
        "records are not read; it is a file, not a folder: move it aside\n"
    ), res.stderr
    (root / "ds" / "m" / "D2" / "_errors").unlink()

    (root / "other" / "m" / "clean").mkdir(parents=True)
    denied = [root / "ds" / "m" / "D1", root / "other", root / "ds" / "m" / "clean" / "_errors"]
    denied[2].mkdir()
    try:
        for folder in denied[:2]:
            folder.chmod(0)
        denied[2].chmod(0o300)  # its journal may be looked for, its files not listed
        ls, show, folder = _as_unprivileged(
            ["store", "ls", str(root)],
            ["store", "show", str(root), "ds/m/clean"],
            ["store", "show", str(root), "ds/m/D1"],
        )
        assert ls["code"] == 1, ls
        assert re.search(r"ds/m/D1\s+unreadable", ls["out"]) and re.search(r"ds/m/D2\s+incomplete\s+2", ls["out"])
        fix = "this user may not read it: check its owner and permissions (`ls -l`)"
        assert ls["err"].splitlines() == [
            f"store partition ds/m/D1 in {root}: {root}/ds/m/D1 cannot be listed (permission denied): its rows and error records "
            f"are not counted; {fix}",
            f"store partition ds/m/clean in {root}: {denied[2]} cannot be listed (permission denied): its rows and error "
            f"records are not counted; {fix}",
            f"{root}/other cannot be listed (permission denied): the store's partitions under it are not listed; {fix}",
        ], ls
        assert show["code"] == 1 and f"{denied[2]}: permission denied — {fix}" in show["err"], show
        assert "free space" not in show["err"], show
        # its folder named, not a track removal's journal that "cannot be read" with "delete the partition" as the fix
        assert folder["code"] == 1 and folder["err"] == f"error: {root}/ds/m/D1: permission denied — {fix}\n", folder
    finally:
        for folder in denied:
            folder.chmod(0o755)


def test_store_commands_name_a_folder_this_user_may_not_list_and_are_not_stopped_by_one_elsewhere(tmp_path):
    """Another user's folder anywhere in the store stopped `repeval store rm` and `store settle` of any partition with
    pyarrow's raw "[Errno 13] Cannot list directory …" and a write's fix ("writable directories with free space");
    `store show` of a partition in it said "Failed stat()ing path", `store show --errors` of one "Cannot list
    directory". Now a partition elsewhere is removed as usual, and a folder that may hold one named is said with a
    read's fix; nothing is deleted. `store settle` stopped at the first such folder, settling nothing: it now settles
    every partition it can read and says each folder it cannot, exit 1."""
    root = tmp_path / "s"
    part = _write(EmbeddingStore(str(root)), ["a", "b"])
    part.finish({"dataset": "ds", "model": "m", "scenario": "clean", "model_version": "1"})
    replaced = Path(part.path) / "part-0-replaced.parquet"  # a stopped track removal's, committed: to be deleted
    shutil.copy(part.part_files()[0], replaced)
    (Path(part.path) / "_rewrite.json").write_text(json.dumps({"old": [replaced.name], "new": [], "committed": True}))
    (root / "ds" / "m" / "D5").mkdir()
    (root / "other" / "m" / "clean").mkdir(parents=True)
    denied = [root / "ds" / "m" / "D5", root / "other"]
    try:
        for folder in denied:
            folder.chmod(0)
        rm, rm_other, show, errors, settle = _as_unprivileged(
            ["store", "rm", str(root), "ds/m/clean"],
            ["store", "rm", str(root), "*/m/clean", "--yes"],
            ["store", "show", str(root), "other/m/clean"],
            ["store", "show", str(root), "ds/m/D5", "--errors"],
            ["store", "settle", str(root)],
        )
    finally:
        for folder in denied:
            folder.chmod(0o755)
    fix = "this user may not read it: check its owner and permissions (`ls -l`)"
    assert rm["code"] == 0 and "1 partition would be deleted" in rm["out"], rm
    assert rm_other["code"] == 1 and rm_other["err"] == (
        f"error: {root}/other cannot be listed (permission denied): */m/clean is not looked for under it; {fix}\n"
    ), rm_other
    assert show["code"] == 1 and show["err"] == f"error: {root}/other/m/clean: permission denied — {fix}\n", show
    assert errors["code"] == 1 and errors["err"] == (
        f"error: store partition ds/m/D5 in {root}: {denied[0]}: permission denied — {fix}\n"
    ), errors
    assert settle["code"] == 1 and settle["err"] == (
        f"{root}/other cannot be listed (permission denied): its partitions are not looked at; {fix}\n"
        f"store partition ds/m/D5 in {root}: {root}/ds/m/D5: permission denied — {fix}\n"
    ), settle
    assert settle["out"] == (
        f"ds/m/clean: finished a stopped track removal: deleted 1 replaced file\nsettled 1 folder in 1 partition of "
        f"{root}\n"
    ), settle
    assert not replaced.exists() and not (Path(part.path) / "_rewrite.json").exists()
    assert (root / "ds" / "m" / "clean" / "_manifest.json").is_file()


def test_a_partition_whose_manifest_or_part_file_this_user_may_not_read_is_unreadable_not_incomplete(tmp_path):
    """A complete partition's _manifest.json this user may not read (another user's) was read as missing: `repeval
    store ls` listed the partition as incomplete and a run took it as one to complete. It is now listed as unreadable
    with the file named and its fix, `repeval store show` stops on it, and the manifest is left as it was. So is one
    whose part file this user may not read: it was listed as damaged (its fix its permissions, not deleting it)."""
    root = tmp_path / "s"
    part = _write(EmbeddingStore(str(root)), ["a", "b"])
    part.finish({"dataset": "ds", "model": "m", "scenario": "clean", "model_version": "1"})
    shutil.copytree(root / "ds" / "m" / "clean", root / "ds" / "m" / "noise")
    manifest = root / "ds" / "m" / "clean" / "_manifest.json"
    body = manifest.read_bytes()
    denied = [manifest, *(root / "ds" / "m" / "noise").glob("part-*.parquet")]
    try:
        for path in denied:
            path.chmod(0)
        ls, as_json, show, rm = _as_unprivileged(
            ["store", "ls", str(root)],
            ["store", "ls", str(root), "--json"],
            ["store", "show", str(root), "ds/m/clean"],
            ["store", "rm", str(root), "ds/m/*"],
        )
    finally:
        for path in denied:
            path.chmod(0o644)
    said = f"{manifest}: permission denied — this user may not read it: check its owner and permissions (`ls -l`)"
    assert ls["code"] == 1 and re.search(r"ds/m/clean\s+unreadable", ls["out"]) and said in ls["err"], ls
    assert f"{denied[1]}: permission denied — this user may not read it" in ls["err"], ls
    assert [i["state"] for i in json.loads(as_json["out"])] == ["unreadable", "unreadable"], as_json
    unread = "(unreadable: this user may not read all of its files)"
    assert rm["code"] == 0 and rm["out"].splitlines()[:2] == [f"ds/m/clean  {unread}", f"ds/m/noise  {unread}"], rm
    assert show["code"] == 1 and show["err"] == f"error: {said}\n", show
    assert manifest.read_bytes() == body


def test_store_ls_flags_a_complete_partition_whose_rows_differ_from_its_manifest(tmp_path):
    """A part file copied into a complete partition by hand (120 rows read, the manifest says 60) was listed by
    `repeval store ls` as complete with the files' count, unflagged; probes read each track once and warn. It is now
    listed as damaged, with a line on stderr naming both counts and the fix (delete the copy, or `repeval store rm`),
    and the exit status is 1; so is a partition that lost a part file."""
    import shutil

    from repeval.cli import app

    store = EmbeddingStore(str(tmp_path / "s"))
    for scenario in ("clean", "D1", "D2"):
        part = store.partition("ds", "m", scenario)
        w = PartitionWriter(part, embedding_schema(DIM), 10)
        w.add_table(rows_table(_block(["a", "b"]), embedding_schema(DIM), PROV))
        w.flush()
        w.add_table(rows_table(_block(["c"]), embedding_schema(DIM), PROV))
        w.flush()
        part.finish({"dataset": "ds"})
    copied = store.partition("ds", "m", "D1").part_files()[0]
    shutil.copy(copied, copied.replace(".parquet", " (1).parquet"))  # a sync tool's copy
    Path(store.partition("ds", "m", "D2").part_files()[0]).unlink()
    res = CliRunner().invoke(app, ["store", "ls", str(tmp_path / "s")])
    assert res.exit_code == 1, res.output
    assert re.search(r"ds/m/clean\s+complete\s+3", res.stdout), res.stdout
    assert re.search(r"ds/m/D1\s+damaged\s+5", res.stdout) and re.search(r"ds/m/D2\s+damaged\s+1", res.stdout)
    said = res.stderr.splitlines()
    assert said[0].startswith("store partition ds/m/D1: its part files hold 5 rows, its manifest 3 — 2 rows of "
                              "tracks it has already"), said  # fmt: skip
    assert (
        "delete the part files copied in" in said[0] and f"`{store.partition('ds', 'm', 'D1').rm_command()}`" in said[0]
    )
    assert said[1].startswith("store partition ds/m/D2: its part files hold 1 row, its manifest 3 — 2 rows missing")


def test_store_ls_and_show_warn_of_a_stray_file_at_any_depth(tmp_path):
    """A file that is none of the store's was said at no depth: `ds/m/stray.txt` beside the partitions, or one in a
    partition's folder — which a plain Parquet reader of the partition (pq.read_table, duckdb) stops on — or deeper.
    `repeval store ls` now names each with one rule at every depth, `store show` those of its partition; the store's
    own files (lock, manifest, journal, hidden and temporary names) are not named, and the exit status stays 0. A
    `part-0.parquet.crc` (a Hadoop or Spark tool's, beside a copy) was taken for a part file, the partition damaged:
    only `part-*.parquet` are part files, the checksum a stray file."""
    from repeval.cli import app

    root = tmp_path / "s"
    part = _write(EmbeddingStore(str(root)), ["a", "b"])
    part.finish({"dataset": "ds", "model": "m", "scenario": "clean", "model_version": "1"})
    strays = ["notes.txt", "ds/notes.txt", "ds/m/stray.txt", "ds/m/clean/stray.txt", "ds/m/clean/x/y/stray.txt"]
    strays.append("ds/m/clean/part-0.parquet.crc")
    own = ["_lock.json", "ds/m/clean/.DS_Store", "ds/m/clean/_errors/.tmp-part-1.parquet", "_old/a/b/c/d.txt"]
    for rel in strays + own:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text("x")
    ls = CliRunner().invoke(app, ["store", "ls", str(root)])
    show = CliRunner().invoke(app, ["store", "show", str(root), "ds/m/clean", "--rows", "0"])
    assert ls.exit_code == 0 and re.search(r"ds/m/clean\s+complete\s+2", ls.stdout), ls.output
    said = ls.stderr.replace("\n", " ")
    assert said.startswith(
        f"warning: 6 files in {root} are none of the store's (repeval neither writes nor reads them): ds/m/clean/part-"
        "0.parquet.crc, ds/m/clean/stray.txt, ds/m/clean/x/y/stray.txt, … — a plain Parquet reader of a partition (pq.read_table, "
        "duckdb) stops on one in the partition's folder: move them out of the store"
    ), said
    assert show.exit_code == 0 and show.stderr == (
        f"warning: 3 files in ds/m/clean of {root} are none of the store's (repeval neither writes nor reads them): "
        "part-0.parquet.crc, stray.txt, x/y/stray.txt — a plain Parquet reader of a partition (pq.read_table, duckdb) stops on one in the "
        "partition's folder: move them out of the store\n"
    ), show.stderr


def test_a_store_under_a_folder_named_like_an_access_denied_error_is_read_as_usual(tmp_path):
    """A bucket's refusal is told by its words in the error (AccessDenied, HTTP status 403): a store under a folder
    named so — its name in every error about a file there — had every missing manifest read as refused, each
    incomplete partition `unreadable` (exit 1) and a run stopped; the error's quoted paths are not read now."""
    from repeval.cli import app
    from repeval.cloud_reach import refused

    root = tmp_path / "AccessDenied-audit" / "s"
    part = _write(EmbeddingStore(str(root)), ["a", "b"])  # stamped, no manifest: incomplete
    assert not part.complete
    ls = CliRunner().invoke(app, ["store", "ls", str(root)])
    assert ls.exit_code == 0 and re.search(r"ds/m/clean\s+incomplete\s+2", ls.stdout), ls.output
    with pytest.raises(OSError) as raised:  # not FileNotFoundError: pyarrow's plain OSError, the path quoted
        part.fs.open_input_stream(part.path)
    assert not refused(raised.value), raised.value


def test_store_ls_of_a_folder_with_no_partition_tells_no_one_to_move_its_files(tmp_path):
    """`repeval store ls` of a folder that holds no partition (a run directory given as the store, a dataset's
    folder) said "no partitions" and warned that its files were none of the store's: "move them out of the store" —
    the user's run files or audio. A folder with no partition is no store: its files are not called stray. And a stray
    file outside the partitions' folders was said to stop a plain Parquet reader of a partition: it does not."""
    from repeval.cli import app

    run = tmp_path / "runs" / "r1"
    run.mkdir(parents=True)
    for name in ("config.yaml", "status.json"):
        (run / name).write_text("x")
    ls = CliRunner().invoke(app, ["store", "ls", str(tmp_path / "runs")])
    assert ls.exit_code == 0 and ls.stdout == f"{tmp_path / 'runs'}: no partitions\n" and ls.stderr == "", ls.output
    # in a store, a stray file beside the partitions' folders is said without what a Parquet reader of a partition
    # does (it reads none of those)
    root = tmp_path / "s"
    _write(EmbeddingStore(str(root)), ["a"])
    (root / "ds" / "notes.txt").write_text("x")
    (root / "tune" / "exp" / "trial").mkdir(parents=True)  # listed as `not a partition`: its files not named again
    (root / "tune" / "exp" / "trial" / "result.json").write_text("x")
    ls = CliRunner().invoke(app, ["store", "ls", str(root)])
    assert ls.exit_code == 0 and ls.stderr == (
        f"warning: 1 file in {root} is none of the store's (repeval neither writes nor reads it): ds/notes.txt: move "
        "it out of the store\n"
    ), ls.output


def test_store_show_of_a_partition_folder_names_the_store_and_the_partition(tmp_path, monkeypatch):
    """`repeval store show STORE/DATASET/MODEL/SCENARIO` (a partition's own folder, as `ls` or a file browser shows
    it) was told it "is not a partition: name the partition after it (`repeval store show STORE/ds/m/clean
    DATASET/MODEL/SCENARIO`)" — a command that cannot work; it is told the command that shows it. A folder holding no
    partition was told the same: it is told to give the store."""
    from repeval.cli import app

    root = tmp_path / "s"
    _write(EmbeddingStore(str(root)), ["a"]).finish({"dataset": "ds"})
    res = CliRunner().invoke(app, ["store", "show", f"{root}/ds/m/clean/"])
    assert res.exit_code == 1 and res.stderr == (
        f"error: {root}/ds/m/clean/ is the folder of the store partition ds/m/clean: give the store, then the "
        f"partition (`repeval store show {root} ds/m/clean`)\n"
    ), res.output
    shown = CliRunner().invoke(app, ["store", "show", str(root), "ds/m/clean", "--rows", "0"])
    assert shown.exit_code == 0, shown.output
    with monkeypatch.context() as m:  # relative to the current folder: ./ as an absolute path is read
        m.chdir(tmp_path)
        res = CliRunner().invoke(app, ["store", "show", "./s/ds/m/clean"])
    assert res.exit_code == 1 and res.stderr.endswith("(`repeval store show ./s ds/m/clean`)\n"), res.output
    # a folder that holds no partition (a run directory, a dataset's) is no store: not told to name one after it
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.yaml").write_text("x")
    res = CliRunner().invoke(app, ["store", "show", str(tmp_path / "run")])
    assert res.exit_code == 1 and " ".join(res.stderr.split()) == (
        f"error: {tmp_path / 'run'} holds no store partition (no DATASET/MODEL/SCENARIO folder with part-*.parquet, "
        "_stamp.json or _manifest.json): give the embedding store (a configuration's run.store, `store` by default), "
        "then the partition (`repeval store show STORE DATASET/MODEL/SCENARIO`)"
    ), res.output
