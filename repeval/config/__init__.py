"""Configuration: YAML in, typed and fully validated models out."""

from repeval.config.data import DatasetConfig, TaskConfig
from repeval.config.embed import DeformationScenario, DeformationStep, EmbeddingModelConfig
from repeval.config.experiment import ExperimentConfig
from repeval.config.loader import ConfigError, load_config, parse_config
from repeval.config.probe import ProbeConfig
from repeval.config.run import RunConfig
from repeval.config.schema import Config

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
