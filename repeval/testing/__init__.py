"""Test helpers shipped with the package (fake runs, bad-audio corpus)."""
