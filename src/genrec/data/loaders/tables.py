"""Reading CSV / TSV / Parquet / JSONL tables with errors that name file, line and field."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Callable, Iterator

import pandas as pd

from ..errors import DataError


def open_text(path: Path):
    """Opens a text file, transparently gunzipping `.gz` files."""
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8")
    return open(path, encoding="utf-8")


def require_file(path: Path, hint: str = "") -> Path:
    if not path.is_file():
        raise DataError(f"file not found{'; ' + hint if hint else ''}", path=path)
    return path


def iter_record_lines(path: Path, parse: Callable[[str], object] = json.loads, kind: str = "JSON",
                      record_name: str = "a JSON object") -> Iterator[tuple[int, dict]]:
    """Yields (line number, dict) for each non-empty line, parsed by `parse` (JSON by default);
    a line that does not parse, or is not a mapping, is an error naming file and line."""
    with open_text(path) as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = parse(line)
            except (ValueError, SyntaxError) as exc:  # JSONDecodeError is a ValueError
                detail = (f"{exc.msg} at column {exc.colno}" if isinstance(exc, json.JSONDecodeError)
                          else type(exc).__name__)
                raise DataError(f"malformed {kind} ({detail})", path=path, line=number) from None
            if not isinstance(record, dict):
                raise DataError(f"expected {record_name}", path=path, line=number)
            yield number, record


def iter_json_lines(path: Path) -> Iterator[tuple[int, dict]]:
    """Yields (line number, object) for each non-empty line of a JSON-lines file."""
    return iter_record_lines(path)


def read_json_lines(path: Path, key: str) -> pd.DataFrame:
    """Reads JSONL into a frame; every object must carry `key`."""
    rows = []
    for number, record in iter_json_lines(path):
        if key not in record or record[key] in (None, ""):
            raise DataError("missing", path=path, line=number, field=key)
        rows.append(record)
    return pd.DataFrame(rows)


def read_table(path: Path, sep: str | None = None) -> pd.DataFrame:
    """Reads .csv/.tsv/.parquet/.jsonl (optionally gzipped) into a frame of the file's columns."""
    require_file(path)
    name = path.name.removesuffix(".gz")
    if name.endswith(".parquet"):
        return pd.read_parquet(path)
    if name.endswith((".jsonl", ".json")):
        rows = [record for _, record in iter_json_lines(path)]
        return pd.DataFrame(rows)
    if sep is None:
        sep = "\t" if name.endswith((".tsv", ".inter", ".item", ".user")) else ","
    try:
        return pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False, na_values=[""],
                           compression="infer")
    except pd.errors.ParserError as exc:
        raise DataError(f"malformed table: {exc}", path=path) from None


def require_columns(frame: pd.DataFrame, columns: list[str], path: Path) -> None:
    for column in columns:
        if column not in frame.columns:
            raise DataError(f"column not found (columns are: {', '.join(map(str, frame.columns))})",
                            path=path, field=column)


def parse_timestamps(values: pd.Series, path: Path, field: str, header_lines: int = 1) -> pd.Series:
    """Numbers stay numbers; date strings become seconds since the epoch."""
    numeric = pd.to_numeric(values, errors="coerce")
    bad = numeric.isna() & values.notna()
    if bad.any():
        dates = pd.to_datetime(values[bad], errors="coerce", utc=True)
        if dates.isna().any():
            row = int(dates.index[dates.isna()][0])
            raise DataError(f"not a number or date: {values[row]!r}", path=path,
                            line=row + 1 + header_lines, field=field)
        numeric[bad] = dates.astype("int64") / 1e9
    if numeric.isna().any():
        row = int(numeric.index[numeric.isna()][0])
        raise DataError("missing", path=path, line=row + 1 + header_lines, field=field)
    return numeric.astype("float64")


def iter_delimited(path: Path, sep: str, fields: tuple[str, ...], encoding: str = "utf-8"
                   ) -> Iterator[tuple[int, list[str]]]:
    """Yields (line number, values) for each non-empty line of a header-less delimited file
    that must have exactly len(fields) values. Split by hand rather than with a CSV reader:
    these files do not quote, and titles contain quote characters."""
    with open(path, encoding=encoding) as handle:
        for number, line in enumerate(handle, start=1):
            line = line.rstrip("\r\n")
            if not line.strip():
                continue
            values = line.split(sep)
            if len(values) < len(fields):
                raise DataError(f"missing (line has {len(values)} of {len(fields)} '{sep}'-separated "
                                f"fields: {', '.join(fields)})", path=path, line=number,
                                field=fields[len(values)])
            if len(values) > len(fields):
                raise DataError(f"line has {len(values)} '{sep}'-separated fields, expected "
                                f"{len(fields)}: {', '.join(fields)}", path=path, line=number)
            yield number, values
