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
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

from prtreid.errors import ConfigError
from prtreid.storage import process_alive


def staging_root() -> Path:
    """``$PRTREID_STAGING_DIR``, else this user's private ``prtreid-staging-UID`` in the system's temporary folder."""
    configured = os.environ.get("PRTREID_STAGING_DIR")
    return Path(configured) if configured else user_temp("prtreid-staging")


def user_temp(name: str) -> Path:
    """``NAME-UID`` in the system's temporary folder (made if missing), private to this user.

    A shared temporary folder (``/tmp``) lets any local user create a name first: a folder of theirs
    (or a link in it) would receive this user's files, or feed them crafted ones.

    Raises:
        ConfigError: the folder is a link, another user's, or writable by others (see :func:`private_dir`).
    """
    return private_dir(Path(tempfile.gettempdir()) / f"{name}-{os.getuid()}")


def private_dir(path: Path) -> Path:
    """``path``, made with mode 0700 if missing; refused unless it is a real folder of this user that
    no one else may write in.

    Raises:
        ConfigError: a link, not a folder, another user's, or writable by group or others.
    """
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    st = os.lstat(path)  # a link is not a folder to lstat
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o022:
        raise ConfigError(f"{path}: not a private folder of this user (a link, another user's, or writable by "
                          "others): someone may have made it first; remove it or choose another folder")
    return path


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
