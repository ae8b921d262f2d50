"""Run an experiment configuration stage by stage; every stage is resumable.

Run directory (``<runs_dir>/<run_id>/``): ``config.yaml``, ``splits/``, ``load_report.json`` (the rows each
dataset's loader dropped), ``tune/`` (Ray Tune experiments, TensorBoard-readable), ``groups/`` (per task ×
dataset × model test rows), ``history/``, ``failed.parquet``, ``models_left_out.json``
(embedding models left out: :mod:`repeval.run.left_out`), ``results.parquet``.

The stages live in :mod:`repeval.run` (one module per concept); this module re-exports what the commands, plans and
tests use, under the names they have always had.
"""

from repeval.run.context import (
    SMOKE_PCA_DIM,
    RunContext,
    check_run_id,
    config_yaml,
    fold_suffix,
    group_name,
    make_context,
    smoke_test_config,
)
from repeval.run.embed import stage_embed
from repeval.run.evaluate import stage_evaluate
from repeval.run.files import _read_json, _write_atomic, _write_text_atomic
from repeval.run.groups import _augment, _Pending, group_inputs, group_trained, inputs_change, training_hash
from repeval.run.rows import (
    audio_sources,
    check_shared_tracks,
    deform_ids,
    fold_rows,
    load_report,
    load_rows,
    not_evaluated,
)
from repeval.run.train import _fold_hint, _record_failed, stage_train

STAGES = ("deform", "embed", "train", "evaluate")

__all__ = [
    "SMOKE_PCA_DIM",
    "STAGES",
    "RunContext",
    "_Pending",
    "_augment",
    "_fold_hint",
    "_read_json",
    "_record_failed",
    "_write_atomic",
    "_write_text_atomic",
    "audio_sources",
    "check_run_id",
    "check_shared_tracks",
    "config_yaml",
    "deform_ids",
    "fold_rows",
    "fold_suffix",
    "group_inputs",
    "group_name",
    "group_trained",
    "inputs_change",
    "load_report",
    "load_rows",
    "make_context",
    "not_evaluated",
    "smoke_test_config",
    "stage_embed",
    "stage_evaluate",
    "stage_train",
    "training_hash",
]
