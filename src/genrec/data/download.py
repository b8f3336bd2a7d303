"""Named public datasets: where to fetch them, how to check them, and which loader reads them.

`download_dataset(name)` fills `$GENREC_DATA_DIR/<name>/`, the folder a DataConfig with
`name=<name>` reads by default. Downloads resume from `<file>.part`, are verified against
published checksums where known, and only appear under their final name once complete.
Set GENREC_DOWNLOAD_MIRROR (or pass base_url) to fetch the same paths from another host.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from urllib.error import HTTPError, URLError
from urllib.parse import urlsplit
from urllib.request import Request, urlopen

from tqdm import tqdm

from ..registry import Registry
from .config import data_root
from .errors import DataError

log = logging.getLogger(__name__)

MIRROR_ENV = "GENREC_DOWNLOAD_MIRROR"
_TIMEOUT_S = 60
_CHUNK = 1 << 20
_USER_AGENT = "genrec-download (python urllib)"


@dataclass(frozen=True)
class RemoteFile:
    url: str
    # "md5:<hex>" or "sha256:<hex>", only where the publisher's value is known; None skips the check.
    checksum: str | None = None
    # Unzip into this folder, relative to the dataset folder ("." = the folder itself);
    # None keeps the file as downloaded.
    extract_to: str | None = None

    @property
    def filename(self) -> str:
        return PurePosixPath(urlsplit(self.url).path).name


@dataclass(frozen=True)
class DatasetDownload:
    name: str
    description: str
    format: str  # DataConfig.format that reads the downloaded folder
    files: tuple[RemoteFile, ...]
    options: dict = field(default_factory=dict)  # DataConfig.options for that loader


DOWNLOADS: Registry[DatasetDownload] = Registry("downloadable dataset")


def _register(spec: DatasetDownload) -> None:
    DOWNLOADS.register(spec.name)(spec)


_AMAZON_2014 = "https://snap.stanford.edu/data/amazon/productGraph/categoryFiles"
for _name, _category in (("amazon2014-beauty", "Beauty"), ("amazon2014-sports", "Sports_and_Outdoors"),
                         ("amazon2014-toys", "Toys_and_Games")):
    _register(DatasetDownload(
        name=_name, description=f"Amazon 2014 {_category}: 5-core reviews + item metadata",
        format="amazon2014", options={"category": _category},
        files=(RemoteFile(f"{_AMAZON_2014}/reviews_{_category}_5.json.gz"),
               RemoteFile(f"{_AMAZON_2014}/meta_{_category}.json.gz"))))

# MD5s as published by GroupLens next to the archives (<url>.md5).
_register(DatasetDownload(
    name="ml-100k-raw", description="MovieLens 100K (raw GroupLens files) ratings + movie titles and genres", format="movielens",
    files=(RemoteFile("https://files.grouplens.org/datasets/movielens/ml-100k.zip",
                      checksum="md5:0e33842e24a9c977be4e0107933c0723", extract_to="."),)))
_register(DatasetDownload(
    name="ml-1m", description="MovieLens 1M ratings + movie titles and genres", format="movielens",
    files=(RemoteFile("https://files.grouplens.org/datasets/movielens/ml-1m.zip",
                      checksum="md5:c4d9eecfca2ab87c1945afe126590906", extract_to="."),)))

_MIND = "https://mind201910small.blob.core.windows.net/release"
_register(DatasetDownload(
    name="mind-small", description="MIND small news clicks, train and dev splits (loads train)",
    format="mind", options={"split": "train"},
    files=(RemoteFile(f"{_MIND}/MINDsmall_train.zip", extract_to="MINDsmall_train"),
           RemoteFile(f"{_MIND}/MINDsmall_dev.zip", extract_to="MINDsmall_dev"))))


def is_downloadable(name: str) -> bool:
    return name in DOWNLOADS


def dataset_config_overrides(name: str) -> dict:
    """The DataConfig fields (format, options) that read the named dataset once downloaded."""
    spec = DOWNLOADS.get(name)
    return {"format": spec.format, "options": dict(spec.options)}


def download_dataset(name: str, root: str | Path | None = None, base_url: str | None = None,
                     progress: bool = True) -> Path:
    """Downloads (and unpacks) the named dataset into `(root or data_root())/<name>/`.

    base_url (else $GENREC_DOWNLOAD_MIRROR) replaces scheme and host of every URL, keeping
    its path: base_url="http://mirror/x" fetches http://mirror/x/datasets/movielens/ml-1m.zip.
    """
    folder = (Path(root).expanduser() if root is not None else data_root()) / name
    return download_files(DOWNLOADS.get(name), folder, base_url, progress)


def download_files(spec: DatasetDownload, folder: Path, base_url: str | None = None,
                   progress: bool = True) -> Path:
    """Fetches every file of `spec` missing from `folder`, then unpacks the archives."""
    base_url = base_url or os.environ.get(MIRROR_ENV) or None
    folder.mkdir(parents=True, exist_ok=True)
    for remote in spec.files:
        target = folder / remote.filename
        if target.is_file():
            if remote.checksum and _checksum_mismatch(target, remote.checksum):
                raise DataError(f"does not match the published {remote.checksum.partition(':')[0]} checksum of "
                                f"{remote.url}: a different or damaged file; delete it to download it again",
                                path=target)
            log.info("%s already present, not downloading", target)
        else:
            url = _mirrored(remote.url, base_url)
            try:
                _fetch(url, target, remote.checksum, progress)
            # Network failures only: a local OSError (disk full, permissions) is not an offline case.
            except (URLError, ConnectionError, TimeoutError, http.client.HTTPException) as exc:
                raise DataError(_offline_instructions(spec, folder, url, exc)) from exc
        if remote.extract_to is not None:
            _extract(target, folder / remote.extract_to)
    return folder


def _mirrored(url: str, base_url: str | None) -> str:
    if not base_url:
        return url
    parts = urlsplit(url)
    return base_url.rstrip("/") + parts.path + (f"?{parts.query}" if parts.query else "")


def _fetch(url: str, target: Path, checksum: str | None, progress: bool) -> None:
    """Downloads `url` to `target` through `<target>.part`, resuming what a previous run left."""
    part = target.with_name(target.name + ".part")
    offset = part.stat().st_size if part.is_file() else 0
    headers = {"User-Agent": _USER_AGENT}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        response = urlopen(Request(url, headers=headers), timeout=_TIMEOUT_S)
    except HTTPError as exc:
        if exc.code != 416 or not offset:
            raise
        # The server cannot serve past what we hold: the .part is stale or oversized. Start over.
        part.unlink()
        return _fetch(url, target, checksum, progress)
    with response:
        if offset and response.status == 206 \
                and not response.headers.get("Content-Range", "").startswith(f"bytes {offset}-"):
            part.unlink()  # a range we did not ask for: fetch the whole file instead
            return _fetch(url, target, checksum, progress)
        if offset and response.status != 206:
            log.info("%s ignored the resume request; downloading %s from the start", url, target.name)
            offset = 0
        length = response.headers.get("Content-Length")
        total = offset + int(length) if length is not None else None
        with open(part, "ab" if offset else "wb") as out, \
                tqdm(total=total, initial=offset, unit="B", unit_scale=True, unit_divisor=1024,
                     desc=target.name, disable=not progress) as bar:
            while chunk := response.read(_CHUNK):
                out.write(chunk)
                bar.update(len(chunk))
    size = part.stat().st_size
    if total is not None and size != total:
        raise ConnectionError(f"connection closed after {size} of {total} bytes "
                              f"(kept {part}; run again to resume)")
    if checksum:
        _verify(part, url, checksum)
    os.replace(part, target)


def _checksum_mismatch(path: Path, checksum: str) -> str | None:
    """`path`'s hex digest when it differs from `checksum` ("md5:...", "sha256:..."), else None."""
    algorithm, _, expected = checksum.partition(":")
    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        while block := handle.read(_CHUNK):
            digest.update(block)
    return None if digest.hexdigest() == expected.lower() else digest.hexdigest()


def _verify(path: Path, url: str, checksum: str) -> None:
    algorithm, _, expected = checksum.partition(":")
    actual = _checksum_mismatch(path, checksum)
    if actual:
        path.unlink()
        raise DataError(f"{algorithm} checksum mismatch for {url}: expected {expected}, got "
                        f"{actual}; deleted the download, run again to retry (a mirror "
                        f"or proxy may be serving a different file)")


def download_incomplete(name: str, folder: Path) -> bool:
    """Whether `folder` lacks the named dataset or holds an interrupted download of it: the
    folder is missing or empty, a file is missing beside its `.part` (for an archive: with
    nothing unpacked yet), or an archive's members are missing or cut short. A folder filled
    by hand (archives unpacked and deleted) is complete; a path that is a file is left to the
    loader to report."""
    if not folder.exists() or (folder.is_dir() and not any(folder.iterdir())):
        return True
    if not folder.is_dir():
        return False
    files = DOWNLOADS.get(name).files
    ours = {remote.filename for remote in files} | {remote.filename + ".part" for remote in files}
    unpacked = any(entry.name not in ours for entry in folder.iterdir())
    for remote in files:
        target = folder / remote.filename
        if target.with_name(target.name + ".part").is_file() and not target.exists() \
                and (remote.extract_to is None or not unpacked):
            return True
        if remote.extract_to is not None and target.is_file() \
                and _extracted(target, folder / remote.extract_to) is False:
            return True
    return False


def _extracted(archive: Path, folder: Path) -> bool | None:
    """Whether every member of zip `archive` is in `folder` with its size (None for a damaged archive)."""
    try:
        with zipfile.ZipFile(archive) as bundle:
            members = [m for m in bundle.infolist() if not m.is_dir()]
    except zipfile.BadZipFile:
        return None
    return all((folder / m.filename).is_file() and (folder / m.filename).stat().st_size == m.file_size
               for m in members)


def _extract(archive: Path, folder: Path) -> None:
    """Unzips `archive` into `folder` unless every member is already there with its size."""
    if _extracted(archive, folder):
        return
    try:
        with zipfile.ZipFile(archive) as bundle:
            inside = folder.resolve()
            for member in bundle.infolist():
                if not (inside / member.filename).resolve().is_relative_to(inside):
                    raise DataError(f"archive member {member.filename!r} would land outside {folder}",
                                    path=archive)
            log.info("extracting %s into %s", archive.name, folder)
            bundle.extractall(folder)
    except zipfile.BadZipFile as exc:
        raise DataError(f"not a valid zip archive ({exc}); delete it and run again", path=archive) from None


def _offline_instructions(spec: DatasetDownload, folder: Path, url: str, exc: Exception) -> str:
    """Says what failed and exactly which files to put where to carry on without network."""
    reason = exc.reason if isinstance(exc, URLError) and not isinstance(exc, HTTPError) else exc
    lines = [f"could not download {url}: {reason}",
             "To proceed offline, fetch these files on a machine with network access and place them at:"]
    for remote in spec.files:
        target = folder / remote.filename
        if not target.is_file():
            lines.append(f"  {remote.url}\n    -> {target}")
    lines.append(f"then run `genrec download {spec.name} --root {folder.parent}` again: it skips files "
                 f"already present" + (" and unpacks the archives." if any(f.extract_to for f in spec.files)
                                       else "."))
    return "\n".join(lines)
