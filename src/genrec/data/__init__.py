"""Data stage: format loaders -> preprocessing -> SequenceDataset (cached on disk)."""

from .config import DataConfig, cache_root, data_root
from .dataset import EvalSplit, SequenceDataset
from .errors import DataError
from .presets import preset
from .preprocess import prepare_dataset

__all__ = ["DataConfig", "DataError", "EvalSplit", "SequenceDataset", "cache_root", "data_root",
           "prepare_dataset", "preset"]
