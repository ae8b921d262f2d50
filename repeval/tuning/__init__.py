"""Probe grids on Ray Tune."""
