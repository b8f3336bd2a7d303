"""Reading CSV / TSV / Parquet / JSONL tables with errors that name file, line and field."""

from __future__ import annotations

import contextlib
import csv
import gzip
import json
import zlib
from pathlib import Path
from typing import Callable, Iterator, NamedTuple

import numpy as np
import pandas as pd

from ..errors import DataError


@contextlib.contextmanager
def reading(path: Path):
    """Turns what a damaged or mis-encoded file raises deep inside gzip, codecs or pandas into
    a DataError naming the file."""
    try:
        yield
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise DataError(f"corrupt or truncated compressed file ({exc}); delete it and download "
                        f"it again", path=path) from None
    except UnicodeDecodeError as exc:
        raise DataError(f"not UTF-8 text ({exc.reason} at byte {exc.start} of a read block); "
                        f"convert it to UTF-8", path=path) from None
    except pd.errors.EmptyDataError:
        raise DataError("empty file (not even a header line)", path=path) from None


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
    with reading(path), open_text(path) as handle:
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


class Table(NamedTuple):
    """A file's rows and, for errors that point into the file, the line each row came from
    (blank lines skipped; for Parquet, the 1-based row)."""

    frame: pd.DataFrame
    lines: np.ndarray
    path: Path

    def line(self, row: int) -> int:
        return int(self.lines[row])

    def require_columns(self, columns: list[str]) -> None:
        for column in columns:
            if column not in self.frame.columns:
                raise DataError(f"column not found (columns are: {', '.join(map(str, self.frame.columns))})",
                                path=self.path, field=column)

    def require_values(self, columns: list[str]) -> None:
        """Every row has a value (not null, not empty) in each of `columns`."""
        for column in columns:
            values = self.frame[column]
            missing = np.flatnonzero((values.isna() | (values.astype(str) == "")).to_numpy())
            if len(missing):
                raise DataError("missing", path=self.path, line=self.line(missing[0]), field=column)


def read_table(path: Path, sep: str | None = None, quoted: bool = True) -> Table:
    """Reads .csv/.tsv/.jsonl (optionally gzipped) or .parquet: the file's columns, as strings
    for delimited files; `quoted=False` for delimited files whose quote characters are text."""
    require_file(path)
    name = path.name.removesuffix(".gz")
    if name.endswith(".parquet"):
        try:
            frame = pd.read_parquet(path).reset_index(drop=True)  # rows by position, as in Table.line
        except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError
            raise DataError(f"not a readable Parquet file ({exc})", path=path) from None
        return Table(frame, np.arange(1, len(frame) + 1), path)
    if name.endswith((".jsonl", ".json")):
        numbered = list(iter_json_lines(path))
        return Table(pd.DataFrame([record for _, record in numbered]),
                     np.array([number for number, _ in numbered], dtype=np.int64), path)
    if sep is None:
        sep = "\t" if name.endswith((".tsv", ".inter", ".item", ".user")) else ","
    # Blank lines are kept as rows (skip_blank_lines=False) so that rows map to file lines,
    # then dropped; those before the header are skipped.
    quoting = csv.QUOTE_MINIMAL if quoted else csv.QUOTE_NONE
    leading, total = None, 0
    with reading(path), open_text(path) as handle:
        for total, line in enumerate(handle, start=1):
            if leading is None and line.strip():
                leading = total - 1
    leading = leading or 0
    try:
        with reading(path):
            frame = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False, na_values=[""],
                                compression="infer", skip_blank_lines=False, skiprows=leading, quoting=quoting)
    except pd.errors.ParserError as exc:
        raise DataError(f"malformed table: {exc}", path=path) from None
    if leading + 1 + len(frame) == total:  # one line per row
        lines = np.arange(leading + 2, leading + len(frame) + 2)
    else:  # quoted values span lines: number each row by the line it starts on
        lines = _record_start_lines(path, sep, quoting, leading)[:len(frame)]
    blank = frame.fillna("").apply(lambda column: column.str.strip() == "").all(axis=1).to_numpy()
    return Table(frame[~blank].reset_index(drop=True), lines[~blank], path)


def _record_start_lines(path: Path, sep: str, quoting: int, leading: int) -> np.ndarray:
    """The file line on which each record after the header starts, blank lines included."""
    starts = []
    limit = csv.field_size_limit(2**31 - 1)  # pandas read the values: long ones are no error here
    try:
        with reading(path), open_text(path) as handle:
            for _ in range(leading):
                next(handle)
            reader = csv.reader(handle, delimiter=sep, quoting=quoting)
            next(reader, None)  # the header
            consumed = reader.line_num
            for _ in reader:
                starts.append(leading + consumed + 1)
                consumed = reader.line_num
    finally:
        csv.field_size_limit(limit)
    return np.array(starts, dtype=np.int64)


_TICKS_PER_SECOND = {"s": 1, "ms": 10**3, "us": 10**6, "ns": 10**9}


def _seconds(datetimes: pd.Series) -> pd.Series:
    """Seconds since 1970 UTC of datetimes without gaps, whatever their resolution (pandas 3
    parses strings to microseconds, pandas 2 to nanoseconds; Parquet stores either)."""
    return datetimes.astype("int64") / _TICKS_PER_SECOND[datetimes.dt.unit]


def parse_numbers(table: Table, field: str, dates: bool = False) -> pd.Series:
    """Column `field` as finite float64 numbers; with `dates`, dates (date strings in one format
    throughout or in ISO 8601's forms, or a datetime column) become seconds since 1970 UTC.
    A value that is none of these, or a missing one, is an error naming its line."""
    values, path = table.frame[field], table.path
    if dates and pd.api.types.is_datetime64_any_dtype(values):  # e.g. a Parquet timestamp column
        numeric = _seconds(values.dropna()).reindex(values.index)
    else:
        numeric = pd.to_numeric(values, errors="coerce").astype("float64")
        numeric = numeric.where(np.isfinite(numeric))  # 'inf', '1e400'
        if values.dtype == object:  # JSON true/false would count as 1/0
            numeric[values.map(type).isin([bool, np.bool_])] = np.nan
    bad = numeric.isna() & values.notna()
    if dates and bad.any():
        text = values[bad].astype(str)
        text = text[text.str.contains(r"\d")]  # not 'now' or 'today', which pandas reads as the clock
        parsed = pd.to_datetime(text, errors="coerce", utc=True)  # the first value's format
        if parsed.isna().any():  # ISO 8601 in any of its forms (date alone, with a time, a zone)
            rest = text[parsed.isna()]
            parsed[rest.index] = pd.to_datetime(rest, errors="coerce", utc=True, format="ISO8601")
        parsed = parsed.dropna()
        numeric[parsed.index] = _seconds(parsed)
        bad = numeric.isna() & values.notna()
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataError(f"not a number{' or date' if dates else ''}: {values.iloc[row]!r}", path=path,
                        line=table.line(row), field=field)
    if numeric.isna().any():
        row = int(np.flatnonzero(numeric.isna().to_numpy())[0])
        raise DataError("missing", path=path, line=table.line(row), field=field)
    return numeric


def iter_delimited(path: Path, sep: str, fields: tuple[str, ...], encoding: str = "utf-8"
                   ) -> Iterator[tuple[int, list[str]]]:
    """Yields (line number, values) for each non-empty line of a header-less delimited file
    that must have exactly len(fields) values. Split by hand rather than with a CSV reader:
    these files do not quote, and titles contain quote characters."""
    with reading(path), open(path, encoding=encoding) as handle:
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
