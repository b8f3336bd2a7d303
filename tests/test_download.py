"""Dataset downloads against a local HTTP server: resume, checksums, unpacking, offline help."""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import io
import socket
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from genrec.commands import download as download_command
from genrec.data import download
from genrec.data.config import DataConfig
from genrec.data.download import DatasetDownload, RemoteFile
from genrec.data.errors import DataError
from genrec.data.loaders import movielens

PAYLOAD = bytes(range(256)) * 40  # 10 KiB, position-dependent so misplaced bytes show


class FileServer:
    """Serves `files` (URL path -> bytes), honouring `Range: bytes=N-` unless told not to."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.requests: list[tuple[str, str | None]] = []
        self.honor_range = True
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                server.requests.append((self.path, self.headers.get("Range")))
                body = server.files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                start = 0
                wanted = self.headers.get("Range")
                if wanted and server.honor_range:
                    start = int(wanted.removeprefix("bytes=").split("-")[0])
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(body) - start))
                self.end_headers()
                self.wfile.write(body[start:])

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def server(monkeypatch):
    for var in ("no_proxy", "NO_PROXY"):  # never send 127.0.0.1 through a configured proxy
        monkeypatch.setenv(var, "127.0.0.1,localhost")
    monkeypatch.delenv(download.MIRROR_ENV, raising=False)
    running = FileServer()
    yield running
    running.close()


def spec_for(*files: RemoteFile) -> DatasetDownload:
    return DatasetDownload(name="tiny", description="test", format="generic", files=files)


def zipped(members: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
        for name, text in members.items():
            bundle.writestr(name, text)
    return buffer.getvalue()


def test_full_download_verifies_checksum_and_skips_present_files(server, tmp_path):
    server.files["/d/data.bin"] = PAYLOAD
    sha = hashlib.sha256(PAYLOAD).hexdigest()
    spec = spec_for(RemoteFile(f"{server.url}/d/data.bin", checksum=f"sha256:{sha}"))
    folder = download.download_files(spec, tmp_path / "tiny", progress=False)
    assert (folder / "data.bin").read_bytes() == PAYLOAD
    assert not (folder / "data.bin.part").exists()
    assert server.requests == [("/d/data.bin", None)]
    download.download_files(spec, folder, progress=False)
    assert len(server.requests) == 1  # present: not fetched again
    (folder / "data.bin").write_bytes(b"placed by hand, but not the published file")
    with pytest.raises(DataError, match=r"data.bin: does not match the published sha256 checksum"):
        download.download_files(spec, folder, progress=False)
    assert (folder / "data.bin").is_file() and len(server.requests) == 1  # the user's file is kept


def test_resume_sends_range_and_appends(server, tmp_path):
    server.files["/d/data.bin"] = PAYLOAD
    folder = tmp_path / "tiny"
    folder.mkdir()
    (folder / "data.bin.part").write_bytes(PAYLOAD[:3000])
    download.download_files(spec_for(RemoteFile(f"{server.url}/d/data.bin")), folder, progress=False)
    assert server.requests == [("/d/data.bin", "bytes=3000-")]
    assert (folder / "data.bin").read_bytes() == PAYLOAD


def test_resume_restarts_when_server_ignores_range(server, tmp_path):
    server.files["/d/data.bin"] = PAYLOAD
    server.honor_range = False
    folder = tmp_path / "tiny"
    folder.mkdir()
    (folder / "data.bin.part").write_bytes(b"stale bytes from another file")
    download.download_files(spec_for(RemoteFile(f"{server.url}/d/data.bin")), folder, progress=False)
    assert server.requests[0][1] == "bytes=29-"
    assert (folder / "data.bin").read_bytes() == PAYLOAD  # not appended to the stale prefix


def test_checksum_mismatch_deletes_and_says_so(server, tmp_path):
    server.files["/d/data.bin"] = PAYLOAD
    spec = spec_for(RemoteFile(f"{server.url}/d/data.bin", checksum="md5:" + "0" * 32))
    with pytest.raises(DataError, match="md5 checksum mismatch") as error:
        download.download_files(spec, tmp_path / "tiny", progress=False)
    assert hashlib.md5(PAYLOAD).hexdigest() in str(error.value)
    assert list((tmp_path / "tiny").iterdir()) == []  # neither the file nor its .part remain


def test_registered_dataset_via_mirror_env_is_checked_against_published_md5(server, tmp_path, monkeypatch):
    server.files["/datasets/movielens/ml-1m.zip"] = zipped({"ml-1m/ratings.dat": "1::2::3::4\n"})
    monkeypatch.setenv(download.MIRROR_ENV, server.url)
    with pytest.raises(DataError, match=f"mismatch for {server.url}/datasets/movielens/ml-1m.zip"):
        download.download_dataset("ml-1m", root=tmp_path, progress=False)
    assert not (tmp_path / "ml-1m" / "ml-1m.zip").exists()


def test_zip_is_extracted_and_readable_by_its_loader(server, tmp_path):
    server.files["/r/ml-100k.zip"] = zipped({
        "ml-100k/u.data": "1\t10\t4\t100\n2\t10\t5\t200\n",
        "ml-100k/u.item": "10|Heat (1995)|01-Jan-1995||http://x|" + "|".join(["0"] * 18 + ["1"]) + "\n",
    })
    spec = spec_for(RemoteFile(f"{server.url}/r/ml-100k.zip", extract_to="."))
    folder = download.download_files(spec, tmp_path / "ml-100k", progress=False)
    assert (folder / "ml-100k" / "u.data").is_file()
    raw = movielens.load_movielens(DataConfig(format="movielens", path=str(folder)))
    assert list(raw.interactions["timestamp"]) == [100.0, 200.0]
    assert raw.items["genres"][0] == ["Western"]
    # Re-running neither downloads nor unpacks again: a same-size edit survives...
    edited = "1\t10\t4\t999\n2\t10\t5\t888\n"
    (folder / "ml-100k" / "u.data").write_text(edited)
    download.download_files(spec, folder, progress=False)
    assert len(server.requests) == 1 and (folder / "ml-100k" / "u.data").read_text() == edited
    # ...while a truncated member (an interrupted unpack) is restored.
    (folder / "ml-100k" / "u.item").write_text("10|He")
    download.download_files(spec, folder, progress=False)
    assert (folder / "ml-100k" / "u.item").read_text().startswith("10|Heat (1995)|")


def test_offline_error_names_urls_and_target_paths(tmp_path, monkeypatch):
    monkeypatch.delenv(download.MIRROR_ENV, raising=False)
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}"
    with pytest.raises(DataError) as error:
        download.download_dataset("amazon2014-beauty", root=tmp_path, base_url=closed, progress=False)
    message = str(error.value)
    folder = tmp_path / "amazon2014-beauty"
    assert f"{closed}/data/amazon/productGraph/categoryFiles/reviews_Beauty_5.json.gz" in message
    for name in ("reviews_Beauty_5.json.gz", "meta_Beauty.json.gz"):
        assert f"https://snap.stanford.edu/data/amazon/productGraph/categoryFiles/{name}" in message
        assert str(folder / name) in message


def test_registry_config_overrides_and_cli_list(capsys):
    assert download.is_downloadable("mind-small") and not download.is_downloadable("nope")
    assert download.dataset_config_overrides("amazon2014-toys") == {
        "format": "amazon2014", "options": {"category": "Toys_and_Games"}}
    parser = argparse.ArgumentParser()
    download_command.register(parser.add_subparsers())
    args = parser.parse_args(["download", "--list"])
    assert args.func(args) == 0
    listing = capsys.readouterr().out
    assert "ml-1m" in listing and "https://files.grouplens.org/datasets/movielens/ml-1m.zip" in listing
    assert "MINDsmall_dev.zip" in listing
    with pytest.raises(SystemExit):
        parser.parse_args(["download", "not-a-dataset"])


@pytest.fixture
def ml100k_mirror(server, tmp_path, monkeypatch):
    """ml-100k-raw served by the local server (a 2-user archive), GENREC_DATA_DIR in tmp_path."""
    ratings = "".join(f"{u}\t{i}\t4\t{100 * u + i}\n" for u in (1, 2) for i in (10, 11, 12, 13))
    movies = "".join(f"{i}|Movie {i} (1995)|01-Jan-1995||http://x|" + "|".join(["0"] * 18 + ["1"]) + "\n"
                     for i in (10, 11, 12, 13))
    archive = zipped({"ml-100k/u.data": ratings, "ml-100k/u.item": movies})
    server.files["/datasets/movielens/ml-100k.zip"] = archive
    spec = download.DOWNLOADS.get("ml-100k-raw")
    remote = dataclasses.replace(spec.files[0], checksum=f"md5:{hashlib.md5(archive).hexdigest()}")
    monkeypatch.setitem(download.DOWNLOADS._entries, "ml-100k-raw", dataclasses.replace(spec, files=(remote,)))
    monkeypatch.setenv(download.MIRROR_ENV, server.url)
    monkeypatch.setenv("GENREC_DATA_DIR", str(tmp_path))
    return archive


def test_named_dataset_is_downloaded_on_first_use(ml100k_mirror, tmp_path):
    """A config naming a downloadable dataset fetches it (through the mirror) when its folder is missing."""
    from genrec.data import prepare_dataset, preset

    dataset = prepare_dataset(preset("ml-100k-raw", min_user_interactions=0, min_item_interactions=0))
    assert (tmp_path / "ml-100k-raw" / "ml-100k" / "u.data").is_file()
    assert dataset.num_users == 2 and dataset.num_items == 4
    assert dataset.item_titles[dataset.item_index()["12"]].startswith("Movie 12")
    # the cache key hashes the downloaded files, so the next command finds this cache
    again = prepare_dataset(preset("ml-100k-raw", min_user_interactions=0, min_item_interactions=0))
    assert again.fingerprint == dataset.fingerprint


def test_first_use_download_lands_in_the_configured_path(ml100k_mirror, tmp_path):
    from genrec.data import prepare_dataset, preset

    folder = tmp_path / "custom" / "movies"
    dataset = prepare_dataset(preset("ml-100k-raw", path=str(folder), min_user_interactions=0,
                                     min_item_interactions=0), cache=False)
    assert (folder / "ml-100k" / "u.data").is_file() and dataset.num_users == 2


def test_interrupted_download_or_unpacking_is_finished_on_next_use(ml100k_mirror, tmp_path):
    from genrec.data import prepare_dataset, preset

    cfg = preset("ml-100k-raw", min_user_interactions=0, min_item_interactions=0)
    folder = tmp_path / "ml-100k-raw"
    folder.mkdir()
    (folder / "ml-100k.zip.part").write_bytes(ml100k_mirror[:100])  # the download was cut off
    assert download.download_incomplete("ml-100k-raw", folder)
    assert prepare_dataset(cfg, cache=False).num_users == 2
    assert not (folder / "ml-100k.zip.part").exists()
    assert not download.download_incomplete("ml-100k-raw", folder)
    data_file = folder / "ml-100k" / "u.data"
    data_file.write_text(data_file.read_text()[:20])  # unpacking was cut off
    assert download.download_incomplete("ml-100k-raw", folder)
    assert prepare_dataset(cfg, cache=False).num_users == 2
    (folder / "ml-100k.zip").unlink()  # unpacked by hand, archive deleted: complete, nothing fetched
    assert not download.download_incomplete("ml-100k-raw", folder)
    (folder / "ml-100k.zip.part").write_bytes(b"stale")  # an old partial download beside it
    assert not download.download_incomplete("ml-100k-raw", folder)
    (folder / "ml-100k.zip").write_bytes(b"damaged")  # a damaged archive beside unpacked files
    assert not download.download_incomplete("ml-100k-raw", folder)
    assert not download.download_incomplete("ml-100k-raw", folder / "ml-100k" / "u.data")  # a file: the loader says