"""A full run on rendered instrument notes with a real embedded Ray: embed → probes → results."""

from __future__ import annotations

import csv
import html
import json
import re
import shlex
from pathlib import Path

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest
import yaml

from repeval import runner
from repeval.config import load_config
from repeval.cpu import MODEL_TUNABLES
from repeval.store import EmbeddingStore
from repeval.testing.configs import notes_dataset

#: a linear probe that learns the rendered notes' four instruments within 60 epochs
LINEAR = {
    "name": "linear",
    "hidden_units": [],
    "standardize": True,
    "learning_rate": 0.01,
    "batch_size": 16,
    "epochs": 60,
}


@pytest.fixture(scope="module")
def run_config(rendered_notes, tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e")
    # one corrupt file among real ones: it must become an error record, not a crash
    manifest = root / "manifest.csv"
    rows = list(csv.DictReader(rendered_notes.open()))
    bad = root / "corrupt.wav"
    bad.write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt garbage")
    with manifest.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        for r in rows:
            w.writerow({**r, "audio_path": str(rendered_notes.parent / r["audio_path"])})
        w.writerow({**rows[0], "track_id": "corrupt", "audio_path": str(bad), "split": "test"})
        # and one whose file is missing: dropped at load (load_report.json), not evaluated either
        w.writerow({**rows[0], "track_id": "gone", "audio_path": str(root / "gone.wav"), "split": "test"})
    cfg = {
        "run": {"run_id": "e2e", "store": str(root / "store"), "runs_dir": str(root / "runs"), "part_rows": 16},
        "experiments": [
            {
                "task": {"name": "instrument", "type": "multiclass_classification"},
                "datasets": [notes_dataset(manifest)],
                "deformations": [[{"type": "Gain", "params": {"min_gain_db": -12, "max_gain_db": -12, "p": 1}}]],
                "embedding_models": ["mfcc-stats"],
                "downstream_models": [
                    LINEAR,
                    {"name": "mlp", "hidden_units": ["infer"], "standardize": True, "batch_size": 16, "epochs": 60},
                ],
                "metrics": ["f1_macro", "accuracy"],
            }
        ],
    }
    path = root / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_full_run(ray_session, run_config):
    cfg = load_config(run_config)
    ctx = runner.make_context(cfg)
    summary = runner.stage_embed(ctx)
    n_tracks = 48
    n_test = 8  # 4 instruments × round(0.15 × 12) test notes
    assert summary.errors == 2  # the corrupt file, in clean and in the deformed test partition
    assert summary.computed == n_tracks + n_test
    # the summary names the failed tracks, and the commands that list every error record (which work as printed),
    # its scenarios in the configuration's order (clean, then D1: as tables and the report have them)
    text = summary.text().splitlines()
    assert text[0] == summary.line() and "2 errors (decode 2)" in text[0]
    assert text[0].startswith(f"embedded {n_tracks + n_test} rows [clean {n_tracks}, D1 {n_test}] from "), text[0]
    assert text[1].startswith("error records (2; track, partition, stage: reason)")
    failed = [ln.split(None, 2) for ln in text[2:4]]
    assert sorted((f[0], f[1]) for f in failed) == [
        ("corrupt", "notes/mfcc-stats/D1"),
        ("corrupt", "notes/mfcc-stats/clean"),
    ]
    assert all(f[2].startswith("decode: ") and len(f[2]) > len("decode: ") for f in failed), text
    commands = [shlex.split(ln) for ln in text[5:]]
    assert commands == [
        ["repeval", "store", "show", cfg.run.store, f"notes/mfcc-stats/{sid}", "--errors"] for sid in ("clean", "D1")
    ], text
    from typer.testing import CliRunner

    from repeval.cli import app

    shown = CliRunner().invoke(app, commands[0][1:])
    assert shown.exit_code == 0 and "notes/mfcc-stats/clean: 1 error record: decode 1" in shown.output
    assert re.search(r"\ncorrupt\s+test\s+decode\s", shown.output), shown.output

    store = EmbeddingStore(cfg.run.store)
    clean = store.partition("notes", "mfcc-stats", "clean")
    d1 = store.partition("notes", "mfcc-stats", "D1")
    assert clean.complete and d1.complete
    m = clean.manifest()
    assert m["rows"] == n_tracks and m["errors"] == 1
    t = pq.read_table(clean.path)  # readable by plain pyarrow
    assert t.num_rows == n_tracks and len(set(t.column("track_id").to_pylist())) == n_tracks
    assert t.schema.field("embedding").type.list_size == 40
    errs = clean.read_errors().to_pylist()
    assert errs[0]["track_id"] == "corrupt" and errs[0]["stage"] == "decode"
    # only the test split is deformed, and the sampled parameters are stored with the embedding
    d1_rows = d1.read().to_pylist()
    assert {r["split"] for r in d1_rows} == {"test"}
    assert json.loads(d1_rows[0]["deformation_params"])[0]["type"] == "Gain"

    # rerunning embeds nothing new
    again = runner.stage_embed(ctx)
    assert again.computed == 0
    # …and says which tracks still have error records from the first run (they are not evaluated): one track's
    # records in two partitions, said as such (it was "2 track(s)")
    again_text = again.text().splitlines()
    assert again_text[1].startswith("2 error records of earlier runs kept for this run's tracks, in 2 partitions"), (
        again_text
    )
    assert [shlex.split(ln)[4] for ln in again_text[2:]] == ["notes/mfcc-stats/clean", "notes/mfcc-stats/D1"]

    t_summary = runner.stage_train(ctx)
    assert t_summary["trained"] == 1 and not t_summary["failed"]
    results = runner.stage_evaluate(ctx).to_pandas()
    agg = results[results["label"].isna()]
    assert set(agg["probe"]) == {"linear", "mlp"}
    assert set(agg["scenario"]) == {"clean", "D1"}
    assert set(agg["metric"]) == {"f1_macro", "accuracy"}
    assert len(agg) == 2 * 2 * 2
    f1 = agg[(agg["metric"] == "f1_macro") & (agg["scenario"] == "clean")]["value"]
    assert f1.max() > 0.5  # chance is 0.25 for 4 balanced classes
    per_label = results[results["label"].notna() & (results["metric"] == "f1_macro")]
    assert set(per_label["label"]) == {"piano", "violin", "trumpet", "flute"}
    # the corrupt file failed in both scenarios: D1's Δ is over every test track, the values' difference
    pair = agg.pivot_table(
        index=["probe", "metric"], columns="scenario", values=["value", "delta", "n_test", "n_delta"]
    )
    assert (pair[("n_delta", "D1")] == pair[("n_test", "clean")]).all() and pair[("n_test", "clean")].eq(n_test).all()
    assert pair[("delta", "D1")].to_numpy() == pytest.approx(
        (pair[("value", "D1")] - pair[("value", "clean")]).to_numpy()
    )
    assert (ctx.run_dir / "results.parquet").exists()
    assert (ctx.run_dir / "splits" / "instrument__notes.parquet").exists()
    hist = pq.read_table(ctx.run_dir / "history" / "instrument__notes__mfcc-stats.parquet").to_pandas()
    assert hist["epoch"].max() >= 1

    # the report lists the tracks left out of evaluation: the missing file dropped at load, the corrupt one's
    # error records (read from the run's store)
    from repeval.report.html import write_report

    page = write_report([ctx.run_dir], ctx.run_dir / "report.html").read_text()
    section = page[page.index('<section id="not-evaluated">') : page.index("</section>", page.index("not-evaluated"))]
    assert "dropped when notes was loaded for instrument: 1 track not evaluated" in section
    assert "1 missing audio file: gone (" in section
    table = section[section.index("<tbody>", section.index('id="left-out-errors"')) :]
    cells = [re.findall(r"<td[^>]*>(.*?)</td>", r) for r in re.findall(r"<tr>(.*?)</tr>", table)]
    assert [c[:6] for c in cells] == [
        ["notes", "mfcc-stats", sid, "corrupt", "test", "decode"] for sid in ("clean", "D1")
    ], cells
    assert all(c[6] for c in cells) and "Error records (2)" in section and "Shown: all 2" in section
    assert (  # what computes them again: it named --retry-errors (in the section's head) alone
        "Once their files (or the model failing on them) are fixed, <code>repeval run --retry-errors</code> computes "
        "them again, or <code>--retry-model mfcc-stats</code> those of that model alone." in section
    ), section
    # `repeval runs` says them too, as the report counts them (it said the row dropped at load alone)
    from repeval.report.runs import runs_text

    listed = runs_text(str(ctx.run_dir)).splitlines()
    said = [ln for ln in listed if "error record" in ln]
    first = html.unescape(re.findall(r"<li><code>(.*?)</code>", section)[0])  # the report's, of the clean partition
    assert said == [
        f"{ctx.run_dir.name}: 2 error records in the store — tracks that failed to decode, deform or embed, not "
        f"evaluated in their partition (`repeval report` lists them; `{first}` lists the partition with the most)"
    ], listed

    # rerunning train is a no-op: the group's results are kept
    assert runner.stage_train(ctx)["skipped"] == 1
    # each training session says which MKL code path produced the probes (they differ in rounding)
    env = json.loads((ctx.run_dir / "environment.json").read_text())
    assert [e["stage"] for e in env] == ["train", "train"]
    assert all("code path" in e["mkl"] or "own dispatch" in e["mkl"] for e in env), env
    # …and which path the trials themselves ran (here the session's Ray workers: the same as this process)
    from repeval.cpu import mkl_status

    assert env[0]["trials_mkl"] == [mkl_status()] and "trials_mkl" not in env[1], env  # the rerun trained nothing
    # …and the pages their large tensors went on (the session's workers inherit this process' setting)
    from repeval.cpu import huge_pages_status

    assert env[0]["pages"] == huge_pages_status() and env[0]["trials_pages"] == [huge_pages_status()], env
    # …and that their allocator kept the blocks a stack frees each step (this machine's C library is glibc): the
    # trials' processes started with the embedded Ray's malloc settings (repeval.cpu.ray_process_env)
    assert env[0]["trials_allocator"] == [f"the process' GLIBC_TUNABLES ({MODEL_TUNABLES})"], env
    (ctx.run_dir / "environment.json").write_text("{not json")  # a damaged record does not stop a run
    assert runner.stage_train(ctx)["skipped"] == 1
    assert len(json.loads((ctx.run_dir / "environment.json").read_text())) == 1


# ---------------------------------------------------------------- docs/store.md against a real run

STORE_DOC = Path(__file__).resolve().parents[2] / "docs" / "store.md"


def _doc_section(title: str) -> str:
    text = STORE_DOC.read_text()
    start = text.index(f"\n{title}\n")
    nxt = re.search(r"\n#{1,3} ", text[start + len(title) + 2 :])
    return text[start : start + len(title) + 2 + (nxt.start() if nxt else len(text))]


def _doc_table(title: str) -> list[list[str]]:
    """The rows of the first Markdown table under ``title`` (header and rule left out), as cell lists."""
    lines = [ln for ln in _doc_section(title).splitlines() if ln.startswith("|")]
    return [[c.strip() for c in ln.strip("|").split("|")] for ln in lines[2:]]


def _names(cell: str) -> list[str]:
    """Backticked names in a cell, leaving out what a parenthesis says about them."""
    return re.findall(r"`([^`]+)`", re.sub(r"\([^)]*\)", "", cell))


def _doc_type(text: str) -> tuple[str, bool]:
    return text.replace(" (not null)", ""), text.endswith("(not null)")


def _arrow_type(field: pa.Field) -> str:
    t = re.sub(r"<\w+: ", "<", str(field.type))  # the list's child name (item, element) is not documented
    return re.sub(r"\[\d+\]$", "[dim]", t)


def _check_columns(title: str, schema: pa.Schema, typed: bool = True) -> None:
    rows = _doc_table(title)
    documented = [n for r in rows for n in _names(r[0])]
    assert documented == schema.names, f"{title}: documented {documented}, written {schema.names}"
    if typed:
        for r in rows:
            doc_type, not_null = _doc_type(r[1])
            for name in _names(r[0]):
                f = schema.field(name)
                assert doc_type == _arrow_type(f) and not_null == (not f.nullable), (title, name, r[1], f)


def _finished_run(run_config: Path) -> tuple[Path, Path]:
    """The store and run directory of this module's run (made here if ``test_full_run`` did not run first)."""
    cfg = load_config(run_config)
    ctx = runner.make_context(cfg)
    if not (ctx.run_dir / "results.parquet").exists():
        runner.stage_embed(ctx)
        runner.stage_train(ctx)
        runner.stage_evaluate(ctx)
    return Path(cfg.run.store), ctx.run_dir


def test_docs_store_page_matches_what_a_run_writes(ray_session, run_config, tmp_path, monkeypatch, capsys):
    store, run_dir = _finished_run(run_config)
    part = store / "notes" / "mfcc-stats" / "clean"
    _check_columns("### Embedding rows (`part-*.parquet`)", pq.read_schema(next(part.glob("part-*.parquet"))))
    _check_columns("### Error records (`_errors/part-*.parquet`)", pq.read_schema(next(part.glob("_errors/part-*"))))
    manifests = [json.loads(m.read_text()) for m in store.glob("notes/*/*/_manifest.json")]
    assert any("params_as_applied" in m for m in manifests)  # a deformed partition's key: the run has one
    assert sorted(n for r in _doc_table("### The manifest (`_manifest.json`)") for n in _names(r[0])) == sorted(
        {k for m in manifests for k in m}
    )
    _check_columns("### `results.parquet`", pq.read_schema(run_dir / "results.parquet"))
    summary_rows = _doc_table("### `summary.parquet`")
    _check_columns("### `summary.parquet`", pq.read_schema(run_dir / "summary.parquet"), typed=False)
    for r in summary_rows:
        for name in _names(r[0]):
            assert _arrow_type(pq.read_schema(run_dir / "summary.parquet").field(name)) == r[1], (name, r[1])
    # environment.json: each key of a training session's entry is named on its line of the layout block
    [env_line] = [
        ln for ln in _doc_section("## The run directory").splitlines() if ln.startswith("  environment.json ")
    ]
    session = json.loads((run_dir / "environment.json").read_text())[-1]
    assert set(session) - {"python", "torch", "ray", "machine"} <= set(re.findall(r"`([^`]+)`", env_line)), session
    files = {r[0].strip("`"): r[1] for r in _doc_table("### `history/*.parquet`, `probes/*.parquet`, `failed.parquet`")}
    for folder in ("history/", "probes/"):
        schema = pq.read_schema(next((run_dir / folder).glob("*.parquet")))
        assert _names(files[folder]) == schema.names, (folder, schema.names)
        assert schema.field("fold").type == pa.int64() and schema.field("seed").type == pa.int64()
    # `store ls --json`: each key it prints is named where the page says what it prints
    from repeval.store.inspect import ls_text

    listed = json.loads(ls_text(EmbeddingStore(str(store)), as_json=True))
    said = _doc_section("### Reading the store")
    said = said[said.index("`repeval store ls --json` prints") :].split("\n\n")[0]
    assert set(listed[0]) <= set(re.findall(r"`([^`]+)`", said)), sorted(listed[0])
    # every file and folder the run and the store hold is in the page's layout blocks
    layout = _doc_section("## The run directory") + _doc_section("## The embedding store")
    for entry in run_dir.iterdir():
        assert re.search(rf"\n  {re.escape(entry.name)}[/\s]", layout), f"{entry.name} is not in docs/store.md"
    for entry in [*store.iterdir(), *part.iterdir()]:
        shown = re.sub(r"part-\S+\.parquet", "part-<time ns>-<id>.parquet", entry.name)
        assert shown in layout or entry.name == "notes", f"{entry.name} is not in docs/store.md"

    # every Python example on the page runs as written, on this run (its dataset is called notes here)
    (tmp_path / "runs").mkdir()
    (tmp_path / "store").symlink_to(store)
    (tmp_path / "runs" / "quickstart").symlink_to(run_dir)
    monkeypatch.chdir(tmp_path)
    blocks = re.findall(r"```python\n(.*?)```", STORE_DOC.read_text(), re.S)
    assert len(blocks) >= 7
    outputs = []
    for code in blocks:
        exec(compile(code.replace("rendered_notes", "notes"), str(STORE_DOC), "exec"), {})  # the page's own examples
        outputs.append(capsys.readouterr().out)
    assert outputs[0].split() == ["(48,", "40)", "float32", "48"]  # the clean partition: 48 notes, 40-d MFCC stats
    assert "train" in outputs[1] and "test" in outputs[1]
    assert "D1" in outputs[2] and "clean" in outputs[2] and "mfcc-stats" in outputs[2]
    # every dataset at once, error records kept apart: clean 48 rows, D1 8 (the test split), the corrupt file in both
    assert re.search(r"│ notes\s+│ mfcc-stats\s+│ D1\s+│\s+8 │\s+1 │", outputs[3]), outputs[3]
    assert re.search(r"│ notes\s+│ mfcc-stats\s+│ clean\s+│\s+48 │\s+1 │", outputs[3]), outputs[3]
    assert outputs[3].count("│ corrupt ") == 2 and "decode" in outputs[3], outputs[3]
    assert "notes/mfcc-stats/clean (48, 40) 48" in outputs[4] and "notes/mfcc-stats/D1 (8, 40)" in outputs[4]
    assert "linear" in outputs[5] and "D1" in outputs[5]
    assert "delta" in outputs[6] and "D1" in outputs[6]


def test_report_error_records_capped_escaped_and_a_damaged_store_a_note(ray_session, run_config, tmp_path):
    """The report's list of error records stops at the first 100 (with the total), escapes what the store holds,
    and is written whatever state the store is in: a damaged error file, or a store that is gone, is a note."""
    import shutil

    from repeval.report.html import build_report_html
    from repeval.report.left_out import MAX_ERROR_ROWS
    from repeval.report.results import load_run
    from repeval.store.layout import ERROR_SCHEMA, write_table_atomic

    store, run_dir = _finished_run(run_config)
    copy = tmp_path / "store"
    shutil.copytree(store, copy)
    run_copy = tmp_path / "run"
    run_copy.mkdir()
    for name in ("results.parquet", "load_report.json"):
        shutil.copy(run_dir / name, run_copy / name)
    cfg = yaml.safe_load((run_dir / "config.yaml").read_text())

    def page(store_root: Path) -> str:
        (run_copy / "config.yaml").write_text(yaml.safe_dump({**cfg, "run": {**cfg["run"], "store": str(store_root)}}))
        return build_report_html([load_run(run_copy)])

    hostile = "<img src=x onerror=alert(1)>"
    n_more = 150
    extra = {c: [None] * n_more for c in ERROR_SCHEMA.names}
    extra.update(track_id=[f"{hostile}{i}" for i in range(n_more)], split=["test"] * n_more, stage=["embed"] * n_more,
                 reason=["a <b>bold</b> & odd\nreason"] * n_more)  # fmt: skip
    clean = copy / "notes" / "mfcc-stats" / "clean"
    write_table_atomic(pafs.LocalFileSystem(), str(clean / "_errors"), pa.table(extra, schema=ERROR_SCHEMA))
    text = page(copy)
    section = text[text.index('<section id="not-evaluated">') :]
    rows = re.findall(r"<tr>(.*?)</tr>", section[section.index("<tbody>") : section.index("</table>")], re.S)
    assert len(rows) == MAX_ERROR_ROWS == 100
    assert f"Error records ({n_more + 2})" in section and f"Shown: the first 100 of {n_more + 2}" in section
    assert hostile not in text and "&lt;img src=x onerror=alert(1)&gt;0" in section and "<b>bold" not in text
    assert f"notes/mfcc-stats/clean --errors</code> ({n_more + 1})" in section

    # a damaged error file: its partition is named with the fix, the others' records are still listed
    d1 = next((copy / "notes" / "mfcc-stats" / "D1" / "_errors").glob("part-*.parquet"))
    d1.write_bytes(d1.read_bytes()[:20])
    text = page(copy)
    assert "notes/mfcc-stats/D1: store partition notes/mfcc-stats/D1" in text and "not a readable Parquet file" in text
    assert f"Error records ({n_more + 1})" in text and "delete that file" in text
    # no store where the run says: a note, and the rest of the report
    text = page(tmp_path / "moved")
    assert f"error records not read from the embedding store at {tmp_path / 'moved'}: no embedding store at" in text
    assert "Model comparison" in text and "Error records" not in text
    # no error record and nothing dropped at load: no section
    shutil.rmtree(clean / "_errors")
    (copy / "notes" / "mfcc-stats" / "D1" / "_errors" / d1.name).unlink()
    (run_copy / "load_report.json").unlink()
    text = page(copy)
    assert 'id="not-evaluated"' not in text and "Model comparison" in text


def test_runs_lists_each_run_and_how_far_it_got(ray_session, run_config):
    from typer.testing import CliRunner

    from repeval.cli import app
    from repeval.report.runs import list_runs

    _, run_dir = _finished_run(run_config)
    runs_dir = run_dir.parent
    started = runs_dir / "started-only"
    started.mkdir(exist_ok=True)
    (started / "config.yaml").write_text((run_dir / "config.yaml").read_text())
    (runs_dir / "not-a-run").mkdir(exist_ok=True)  # no config.yaml: left out
    infos = {i["run"]: i for i in list_runs(str(runs_dir))}
    assert set(infos) == {"e2e", "started-only"}
    e2e = infos["e2e"]
    assert e2e["state"] == "evaluated" and e2e["grids_trained"] == 1
    assert e2e["result_rows"] == pq.read_metadata(run_dir / "results.parquet").num_rows
    assert e2e["tasks"] == ["instrument"] and e2e["models"] == ["mfcc-stats"] and e2e["failed_trainings"] == 0
    assert infos["started-only"]["state"] == "started" and infos["started-only"]["result_rows"] is None
    said = STORE_DOC.read_text()
    said = said[said.index("`repeval runs runs --json` prints") :].split("\n\n")[0]
    assert set(e2e) <= set(re.findall(r"`([^`]+)`", said)), sorted(e2e)  # each key it prints is documented
    res = listed = CliRunner().invoke(app, ["runs", str(runs_dir)])
    assert re.fullmatch(r"[0-9a-f]{8}", e2e["test_set"]) and infos["started-only"]["test_set"] is None
    assert res.exit_code == 0 and re.search(
        rf"\ne2e\s+evaluated\s+instrument\s+mfcc-stats\s+{e2e['test_set']}\s+\d+\s+0\s", res.output
    )
    res = CliRunner().invoke(app, ["runs", str(runs_dir / "missing")])
    assert res.exit_code == 1 and "no runs directory at" in res.output
    # its error names `--runs-dir`, as `run` and `plan` take it: `runs` takes it too (it was "No such option")
    assert "--runs-dir" in res.output
    assert CliRunner().invoke(app, ["runs", "--runs-dir", str(runs_dir)]).output == listed.output
    both = CliRunner().invoke(app, ["runs", str(runs_dir), "--runs-dir", str(runs_dir / "missing")])
    assert both.exit_code == 1 and "two runs directories given" in both.output, both.output


def test_a_spilled_catalog_plan_runs_end_to_end(ray_session, rendered_notes, tmp_path, monkeypatch):
    """A catalog planned through spill files (partitions of 8 rows: duplicate check, rows table and splits
    memory-mapped from unlinked Arrow IPC files) embeds, trains and evaluates like an in-memory one, with the
    same splits; no spill file is left behind."""
    from repeval.datasets import load_dataset, spill

    cfg_dict = {
        "run": {"run_id": "spilled", "store": str(tmp_path / "store"), "runs_dir": str(tmp_path / "runs")},
        "experiments": [
            {
                "task": {"name": "instrument", "type": "multiclass_classification"},
                # no split column: the seeded stratified split is computed from the spilled table
                "datasets": [notes_dataset(rendered_notes, split_column=None, split_ratios=[0.6, 0.2, 0.2])],
                "embedding_models": ["mfcc-stats"],
                "downstream_models": [LINEAR],
                "metrics": ["accuracy"],
            }
        ],
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg_dict))
    cfg = load_config(path)
    ds, task = cfg.experiments[0].datasets[0], cfg.experiments[0].task
    in_memory, _ = load_dataset(ds, task)
    spill_dir = tmp_path / "spill"
    monkeypatch.setenv("REPEVAL_SPILL_DIR", str(spill_dir))
    monkeypatch.setattr(spill, "PARTITION_ROWS", 8)
    ctx = runner.make_context(cfg)
    summary = runner.stage_embed(ctx)
    rows = ctx.rows[(0, "notes")]
    assert rows.equals(in_memory) and rows.num_rows == 48
    # the planned table is memory-mapped from an unlinked spill file, not on the heap
    address = rows.column("track_id").chunk(0).buffers()[2].address
    mapped = [ln for ln in Path("/proc/self/maps").read_text().splitlines() if "repeval-table-" in ln]
    assert mapped and all(ln.endswith("(deleted)") for ln in mapped)
    assert any(int(ln.split("-")[0], 16) <= address < int(ln.split()[0].split("-")[1], 16) for ln in mapped)
    assert summary.computed == 48 and summary.errors == 0
    assert runner.stage_train(ctx)["trained"] == 1
    results = runner.stage_evaluate(ctx).to_pandas()
    acc = results[results["label"].isna() & (results["metric"] == "accuracy")]["value"]
    assert len(acc) == 1 and acc.iloc[0] > 0.5  # chance is 0.25
    saved = pq.read_table(ctx.run_dir / "splits" / "instrument__notes.parquet")
    assert saved.column("split").to_pylist() == in_memory.column("split").to_pylist()
    assert saved.column("split").to_pylist().count("test") == 4 * 2  # 12 notes per instrument: 7/3/2
    del rows, ctx
    assert list(spill_dir.iterdir()) == []


#: `repeval run CONFIG` in a process of its own, which then says whether it started (or attached to) a Ray
RERUN = """
import sys, ray
from repeval.cli import app
try:
    app(args=["run", sys.argv[1]], standalone_mode=False)
finally:
    print("RAY_STARTED", ray.is_initialized(), flush=True)
"""


def test_a_rerun_with_nothing_left_to_do_starts_no_ray(ray_session, run_config):
    # it started the embedded Ray before it knew there was nothing to embed or train: a rerun that only printed the
    # results waited 20–45 s for Ray's start-up on a busy machine
    import os
    import subprocess
    import sys

    _finished_run(run_config)
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    r = subprocess.run([sys.executable, "-c", RERUN, str(run_config)], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stdout + r.stderr[-3000:]
    assert "nothing to embed: 2 partitions already complete" in r.stdout, r.stdout
    assert "nothing to train: 1 probe grid already done" in r.stdout and "results: " in r.stdout, r.stdout
    assert r.stdout.strip().endswith("RAY_STARTED False"), r.stdout
