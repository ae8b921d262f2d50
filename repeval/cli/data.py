"""``repeval data``: render labelled audio, download a mirdata set, check a configuration's audio files."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer

from repeval.cli import data_app
from repeval.cli.common import ConfigArg, _load, windows_checked
from repeval.cli.errors import _fail, _guard
from repeval.config import ConfigError
from repeval.uri_text import shown


@data_app.command("render")
def data_render(
    out: Annotated[Path, typer.Argument(callback=windows_checked, help="output folder")],
    kind: Annotated[
        str,
        typer.Option(
            "--kind",
            help="notes: single notes of 10 instruments (multiclass); mixtures: 1-3 instruments at once (multilabel "
            "tagging, label_separator '|'); keys: chord progressions in the 24 keys (key estimation)",
        ),
    ] = "notes",
    notes: Annotated[int, typer.Option("--notes", help="notes per instrument (--kind notes)")] = 24,
    clips: Annotated[
        int | None, typer.Option("--clips", help="clips to render (--kind mixtures: 300, keys: 240 by default)")
    ] = None,
    seed: Annotated[
        int,
        typer.Option(
            "--seed",
            help="what is drawn at random — pitches and dynamics, mixtures, keys, the train/validation/test split — "
            "comes from it: the same seed renders the same files",
        ),
    ] = 0,
    manifest_format: Annotated[
        str, typer.Option("--format", help="manifest format for mixtures and keys: csv or parquet")
    ] = "csv",
    workers: Annotated[
        int | None,
        typer.Option("--workers", help="processes rendering mixtures or keys (default: one per CPU; same files)"),
    ] = None,
    audio_format: Annotated[
        str, typer.Option("--audio", help="audio files for mixtures and keys: wav or flac (lossless, ~half the size)")
    ] = "wav",
) -> None:
    """Render labelled audio from the General-MIDI SoundFont in the pretty-midi wheel (no download): a
    TinySOL-like note set (the quickstart's), instrument mixtures or chord progressions, at any size."""
    from dataclasses import replace

    from repeval.datasets.render import render_dataset, render_keys, render_mixtures
    from repeval.datasets.render_output import rendered_text
    from repeval.datasets.render_specs import KeySpec, MixtureSpec, RenderSpec

    procs = workers if workers is not None else os.cpu_count() or 1

    def go() -> None:
        for flag, value, least in (
            ("--notes", notes, 1),
            ("--clips", clips, 1),
            ("--workers", workers, 1),
            ("--seed", seed, 0),
        ):
            if value is not None and value < least:
                raise ValueError(f"{flag} must be at least {least}, got {value}")
        detail, counts = "", {"kept": 0}
        if kind == "notes":
            if clips is not None or manifest_format != "csv" or workers is not None or audio_format != "wav":
                raise ValueError(
                    "--clips, --format, --workers and --audio are for --kind mixtures and keys; notes take --notes"
                )
            spec = RenderSpec(notes_per_instrument=notes, seed=seed)
            m = render_dataset(out, spec)
            n, detail = len(spec.instruments) * notes, f" ({len(spec.instruments)} instruments × {notes})"
        elif kind == "mixtures":
            mix = MixtureSpec(seed=seed, manifest_format=manifest_format, audio_format=audio_format)
            mix = mix if clips is None else replace(mix, clips=clips)
            m, n = render_mixtures(out, mix, workers=procs, tally=counts), mix.clips
        elif kind == "keys":
            keys = KeySpec(seed=seed, manifest_format=manifest_format, audio_format=audio_format)
            keys = keys if clips is None else replace(keys, clips=clips)
            m, n = render_keys(out, keys, workers=procs, tally=counts), keys.clips
        else:
            raise ValueError(f"unknown --kind '{kind}'; valid: notes, mixtures, keys")
        typer.echo(rendered_text(kind, m, n, detail, counts["kept"]))

    _guard(go, storage_hint=RENDER_OUT_HINT)  # it writes no store or run directory: its own OUT folder


#: what to check when ``repeval data render OUT`` cannot write there (``_guard``'s storage hint)
RENDER_OUT_HINT = (
    "OUT is not a writable folder with free space (or a file lies on its path): render into another folder, "
    "`repeval data render DIR`, and give its manifest to the configuration"
)


@data_app.command("download")
def data_download(
    name: Annotated[str, typer.Argument(help="mirdata data set name")],
    data_home: Annotated[
        str | None,
        typer.Option(
            "--data-home",
            callback=windows_checked,
            help="where to put it: dataset.dir (default: mirdata's default folder, ~/mir_datasets/NAME, which a "
            "dataset without dir reads)",
        ),
    ] = None,
    index_only: Annotated[
        bool,
        typer.Option(
            "--index-only",
            help="only mirdata's index of it, into mirdata's package folder, where a dataset without index_path reads "
            "it (for data already here)",
        ),
    ] = False,
) -> None:
    """Download a mirdata data set and its index (needs network access)."""
    from repeval.datasets.cli_support import download

    if index_only:
        _guard(lambda: typer.echo(f"index downloaded to {download(name, partial=['index'])}"))
        return
    _guard(lambda: typer.echo(f"downloaded to {download(name, data_home)}"))


@data_app.command("check")
def data_check(
    config: ConfigArg,
    decode: Annotated[
        bool,
        typer.Option(
            "--decode",
            help="also decode every file whole, at its own rate (finds data corrupt part-way, files without samples, "
            "NaN/inf samples, samples far beyond full scale; reads every byte)",
        ),
    ] = False,
    workers: Annotated[
        int | None,
        typer.Option("--workers", help="threads checking files (default: one per CPU; more for a remote store)"),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            callback=windows_checked,
            help="write every missing and bad file to this .csv or .parquet, its folders created (dataset, track_id, "
            "audio_path, reason; a missing file's reason starts with `missing:`)",
        ),
    ] = None,
    dataset: Annotated[str | None, typer.Option("--dataset", help="check only the dataset of this name")] = None,
) -> None:
    """Find the audio files a run would turn into error records, before the run: every dataset of CONFIG is loaded as
    a run loads it (missing files are dropped and counted as missing), and each distinct audio file (also on s3:// or
    another pyarrow filesystem) is checked with what the run's decode stage runs where it opens a file — a regular
    file, not cut short or zero-filled, not a VBR MP3 without a Xing header, a header libsndfile opens, audio frames
    in it — and with --decode the whole file decoded, listing the files a run decodes only in part (run.truncated_audio:
    decode; an Ogg file without its end); the reason given is the error record's. Not checked: labels and
    splits (`repeval plan` reports rows the loaders drop), what deformations and models make of the audio. No Ray is
    started. Exit status 0: every file is good; 1: a file is bad or missing; 2: the configuration is invalid or its
    datasets cannot be loaded; 3: --out could not be written (the summary is printed whole before the error)."""
    from repeval.datasets.check import check_datasets, dataset_files, out_format
    from repeval.datasets.manifest_check import RUN_FIX

    cfg = _load(config, check_data=True, unreached_fix=RUN_FIX)  # no --skip-data-check here
    try:
        if workers is not None and workers < 1:
            raise ValueError(f"--workers must be at least 1, got {workers}")
        if out is not None:
            out_format(out)
        files = dataset_files(cfg, dataset)
    except (ConfigError, ValueError, OSError) as exc:
        _fail(exc)
        return

    def go() -> Any:
        try:
            return check_datasets(
                files, decode=decode, workers=workers, out=out, truncated_audio=cfg.run.truncated_audio
            )
        except KeyboardInterrupt:
            typer.secho("interrupted: nothing was changed; rerun the command to check again", err=True)
            raise typer.Exit(130) from None

    report = _guard(go)
    typer.echo(shown("\n".join(report.lines())))  # a URI as the user wrote it
    if report.out_error is not None:
        typer.secho(f"error: {report.out_error}", fg=typer.colors.RED, err=True)
    raise typer.Exit(report.exit_code)
