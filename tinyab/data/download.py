"""Download the official Tiny ImageNet archive, verify it and extract it safely.

Nothing half-done is left behind: the archive streams into a temporary file that is renamed only when
complete, it is verified before anything is extracted (the official archive's MD5, every entry's path,
the layout and counts, and every JPEG decoded as training will decode it), and extraction goes into a
temporary folder that is renamed into place. The archive is deleted once the folder is in place, and
when any check fails. A download says what it fetches, how large, from where and to where before it
starts, and a failure names its cause and the ways to go on without it.

The MD5 is checked for the official URL and for any file of exactly the official size (a mirror's copy
of it): a copy of that size with another MD5 is a damaged copy. A mirror's repacked archive (another
size) has no published checksum; the image-by-image check is what vouches for it.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import socket
import stat
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path, PurePosixPath

from tinyab.data.decode import decode_chunks
from tinyab.data.layout import IMAGE_SUFFIXES, ROOT_NAME, open_dataset
from tinyab.data.locate import default_dataset_dir, resolve_data_path
from tinyab.data.progress import progress_bar
from tinyab.errors import DataError
from tinyab.io import check_output_dir

OFFICIAL_URL = "http://cs231n.stanford.edu/tiny-imagenet-200.zip"
OFFICIAL_BYTES = 248_100_043
# No SHA-256 is published; this MD5 is the one dataset loaders check the official zip against (e.g.
# ContinualAI/avalanche's tiny_imagenet.py, with torchvision's check_integrity). MD5 guards against
# damage in transit or on disk here, not against a forger.
OFFICIAL_MD5 = "90528d7ca1a48142e341f4ef8d21d0de"
# the official zip is 248,100,043 bytes; extracted, its 120,203 files take ~0.5 GB of 4 KiB blocks
OFFICIAL_SIZE = "~237 MB zip, ~0.5 GB extracted"
WAYS_FORWARD = (
    "ways forward: --data PATH (a Tiny ImageNet zip or folder you have), set $TINYAB_DATA=PATH, "
    "or 'tinyab data download --url URL' (a mirror)"
)
EXPECTED_CLASSES = 200
EXPECTED_VAL_IMAGES = 10_000
_BLOCK = 1 << 20


def _cause(err: BaseException, url: str, timeout: float) -> str:
    """Why a transfer failed, in words a user can act on (urllib's own text is often an errno)."""
    if isinstance(err, urllib.error.HTTPError):
        return f"the server answered HTTP {err.code} {err.reason}"
    reason = err.reason if isinstance(err, urllib.error.URLError) else err
    if isinstance(reason, socket.gaierror):
        host = urllib.parse.urlsplit(url).hostname
        return f"cannot resolve host {host} (no network or no DNS?)"
    if isinstance(reason, TimeoutError):
        return f"no answer within {timeout:g} s"
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror
    return str(reason) or type(reason).__name__


def fetch(url: str, target: Path, progress: bool = True, timeout: float = 60) -> None:
    """Stream ``url`` to ``target`` (via a temporary file beside it); a short or failed transfer
    raises DataError naming the URL and the cause, and leaves no file."""
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as response:
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            received = 0
            bar = progress_bar(total=total, desc="downloading", unit="B", unit_scale=True, show=progress)
            with bar:
                while block := response.read(_BLOCK):
                    out.write(block)
                    received += len(block)
                    bar.update(len(block))
            if total is not None and received != total:
                raise DataError(
                    f"download of {url} failed: connection closed after {received} of {total} bytes"
                )
        os.replace(tmp, target)
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as err:
        # ValueError: a URL urllib cannot parse ("unknown url type")
        Path(tmp).unlink(missing_ok=True)
        raise DataError(f"download of {url} failed: {_cause(err, url, timeout)}") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _unsafe_reason(info: zipfile.ZipInfo) -> str | None:
    name = info.filename.replace("\\", "/")
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        return "absolute path"
    if ".." in PurePosixPath(name).parts:
        return "path leaves the target folder"
    if stat.S_ISLNK(info.external_attr >> 16):
        return "symbolic link"
    return None


def _open_zip(archive: Path) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as err:
        raise DataError(f"{archive}: not a readable zip file ({err})") from None


def check_entries(archive: Path, infos: list[zipfile.ZipInfo]) -> None:
    """Refuse an archive with any entry that could write outside the extraction folder."""
    for info in infos:
        reason = _unsafe_reason(info)
        if reason:
            raise DataError(f"{archive}: refusing entry {info.filename!r} ({reason})")


def file_md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as file:
        while block := file.read(_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def check_checksum(archive: Path, url: str) -> bool:
    """Compare the official archive's MD5 when ``archive`` claims to be it (the official URL, or a file
    of exactly its size); returns whether it was checked."""
    if url != OFFICIAL_URL and archive.stat().st_size != OFFICIAL_BYTES:
        return False
    found = file_md5(archive)
    if found != OFFICIAL_MD5:
        raise DataError(
            f"{archive}: MD5 {found}, expected {OFFICIAL_MD5} (the official archive's), "
            "so the file was deleted"
        )
    return True


def verify_archive(archive: Path, progress: bool = True) -> int:
    """Entries safe; 200 classes each with the same nonzero number of train images; 10,000 annotated
    val images (open_dataset already checks that every val image has a known class); then every JPEG
    under the top folder (train, val and test) decoded; returns how many."""
    top = f"{ROOT_NAME}/"
    with _open_zip(archive) as zf:
        infos = zf.infolist()
        check_entries(archive, infos)
    jpegs = [
        info.filename[len(top) :]
        for info in infos
        if info.filename.startswith(top) and info.filename.lower().endswith(IMAGE_SUFFIXES)
    ]
    with open_dataset(archive) as source:
        if len(source.wnids) != EXPECTED_CLASSES:
            found = len(source.wnids)
            raise DataError(f"{archive}: {found} classes in wnids.txt, expected {EXPECTED_CLASSES}")
        counts = {len(images) for images in source.train}
        if len(counts) != 1:
            raise DataError(f"{archive}: classes have different numbers of train images ({sorted(counts)})")
        if len(source.val) != EXPECTED_VAL_IMAGES:
            raise DataError(f"{archive}: {len(source.val)} val images, expected {EXPECTED_VAL_IMAGES}")
        for _ in decode_chunks(jpegs, source.read, source.label, desc="checking images", progress=progress):
            pass
    return len(jpegs)


def extract(archive: Path, dest_dir: Path, progress: bool = True) -> Path:
    """Extract the checked archive's ``tiny-imagenet-200/`` folder to ``dest_dir`` atomically."""
    final = dest_dir / ROOT_NAME
    work = Path(tempfile.mkdtemp(dir=dest_dir, prefix=".extract-"))
    try:
        with _open_zip(archive) as zf:
            infos = zf.infolist()
            check_entries(archive, infos)
            folders: set[str] = set()
            for info in progress_bar(infos, desc="extracting", unit="file", show=progress):
                target = os.path.join(work, *PurePosixPath(info.filename.replace("\\", "/")).parts)
                folder = target if info.is_dir() else os.path.dirname(target)
                if folder not in folders:
                    os.makedirs(folder, exist_ok=True)
                    folders.add(folder)
                if not info.is_dir():
                    with zf.open(info) as src, open(target, "wb") as dst:
                        shutil.copyfileobj(src, dst, _BLOCK)
        if not (work / ROOT_NAME / "wnids.txt").is_file():
            raise DataError(f"{archive}: no top folder {ROOT_NAME}/ with wnids.txt")
        os.replace(work / ROOT_NAME, final)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return final


def download(dest_dir: str | Path, url: str = OFFICIAL_URL, progress: bool = True, why: str = "") -> Path:
    """Download, verify and extract Tiny ImageNet into ``dest_dir/tiny-imagenet-200`` (returned).

    An existing folder there is returned as it is. Before fetching, one line on stderr says what, how
    large, from where and to where (``why`` prefixes it); a failure's message ends with the ways forward.
    """
    scheme = urllib.parse.urlsplit(url).scheme
    if scheme not in ("http", "https", "file"):
        raise DataError(f"--url {url}: expected an http://, https:// or file:// URL")
    dest_dir = Path(dest_dir).expanduser()
    final = dest_dir / ROOT_NAME
    if (final / "wnids.txt").is_file():
        return final
    if final.exists():
        raise DataError(f"{final}: exists but is not a dataset folder (no wnids.txt); remove it first")
    check_output_dir(dest_dir, "--dir")
    dest_dir.mkdir(parents=True, exist_ok=True)
    archive = dest_dir / f"{ROOT_NAME}.zip"
    what = "the official Tiny ImageNet archive" if url == OFFICIAL_URL else "a Tiny ImageNet archive"
    print(f"tinyab: {why}downloading {what} ({OFFICIAL_SIZE}) from {url} to {final}", file=sys.stderr)
    try:
        fetch(url, archive, progress=progress)
    except DataError as err:
        raise DataError(f"{err}; {WAYS_FORWARD}") from None
    try:
        started = time.perf_counter()
        checksum = "MD5 matches the official archive; " if check_checksum(archive, url) else ""
        images = verify_archive(archive, progress=progress)
        seconds = time.perf_counter() - started
        print(f"tinyab: verified: {checksum}{images:,} images decode ({seconds:.1f} s)", file=sys.stderr)
        extract(archive, dest_dir, progress=progress)
    except DataError as err:
        raise DataError(f"downloaded from {url}: {err}; {WAYS_FORWARD}") from None
    finally:
        archive.unlink(missing_ok=True)
    return final


def ensure_dataset(path: str | Path | None, progress: bool = True, url: str = OFFICIAL_URL) -> Path:
    """Like :func:`resolve_data_path`, but downloads the dataset when nothing is given or downloaded."""
    if path or os.environ.get("TINYAB_DATA") or default_dataset_dir().is_dir():
        return resolve_data_path(path)
    why = "no dataset given (--data, $TINYAB_DATA) or downloaded yet; "
    return download(default_dataset_dir().parent, url=url, progress=progress, why=why)
