"""Datasets: loaders that turn a dataset config into catalog rows for a task."""

from repeval.datasets import catalog as _catalog  # noqa: F401  (registers loaders)
from repeval.datasets import magnatagatune as _magnatagatune  # noqa: F401
from repeval.datasets import mirdata_loader as _mirdata_loader  # noqa: F401
from repeval.datasets import mtg_jamendo as _mtg_jamendo  # noqa: F401
from repeval.datasets import vocalset as _vocalset  # noqa: F401
from repeval.datasets.base import (
    DATASET_INFO,
    DATASETS,
    ROW_SCHEMA,
    SPLITS,
    DatasetInfo,
    LabelInfo,
    LoadReport,
    register_dataset,
)
from repeval.datasets.encoding import KEY_CLASSES, LabelEncoder, decode_labels, encode_labels, normalize_key
from repeval.datasets.load import dataset_folds, fold_config, load_dataset, load_folds
from repeval.datasets.split_files import load_splits, save_splits
from repeval.datasets.splits import fold_splits, stratified_split

__all__ = [
    "DATASETS",
    "DATASET_INFO",
    "KEY_CLASSES",
    "ROW_SCHEMA",
    "SPLITS",
    "DatasetInfo",
    "LabelEncoder",
    "LabelInfo",
    "LoadReport",
    "dataset_folds",
    "decode_labels",
    "encode_labels",
    "fold_config",
    "fold_splits",
    "load_dataset",
    "load_folds",
    "load_splits",
    "normalize_key",
    "register_dataset",
    "save_splits",
    "stratified_split",
]
