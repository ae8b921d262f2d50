"""repeval's run settings (the top-level ``run:`` block) and the resources each stage requests (``run.resources``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from repeval.config.base import FolderText, Strict
from repeval.deformations import WHOLE_TRACK_MAX_S

#: what ``run.truncated_audio`` takes (:mod:`repeval.audio.partial`): refuse a file provably cut short, or decode
#: the whole frames it holds — defined here, not in repeval.audio, so that the configuration (which every probe
#: trial imports) does not import the audio stack
TruncatedAudio = Literal["error", "decode"]
#: the default ``run.truncated_audio`` (what repeval did before the setting existed)
DEFAULT_TRUNCATED_AUDIO: TruncatedAudio = "error"


class ResourcesConfig(Strict):
    #: CPUs for each embedding actor (fractional allowed)
    embed_num_cpus: float = Field(default=1.0, gt=0)
    #: GPU fraction per embedding actor when GPUs are used (see ``use_gpu``)
    embed_num_gpus: float = Field(default=1.0, ge=0)
    #: when GPU-capable embedding models and probe trials request GPUs: ``auto`` — when Ray reports GPUs as
    #: the stage starts; ``always`` — even before any GPU node is up (an autoscaling cluster whose GPU group
    #: starts at zero nodes adds them; without an autoscaler the stage waits for GPUs); ``never`` — CPUs only
    use_gpu: Literal["auto", "always", "never"] = "auto"
    #: CPUs per decode task
    decode_num_cpus: float = Field(default=0.5, gt=0)
    #: decode tasks running at once (default on one node: the CPUs the embedding actors leave free, rounded up, at
    #: least one; on a multi-node cluster: as many as Ray Data places). Raise it when decoding waits on slow storage
    decode_max_tasks: int | None = Field(default=None, ge=1)
    #: size of each model's actor pool (default: what the cluster's resources allow)
    embed_actors: int | None = Field(default=None, ge=1)
    #: where a model runs: ``auto`` — light models (handcrafted features: no weights, cheap to build) run inside
    #: the decode tasks, one stage on every CPU, and every other model in its actor pool; ``always`` — every
    #: model inside the decode tasks (built once per worker process); ``never`` — always an actor pool. ``auto``
    #: keeps the actor pool when ``embed_actors`` or ``embed_resources`` is set or the model takes a GPU
    embed_in_decode: Literal["auto", "always", "never"] = "auto"
    #: CPUs / GPUs for each probe trial
    trial_num_cpus: float = Field(default=1.0, gt=0)
    #: GPU fraction per probe trial
    trial_num_gpus: float = Field(default=0.0, ge=0)
    #: concurrent probe trials (default: what the cluster allows)
    max_concurrent_trials: int | None = Field(default=None, ge=1)
    #: custom Ray resources each embedding actor requests (issue 8), e.g. ``{embed: 1}`` pins the actors
    #: to the nodes started with ``--resources='{"embed": N}'``; the pool is capped at what the cluster offers
    embed_resources: dict[str, float] = Field(default_factory=dict)
    #: seconds a model's embedding actors, asked for on one node of a multi-node cluster (so that a decode task can
    #: always start: docs/cluster.md), may wait for Ray to place them again together once that node died before the
    #: run stops; raise it when your nodes take longer to come back (an autoscaler's, spot instances)
    pool_wait_s: float = Field(default=300.0, gt=0, allow_inf_nan=False)
    #: seconds such a pool, placed again where no node keeps a decode task's CPUs, may go without a batch before the
    #: run stops
    pool_stall_s: float = Field(default=60.0, gt=0, allow_inf_nan=False)

    @field_validator("embed_resources")
    @classmethod
    def _positive_resources(cls, v: dict[str, float]) -> dict[str, float]:
        reserved = {"CPU", "GPU", "memory", "object_store_memory"}
        for name, amount in v.items():
            if name in reserved:
                raise ValueError(f"{name!r} is set with embed_num_cpus / embed_num_gpus, not embed_resources")
            if not amount > 0:
                raise ValueError(f"embed_resources.{name} must be > 0, got {amount}")
        return v


class RunConfig(Strict):
    #: the run directory's name (letters, digits, ``.``, ``_``, ``-``; default: run-<date>-<time>)
    run_id: str | None = None
    #: embedding store root (path or pyarrow filesystem URI)
    store: FolderText = "store"
    #: runs directory (results, Tune experiments, reports)
    runs_dir: FolderText = "runs"
    #: the run's seed: deformation sampling and probe seeds derive from it
    seed: int = Field(default=0, ge=0)
    #: number of probe seeds per configuration (mean ± std over them)
    seeds: int = Field(default=1, ge=1)
    #: splits that are deformed (thesis protocol: test only)
    deform_splits: tuple[Literal["train", "validation", "test"], ...] = ("test",)
    #: a scenario with a step that acts on the track as a whole (Reverse, Shift, LoudnessNormalization, an SNR, …:
    #: repeval.deformations.TRACK_LEVEL) deforms each track whole, decoded up to this many seconds; a longer track
    #: is an error record in that scenario (null: no limit — a decode task then holds the whole track and its
    #: deformed copies). Scenarios of window-by-window steps (gain, filters, MP3, …) stream, whatever the length
    deform_whole_track_max_s: float | None = Field(default=WHOLE_TRACK_MAX_S, gt=0)
    #: audio sample rate used when a model does not declare one
    sample_rate_hz: int = Field(default=22050, ge=1000)
    #: a WAV, MP3 or FLAC cut short (its header declares more audio than the file holds: a copy or download that
    #: stopped): ``error`` — an error record naming the fix; ``decode`` — embed the whole frames it holds, with a
    #: warning, its row's ``audio_note`` saying so (``cut WAV: declares 30.0 s, holds 12.4 s``). An Ogg file without
    #: its end is decoded and noted under both (nothing tells it from a live stream's recording)
    truncated_audio: TruncatedAudio = DEFAULT_TRUNCATED_AUDIO
    #: store frame-level embeddings in every partition of the run. Without it, a (dataset, model)'s partitions keep
    #: them when a task that reads that dataset with that model has ``embedding_aggregation: prediction`` or
    #: ``attention`` (and a partition an earlier run stored with frames is completed with them); the others do not
    keep_frames: bool = False
    #: an embedding model whose first this many tracks all failed in the model with one error (none embedded) is
    #: stopped and left out of the run, its error records kept (a missing GPU, a broken install, a bug in its
    #: ``embed``); null: never stopped, every track tried (a model that fails only on some kind of track — the
    #: longest: out of memory, a length limit — in a dataset that lists them first). Not in the fingerprints
    stop_model_after_failed_tracks: int | None = Field(default=32, ge=1)
    #: rows per Parquet part file in the embedding store
    part_rows: int = Field(default=256, ge=1)
    #: CPUs, GPUs and actors for each stage
    resources: ResourcesConfig = Field(default_factory=ResourcesConfig)
    #: cap on every probe's epochs (and ASHA's max_t); None keeps each probe's own ``epochs``
    max_epochs: int | None = Field(default=None, ge=1)
    #: most probe configurations trained together (vectorised) in one Tune trial; 1 turns it off
    vectorize: int = Field(default=64, ge=1)
    #: Ray Tune ``reuse_actors`` (cuts per-trial start-up from ~2.4 s to ~0.3 s)
    reuse_actors: bool = True
    #: pack probe stacks too small to be worth a Tune trial of their own into shared trials (at least one
    #: trial per slot; see repeval.tuning.units.MIN_UNIT_COST). false: one trial per stack, so an exception in
    #: one trial never takes another stack's probes with it
    pack_trials: bool = True
    #: the probe grids of several groups (task, dataset, model[, fold]) run as one Tune experiment, their trial
    #: actors reused from group to group, while the groups' embeddings fit in this many MiB; 0: one experiment
    #: per group
    train_batch_mb: float = Field(default=1024, ge=0)
    #: bootstrap resamples over test tracks for ci_low / ci_high (0: no intervals)
    bootstrap_resamples: int = Field(default=1000, ge=0)
    #: the intervals' level is 1 - ci_alpha
    ci_alpha: float = Field(default=0.05, gt=0, lt=1)
    #: the configuration is a smoke test's: true means what --smoke-test means (its settings, run id <run_id>-smoke),
    #: which sets it — so a smoke run's config.yaml runs as that smoke test again, under the same run id (one already
    #: ending in -smoke is not suffixed again). Its tiny test sets' warnings that a bootstrap interval rests on few
    #: resamples are said in one line. The run id ending in -smoke does not make a run a smoke test
    smoke_test: bool = False

    @field_validator("run_id")
    @classmethod
    def _safe_id(cls, v: str | None) -> str | None:
        if v is not None:
            import re

            if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}", v):
                raise ValueError("run_id may use letters, digits, '.', '_' and '-' only")
        return v
