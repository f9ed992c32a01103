"""Local copies of inputs that live in S3, made by a bulk worker just before it tracks them.

A video in S3 is downloaded to a local temporary file with a streaming, chunked copy
(``pyarrow.fs.copy_files``: never whole in memory) and opened from there. We do not decode from a
file-like object over S3: MP4 keeps its index (``moov``) wherever the muxer put it, often at the
end, and FFmpeg seeks to it, which over S3 turns into many small range requests; one sequential
download is cheaper and its failure is a clean, retryable error. A SoccerNet sequence folder in S3
(``seqinfo.ini``, ``img1/``, ``gt/``...) is copied the same way, file by file.

Local paths are used in place. Temporary copies live under :func:`staging_root`, one folder per
worker process, removed when the video is done; :func:`clean_stale` removes the folders of
processes that died (a killed actor cannot clean up after itself). Training workers and Tune trials
keep their scratch there too (:func:`scratch`): ASHA kills the processes of the trials it stops.
"""

from __future__ import annotations

import contextlib
import logging
import os
import posixpath
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pyarrow.fs as pafs

from prtreid.storage import split_uri

log = logging.getLogger(__name__)


def staging_root() -> Path:
    """Where this machine's workers keep their temporary input copies."""
    return Path(os.environ.get("PRTREID_STAGING_DIR") or Path(tempfile.gettempdir()) / "prtreid-staging")


def is_remote(uri: str) -> bool:
    """Whether ``uri`` names an object store location (to be copied before reading)."""
    return uri.lower().startswith("s3://")


@contextlib.contextmanager
def staged(uri: str, root: Path | None = None) -> Iterator[Path]:
    """A local path holding the input ``uri`` for the duration of the ``with`` block.

    Raises:
        FileNotFoundError: no object or prefix at an ``s3://`` URI.
    """
    if not is_remote(uri):
        yield Path(uri)
        return
    fs, path = split_uri(uri)
    info = fs.get_file_info(path)
    if info.type == pafs.FileType.NotFound:
        raise FileNotFoundError(f"{uri}: no such object or prefix")
    with scratch("input-", root) as tmp:
        local = tmp / posixpath.basename(path)
        if info.type == pafs.FileType.Directory:
            local.mkdir()
        pafs.copy_files(path, str(local), source_filesystem=fs, destination_filesystem=pafs.LocalFileSystem())
        log.debug("staged %s at %s", uri, local)
        yield local


@contextlib.contextmanager
def scratch(prefix: str, root: Path | None = None) -> Iterator[Path]:
    """A new folder in this process's staging folder, removed when the ``with`` block ends.

    If the process is killed first, :func:`clean_stale` in a later worker on the machine removes it.
    """
    base = (root or staging_root()) / str(os.getpid())
    base.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=prefix, dir=base))
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def clean_stale(root: Path | None = None) -> int:
    """Remove the staging folders of worker processes that no longer run; returns how many."""
    root = root or staging_root()
    removed = 0
    for folder in root.glob("*") if root.is_dir() else []:
        if folder.name.isdigit() and not _alive(int(folder.name)):
            shutil.rmtree(folder, ignore_errors=True)
            removed += 1
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
