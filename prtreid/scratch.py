"""Per-process scratch folders on this machine, and the removal of those whose process died.

Bulk workers stage their S3 inputs here, training workers and Tune trials keep their checkpoint
copies here, and ``prtreid eval-reid`` / ``eval-tracking`` cut their crops and tables here: one
folder per process under :func:`staging_root`. A killed process cannot clean up after itself, so
:func:`clean_stale` removes the folders of processes that no longer run. It judges by process id:
processes that share one staging folder must share a process table (one machine or container).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from prtreid.storage import process_alive


def staging_root() -> Path:
    """``$PRTREID_STAGING_DIR``, else ``prtreid-staging`` in the system's temporary folder."""
    return Path(os.environ.get("PRTREID_STAGING_DIR") or Path(tempfile.gettempdir()) / "prtreid-staging")


@contextlib.contextmanager
def scratch(prefix: str, root: Path | None = None) -> Iterator[Path]:
    """A new folder in this process's staging folder, removed when the ``with`` block ends.

    If the process is killed first, :func:`clean_stale` in a later process on the machine removes it.
    """
    base = (root or staging_root()) / str(os.getpid())
    base.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=prefix, dir=base))
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def clean_stale(root: Path | None = None) -> int:
    """Remove the staging folders of processes that no longer run; returns how many."""
    root = root or staging_root()
    removed = 0
    for folder in root.glob("*") if root.is_dir() else []:
        if folder.name.isdigit() and not process_alive(int(folder.name)):
            shutil.rmtree(folder, ignore_errors=True)
            removed += 1
    return removed
