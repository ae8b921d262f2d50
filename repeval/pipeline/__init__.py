"""Ray Data pipeline: catalog rows → decode → deform → embed → Parquet store."""
