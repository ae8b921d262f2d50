"""A track decoded from part of its file reaches its store row noted (``audio_note``) through the stages a stream runs —
decode (streamed windows, or the whole track for a track-level scenario), embed, assemble — and a whole one does not;
under ``run.truncated_audio: error`` the cut file is an error record naming the setting. Without Ray (the UDFs as
plain callables)."""

from __future__ import annotations

import re

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import soundfile as sf

from repeval.config.embed import EmbeddingModelConfig
from repeval.pipeline.assemble import TrackAssembler, rows_table
from repeval.pipeline.embedder import Embed
from repeval.pipeline.stages import DecodeDeform
from repeval.store.layout import embedding_schema

SR = 16000
PROV = {"model": "m", "config_hash": "h", "repeval_version": "0", "created_at": np.datetime64(0, "ms")}


def _run(decoder: DecodeDeform, embed: Embed, paths: dict[str, str], scenarios: list[str]):
    batch = {
        "track_id": np.array(list(paths)),
        "audio_path": np.array(list(paths.values())),
        "split": np.array(["test"] * len(paths)),
        "scenarios": np.array([scenarios] * len(paths) + [None], dtype=object)[:-1],
    }
    assembler, blocks, errors = TrackAssembler(keep_frames=False), [], []
    for table in decoder(batch):
        block, errs = assembler.add(embed(table))
        blocks += [block] if block is not None else []
        errors += list(zip(errs.track_id, errs.scenario, errs.reason, strict=True))
    rows = [rows_table(b, embedding_schema(embed.model.embedding_dim), PROV) for b in blocks]
    return (pa.concat_tables(rows).to_pylist() if rows else []), errors


def test_a_cut_track_of_several_windows_is_noted_in_every_scenario_and_refused_under_error(tmp_path):
    """A WAV declaring 9 s and holding about 5.6 (cut short) and a whole one, in 2-s windows, clean and reversed
    (a track-level scenario: decoded whole, then windowed): under ``decode`` both tracks get rows in both scenarios,
    the cut one noted with what it declares and holds — its audio_seconds what it holds —, the whole one null; under
    ``error`` the cut one is an error record in each scenario, naming the setting, and the whole one is embedded."""
    t = np.arange(9 * SR) / SR
    sf.write(tmp_path / "whole.wav", (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), SR, subtype="PCM_16")
    data = (tmp_path / "whole.wav").read_bytes()
    (tmp_path / "cut.wav").write_bytes(data[: int(len(data) * 0.62)])
    paths = {"cut": str(tmp_path / "cut.wav"), "whole": str(tmp_path / "whole.wav")}
    embed = Embed(EmbeddingModelConfig(id="mfcc-stats", params={"chunk_s": 2.0, "sample_rate_hz": SR}))
    steps = {"reversed": [("Reverse", {"p": 1})]}
    decoder = DecodeDeform(SR, steps, 0, chunk_s=2.0, truncated_audio="decode")
    rows, errors = _run(decoder, embed, paths, ["clean", "reversed"])
    assert errors == []
    by = {(r["track_id"], r["scenario"]): r for r in rows}
    assert set(by) == {(tid, sid) for tid in paths for sid in ("clean", "reversed")}
    for sid in ("clean", "reversed"):
        cut, whole = by["cut", sid], by["whole", sid]
        assert whole["audio_note"] is None and whole["n_chunks"] > cut["n_chunks"] > 1, (whole, cut)
        assert abs(cut["audio_seconds"] - 5.58) < 0.02, cut
        assert cut["audio_note"] == f"cut WAV: declares 9.0 s, holds {cut['audio_seconds']:.1f} s", cut
    refusing = DecodeDeform(SR, steps, 0, chunk_s=2.0)  # run.truncated_audio's default: error
    rows, errors = _run(refusing, embed, paths, ["clean", "reversed"])
    assert {(r["track_id"], r["scenario"]) for r in rows} == {("whole", "clean"), ("whole", "reversed")}
    assert all(r["audio_note"] is None for r in rows)
    assert sorted((tid, sid) for tid, sid, _ in errors) == [("cut", "clean"), ("cut", "reversed")]
    for _, _, reason in errors:
        assert re.search(r"^truncated WAV: .*cut\.wav declares .* or set run\.truncated_audio: decode", reason), reason


def test_a_run_refuses_a_cut_flac_then_embeds_it_noted_into_the_same_partition_under_decode(
    ray_session, rendered_notes, tmp_path, caplog
):
    """On Ray, end to end: under the default a FLAC cut short is an error record naming the setting, and an Ogg
    without its end is embedded noted — the summary says "1 decoded partly". The same store under ``decode`` with
    ``--retry-errors`` embeds the FLAC into the same partition (its fingerprint unchanged: no conflict), noted;
    ``store show`` counts both noted rows, and the whole files' rows have none. Each manifest counts the noted rows
    by kind; back under ``error``, the run reusing the partition warns once of its cut row (not of the Ogg's), naming
    the partition and the fixes, and ``repeval plan`` notes the same in one line. The evaluation's count of the test
    tracks scored on them (what ``repeval runs`` and the report say) reads the run's saved test split. Once the catalog
    no longer lists the cut file, neither the run nor the plan says it: they count the run's own tracks, not the
    partition's noted rows."""
    import csv
    import logging

    import yaml

    from repeval import runner
    from repeval.config import load_config
    from repeval.store import EmbeddingStore
    from repeval.store.inspect import audio_notes, show_text
    from repeval.testing.badaudio import ogg_page_starts, tone, write_ogg
    from repeval.testing.configs import notes_dataset, notes_manifest

    rows = list(csv.DictReader(rendered_notes.open()))[:2]
    sf.write(tmp_path / "whole.flac", tone(4.0, 22050) * 0.5, 22050, subtype="PCM_16")
    data = (tmp_path / "whole.flac").read_bytes()
    (tmp_path / "cut.flac").write_bytes(data[: len(data) // 2])
    ogg = write_ogg(tmp_path / "whole.ogg", tone(3.0, 22050), 22050).read_bytes()
    (tmp_path / "cut.ogg").write_bytes(ogg[: ogg_page_starts(ogg)[len(ogg_page_starts(ogg)) // 2]])
    cut = [(name, tmp_path / name, None) for name in ("cut.flac", "cut.ogg")]
    manifest = notes_manifest(rendered_notes, tmp_path / "manifest.csv", rows, cut)

    def embed(listed=manifest, **run):
        cfg = {
            "run": {"run_id": "t", "store": str(tmp_path / "store"), "runs_dir": str(tmp_path / "runs"), **run},
            "experiments": [
                {
                    "task": {"name": "instrument", "type": "multiclass_classification"},
                    "datasets": [notes_dataset(listed)],
                    "embedding_models": [{"id": "mfcc-stats", "params": {"chunk_s": 10.0}}],
                    "downstream_models": [{"name": "linear", "hidden_units": []}],
                    "metrics": ["accuracy"],
                }
            ],
        }
        path = tmp_path / "config.yaml"
        path.write_text(yaml.safe_dump(cfg))
        ctx = runner.make_context(load_config(path))
        return runner.stage_embed(ctx, progress=False, retry_errors=bool(run))

    first = embed()
    assert (first.computed, first.errors, first.partial) == (3, 1, 1), first.line()
    assert first.cut_reused_warning() is None
    assert first.line().startswith("embedded 3 rows (1 decoded partly) from 4 tracks"), first.line()
    (_, tid, stage, reason), *_ = first.failures
    assert tid == "cut.flac" and stage == "decode" and "or set run.truncated_audio: decode" in reason, reason
    part = EmbeddingStore(str(tmp_path / "store")).partition("notes", "mfcc-stats", "clean")
    stamped = part.stamped()
    assert part.manifest()["noted_rows"] == {"cut": 0, "ogg": 1}
    second = embed(truncated_audio="decode")
    assert (second.computed, second.errors, second.partial, second.retried) == (1, 0, 1, 1), second.line()
    assert "(1 decoded partly)" in second.line()
    assert part.stamped()["fingerprint"] == stamped["fingerprint"]
    notes = dict(zip(*audio_notes(part).to_pydict().values(), strict=True))
    assert set(notes) == {"cut.flac", "cut.ogg"} and notes["cut.flac"].startswith("cut FLAC: declares 4.0 s, holds ")
    assert notes["cut.ogg"].startswith("Ogg without its end page: ")
    assert "2 rows with an audio_note" in show_text(part)
    t = part.read(["track_id", "audio_note"]).to_pylist()
    assert len(t) == 4 and sum(r["audio_note"] is None for r in t) == 2
    assert part.manifest()["noted_rows"] == {"cut": 1, "ogg": 1} == part.count_noted()
    with caplog.at_level(logging.WARNING, logger="repeval.pipeline.embed"):
        third = embed(truncated_audio="error")
    assert (third.computed, third.errors, dict(third.cut_reused)) == (0, 0, {"notes/mfcc-stats/clean": 1})
    said = [r.getMessage() for r in caplog.records if "cut short" in r.getMessage()]
    assert len(said) == 1 and "notes/mfcc-stats/clean: 1." in said[0], said
    assert f"repeval store rm {tmp_path / 'store'} notes/mfcc-stats/clean --yes" in said[0]
    assert "audio_note IS NULL" in said[0]
    from typer.testing import CliRunner

    from repeval.cli import app

    planned = CliRunner().invoke(app, ["plan", str(tmp_path / "config.yaml")])
    assert planned.exit_code == 0, planned.output
    noted = [ln for ln in planned.output.splitlines() if "cut short" in ln]
    assert len(noted) == 1 and noted[0].startswith("note: run.truncated_audio is error, but the store holds "), noted
    assert "which `repeval run` would reuse — notes/mfcc-stats/clean: 1. " in noted[0], noted
    assert f"repeval store rm {tmp_path / 'store'} notes/mfcc-stats/clean --yes" in noted[0]

    from repeval.run.partial_audio import partial_test_tracks

    ctx = runner.make_context(load_config(tmp_path / "config.yaml"), read_only=True)
    saved = ctx.run_dir / "splits" / "instrument__notes.parquet"
    ids = pq.read_table(saved).column("track_id").to_pylist()
    assert sorted(ids) == sorted([r["track_id"] for r in rows] + ["cut.flac", "cut.ogg"])
    for train in (ids[0] if ids[0] not in ("cut.flac", "cut.ogg") else ids[1], "cut.flac"):
        t = pq.read_table(saved)
        pq.write_table(t.set_column(t.schema.get_field_index("split"), "split",
                                    pa.array(["train" if i == train else "test" for i in ids])), saved)  # fmt: skip
        want = (1, 1) if train != "cut.flac" else (0, 1)
        assert partial_test_tracks(ctx) == [
            {"task": "instrument", "dataset": "notes", "model": "mfcc-stats", "scenario": "clean",
             "tracks": sum(want), "cut": want[0], "ogg": want[1]}
        ]  # fmt: skip

    # the catalog no longer lists the cut FLAC: the partition still holds its row (and counts it, noted_rows), but no
    # track of this run was embedded from a file cut short — nothing to warn of, in the run or in the plan
    fewer = notes_manifest(rendered_notes, tmp_path / "fewer.csv", rows, cut[1:])
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="repeval.pipeline.embed"):
        fourth = embed(fewer, truncated_audio="error")
    assert (fourth.computed, fourth.skipped, dict(fourth.cut_reused)) == (0, 3, {}), fourth.line()
    assert part.manifest()["noted_rows"]["cut"] == 1
    assert not [r for r in caplog.records if "cut short" in r.getMessage()]
    planned = CliRunner().invoke(app, ["plan", str(tmp_path / "config.yaml")])
    assert planned.exit_code == 0 and "cut short" not in planned.output, planned.output
