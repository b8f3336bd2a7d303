"""Named datasets: the DataConfig each one needs (format, files, text fields, filtering).

Experiment YAMLs refer to these with `data: {preset: NAME}` and may override any field;
every downloadable dataset (genrec.data.download) is a preset too.
Data is read from $GENREC_DATA_DIR/<name>/ (see config.data_root).
"""

from __future__ import annotations

from ..config import from_dict
from .config import DataConfig
from .download import DOWNLOADS, dataset_config_overrides, is_downloadable

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


def preset_fields(name: str) -> dict:
    """DataConfig fields of a named dataset: a preset above, or a downloadable dataset."""
    if name in PRESETS:
        return {"name": name, **PRESETS[name]}
    if is_downloadable(name):
        return {"name": name, **dataset_config_overrides(name)}
    raise KeyError(f"unknown dataset '{name}'; presets: {', '.join(sorted(PRESETS))}; downloadable: "
                   f"{', '.join(DOWNLOADS.names())} (or describe your own data with data.format / data.path)")


def preset(name: str, **overrides) -> DataConfig:
    """The DataConfig of a named dataset, with optional field overrides."""
    return from_dict(DataConfig, {**preset_fields(name), **overrides}, "data")
