"""Training loop shared by all models."""

from .trainer import TrainConfig, Trainer

__all__ = ["TrainConfig", "Trainer"]
