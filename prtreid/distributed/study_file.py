"""Where a sweep's Optuna study lives: ``SWEEP/study.db``, or for an ``s3://`` sweep a local SQLite
copy that :class:`StudyBackup` uploads to ``SWEEP/study.db`` after every trial."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any

from ray import tune
from sqlalchemy.engine import make_url

from prtreid.distributed import study as studies
from prtreid.errors import ConfigError
from prtreid.scratch import user_temp
from prtreid.storage import Storage, atomic_path

log = logging.getLogger(__name__)

STUDY_DB = "study.db"


def refuse_a_held_study(storage: Storage, resume: bool) -> None:
    """A new sweep never starts over a folder that holds a study: it would overwrite the folder's results.

    Raises:
        ConfigError: ``storage`` holds ``study.db`` and ``resume`` is false.
    """
    if not resume and storage.exists(STUDY_DB):
        raise ConfigError(f"{storage.url(STUDY_DB)}: this sweep folder already holds a study: pass resume "
                          "(--resume) to continue it, or choose another output folder")


def study_file(storage: Storage, name: str, work_dir: str | Path | None) -> Path:
    """The SQLite file of the study: in the sweep folder, or a local copy for an S3 sweep.

    The file in a sweep folder is the study's record (see :func:`refuse_a_held_study`): a resumed
    sweep starts from it; for an S3 sweep, from the copy in S3 (a local copy may be another machine's,
    or stale).
    """
    if storage.is_local:
        Path(storage.root).mkdir(parents=True, exist_ok=True)
        return Path(storage.path(STUDY_DB))
    key = hashlib.sha1(storage.url("").encode()).hexdigest()[:12]
    local = Path(work_dir or user_temp("prtreid-sweeps") / f"{name}-{key}") / STUDY_DB
    local.parent.mkdir(parents=True, exist_ok=True)
    if storage.exists(STUDY_DB):
        with atomic_path(local) as tmp:
            tmp.write_bytes(storage.read_bytes(STUDY_DB))
    elif local.exists():  # left by an earlier sweep whose S3 folder is gone: not this folder's record
        log.warning("%s: removing a local study copy that %s does not hold", local, storage.url(STUDY_DB))
        local.unlink()
    return local


class StudyBackup(tune.Callback):
    """Copies the local SQLite study of an S3 sweep to ``SWEEP/study.db`` after every finished
    trial, so a sweep whose driver machine is lost can be resumed from another one."""

    def __init__(self, url: str, storage: Storage) -> None:
        self.db = Path(make_url(url).database or "")
        self.storage = storage

    def upload(self) -> None:
        """Write a consistent snapshot of the study next to the sweep's results."""
        self.storage.write_bytes(STUDY_DB, studies.sqlite_snapshot(self.db))

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.upload()

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.upload()
