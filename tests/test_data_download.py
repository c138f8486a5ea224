"""Download over real HTTP (a server on 127.0.0.1), verification (the official archive's MD5, every JPEG
decoded), safe extraction and data location; failures (no DNS, nothing listening, no answer, a missing
file, a damaged archive) name their cause and the ways forward, and leave nothing behind."""

from __future__ import annotations

import hashlib
import importlib
import socket
import stat
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from test_data_helpers import build_small_dataset, mini_with, zip_folder

from helpers.network import closed_port, go_offline
from tinyab.data import ensure_dataset, open_dataset, resolve_data_path
from tinyab.data.download import OFFICIAL_MD5, OFFICIAL_URL, download, extract, fetch
from tinyab.errors import DataError

download_module = importlib.import_module("tinyab.data.download")  # the module, not its function
WAYS = (
    "; ways forward: --data PATH (a Tiny ImageNet zip or folder you have), set $TINYAB_DATA=PATH, "
    "or 'tinyab data download --url URL' (a mirror)"
)


class _Handler(BaseHTTPRequestHandler):
    """Serves ``server.routes[path] = (bytes, truncate)``; a truncated reply promises all the bytes."""

    def do_GET(self) -> None:
        route = self.server.routes.get(self.path)
        if route is None:
            self.send_error(404)
            return
        data, truncate = route
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data[: len(data) // 2] if truncate else data)
        self.close_connection = True

    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.routes = {}
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def _serve(server, path: str, data: bytes, truncate: bool = False) -> str:
    server.routes[path] = (data, truncate)
    return f"http://127.0.0.1:{server.server_address[1]}{path}"


def test_ensure_dataset_downloads_verifies_and_extracts(server, mini_zip, tmp_path, monkeypatch):
    monkeypatch.setenv("TINYAB_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("TINYAB_DATA", raising=False)
    url = _serve(server, "/ok/tiny-imagenet-200.zip", mini_zip.read_bytes())
    folder = ensure_dataset(None, progress=False, url=url)
    assert folder == tmp_path / "home" / "tiny-imagenet-200"
    with open_dataset(folder) as source:
        assert (len(source.wnids), sum(map(len, source.train)), len(source.val)) == (200, 10_000, 10_000)
    assert [p.name for p in (tmp_path / "home").iterdir()] == ["tiny-imagenet-200"]  # no archive, no temp
    del server.routes["/ok/tiny-imagenet-200.zip"]  # now found locally, without the network
    assert ensure_dataset(None, progress=False, url=url) == folder
    assert resolve_data_path(None) == folder


def test_truncated_download_leaves_no_file(server, mini_zip, tmp_path):
    url = _serve(server, "/short.zip", mini_zip.read_bytes()[:200_000], truncate=True)
    with pytest.raises(
        DataError, match=rf"download of {url} failed: connection closed after 100000 of 200000 bytes; ways"
    ):
        download(tmp_path, url=url, progress=False)
    assert list(tmp_path.iterdir()) == []


def _failure(url: str, dest: Path) -> str:
    with pytest.raises(DataError) as caught:
        download(dest, url=url, progress=False)
    return str(caught.value)


def test_each_failure_names_its_cause_and_the_ways_forward(server, tmp_path, capsys):
    missing = _serve(server, "/x", b"") + "-not-there"
    refused = f"http://127.0.0.1:{closed_port()}/tiny-imagenet-200.zip"
    no_file = (tmp_path / "nowhere" / "tiny-imagenet-200.zip").as_uri()
    expected = {
        missing: "the server answered HTTP 404 Not Found",
        refused: "Connection refused",
        no_file: "No such file or directory",
    }
    assert (
        _failure("mirror.zip", tmp_path / "d")
        == "--url mirror.zip: expected an http://, https:// or file:// URL"
    )
    assert not (tmp_path / "d").exists()  # refused before anything is created
    for url, cause in expected.items():
        assert _failure(url, tmp_path / "d") == f"download of {url} failed: {cause}{WAYS}"
        assert f"downloading a Tiny ImageNet archive (~237 MB zip, ~0.5 GB extracted) from {url} to " in (
            capsys.readouterr().err
        )
    assert list((tmp_path / "d").iterdir()) == []


def test_first_run_offline_says_what_it_downloads_then_why_it_cannot(tmp_path, monkeypatch, capsys):
    """The issue's case: no dataset anywhere, no network. One line before, one cause and three ways after."""
    monkeypatch.setenv("TINYAB_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("TINYAB_DATA", raising=False)
    asked = go_offline(monkeypatch)
    with pytest.raises(DataError) as caught:
        ensure_dataset(None, progress=False)
    assert asked == ["cs231n.stanford.edu"]
    assert str(caught.value) == (
        f"download of {OFFICIAL_URL} failed: cannot resolve host cs231n.stanford.edu (no network or no DNS?)"
        + WAYS
    )
    assert capsys.readouterr().err == (
        "tinyab: no dataset given (--data, $TINYAB_DATA) or downloaded yet; downloading the official "
        f"Tiny ImageNet archive (~237 MB zip, ~0.5 GB extracted) from {OFFICIAL_URL} to "
        f"{tmp_path / 'home' / 'tiny-imagenet-200'}\n"
    )
    assert list((tmp_path / "home").rglob("*")) == []


def test_a_server_that_never_answers_times_out(tmp_path):
    with socket.socket() as silent:  # accepts connections (backlog) and never replies
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/tiny.zip"
        with pytest.raises(DataError, match=rf"^download of {url} failed: no answer within 0.5 s$"):
            fetch(url, tmp_path / "tiny.zip", progress=False, timeout=0.5)
    assert list(tmp_path.iterdir()) == []


def test_archive_with_wrong_counts_is_refused_and_removed(server, mini_zip, tmp_path):
    small = zip_folder(build_small_dataset(mini_zip, tmp_path / "src"), tmp_path / "small.zip")
    url = _serve(server, "/small.zip", small.read_bytes())
    with pytest.raises(DataError, match=r"3 classes in wnids\.txt, expected 200"):
        download(tmp_path / "dest", url=url, progress=False)
    assert list((tmp_path / "dest").iterdir()) == []


def _symlink_entry(name: str, target: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info


@pytest.mark.parametrize(
    ("entry", "reason"),
    [
        ("../evil.txt", "path leaves the target folder"),
        ("tiny-imagenet-200/../../evil.txt", "path leaves the target folder"),
        ("/tmp/tinyab-evil.txt", "absolute path"),
        ("tiny-imagenet-200/link", "symbolic link"),
    ],
)
def test_malicious_archive_is_refused_and_nothing_is_written_outside(
    server, mini_zip, tmp_path, entry, reason
):
    folder = build_small_dataset(mini_zip, tmp_path / "src")
    archive = zip_folder(folder, tmp_path / "evil.zip")
    with zipfile.ZipFile(archive, "a") as zf:
        if reason == "symbolic link":
            zf.writestr(_symlink_entry(entry, "/etc/passwd"), "/etc/passwd")
        else:
            zf.writestr(entry, "owned")
    dest = tmp_path / "a" / "b"
    dest.mkdir(parents=True)
    url = _serve(server, "/evil.zip", archive.read_bytes())
    with pytest.raises(DataError, match=f"refusing entry '{entry}' \\({reason}\\)"):
        download(dest, url=url, progress=False)
    with pytest.raises(DataError, match="refusing entry"):  # extraction itself refuses it too
        extract(archive, dest, progress=False)
    assert list(dest.iterdir()) == []
    assert not (tmp_path / "a" / "evil.txt").exists() and not (tmp_path / "evil.txt").exists()
    assert not Path("/tmp/tinyab-evil.txt").exists()


def test_resolve_data_path_order(tmp_path, monkeypatch):
    monkeypatch.setenv("TINYAB_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("TINYAB_DATA", raising=False)
    with pytest.raises(DataError, match=r"run 'tinyab data download'.*--data"):
        resolve_data_path(None)
    downloaded = tmp_path / "home" / "tiny-imagenet-200"
    downloaded.mkdir(parents=True)
    assert resolve_data_path(None) == downloaded
    monkeypatch.setenv("TINYAB_DATA", str(tmp_path))
    assert resolve_data_path(None) == tmp_path
    assert resolve_data_path(str(downloaded)) == downloaded
    with pytest.raises(DataError, match=r"nope\.zip: dataset not found$"):
        resolve_data_path(str(tmp_path / "nope.zip"))
    monkeypatch.setenv("TINYAB_DATA", str(tmp_path / "gone"))
    with pytest.raises(DataError, match=r"gone: dataset not found \(from \$TINYAB_DATA\)"):
        resolve_data_path(None)


def _md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def test_the_official_archive_with_another_md5_is_refused_and_deleted(
    server, mini_zip, tmp_path, monkeypatch
):
    """The mini archive served as if from the official URL: its MD5 is not the official one."""
    data = mini_zip.read_bytes()
    url = _serve(server, "/official/tiny-imagenet-200.zip", data)
    monkeypatch.setattr(download_module, "OFFICIAL_URL", url)
    with pytest.raises(DataError) as caught:
        download(tmp_path, url=url, progress=False)
    assert str(caught.value) == (
        f"downloaded from {url}: {tmp_path / 'tiny-imagenet-200.zip'}: MD5 {_md5(data)}, expected "
        f"{OFFICIAL_MD5} (the official archive's), so the file was deleted{WAYS}"
    )
    assert list(tmp_path.iterdir()) == []


def test_a_mirror_copy_of_the_official_size_is_checked_against_its_md5(
    server, mini_zip, tmp_path, monkeypatch, capsys
):
    data = mini_zip.read_bytes()
    url = _serve(server, "/mirror/tiny-imagenet-200.zip", data)
    monkeypatch.setattr(download_module, "OFFICIAL_BYTES", len(data))
    with pytest.raises(DataError, match=f"MD5 {_md5(data)}, expected {OFFICIAL_MD5}"):
        download(tmp_path / "a", url=url, progress=False)
    assert list((tmp_path / "a").iterdir()) == []
    monkeypatch.setattr(download_module, "OFFICIAL_MD5", _md5(data))
    assert download(tmp_path / "b", url=url, progress=False) == tmp_path / "b" / "tiny-imagenet-200"
    verified = capsys.readouterr().err.splitlines()[-1]
    assert verified.startswith("tinyab: verified: MD5 matches the official archive; 20,000 images decode (")


def test_an_archive_with_a_corrupt_jpeg_is_refused_and_nothing_is_left(server, mini_zip, tmp_path):
    """The last JPEG of the archive is garbage: every image is decoded before anything is accepted."""
    last = "tiny-imagenet-200/val/images/val_9999.JPEG"
    archive = mini_with(mini_zip, tmp_path / "bad.zip", {last: b"not a JPEG at all" * 40})
    url = _serve(server, "/bad.zip", archive.read_bytes())
    with pytest.raises(DataError) as caught:
        download(tmp_path / "dest", url=url, progress=False)
    assert str(caught.value).startswith(
        f"downloaded from {url}: {tmp_path / 'dest' / 'tiny-imagenet-200.zip'}:{last}: corrupt JPEG ("
    )
    assert str(caught.value).endswith(WAYS)
    assert list((tmp_path / "dest").iterdir()) == []
