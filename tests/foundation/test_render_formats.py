"""`repeval data render --format` over a set rendered in the other format: the manifest it did not write is kept —
as it was when it lists the same clips, else as ``manifest.<fmt>.replaced`` — and what reads which is said."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pandas as pd
from typer.testing import CliRunner

REPO = Path(__file__).resolve().parents[2]


def test_rendering_another_manifest_format_keeps_the_manifest_it_did_not_write(tmp_path, monkeypatch, caplog):
    """`repeval data render --format parquet` over a CSV render deleted ``manifest.csv``, which the shipped
    configuration reads: its next run found no manifest. The same clips in another format keep the CSV as it was
    (its time too), and the render says both read the set; a render of other clips keeps the CSV, which no longer
    describes the audio, as ``manifest.csv.replaced`` with a warning, and says to point the configuration at the new
    manifest."""
    from repeval.cli import app

    monkeypatch.chdir(tmp_path)
    (tmp_path / "configs").mkdir()
    shutil.copy(REPO / "configs" / "key_estimation.yaml", tmp_path / "configs")

    def render(fmt: str, seed: int = 0) -> str:
        args = ["data", "render", "data/keys", "--kind", "keys", "--clips", "6", "--workers", "1", "--seed", str(seed)]
        r = CliRunner().invoke(app, [*args, "--format", fmt])
        assert r.exit_code == 0, r.output
        return " ".join(r.output.split())

    out = Path("data/keys")
    render("csv")
    first = out / "manifest.csv"
    stamp = first.stat().st_mtime_ns - 10**9
    os.utime(first, ns=(stamp, stamp))  # a second older: a rewrite would show
    said = render("parquet")
    assert first.stat().st_mtime_ns == stamp  # kept as it was
    rows = pd.read_csv(first, dtype=str)
    assert rows.equals(pd.read_parquet(out / "manifest.parquet").astype(str))
    assert f"{first} beside it lists the same clips (an earlier render's, kept): either reads this set" in said, said
    assert (
        f"configs/key_estimation.yaml reads {first}, the same clips: `repeval run configs/key_estimation.yaml`" in said
    )
    caplog.set_level("WARNING", logger="repeval")
    said = render("parquet", seed=1)  # other clips: the CSV describes audio no longer there
    assert not first.exists() and pd.read_csv(out / "manifest.csv.replaced", dtype=str).equals(rows)
    warned = " ".join(caplog.text.split())
    assert "data/keys/manifest.csv listed other clips than this render's manifest.parquet" in warned, warned
    assert (
        "kept as manifest.csv.replaced" in warned
        and "reads this set with manifest: data/keys/manifest.parquet" in warned
    )
    assert (
        f"configs/key_estimation.yaml reads {first}, which this render did not write: set its manifest to "
        "data/keys/manifest.parquet (or render with --format csv), then `repeval run configs/key_estimation.yaml`"
    ) in said, said
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]  # no set-aside file left
    # the shipped configuration, run now, found no manifest and was told to render the CSV again (the clips rendered
    # before, over the set there now): it names the manifest beside it and the one replaced
    r = CliRunner().invoke(app, ["validate", "configs/key_estimation.yaml"])
    said = " ".join(r.output.split())
    assert (
        r.exit_code != 0
        and (
            "— data/keys/manifest.parquet is beside it (`repeval data render --format parquet` kept this one as "
            "manifest.csv.replaced, which lists clips rendered before): set manifest: data/keys/manifest.parquet"
        )
        in said
    ), said
    assert "write it first" not in said
    (out / "manifest.parquet").unlink()  # a CSV render interrupted: its manifest set aside until it finishes
    (out / "manifest.csv.replaced").rename(out / ".manifest.csv.previous")
    said = " ".join(CliRunner().invoke(app, ["validate", "configs/key_estimation.yaml"]).output.split())
    assert (
        "— a `repeval data render` into data/keys was interrupted, its manifest set aside as .manifest.csv.previous: "
        "render it again (the same command) to finish it"
    ) in said, said


def test_a_manifest_replaced_twice_keeps_the_first_replaced_one(tmp_path, monkeypatch, caplog):
    """A manifest a render kept as ``manifest.csv.replaced`` (a user's edited one, say) was overwritten by the next
    manifest a render replaced so: kept now as ``manifest.csv.replaced-2``, named in the warning and by a configuration
    that still reads ``manifest.csv``."""
    from repeval.cli import app

    monkeypatch.chdir(tmp_path)
    (tmp_path / "configs").mkdir()
    shutil.copy(REPO / "configs" / "key_estimation.yaml", tmp_path / "configs")
    out = Path("data/keys")
    caplog.set_level("WARNING", logger="repeval")
    for fmt, seed in [("csv", 0), ("parquet", 1), ("csv", 2), ("parquet", 3)]:  # each other clips than the one before
        args = ["data", "render", str(out), "--kind", "keys", "--clips", "2", "--workers", "1", "--seed", str(seed)]
        r = CliRunner().invoke(app, [*args, "--format", fmt])
        assert r.exit_code == 0, r.output
        if seed == 0:
            first = pd.read_csv(out / "manifest.csv", dtype=str)
    assert pd.read_csv(out / "manifest.csv.replaced", dtype=str).equals(first)  # the first one replaced, as it was
    assert (out / "manifest.csv.replaced-2").is_file() and (out / "manifest.parquet.replaced").is_file()
    assert "so it is kept as manifest.csv.replaced-2" in " ".join(caplog.text.split())
    said = " ".join(CliRunner().invoke(app, ["validate", "configs/key_estimation.yaml"]).output.split())
    assert "kept this one as manifest.csv.replaced-2, which lists clips rendered before" in said, said
