"""Recommenders behind one contract (models.base); importing this registers the built-ins."""

from . import popularity, sasrec, tiger  # noqa: F401
from .base import MODELS, Recommender, build_model

__all__ = ["MODELS", "Recommender", "build_model"]
