"""The Parquet embedding store."""

from repeval.store.store import EmbeddingStore, Partition, PartitionWriter, StoreConflict

__all__ = ["EmbeddingStore", "Partition", "PartitionWriter", "StoreConflict"]
