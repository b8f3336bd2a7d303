import dataclasses
import gzip
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from genrec.data import DataConfig, DataError, SequenceDataset, prepare_dataset, preset
from genrec.data.batching import flatten_ranges, length_bucketed_batches, pad_left

from conftest import write_generic

ITEMS = [{"item_id": f"i{k}", "title": f"Item {k}", "categories": [["Cat", f"Sub{k % 2}"]]} for k in range(1, 6)]


def cfg_for(path, **kw):
    fields = {"min_user_interactions": 0, "min_item_interactions": 0, **kw}
    return DataConfig(name="t", format="generic", path=str(path), **fields)


def test_generic_csv_order_ties_and_split(tmp_path):
    # u1's rows are out of time order; i2 and i3 tie at t=5 and keep file order.
    rows = [("u1", "i4", 9), ("u1", "i2", 5), ("u1", "i3", 5), ("u1", "i1", 1),
            ("u2", "i5", 1), ("u2", "i1", 2), ("u2", "i2", 3)]
    ds = prepare_dataset(cfg_for(write_generic(tmp_path / "d", rows, ITEMS)), cache=False)
    seq = [ds.item_ids[i] for i in ds.sequence(0)]
    assert seq == ["i1", "i2", "i3", "i4"]
    valid, test = ds.eval_split("valid"), ds.eval_split("test")
    assert ds.item_ids[valid.targets[0]] == "i3" and ds.item_ids[test.targets[0]] == "i4"
    assert [ds.item_ids[i] for i in ds.items[valid.starts[0]:valid.ends[0]]] == ["i1", "i2"]
    assert [ds.item_ids[i] for i in ds.items[test.starts[0]:test.ends[0]]] == ["i1", "i2", "i3"]
    starts, ends = ds.train_ranges()
    assert [ds.item_ids[i] for i in ds.items[starts[1]:ends[1]]] == ["i5"]
    counts = ds.train_item_counts()  # training parts: u1 = i1 i2, u2 = i5
    assert {ds.item_ids[i]: int(c) for i, c in enumerate(counts) if c} == {"i1": 1, "i2": 1, "i5": 1}
    assert ds.item_text[ds.item_index()["i1"]] == "Item 1. Cat > Sub1"


def test_parquet_and_configurable_columns(tmp_path):
    folder = tmp_path / "p"
    folder.mkdir()
    pd.DataFrame({"uid": ["a", "a", "a"], "iid": ["x", "y", "z"], "ts": [3, 1, 2]}).to_parquet(folder / "inter.parquet")
    pd.DataFrame({"iid": ["x", "y", "z"], "name": ["X", "Y", "Z"]}).to_parquet(folder / "meta.parquet")
    cfg = cfg_for(folder, interactions_file="inter.parquet", items_file="meta.parquet", user_column="uid",
                  item_column="iid", timestamp_column="ts")
    ds = prepare_dataset(cfg, cache=False)
    assert [ds.item_ids[i] for i in ds.sequence(0)] == ["y", "z", "x"]
    assert ds.item_text[ds.item_index()["x"]] == "X"


def test_missing_column_names_file_and_field(tmp_path):
    folder = write_generic(tmp_path / "d", [("u", "i1", 1)], ITEMS)
    with pytest.raises(DataError, match=r"interactions.csv.*field 'ts'"):
        prepare_dataset(cfg_for(folder, timestamp_column="ts"), cache=False)


def test_malformed_json_line_is_named(tmp_path):
    folder = write_generic(tmp_path / "d", [("u", "i1", 1)], ITEMS)
    with open(folder / "items.jsonl", "a") as handle:
        handle.write('{"item_id": "i9", "title": \n')
    with pytest.raises(DataError, match=r"items.jsonl:6.*malformed JSON"):
        prepare_dataset(cfg_for(folder), cache=False)


def test_bad_timestamp_is_named_with_line(tmp_path):
    folder = write_generic(tmp_path / "d", [("u", "i1", 1), ("u", "i2", "soon")], ITEMS)
    with pytest.raises(DataError, match=r"interactions.csv:3.*field 'timestamp'"):
        prepare_dataset(cfg_for(folder), cache=False)


def test_lines_are_counted_past_blank_lines(tmp_path):
    folder = write_generic(tmp_path / "d", [("u", "i1", 1)], ITEMS)
    (folder / "interactions.csv").write_text("\n \nuser_id,item_id,timestamp\n\nu,i1,1\n  \nu,i2,soon\n")
    with pytest.raises(DataError, match=r"interactions.csv:7, field 'timestamp': not a number or date"):
        prepare_dataset(cfg_for(folder), cache=False)
    (folder / "interactions.csv").write_text("\nuser_id,item_id,timestamp\nu,i1,1\n \t\nu,i2,2\nu,i3,3\n\n")
    assert prepare_dataset(cfg_for(folder), cache=False).num_items == 3  # blank lines anywhere are skipped
    pd.DataFrame({"user_id": ["u", "u"], "item_id": ["i1", "i2"], "timestamp": ["1", "soon"]},
                 index=[10, 20]).to_parquet(folder / "inter.parquet")  # the index is stored too
    with pytest.raises(DataError, match=r"inter.parquet:2, field 'timestamp': not a number or date"):
        prepare_dataset(cfg_for(folder, interactions_file="inter.parquet"), cache=False)
    (folder / "interactions.csv").write_text("user_id,item_id,timestamp\nu,i1,1\n")
    (folder / "items.jsonl").write_text('{"item_id": 1, "title": "a"}\n\n\n{"title": "orphan"}\n')
    with pytest.raises(DataError, match=r"items.jsonl:4, field 'item_id': missing"):
        prepare_dataset(cfg_for(folder), cache=False)
    (folder / "items.jsonl").write_text('{"item_id": "i1", "title": "a"}\n{"item_id": "", "title": "b"}\n')
    with pytest.raises(DataError, match=r"items.jsonl:2, field 'item_id': missing"):
        prepare_dataset(cfg_for(folder), cache=False)


def test_lines_are_counted_past_quoted_values_that_span_lines(tmp_path):
    folder = write_generic(tmp_path / "d", [("u", "i1", 1)], ITEMS)
    long_note = "x" * 140_000  # longer than the csv module's default field limit
    (folder / "interactions.csv").write_text(
        f'\nuser_id,item_id,timestamp,note\nu,i1,1,"two\nlines"\n\nu,i2,2,"a ""b""\n\n{long_note}"\nu,i3,soon,x\n')
    with pytest.raises(DataError, match=r"interactions.csv:9, field 'timestamp': not a number or date"):
        prepare_dataset(cfg_for(folder), cache=False)


def test_timestamps_are_seconds_since_1970_utc(tmp_path):
    """Numbers as they are; date strings in ISO 8601's forms (zones honoured) or one other format
    throughout; a datetime column (Parquet) at any resolution."""
    from genrec.data.loaders import load_raw
    folder = write_generic(tmp_path / "d", [("u", "i1", 1)], ITEMS)
    (folder / "interactions.csv").write_text("user_id,item_id,timestamp\nu,i1,2020-01-01\n"
                                             "u,i2,2020-01-02T00:00:00Z\nu,i3,2020-01-01 02:00:00+01:00\nu,i4,7.5\n")
    seconds = [1577836800.0, 1577923200.0, 1577840400.0, 7.5]
    assert load_raw(cfg_for(folder)).interactions["timestamp"].tolist() == seconds
    (folder / "interactions.csv").write_text("user_id,item_id,timestamp\nu,i1,Jan 3 2020\nu,i2,Feb 4 2021\n")
    assert load_raw(cfg_for(folder)).interactions["timestamp"].tolist() == [1578009600.0, 1612396800.0]
    stamps = pd.to_datetime(["2020-01-01", "2020-01-02"], utc=True)
    for unit in ("ms", "ns"):
        pd.DataFrame({"user_id": ["u", "u"], "item_id": ["i1", "i2"], "timestamp": stamps.as_unit(unit)}
                     ).to_parquet(folder / "inter.parquet")
        raw = load_raw(cfg_for(folder, interactions_file="inter.parquet"))
        assert raw.interactions["timestamp"].tolist() == [1577836800.0, 1577923200.0]


@pytest.mark.parametrize("value, why", [
    ("13/02/2020", "a day-first date after a month-first one: read two ways, so refused"),
    ("now", "pandas reads it as the clock's time: not reproducible"),
    ("inf", "not a finite number"),
])
def test_timestamps_that_are_not_dates_or_numbers_are_named(tmp_path, value, why):
    folder = write_generic(tmp_path / "d", [("u", "i1", "01/02/2020"), ("u", "i2", value)], ITEMS)
    with pytest.raises(DataError, match=rf"interactions.csv:3, field 'timestamp': not a number or date: '{value}'"):
        prepare_dataset(cfg_for(folder), cache=False)


def test_a_json_boolean_is_not_a_timestamp(tmp_path):
    folder = write_generic(tmp_path / "d", [("u", "i1", 1)], ITEMS)
    (folder / "inter.jsonl").write_text('{"user_id": "u", "item_id": "i1", "timestamp": 5}\n'
                                        '{"user_id": "u", "item_id": "i2", "timestamp": true}\n')
    with pytest.raises(DataError, match=r"inter.jsonl:2, field 'timestamp': not a number or date: True"):
        prepare_dataset(cfg_for(folder, interactions_file="inter.jsonl"), cache=False)


def test_damaged_files_are_named(tmp_path):
    folder = write_generic(tmp_path / "d", [("u", "i1", 1)], ITEMS)
    whole = gzip.compress((folder / "items.jsonl").read_bytes())
    (folder / "items.jsonl.gz").write_bytes(whole[: len(whole) // 2])
    with pytest.raises(DataError, match=r"items.jsonl.gz: corrupt or truncated compressed file"):
        prepare_dataset(cfg_for(folder, items_file="items.jsonl.gz"), cache=False)
    (folder / "items.jsonl.gz").write_bytes(b"<html>not found</html>")
    with pytest.raises(DataError, match=r"items.jsonl.gz: corrupt or truncated compressed file"):
        prepare_dataset(cfg_for(folder, items_file="items.jsonl.gz"), cache=False)
    (folder / "interactions.csv").write_bytes("user_id,item_id,timestamp\ncaf\xe9,i1,1\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"interactions.csv: not UTF-8 text"):
        prepare_dataset(cfg_for(folder), cache=False)
    (folder / "interactions.csv").write_text("")
    with pytest.raises(DataError, match=r"interactions.csv: empty file"):
        prepare_dataset(cfg_for(folder), cache=False)


@pytest.mark.parametrize("fields, message", [
    ({"min_sequence_length": 2}, "data.min_sequence_length must be >= 3"),
    ({"max_history": 2}, r"data.max_history \(2\) must be >= data.min_sequence_length \(3\)"),
    ({"dedup": "exakt"}, "unknown data.dedup 'exakt' \\(exact, user_item, none\\)"),
    ({"missing_text": "keep"}, "unknown data.missing_text 'keep' \\(warn, drop, error\\)"),
    ({"min_item_interactions": -1}, "data.min_item_interactions must be >= 0"),
])
def test_preprocessing_settings_are_checked_when_read(fields, message):
    with pytest.raises(ValueError, match=message):
        DataConfig(**fields)


def test_an_option_the_format_does_not_read_is_an_error(tmp_path):
    with pytest.raises(DataError, match=r"field 'data.options.num_item': format 'synthetic' has no such "
                                        r"option \(its options: num_items, num_users"):
        prepare_dataset(preset("synthetic", options={"num_item": 50}), cache=False)
    folder = write_generic(tmp_path / "d", [("u", "i1", 1)], ITEMS)
    with pytest.raises(DataError, match=r"field 'data.options.category': format 'generic' has no such option "
                                        r"\(its options: none\)"):
        prepare_dataset(cfg_for(folder, options={"category": "Beauty"}), cache=False)


def test_missing_folder_explains(tmp_path):
    with pytest.raises(DataError, match="dataset folder not found"):
        prepare_dataset(cfg_for(tmp_path / "nowhere"), cache=False)


def test_dedup_kcore_and_history_cap(tmp_path):
    rows = [("u1", "i1", 1), ("u1", "i1", 1), ("u1", "i2", 2), ("u1", "i3", 3), ("u1", "i4", 4),
            ("u2", "i1", 1), ("u2", "i2", 2), ("u2", "i3", 3), ("u3", "i5", 1), ("u3", "i1", 2)]
    folder = write_generic(tmp_path / "d", rows, ITEMS)
    ds = prepare_dataset(cfg_for(folder, min_user_interactions=3, min_item_interactions=2), cache=False)
    # exact duplicate dropped; u3 (2 rows) dropped, then i4 and i5 (1 user each) dropped, so u1 has 3 left.
    assert ds.user_ids == ["u1", "u2"]
    assert sorted(ds.item_ids[1:]) == ["i1", "i2", "i3"]
    assert any("dedup exact: dropped 1" in line for line in ds.log)
    capped = prepare_dataset(cfg_for(folder, max_history=3), cache=False)
    assert [capped.item_ids[i] for i in capped.sequence(0)] == ["i2", "i3", "i4"]


def test_kcore_that_empties_the_data_is_an_error(tmp_path):
    folder = write_generic(tmp_path / "d", [("u1", "i1", 1), ("u1", "i2", 2), ("u1", "i3", 3)], ITEMS)
    with pytest.raises(DataError, match="k-core filtering .* removed every interaction"):
        prepare_dataset(cfg_for(folder, min_user_interactions=5, min_item_interactions=5), cache=False)


def test_missing_text_policies(tmp_path):
    rows = [("u1", "i1", 1), ("u1", "i2", 2), ("u1", "i9", 3), ("u1", "i3", 4)]
    folder = write_generic(tmp_path / "d", rows, ITEMS)  # i9 is not in the item table
    kept = prepare_dataset(cfg_for(folder), cache=False)
    assert kept.num_items == 4 and kept.item_text[kept.item_index()["i9"]] == ""
    assert any("1 interacted items have no text" in line for line in kept.log)
    dropped = prepare_dataset(cfg_for(folder, missing_text="drop"), cache=False)
    assert "i9" not in dropped.item_ids
    with pytest.raises(DataError, match="have no text"):
        prepare_dataset(cfg_for(folder, missing_text="error"), cache=False)


def test_recbole_atomic(tmp_path):
    folder = tmp_path / "mini"
    folder.mkdir()
    (folder / "mini.inter").write_text("user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
                                       "1\t10\t5\t100\n1\t11\t2\t50\n1\t12\t4\t200\n")
    (folder / "mini.item").write_text("item_id:token\tmovie_title:token_seq\tclass:token_seq\n"
                                      "10\tHeat\tAction\n11\t\"Big\" Night\tComedy\n12\tAlien\tSci-Fi Horror\n")
    cfg = DataConfig(name="mini", format="recbole", path=str(folder), min_user_interactions=0,
                     min_item_interactions=0, text_fields=["movie_title", "class"], text_separator=", ")
    ds = prepare_dataset(cfg, cache=False)
    assert [ds.item_ids[i] for i in ds.sequence(0)] == ["11", "10", "12"]
    assert ds.item_text[ds.item_index()["12"]] == "Alien, Sci-Fi Horror"
    assert ds.item_text[ds.item_index()["11"]] == '"Big" Night, Comedy'  # atomic files do not quote
    with pytest.raises(DataError, match=r"field 'data.options.min_rating': expected a number, got 'high'"):
        prepare_dataset(dataclasses.replace(cfg, options={"min_rating": "high"}), cache=False)
    (folder / "mini.inter").write_text("user_id:token\titem_id:token\trating:float\n1\t10\t5\n1\t11\tfive\n")
    with pytest.raises(DataError, match=r"mini.inter:3, field 'rating': not a number: 'five'"):
        prepare_dataset(dataclasses.replace(cfg, options={"min_rating": 4}), cache=False)
    (folder / "mini.inter").write_text("user_id:token\titem_id:token\trating:float\n1\t10\t5\n1\t11\t\n")
    with pytest.raises(DataError, match=r"mini.inter:3, field 'rating': missing"):
        prepare_dataset(dataclasses.replace(cfg, options={"min_rating": 4}), cache=False)
    (folder / "mini.inter").write_text("user_id:token\titem_id:token\n1\t10\n\t11\n")
    with pytest.raises(DataError, match=r"mini.inter:3, field 'user_id': missing"):
        prepare_dataset(cfg, cache=False)
    (folder / "mini.inter").write_text("user_id\titem_id\n1\t10\n")
    with pytest.raises(DataError, match=r"mini.inter:1.*no ':type' suffix"):
        prepare_dataset(cfg, cache=False)


def test_cache_is_reused_and_invalidated(tmp_path, caplog):
    folder = write_generic(tmp_path / "d", [("u1", "i1", 1), ("u1", "i2", 2), ("u1", "i3", 3), ("u1", "i4", 4)],
                           ITEMS)
    first = prepare_dataset(cfg_for(folder))
    caplog.set_level("INFO")
    second = prepare_dataset(cfg_for(folder))
    assert "reused processed cache" in caplog.text
    assert second.fingerprint == first.fingerprint
    np.testing.assert_array_equal(second.items, first.items)
    assert prepare_dataset(cfg_for(folder, max_history=3)).fingerprint != first.fingerprint
    # Same bytes with new modification times (a copied dataset): still the same cache.
    for path in folder.iterdir():
        os.utime(path, ns=(path.stat().st_mtime_ns + 10**12,) * 2)
    assert prepare_dataset(cfg_for(folder)).fingerprint == first.fingerprint
    # Edited content of the same size: processed again.
    inter = next(p for p in folder.iterdir() if "u1" in p.read_text())
    inter.write_text(inter.read_text().replace("i4", "i5"))
    assert prepare_dataset(cfg_for(folder)).fingerprint != first.fingerprint


def test_save_load_roundtrip(tmp_path):
    ds = prepare_dataset(preset("synthetic", options={"num_items": 50, "num_users": 40}), cache=False)
    ds.save(tmp_path / "saved")
    back = SequenceDataset.load(tmp_path / "saved")
    assert back.item_ids == ds.item_ids and back.item_titles == ds.item_titles
    np.testing.assert_array_equal(back.offsets, ds.offsets)


def test_save_replaces_a_folder_and_yields_to_a_concurrent_save(tmp_path, monkeypatch):
    small = prepare_dataset(preset("synthetic", options={"num_items": 50, "num_users": 40}), cache=False)
    large = prepare_dataset(preset("synthetic", options={"num_items": 60, "num_users": 40}), cache=False)
    small.save(tmp_path / "saved")
    large.save(tmp_path / "saved")
    assert SequenceDataset.load(tmp_path / "saved").num_items == large.num_items
    small.save(tmp_path / "other")
    real_replace = os.replace

    def other_process_lands_first(src, dst):  # another save's folder appears between the renames
        if Path(dst) == tmp_path / "saved" and not (tmp_path / "saved").exists():
            shutil.copytree(tmp_path / "other", tmp_path / "saved")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", other_process_lands_first)
    large.save(tmp_path / "saved")
    assert SequenceDataset.load(tmp_path / "saved").num_items == small.num_items
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other", "saved"]  # no temporary folders left

    def rename_into_place_fails(src, dst):  # the new folder cannot go in; the old one can go back
        if Path(dst) == tmp_path / "saved" and not str(src).endswith(".old"):
            raise PermissionError("denied")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", rename_into_place_fails)
    with pytest.raises(PermissionError):
        large.save(tmp_path / "saved")
    assert SequenceDataset.load(tmp_path / "saved").num_items == small.num_items  # the old folder is back
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other", "saved"]


def test_synthetic_is_deterministic():
    cfg = preset("synthetic", options={"num_items": 60, "num_users": 50, "seed": 3})
    a, b = prepare_dataset(cfg, cache=False), prepare_dataset(cfg, cache=False)
    np.testing.assert_array_equal(a.items, b.items)
    assert a.item_text == b.item_text
    assert any("SYNTHETIC" in line for line in a.log)


def test_pad_left_and_flatten():
    items = np.arange(10)
    out = pad_left(items, np.array([0, 5, 8]), np.array([3, 10, 8]), max_len=4)
    assert out.tolist() == [[0, 0, 1, 2], [6, 7, 8, 9], [0, 0, 0, 0]]
    assert flatten_ranges(np.array([2, 7]), np.array([4, 9])).tolist() == [2, 3, 7, 8]


def test_length_buckets_cover_every_row_once():
    lengths = np.random.default_rng(0).integers(1, 50, size=1000)
    batches = length_bucketed_batches(lengths, 64, np.random.default_rng(1), pool_batches=4)
    assert sorted(np.concatenate(batches).tolist()) == list(range(1000))
    assert all(len(b) <= 64 for b in batches)


def test_real_beauty_matches_the_tiger_benchmark(shared_data, monkeypatch):
    monkeypatch.setenv("GENREC_DATA_DIR", str(shared_data))
    ds = prepare_dataset(preset("beauty"))
    assert (ds.num_users, ds.num_items, len(ds.items)) == (22363, 12101, 198502)
    assert all(ds.item_text[1:])  # every item has text (title or categories)
