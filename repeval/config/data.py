"""The task an experiment evaluates and the data sets it is evaluated on (``task:``, ``datasets:``)."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from repeval.config.base import FileName, PathText, Strict
from repeval.config.embed import DeformationScenario
from repeval.tasks import effective_task_type

# --------------------------------------------------------------------------- task


class TaskConfig(Strict):
    # mir_ref's spellings: aggregation, and feature_aggregation (its repository's configs and loader)
    key_aliases: ClassVar[dict[str, str]] = {
        "aggregation": "embedding_aggregation",
        "feature_aggregation": "embedding_aggregation",
    }

    #: the task's name (in results and run file names); the dataset's label of this name is the one predicted
    #: unless ``label`` is set; ``key_estimation`` or ``key`` with ``multiclass_classification`` is key estimation
    name: FileName
    #: what the probes predict: one class per track, a set of tags, a number, or one of the 24 keys
    #: (scored with mir_eval's weighted key score)
    type: Literal[
        "multiclass_classification",
        "multilabel_classification",
        "regression",
        "key_estimation",
    ]
    #: ``mean`` (mir_ref's ``embedding_mean``): probes see one embedding per track, the mean over its frames;
    #: ``prediction``: probes train on frame-level embeddings (each frame labelled with its track's label) and a
    #: track's prediction is the mean of its frames' predictions (validation and test are per track);
    #: ``attention``: probes pool each track's frame-level embeddings with learned attention weights (a query per
    #: probe, starting at mean pooling) and predict once per track
    embedding_aggregation: Literal["mean", "embedding_mean", "prediction", "attention"] = "mean"
    #: which label of the dataset the task predicts (default: the dataset's label for the task name)
    label: str | None = None

    @property
    def aggregation(self) -> str:
        """``mean`` (mir_ref's ``embedding_mean`` too), ``prediction`` or ``attention``."""
        return "mean" if self.embedding_aggregation == "embedding_mean" else self.embedding_aggregation

    @property
    def effective_type(self) -> str:
        return effective_task_type(self.type, self.name)

    def canonical(self) -> TaskConfig:
        """The task with equivalent spellings made one — mir_ref's ``embedding_mean`` is ``mean``, and key estimation
        may be written as a ``multiclass_classification`` named ``key_estimation``: two definitions of a task mean
        the same when their canonical forms are equal."""
        return self.model_copy(update={"embedding_aggregation": self.aggregation, "type": self.effective_type})


# ----------------------------------------------------------------------- datasets


class DatasetConfig(Strict):
    #: the data set: a registered loader's name (``repeval datasets``) for ``mirdata``/``custom``, any
    #: name for a ``catalog``; it names the dataset's store folder
    name: FileName
    #: ``mirdata`` | ``custom`` (repeval loaders) | ``catalog`` (a manifest)
    type: Literal["mirdata", "custom", "catalog"] = "custom"
    #: the data set's root directory. ``mirdata``: the folder mirdata reads (default: mirdata's own,
    #: ``~/mir_datasets/<name>``); ``custom``: the folder the loader reads (``repeval datasets NAME`` gives its
    #: layout); ``catalog``: where the manifest's relative audio paths start (default: the manifest's folder)
    dir: PathText | None = None
    #: ``single`` (one split) or ``all`` (k folds: val = fold i, test = fold i+1)
    split_type: Literal["single", "all"] = "single"
    #: mirdata index file (default: mirdata's own index of the data set, which mirdata 1.0 does not ship:
    #: ``repeval data download NAME --index-only`` fetches it; needed offline without it)
    index_path: PathText | None = None
    #: catalog manifest (CSV/Parquet; a path or pyarrow filesystem URI)
    manifest: PathText | None = None
    #: the character between a CSV manifest's columns (default: a tab for ``.tsv``/``.tab``, else ``,``): ``";"``
    #: for a spreadsheet's export in a locale whose decimal mark is a comma, ``tab`` (or ``"\t"``) for tabs
    delimiter: str | None = Field(default=None, json_schema_extra={"pattern": '^([^\\n\\r"]|[Tt][Aa][Bb]|\\\\t)$'})
    #: the decimal mark of a catalog's regression targets (pandas' ``decimal``): ``"."``, or ``","`` for a
    #: spreadsheet's export in a locale that writes ``0,31`` (its columns separated by ``delimiter: ';'``, or by commas
    #: with such numbers quoted: ``"0,31"``); with ``","`` a target cell is one number unless ``label_separator`` is
    #: another character than ``,``; a Parquet column of numbers is read as it is; with ``","``, ``1.234`` (1234 with a
    #: thousands separator, or 1.234 with a decimal point) is refused by row naming both
    decimal: Literal[".", ","] = "."
    #: catalog manifest column of track ids
    track_id_column: str = "track_id"
    #: catalog manifest column of audio file paths (relative to ``dir``)
    audio_column: str = "audio_path"
    #: catalog manifest column of labels (multi-label cells split at ``label_separator``)
    label_column: str | None = None
    #: catalog manifest column of official splits (train / validation / test; empty: drawn from
    #: ``split_ratios``)
    split_column: str | None = None
    #: group column for leakage-free splits (artist, singer, album); for mirdata data sets a track attribute
    group_column: str | None = None
    #: separator for multi-label cells in a catalog label column
    label_separator: str = Field(default=",", min_length=1)
    #: catalog manifest column of the labels annotated for each track (multilabel; cells split at
    #: ``label_separator``): a label not listed there nor in the track's labels is unannotated — with
    #: ``unannotated: mask`` neither present nor absent, as in OpenMIC-2018; an empty cell annotates every label
    annotated_column: str | None = None
    #: split_type single: train, validation and test fractions of the tracks without an official
    #: split (a seeded, stratified, group-aware split)
    split_ratios: tuple[float, float, float] = (0.8, 0.1, 0.1)
    #: split_type all: the number of folds (at least 3)
    n_folds: int = Field(default=5, ge=2)
    #: seed of the drawn split or folds (and of the ``max_tracks`` subset)
    split_seed: int = 0
    #: mir_ref repository spelling: deformations nested under a dataset
    deformations: tuple[DeformationScenario, ...] | None = None
    #: cap the number of tracks (debugging / smoke tests): a seeded subset keeping each split's classes in proportion
    max_tracks: int | None = Field(default=None, ge=1)
    #: subset of a multi-subset data set (MTG-Jamendo: genre, instrument, moodtheme, top50tags)
    subset: str | None = None
    #: which fold / official split to use (split_type all: val = fold, test = fold + 1; MTG-Jamendo split-k)
    fold: int = Field(default=0, ge=0)
    #: check that every audio file exists while loading (turn off for remote catalogs)
    check_files: bool = True
    #: allowed labels; others are reported with their row (and dropped)
    classes: tuple[str, ...] | None = None
    #: a multilabel data set that annotates only some labels per track (openmic2018, a catalog with
    #: ``annotated_column``): ``mask`` (OpenMIC-2018's official
    #: protocol) trains each label's output and scores each label on the tracks that annotate it, and micro
    #: averages pool the annotated (track, label) pairs only; ``absent`` counts every unannotated pair as absent
    unannotated: Literal["mask", "absent"] = "mask"

    @field_validator("delimiter", mode="before")
    @classmethod
    def _delimiter(cls, v: object) -> object:
        """``tab`` (and ``\\t`` as YAML reads it unquoted) is a tab; else one character that neither ends a line nor
        quotes a cell."""
        if isinstance(v, str) and v.strip().lower() in ("tab", "\\t"):
            return "\t"
        if isinstance(v, str) and (len(v) != 1 or v in '\n\r"'):
            raise ValueError(
                f"delimiter {v!r} is not the one character between a CSV manifest's columns — set it to that "
                "character, e.g. ';', '|' or tab"
            )
        return v

    @field_validator("split_ratios", mode="before")
    @classmethod
    def _three_ratios(cls, v: object) -> object:
        """Two fractions (or four) said as such, not as "split_ratios[2]: required key is missing"."""
        if isinstance(v, list | tuple) and len(v) != 3:
            raise ValueError(
                f"split_ratios takes three fractions — train, validation and test — summing to 1, got {len(v)}: {list(v)}"
            )
        return v

    @field_validator("split_ratios")
    @classmethod
    def _ratios(cls, v: tuple[float, float, float]) -> tuple[float, float, float]:
        if any(r < 0 for r in v) or abs(sum(v) - 1.0) > 1e-6 or v[0] <= 0 or v[2] <= 0:
            raise ValueError(
                f"split_ratios must be three non-negative numbers summing to 1 with train and test > 0, got {list(v)}"
            )
        return v

    @model_validator(mode="after")
    def _needs(self) -> DatasetConfig:
        if self.type == "catalog" and not self.manifest:
            raise ValueError("a 'catalog' dataset needs 'manifest' (a CSV or Parquet file)")
        if self.delimiter is not None and self.manifest:
            from repeval.datasets.manifest import PARQUET_SUFFIXES

            if self.manifest.endswith(PARQUET_SUFFIXES):
                raise ValueError(
                    f"delimiter is for CSV manifests, but {self.manifest} is Parquet, whose columns are named in it — "
                    "remove delimiter"
                )
        if self.split_type == "all" and self.n_folds < 3:
            raise ValueError(
                "split_type: all needs n_folds ≥ 3 (validation = fold i, test = fold i+1, train = the rest)"
            )
        if self.split_type == "all" and self.fold >= self.n_folds:
            raise ValueError(f"fold {self.fold} is out of range for n_folds {self.n_folds}")
        return self

    def keys_given(self) -> set[str]:
        """The keys set to something other than their default: a key left at its default (a dumped config writes
        every key) asks for nothing."""
        return {k for k in self.model_fields_set if getattr(self, k) != type(self).model_fields[k].default}

    @model_validator(mode="after")
    def _known_loader(self) -> DatasetConfig:
        from repeval.datasets.cli_support import check_dataset_keys, check_dataset_name
        from repeval.datasets.load import has_official_folds

        check_dataset_name(self.name, self.type, self.subset)
        given = self.keys_given()
        check_dataset_keys(self.name, self.type, given)
        # split keys of the other split_type: each would be silently ignored
        if self.split_type == "single" and "n_folds" in given:
            raise ValueError(
                f"n_folds is the number of folds of split_type: all, but split_type is single (the default), which "
                f"makes one split and ignores n_folds: set split_type: all for {self.n_folds} folds, or remove n_folds"
            )
        if self.split_type == "single" and "fold" in given and not has_official_folds(self):
            raise ValueError(
                f"fold picks a fold of split_type: all (or an official fold of a data set that has them, which "
                f"{self.type} dataset '{self.name}' has not), but split_type is single (the default), which ignores "
                "it: set split_type: all (and n_folds), or remove fold"
            )
        if self.split_type == "all" and "split_ratios" in given:
            raise ValueError(
                "split_ratios are the sizes of split_type: single's one split, but split_type is all, which makes "
                "n_folds equal folds (validation = fold i, test = fold i+1) and ignores them: remove split_ratios, or "
                "set split_type: single"
            )
        return self
