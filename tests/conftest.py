import json
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path_factory, monkeypatch):
    """Every test gets its own processed-data / embedding cache."""
    monkeypatch.setenv("GENREC_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))


@pytest.fixture
def shared_data():
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real datasets not found at {SHARED_DATA} (../shared/data beside the repo)")
    return SHARED_DATA


def write_generic(folder: Path, rows: list[tuple], items: list[dict]) -> Path:
    """A generic-format dataset: interactions.csv (user,item,timestamp) + items.jsonl."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["user_id,item_id,timestamp"] + [",".join(map(str, r)) for r in rows]
    (folder / "interactions.csv").write_text("\n".join(lines) + "\n")
    (folder / "items.jsonl").write_text("".join(json.dumps(i) + "\n" for i in items))
    return folder
