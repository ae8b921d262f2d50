"""Datasets: loaders that turn a dataset config into catalog rows for a task."""

from repeval.datasets import catalog as _catalog  # noqa: F401  (registers loaders)
from repeval.datasets.base import DATASETS, ROW_SCHEMA, SPLITS, LoadReport, register_dataset
from repeval.datasets.load import load_dataset

__all__ = ["DATASETS", "ROW_SCHEMA", "SPLITS", "LoadReport", "load_dataset", "register_dataset"]
