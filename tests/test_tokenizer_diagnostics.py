"""Tokenizer diagnostics on hand-made cases: utilisation, perplexity, kNN preservation, report, plot."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from genrec.tokenizers import VocabLayout, build_tokenizer
from genrec.tokenizers.diagnostics import (
    chance_preservation,
    diagnose,
    format_table,
    nearest_neighbours,
    neighbourhood_preservation,
    perplexity,
    plot_code_usage,
    utilization,
    write_report,
)


def test_utilization_on_a_hand_case():
    layout = VocabLayout([4, 5], n_semantic_levels=2, pad_codes=[None, 4])
    codes = np.array([[0, 4], [0, 1], [3, 4], [3, 2]])
    # Level 1 uses codes {0, 3} of 4; level 2 uses {1, 2} of its 4 real codes (pad 4 excluded).
    assert utilization(codes, layout) == [0.5, 0.5]


def test_perplexity_on_hand_cases():
    layout = VocabLayout([4, 4], n_semantic_levels=2)
    uniform = np.array([[0, 0], [1, 0], [2, 0], [3, 0]])
    ppl = perplexity(uniform, layout)
    assert ppl[0] == pytest.approx(4.0)
    assert ppl[1] == pytest.approx(1.0)
    skewed = np.array([[0, 0], [0, 0], [0, 0], [1, 0]])
    p = np.array([0.75, 0.25])
    assert perplexity(skewed, layout)[0] == pytest.approx(math.exp(-(p * np.log(p)).sum()))


def test_nearest_neighbours_exclude_self():
    x = np.array([[0.0], [1.0], [3.0], [10.0]], dtype=np.float32)
    nn = nearest_neighbours(x, k=2)
    np.testing.assert_array_equal(nn[0], [1, 2])
    np.testing.assert_array_equal(nn[3], [2, 1])
    assert not (nn == np.arange(4)[:, None]).any()


def test_neighbourhood_preservation_on_a_hand_case():
    codes = np.array([[0, 0], [0, 1], [1, 0], [1, 1]])
    neighbours = np.array([[1, 2], [0, 3], [3, 0], [2, 1]])
    # Item 0: neighbour 1 shares code 0, neighbour 2 does not -> 0.5; same for every item.
    assert neighbourhood_preservation(codes, neighbours, 1) == pytest.approx(0.5)
    assert neighbourhood_preservation(codes, neighbours, 2) == pytest.approx(0.0)
    # Two groups of two: a random other item shares the first code 1/3 of the time.
    assert chance_preservation(codes, 1) == pytest.approx(1 / 3)


@pytest.fixture(scope="module")
def two_blobs():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(60, 8)) + 20
    b = rng.normal(size=(60, 8)) - 20
    return np.concatenate([a, b]).astype(np.float32)


def test_diagnose_reports_every_number(two_blobs, tmp_path):
    tok = build_tokenizer("rqkmeans", {"codebook_sizes": [2, 4]})
    tok.fit(two_blobs)
    report = diagnose(tok, two_blobs, knn=10)
    for key in ("n_items", "unique_ids", "collision_rate", "largest_collision_group", "utilization",
                "perplexity", "quantization_mse", "relative_quantization_error", "neighbourhood_preservation",
                "neighbourhood_preservation_chance", "neighbourhood_preservation_by_depth", "fit_seconds"):
        assert key in report
    assert report["n_items"] == 120 and report["unique_ids"] is True
    # Two well separated blobs and two first-level codes: every neighbour shares the first code.
    assert report["utilization"][0] == 1.0
    assert report["neighbourhood_preservation"] == pytest.approx(1.0)
    assert report["neighbourhood_preservation_chance"] == pytest.approx(59 / 119)
    assert 0 < report["relative_quantization_error"] < 0.05
    path = write_report(report, tmp_path / "r.json")
    assert json.loads(path.read_text())["n_items"] == 120
    table = format_table([report])
    assert "rqkmeans" in table and "coll.rate" in table
    assert format_table([report], markdown=True).startswith("| tokenizer")


def test_random_codes_do_not_preserve_neighbourhoods(two_blobs):
    tok = build_tokenizer("random", {"codebook_sizes": [2, 4]})
    tok.fit(two_blobs)
    report = diagnose(tok, two_blobs)
    assert report["quantization_mse"] is None
    assert report["neighbourhood_preservation"] < 0.8


@pytest.mark.parametrize("levels", [[4, 4], [4] * 10])
def test_code_usage_plot_is_a_png(two_blobs, tmp_path, levels):
    tok = build_tokenizer("random", {"codebook_sizes": levels})
    tok.fit(two_blobs)
    path = plot_code_usage(tok, tmp_path / "usage.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
