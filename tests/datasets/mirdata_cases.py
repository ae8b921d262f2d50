"""What the mirdata tests share: the task type most of their samples have."""

from __future__ import annotations

MC = "multiclass_classification"
