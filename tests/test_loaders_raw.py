"""Loaders for the published raw formats (Amazon 2014/2018/2023, MovieLens, MIND), on tiny fixtures."""

from __future__ import annotations

import gzip
import json
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import pytest

from genrec.data.config import DataConfig
from genrec.data.errors import DataError
from genrec.data.loaders import amazon, mind, movielens

# --- helpers ---------------------------------------------------------------------------------


def write_lines(path: Path, lines: list[str], encoding: str = "utf-8") -> Path:
    text = "".join(line + "\n" for line in lines)
    if path.suffix == ".gz":
        with gzip.open(path, "wt", encoding=encoding) as handle:
            handle.write(text)
    else:
        path.write_text(text, encoding=encoding)
    return path


def cfg(path: Path, fmt: str, **options) -> DataConfig:
    return DataConfig(name=path.name, format=fmt, path=str(path), options=options)


def rows(raw) -> list[tuple[str, str, float]]:
    return list(raw.interactions.itertuples(index=False, name=None))


def item(raw, item_id: str) -> dict:
    """One item's text fields, with pandas' missing markers (None/NaN, dtype-dependent) as None."""
    fields = raw.items.set_index("item_id").loc[item_id].to_dict()
    return {k: None if pd.api.types.is_scalar(v) and pd.isna(v) else v for k, v in fields.items()}


# --- Amazon ----------------------------------------------------------------------------------


def amazon2014(folder: Path, category: str = "Beauty") -> Path:
    folder.mkdir(exist_ok=True)
    write_lines(folder / f"reviews_{category}_5.json.gz", [json.dumps(r) for r in [
        {"reviewerID": "U1", "asin": "B2", "overall": 5.0, "unixReviewTime": 1300000000},
        {"reviewerID": "U1", "asin": "B1", "unixReviewTime": 1200000000},
        {"reviewerID": "U2", "asin": "B3", "unixReviewTime": 1250000000},
    ]])
    # The 2014 metadata is Python literals: single quotes, which json.loads rejects.
    write_lines(folder / f"meta_{category}.json.gz", [
        "{'asin': 'B1', 'title': ' Lip Balm ', 'brand': 'Acme', 'price': 3.5, "
        "'categories': [['Beauty', 'Skin Care'], ['Beauty', 'Lips']], 'description': 'Soft.'}",
        "{'asin': 'B9', 'title': 'Never reviewed'}",
        "{'asin': 'B2', 'title': \"Women's Shampoo\", 'salesRank': {'Beauty': 12}}",
        "{'asin': 'B1', 'title': 'duplicate, ignored'}",
    ])
    return folder


def test_amazon2014_bad_meta_literal_names_file_and_line(tmp_path):
    folder = amazon2014(tmp_path / "beauty")
    write_lines(folder / "meta_Beauty.json.gz", ["{'asin': 'B1', 'title': 'ok'}", "{'asin': 'B2', 'title': "])
    with pytest.raises(DataError, match=r"meta_Beauty\.json\.gz:2: malformed Python literal"):
        amazon.load_amazon2014(cfg(folder, "amazon2014", category="Beauty"))
    write_lines(folder / "meta_Beauty.json.gz", ["['B1', 'not a dict']"])
    with pytest.raises(DataError, match=r"meta_Beauty\.json\.gz:1: expected a dict literal"):
        amazon.load_amazon2014(cfg(folder, "amazon2014", category="Beauty"))


def test_amazon2014_reads_reviews_in_file_order_and_literal_meta(tmp_path):
    raw = amazon.load_amazon2014(cfg(amazon2014(tmp_path / "beauty"), "amazon2014", category="Beauty"))
    assert rows(raw) == [("U1", "B2", 1300000000.0), ("U1", "B1", 1200000000.0), ("U2", "B3", 1250000000.0)]
    assert list(raw.items["item_id"]) == ["B2", "B1", "B3"]  # reviewed items only, first-review order
    b1 = item(raw, "B1")
    assert b1["title"] == "Lip Balm" and b1["brand"] == "Acme" and b1["price"] == "3.5"
    assert b1["categories"] == [["Beauty", "Skin Care"], ["Beauty", "Lips"]]
    assert item(raw, "B2")["title"] == "Women's Shampoo"
    assert item(raw, "B3")["title"] is None  # reviewed but no metadata: kept without text
    notes = " | ".join(raw.notes)
    assert "dropped 1 metadata entries" in notes
    assert "1 duplicate" in notes
    assert "1 reviewed items have no metadata" in notes


def test_amazon2014_detects_the_category_and_refuses_to_guess(tmp_path):
    folder = amazon2014(tmp_path / "data")
    assert len(amazon.load_amazon2014(cfg(folder, "amazon2014")).interactions) == 3
    amazon2014(folder, category="Toys_and_Games")
    with pytest.raises(DataError, match="Beauty, Toys_and_Games.*options.category"):
        amazon.load_amazon2014(cfg(folder, "amazon2014"))


def test_amazon2014_malformed_meta_line_names_file_and_line(tmp_path):
    folder = amazon2014(tmp_path / "beauty")
    write_lines(folder / "meta_Beauty.json.gz", ["{'asin': 'B1'}", "{'asin': 'B2', 'title': "])
    with pytest.raises(DataError) as error:
        amazon.load_amazon2014(cfg(folder, "amazon2014"))
    assert "meta_Beauty.json.gz:2" in str(error.value)
    assert error.value.line == 2


def test_amazon2014_missing_review_field_names_file_line_and_field(tmp_path):
    folder = amazon2014(tmp_path / "beauty")
    write_lines(folder / "reviews_Beauty_5.json.gz", [
        json.dumps({"reviewerID": "U1", "asin": "B1", "unixReviewTime": 1}),
        json.dumps({"reviewerID": "U1", "asin": "B2"}),
    ])
    with pytest.raises(DataError) as error:
        amazon.load_amazon2014(cfg(folder, "amazon2014"))
    message = str(error.value)
    assert "reviews_Beauty_5.json.gz:2" in message and "unixReviewTime" in message


def test_amazon2018_keeps_first_meta_entry_and_strips_text(tmp_path):
    folder = tmp_path / "a18"
    folder.mkdir()
    write_lines(folder / "Luxury_Beauty_5.json.gz", [json.dumps(r) for r in [
        {"reviewerID": "U1", "asin": "A1", "unixReviewTime": 20, "reviewText": "ok"},
        {"reviewerID": "U1", "asin": "A2", "unixReviewTime": "10"},
    ]])
    write_lines(folder / "meta_Luxury_Beauty.json.gz", [json.dumps(r) for r in [
        {"asin": "A1", "title": "  Serum\n", "brand": "Lux", "category": ["Luxury Beauty", "Skin"],
         "description": ["Line one", "  "], "feature": ["vegan"], "price": "$12.00"},
        {"asin": "A1", "title": "second copy"},
        {"asin": "A2", "title": "", "category": []},
    ]])
    raw = amazon.load_amazon2018(cfg(folder, "amazon2018"))
    assert rows(raw) == [("U1", "A1", 20.0), ("U1", "A2", 10.0)]
    a1 = item(raw, "A1")
    assert a1["title"] == "Serum" and a1["categories"] == ["Luxury Beauty", "Skin"]
    assert a1["description"] == ["Line one"] and a1["features"] == ["vegan"] and a1["price"] == "$12.00"
    assert item(raw, "A2")["title"] is None and item(raw, "A2")["categories"] is None
    assert any("1 duplicate" in note for note in raw.notes)


def test_amazon2018_missing_meta_id_names_the_field(tmp_path):
    folder = tmp_path / "a18"
    folder.mkdir()
    write_lines(folder / "Books_5.json.gz", [json.dumps({"reviewerID": "U", "asin": "A", "unixReviewTime": 1})])
    write_lines(folder / "meta_Books.json.gz", [json.dumps({"asin": "A"}), json.dumps({"title": "no id"})])
    with pytest.raises(DataError) as error:
        amazon.load_amazon2018(cfg(folder, "amazon2018"))
    assert "meta_Books.json.gz:2" in str(error.value) and "'asin'" in str(error.value)


def test_amazon2023_uses_parent_asin_ms_timestamps_and_store_as_brand(tmp_path):
    folder = tmp_path / "a23"
    folder.mkdir()
    write_lines(folder / "All_Beauty.jsonl", [json.dumps(r) for r in [
        {"user_id": "U1", "asin": "V1", "parent_asin": "P1", "timestamp": 1588687728923, "rating": 5},
        {"user_id": "U1", "asin": "V2", "parent_asin": "P1", "timestamp": 1588687729000},
    ]])
    write_lines(folder / "meta_All_Beauty.jsonl.gz", [json.dumps(r) for r in [
        {"parent_asin": "P1", "title": "Brush", "store": "Acme", "categories": ["Beauty", "Tools"],
         "description": [], "features": ["soft"], "price": None, "details": {"Color": "red"}},
    ]])
    raw = amazon.load_amazon2023(cfg(folder, "amazon2023"))
    assert rows(raw) == [("U1", "P1", 1588687728.923), ("U1", "P1", 1588687729.0)]
    p1 = item(raw, "P1")
    assert p1["brand"] == "Acme" and p1["categories"] == ["Beauty", "Tools"] and p1["features"] == ["soft"]
    assert p1["description"] is None and p1["price"] is None
    assert raw.notes == []


def test_amazon2023_bad_timestamp_and_malformed_json(tmp_path):
    folder = tmp_path / "a23"
    folder.mkdir()
    reviews = folder / "Toys.jsonl"
    write_lines(folder / "meta_Toys.jsonl", [json.dumps({"parent_asin": "P"})])
    write_lines(reviews, [json.dumps({"user_id": "U", "parent_asin": "P", "timestamp": "soon"})])
    with pytest.raises(DataError, match=r"Toys\.jsonl:1, field 'timestamp'"):
        amazon.load_amazon2023(cfg(folder, "amazon2023"))
    write_lines(reviews, [json.dumps({"user_id": "U", "parent_asin": "P", "timestamp": 1}), "{not json"])
    with pytest.raises(DataError, match=r"Toys\.jsonl:2: malformed JSON"):
        amazon.load_amazon2023(cfg(folder, "amazon2023"))


# --- MovieLens -------------------------------------------------------------------------------


def ml100k(folder: Path, genres: list[str] | None = None) -> Path:
    folder.mkdir(parents=True)
    write_lines(folder / "u.data", ["196\t242\t3\t881250949", "186\t302\t1\t891717742", "196\t302\t5\t881250950"])
    n = len(genres) if genres else 19
    flags = lambda *on: "|".join("1" if i in on else "0" for i in range(n))  # noqa: E731
    write_lines(folder / "u.item", [
        f"242|Kolya (1996)|24-Jan-1997||http://x|{flags(5)}",
        f"302|L.A. Confidential (1997)|01-Jan-1997||http://y|{flags(6, 16)}",
        f"303|Café au lait (1993)|01-Jan-1993||http://z|{flags()}",
    ], encoding="latin-1")
    if genres:
        write_lines(folder / "u.genre", [f"{g}|{i}" for i, g in enumerate(genres)] + [""])
    return folder


def test_movielens_100k_ratings_titles_and_default_genres(tmp_path):
    raw = movielens.load_movielens(cfg(ml100k(tmp_path / "ml"), "movielens"))
    assert rows(raw) == [("196", "242", 881250949.0), ("186", "302", 891717742.0), ("196", "302", 881250950.0)]
    assert item(raw, "242") == {"title": "Kolya (1996)", "genres": ["Comedy"]}
    assert item(raw, "302")["genres"] == ["Crime", "Thriller"]
    assert item(raw, "303") == {"title": "Café au lait (1993)", "genres": None}  # latin-1 decoded


def test_movielens_100k_genre_names_from_u_genre_and_min_rating(tmp_path):
    folder = ml100k(tmp_path / "ml", genres=["g0", "g1", "g2", "g3", "g4", "g5", "g6"])
    raw = movielens.load_movielens(cfg(folder, "movielens", min_rating=3))
    assert [r[:2] for r in rows(raw)] == [("196", "242"), ("196", "302")]
    assert item(raw, "302")["genres"] == ["g6"]
    assert "dropped 1 ratings below min_rating=3" in raw.notes


def test_movielens_1m_in_extracted_subfolder(tmp_path):
    folder = tmp_path / "ml-1m" / "ml-1m"  # how ml-1m.zip unpacks into the dataset folder
    folder.mkdir(parents=True)
    write_lines(folder / "ratings.dat", ["1::1193::5::978300760", "1::661::3::978302109"])
    write_lines(folder / "movies.dat", ["1193::One Flew Over the Cuckoo's Nest (1975)::Drama",
                                        "661::James and the Giant Peach (1996)::Animation|Children's|Musical"],
                encoding="latin-1")
    raw = movielens.load_movielens(cfg(tmp_path / "ml-1m", "movielens"))
    assert rows(raw) == [("1", "1193", 978300760.0), ("1", "661", 978302109.0)]
    assert item(raw, "661")["genres"] == ["Animation", "Children's", "Musical"]
    assert raw.source == str(folder)


def test_movielens_short_line_names_file_line_and_missing_field(tmp_path):
    folder = ml100k(tmp_path / "ml")
    write_lines(folder / "u.data", ["1\t2\t3\t4", "1\t2\t3"])
    with pytest.raises(DataError) as error:
        movielens.load_movielens(cfg(folder, "movielens"))
    assert "u.data:2" in str(error.value) and error.value.field == "timestamp"
    write_lines(folder / "u.data", ["1\t2\tfive\t4"])
    with pytest.raises(DataError, match=r"u\.data:1, field 'rating'"):
        movielens.load_movielens(cfg(folder, "movielens"))


def test_movielens_without_files_says_what_it_expects(tmp_path):
    with pytest.raises(DataError, match="u.data.*ratings.dat"):
        movielens.load_movielens(cfg(tmp_path, "movielens"))


# --- MIND ------------------------------------------------------------------------------------

NEWS = [
    "N1\tnews\tnewsus\tFirst title\tAn abstract\thttps://a\t[]\t[]",
    "N2\tsports\tnfl\tSecond title\t\thttps://b\t[]\t[]",
    "N3\tfinance\tmarkets\tThird\tx\thttps://c\t[]\t[]",
    "N4\tnews\tworld\tFourth\ty\thttps://d\t[]\t[]",
]


def utc(text: str) -> float:
    return datetime.strptime(text, "%m/%d/%Y %I:%M:%S %p").replace(tzinfo=timezone.utc).timestamp()


def mind_split(folder: Path, behaviors: list[str]) -> Path:
    folder.mkdir(parents=True)
    write_lines(folder / "behaviors.tsv", behaviors)
    write_lines(folder / "news.tsv", NEWS)
    return folder


def test_mind_sequence_is_history_then_clicks_in_time_order(tmp_path):
    mind_split(tmp_path / "MINDsmall_train", [
        "1\tU1\t11/15/2019 2:00:00 PM\tN1 N2\tN3-1 N4-0",
        "2\tU2\t11/15/2019 9:00:00 AM\t\tN2-0 N1-1",
        "3\tU1\t11/15/2019 8:55:38 AM\tN1 N2\tN4-1 N2-0 N1-1",
    ])
    mind_split(tmp_path / "MINDsmall_dev", ["9\tU9\t11/16/2019 1:00:00 AM\t\tN1-1"])
    raw = mind.load_mind(cfg(tmp_path, "mind"))
    first = utc("11/15/2019 8:55:38 AM")
    assert rows(raw) == [
        ("U1", "N1", first - 2), ("U1", "N2", first - 1),  # history once, before the first impression
        ("U1", "N4", first), ("U1", "N1", first),  # earliest impression's clicks, in listed order
        ("U1", "N3", utc("11/15/2019 2:00:00 PM")),
        ("U2", "N1", utc("11/15/2019 9:00:00 AM")),
    ]
    assert list(raw.items["item_id"]) == ["N1", "N2", "N3", "N4"]
    assert item(raw, "N2") == {"title": "Second title", "category": "sports", "subcategory": "nfl",
                               "abstract": None}
    dev = mind.load_mind(cfg(tmp_path, "mind", split="dev"))
    assert rows(dev) == [("U9", "N1", utc("11/16/2019 1:00:00 AM"))]


def test_mind_bad_time_and_label_name_line_and_field(tmp_path):
    folder = mind_split(tmp_path / "train", ["1\tU1\t11/15/2019 8:55:38 AM\t\tN1-1",
                                             "2\tU1\t2019-11-15 08:55\t\tN1-1"])
    with pytest.raises(DataError, match=r"behaviors\.tsv:2, field 'time'"):
        mind.load_mind(cfg(tmp_path, "mind"))
    write_lines(folder / "behaviors.tsv", ["1\tU1\t11/15/2019 8:55:38 AM\t\tN1-2"])
    with pytest.raises(DataError, match=r"behaviors\.tsv:1, field 'impressions'"):
        mind.load_mind(cfg(tmp_path, "mind"))
    write_lines(folder / "behaviors.tsv", ["1\tU1\t11/15/2019 8:55:38 AM"])
    with pytest.raises(DataError, match=r"behaviors\.tsv:1, field 'history'"):
        mind.load_mind(cfg(tmp_path, "mind"))


def test_mind_test_split_without_labels_is_noted(tmp_path):
    mind_split(tmp_path / "MINDlarge_test", ["1\tU1\t11/15/2019 8:55:38 AM\tN1\tN2 N3"])
    raw = mind.load_mind(cfg(tmp_path, "mind", split="test"))
    assert rows(raw) == [("U1", "N1", utc("11/15/2019 8:55:38 AM") - 1)]
    assert any("2 impressions without a click label" in note for note in raw.notes)
