"""The Parquet embedding store."""

from repeval.store.fingerprint import StoreConflict
from repeval.store.partition import Partition
from repeval.store.store import EmbeddingStore
from repeval.store.writer import PartitionWriter

__all__ = ["EmbeddingStore", "Partition", "PartitionWriter", "StoreConflict"]
