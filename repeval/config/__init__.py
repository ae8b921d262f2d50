"""Configuration: YAML in, typed and fully validated models out."""

from repeval.config.loader import ConfigError, load_config, parse_config
from repeval.config.schema import (
    Config,
    DatasetConfig,
    DeformationScenario,
    DeformationStep,
    EmbeddingModelConfig,
    ExperimentConfig,
    ProbeConfig,
    RunConfig,
    TaskConfig,
)

__all__ = [
    "Config",
    "ConfigError",
    "DatasetConfig",
    "DeformationScenario",
    "DeformationStep",
    "EmbeddingModelConfig",
    "ExperimentConfig",
    "ProbeConfig",
    "RunConfig",
    "TaskConfig",
    "load_config",
    "parse_config",
]
