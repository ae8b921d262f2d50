"""Probe grids on Ray Tune: presets (:mod:`.presets`), grids and search spaces (:mod:`.search`),
planning and running (:mod:`.grid`), the trial functions (:mod:`.trial`), result tables (:mod:`.results`)."""
