"""Named datasets: the DataConfig each one needs (format, files, text fields, filtering).

Experiment YAMLs refer to these with `data: {preset: NAME}` and may override any field.
Data is read from $GENREC_DATA_DIR/<name>/ (see config.data_root).
"""

from __future__ import annotations

from ..config import from_dict
from .config import DataConfig

PRESETS: dict[str, dict] = {
    # Built-in, needs no files: a deterministic catalogue with sequential structure.
    "synthetic": {"format": "synthetic", "options": {"num_items": 800, "num_users": 3000, "seed": 0}},
    # Amazon 2014 Beauty 5-core as in TIGER / P5 / S3-Rec (timestamp = position in sequence).
    "beauty": {"format": "generic", "text_fields": ["title", "categories"]},
    # Amazon 2014 Office_Products 5-core and Amazon 2018 Industrial_and_Scientific: one `text` field.
    "office": {"format": "generic", "text_fields": ["text"]},
    # Scientific is used as published (UniSRec/VQ-Rec): re-applying 5-core would drop 4 users.
    "scientific": {"format": "generic", "text_fields": ["text"],
                   "min_user_interactions": 0, "min_item_interactions": 0},
    # MovieLens 100K as RecBole ships it, unfiltered (every user has >= 20 ratings).
    "ml-100k": {"format": "recbole", "text_fields": ["movie_title", "release_year", "class"],
                "text_separator": ", ", "min_user_interactions": 0, "min_item_interactions": 0},
}


def preset(name: str, **overrides) -> DataConfig:
    """The DataConfig of a named dataset, with optional field overrides."""
    if name not in PRESETS:
        raise KeyError(f"unknown dataset preset '{name}'; known: {', '.join(sorted(PRESETS))} "
                       f"(or describe your own data with data.format / data.path)")
    return from_dict(DataConfig, {"name": name, **PRESETS[name], **overrides}, "data")
