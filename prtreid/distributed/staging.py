"""Local copies of inputs that live in S3, made by a bulk worker just before it tracks them.

A video in S3 is downloaded to a local temporary file with a streaming, chunked copy
(``pyarrow.fs.copy_files``: never whole in memory) and opened from there. We do not decode from a
file-like object over S3: MP4 keeps its index (``moov``) wherever the muxer put it, often at the
end, and FFmpeg seeks to it, which over S3 turns into many small range requests; one sequential
download is cheaper and its failure is a clean, retryable error. A SoccerNet sequence folder in S3
(``seqinfo.ini``, ``img1/``, ``gt/``...) is copied the same way, file by file.

Local paths are used in place. Temporary copies live in the process's scratch folder
(:func:`prtreid.scratch.scratch`), removed when the video is done; :func:`prtreid.scratch.clean_stale`
removes the folders of processes that died (a killed actor cannot clean up after itself).
"""

from __future__ import annotations

import contextlib
import logging
import posixpath
from collections.abc import Iterator
from pathlib import Path

import pyarrow.fs as pafs

from prtreid.errors import FormatError
from prtreid.scratch import scratch
from prtreid.storage import split_uri

log = logging.getLogger(__name__)


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
    if info.type == pafs.FileType.Directory:
        check_keys(fs, path, uri)
    with scratch("input-", root) as tmp:
        local = tmp / posixpath.basename(path)
        if info.type == pafs.FileType.Directory:
            local.mkdir()
        pafs.copy_files(path, str(local), source_filesystem=fs, destination_filesystem=pafs.LocalFileSystem())
        log.debug("staged %s at %s", uri, local)
        yield local


def check_keys(fs: pafs.FileSystem, path: str, uri: str) -> None:
    """Refuse a prefix holding an object whose key would leave the local copy (``SEQ/img1/../../x``).

    S3 keys are free text; the copy joins them to the local folder as they are.

    Raises:
        FormatError: such a key (named in the message).
    """
    for entry in fs.get_file_info(pafs.FileSelector(path, recursive=True)):
        rel = entry.path[len(path):].lstrip("/")
        if any(part in ("", ".", "..") for part in rel.split("/")):
            raise FormatError(uri, None, f"object {rel!r} has an empty, '.' or '..' key component: it would be "
                                         "copied outside the local folder; rename it")
