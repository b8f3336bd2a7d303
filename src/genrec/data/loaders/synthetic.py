"""A deterministic synthetic catalogue, so the whole pipeline runs with no download.

Items have a brand, a category path and a title built from both. Users walk a hidden
transition graph: the next item is usually one of a few fixed "follow-up" items of the
current one (from a complementary category, often the same brand), otherwise a popular
item. A sequence model can learn the transitions; popularity cannot, so the ranking of
methods on this data is meaningful, and the text carries the category signal that
semantic IDs build on.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..config import DataConfig
from ..raw import RawData
from . import FORMATS, reads_options

DEPARTMENTS = {
    "Skin Care": ["Cleanser", "Toner", "Serum", "Moisturizer", "Sunscreen", "Eye Cream"],
    "Hair Care": ["Shampoo", "Conditioner", "Hair Mask", "Styling Gel", "Hair Oil", "Dry Shampoo"],
    "Makeup": ["Foundation", "Concealer", "Mascara", "Eyeliner", "Lipstick", "Blush"],
    "Fragrance": ["Eau de Parfum", "Eau de Toilette", "Body Mist", "Cologne"],
    "Bath & Body": ["Body Wash", "Body Lotion", "Hand Cream", "Bath Salts", "Scrub"],
    "Tools": ["Makeup Brush", "Hair Dryer", "Nail Clipper", "Tweezers", "Sponge"],
}
BRANDS = ["Aurora", "Belleza", "Cedarline", "Dewdrop", "Elara", "Fernwood", "Glowly", "Halcyon",
          "Iris & Co", "Juniper", "Kismet", "Lumina", "Marisol", "Nectar", "Orchid Lane", "Petalia",
          "Quartz", "Rosehip", "Solstice", "Tidewater"]
ADJECTIVES = ["Hydrating", "Gentle", "Radiant", "Matte", "Nourishing", "Ultra", "Daily", "Intense",
              "Soothing", "Volumizing", "Lightweight", "Long-Lasting", "Organic", "Classic", "Fresh"]
SIZES = ["1 oz", "1.7 oz", "3.4 oz", "6 oz", "8 oz", "12 oz", "Travel Size", "Value Pack"]


@FORMATS.register("synthetic")
@reads_options("num_items", "num_users", "seed", "follow_prob", "min_length", "max_length")
def load_synthetic(cfg: DataConfig) -> RawData:
    """Options: num_items, num_users, seed, follow_prob (share of steps that follow the graph)."""
    opts = {"num_items": 800, "num_users": 3000, "seed": 0, "follow_prob": 0.8,
            "min_length": 5, "max_length": 20, **cfg.options}
    rng = np.random.default_rng(int(opts["seed"]))
    n_items = int(opts["num_items"])

    categories = [(dept, leaf) for dept, leaves in DEPARTMENTS.items() for leaf in leaves]
    item_category = rng.integers(len(categories), size=n_items)
    item_brand = rng.integers(len(BRANDS), size=n_items)
    items = pd.DataFrame({
        "item_id": [f"SYN{i:05d}" for i in range(n_items)],
        "title": [f"{BRANDS[b]} {ADJECTIVES[rng.integers(len(ADJECTIVES))]} {categories[c][1]}, "
                  f"{SIZES[rng.integers(len(SIZES))]}" for c, b in zip(item_category, item_brand)],
        "brand": [BRANDS[b] for b in item_brand],
        "categories": [[["Beauty", categories[c][0], categories[c][1]]] for c in item_category],
    })

    # Hidden structure: each category leads to the next leaf of its department (a routine:
    # cleanser -> toner -> serum ...); each item has 3 follow-ups there, same brand preferred.
    by_category = [np.flatnonzero(item_category == c) for c in range(len(categories))]
    next_category = np.empty(len(categories), dtype=np.int64)
    for c, (dept, leaf) in enumerate(categories):
        leaves = DEPARTMENTS[dept]
        following = leaves[(leaves.index(leaf) + 1) % len(leaves)]
        next_category[c] = categories.index((dept, following))
    follow_ups = np.empty((n_items, 3), dtype=np.int64)
    for i in range(n_items):
        pool = by_category[next_category[item_category[i]]]
        if len(pool) == 0:
            pool = np.arange(n_items)
        same_brand = pool[item_brand[pool] == item_brand[i]]
        weights = np.where(np.isin(pool, same_brand), 4.0, 1.0)
        follow_ups[i] = rng.choice(pool, size=3, replace=len(pool) < 3, p=weights / weights.sum())
    popularity = 1.0 / np.arange(1, n_items + 1) ** 0.8
    popularity = rng.permutation(popularity / popularity.sum())

    users, seq_items, stamps = [], [], []
    for u in range(int(opts["num_users"])):
        length = int(rng.integers(int(opts["min_length"]), int(opts["max_length"]) + 1))
        current = int(rng.choice(n_items, p=popularity))
        t = float(rng.integers(1_500_000_000, 1_600_000_000))
        for _ in range(length):
            users.append(f"U{u:05d}")
            seq_items.append(items.item_id[current])
            stamps.append(t)
            t += float(rng.integers(3600, 30 * 86400))
            if rng.random() < float(opts["follow_prob"]):
                current = int(follow_ups[current, rng.integers(3)])
            else:
                current = int(rng.choice(n_items, p=popularity))
    interactions = pd.DataFrame({"user_id": users, "item_id": seq_items, "timestamp": stamps})
    return RawData(interactions=interactions, items=items,
                   source=f"synthetic(seed={opts['seed']}, items={n_items}, users={opts['num_users']})",
                   notes=["SYNTHETIC data generated by genrec: numbers on it say nothing about real catalogues"])
