"""repeval: evaluate music audio embeddings at catalog scale on Ray."""

__version__ = "0.1.0"
