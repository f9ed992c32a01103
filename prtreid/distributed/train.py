"""Distributed multi-task training on Ray Train (V2): the local loop, run by every worker.

:func:`train_distributed` wraps :func:`prtreid.train.loop.fit` in a ``TorchTrainer``. Each worker
rebuilds the :class:`~prtreid.train.config.ExperimentConfig` from a plain dict, trains its shard of
every epoch under DDP (``prepare_model``; the batch sampler already shards by rank, so the
DataLoader is left alone) and reports after every epoch; rank 0 attaches the epoch's
``checkpoint.pt`` (and, after the last epoch, ``model.pt``), which Ray persists in the run's
storage folder ``STORAGE/NAME/`` (a local folder or ``s3://bucket/prefix``).

Fault tolerance and resumption come from Ray Train: a lost worker restarts the worker group
(``max_failures`` times) from the latest reported checkpoint, and launching again with the same
``name`` and ``storage`` continues the run from its latest checkpoint (nothing is trained twice; a
larger ``train.epochs`` adds epochs). When the run ends, ``model.pt`` and ``history.json`` are
written beside the checkpoints, in ``STORAGE/NAME/``.

Data: ``data`` is a crop store or a folder of sequences that every worker can read (on a cluster,
a shared file system such as NFS/EFS/FSx, or a copy at the same path on every node). A folder of
sequences is cut into a crop store once per node, in a local cache (``cache_dir``, default
``$TMPDIR/prtreid-crops-UID``, private to the user); the cut is deterministic, so every node gets the same store.
"""

from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import json
import logging
import os
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.fs as pafs
import ray.train
import ray.train.torch
from ray.train import (Checkpoint, CheckpointConfig, CheckpointConsistencyMode, FailureConfig, RunConfig,
                       ScalingConfig)
from ray.train.torch import TorchTrainer
from torch import nn

from prtreid.data.crops import INDEX_FILE, CropConfig, build_crops
from prtreid.distributed.runtime import storage_for_ray, storage_uri
from prtreid.errors import ConfigError, FormatError
from prtreid.scratch import clean_stale, scratch, user_temp
from prtreid.storage import Storage, check_folder_name
from prtreid.train.config import ExperimentConfig, experiment_from_dict
from prtreid.train.loop import CHECKPOINT, MODEL, Runtime, fit

log = logging.getLogger(__name__)

REFUSED = (ConfigError, FormatError, FileNotFoundError)
"""Errors of a worker that no restart mends: it ends the run, and the driver raises it."""

EpochHook = Callable[[int, int, "Path | None", nn.Module], None]
"""Called on every worker after each reported epoch with ``(world_rank, epoch, checkpoint_dir, model)``:
a 1-based epoch, the worker's local folder holding ``checkpoint.pt`` on rank 0 (else ``None``), and
the worker's model (unwrapped; for reading)."""

HISTORY = "history.json"


@dataclass(frozen=True)
class TrainSummary:
    """What a distributed training run produced.

    Attributes:
        name: the run's name.
        run_uri: the run's folder in storage (checkpoints, ``model.pt``, ``history.json``).
        model_uri: the final inference model file, ``None`` when the run has no final checkpoint.
        checkpoint_uri: the latest checkpoint folder.
        metrics: the metrics reported with the latest checkpoint (rank 0).
        history: per-epoch metrics of the whole run, across attempts and launches.
        start_epoch: first epoch (1-based) trained by the last attempt; ``1`` for a run trained in
            one go, larger after a resume, ``epochs + 1`` when a finished run was launched again.
    """

    name: str
    run_uri: str
    model_uri: str | None
    checkpoint_uri: str | None
    metrics: dict[str, Any]
    history: list[dict[str, Any]]
    start_epoch: int


def train_distributed(cfg: ExperimentConfig, data: str, storage: str, name: str, num_workers: int = 2,
                      use_gpu: bool = False, resources_per_worker: dict[str, float] | None = None,
                      max_failures: int = 2, *, checkpoints_to_keep: int = 2, cache_dir: str | None = None,
                      epoch_hook: EpochHook | None = None) -> TrainSummary:
    """Train on Ray Train with ``num_workers`` DDP workers; resume the run ``name`` if it exists.

    Args:
        cfg: the experiment.
        data: crop store or sequences folder, readable by every worker (see the module notes).
        storage: local folder or ``s3://bucket/prefix`` holding runs (endpoint from
            ``AWS_ENDPOINT_URL``); the run lives in ``storage/name``.
        name: run name; launching again with the same name and storage resumes the run.
        num_workers, use_gpu, resources_per_worker: Ray Train's ``ScalingConfig``.
        max_failures: worker-group restarts allowed (from the latest checkpoint); -1: unlimited.
        checkpoints_to_keep: checkpoints kept in storage (the latest ones).
        cache_dir: node-local folder for crop stores cut from sequences.
        epoch_hook: optional function called on every worker after each epoch (e.g. fault drills);
            it must be picklable.

    Raises:
        ConfigError: the run's latest checkpoint holds other settings or data; or bad settings; or a
            ``name`` that is not one folder name.
        FormatError, FileNotFoundError: ``data`` is malformed or missing (no worker retries those), or
            ``storage`` names an S3 bucket that does not exist (checked before Ray starts any worker).
        ray.train.TrainingFailedError: the run failed more than ``max_failures`` times.
    """
    check_folder_name(name, "run name")  # Ray Train keeps the run in STORAGE/NAME: a path would leave STORAGE
    Storage(storage).check_bucket()
    storage_path, fs = storage_for_ray(storage)
    trainer = TorchTrainer(
        train_worker, train_loop_config=worker_config(cfg, data, cache_dir, epoch_hook),
        scaling_config=ScalingConfig(num_workers=num_workers, use_gpu=use_gpu,
                                     resources_per_worker=resources_per_worker),
        run_config=RunConfig(name=name, storage_path=storage_path, storage_filesystem=fs,
                             failure_config=FailureConfig(max_failures=max_failures),
                             checkpoint_config=CheckpointConfig(num_to_keep=checkpoints_to_keep)))
    result = trainer.fit()
    run_fs = result.checkpoint.filesystem if result.checkpoint else (fs or pafs.LocalFileSystem())
    outcome = result.return_value or {}
    _raise_refusal(outcome, storage_uri(result.path, run_fs))
    history = list(outcome.get("history", []))
    _write_atomic(run_fs, f"{result.path}/{HISTORY}", json.dumps(history, indent=1).encode())
    model = _publish_model(result.checkpoint, result.path) if result.checkpoint else None
    return TrainSummary(
        name=name, run_uri=storage_uri(result.path, run_fs),
        model_uri=storage_uri(model, run_fs) if model else None,
        checkpoint_uri=storage_uri(result.checkpoint.path, run_fs) if result.checkpoint else None,
        metrics=dict(result.metrics or {}), history=history,
        start_epoch=int(outcome.get("start_epoch", len(history) + 1)))


def local_store(data: str | Path, crops: CropConfig, cache_dir: str | Path | None = None) -> Path:
    """``data`` when it is a crop store, else a store cut from its sequences in a node-local cache.

    Concurrent callers on one node (one per worker) wait on a file lock; the first cuts the store,
    the others reuse it.
    """
    data = Path(data)
    if (data / INDEX_FILE).exists():
        return data
    key = hashlib.sha1(json.dumps([str(data.resolve()), dataclasses.asdict(crops)], sort_keys=True,
                                  default=str).encode()).hexdigest()[:16]
    out = Path(cache_dir or user_temp("prtreid-crops")) / key
    out.mkdir(parents=True, exist_ok=True)
    with open(out.parent / f"{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (out / INDEX_FILE).exists():
            log.info("cutting a crop store from %s into %s", data, out)
            build_crops(data, out, crops)
    return out


class _Reporter:
    """``Runtime.on_epoch`` on a Ray worker: reports metrics, with the checkpoint on rank 0."""

    def __init__(self, stage_root: Path, rank: int, hook: EpochHook | None) -> None:
        self.stage_root, self.rank, self.hook = stage_root, rank, hook
        self.start: int | None = None
        self.reported = 0

    def __call__(self, epoch: int, metrics: dict[str, Any], checkpoint_dir: Path | None, model: nn.Module) -> None:
        self.start = epoch + 1 if self.start is None else self.start
        self.reported += 1
        payload = _scalars(metrics) | {"start_epoch": self.start}
        stage = self._stage(epoch, checkpoint_dir) if checkpoint_dir is not None else None
        ray.train.report(payload, checkpoint=Checkpoint.from_directory(str(stage)) if stage else None,
                         checkpoint_dir_name=f"epoch_{epoch + 1:04d}")
        if stage is not None:
            shutil.rmtree(stage, ignore_errors=True)
        # The controller registers a reported checkpoint when it next polls the workers (every 2 s
        # by default); a worker lost before that would restart the group from the epoch before.
        # Waiting here makes "epoch N reported" mean "a restart resumes after epoch N".
        ray.train.get_all_reported_checkpoints(consistency_mode=CheckpointConsistencyMode.COMMITTED)
        if self.hook is not None:
            self.hook(self.rank, epoch + 1, checkpoint_dir, model)

    def _stage(self, epoch: int, run_dir: Path) -> Path:
        """A folder holding only this epoch's files (hard links: ``fit`` replaces, never rewrites)."""
        stage = self.stage_root / f"epoch_{epoch + 1:04d}"
        stage.mkdir(parents=True, exist_ok=True)
        for name in (CHECKPOINT, MODEL):
            if (run_dir / name).exists():
                _link_or_copy(run_dir / name, stage / name)
        return stage


def worker_config(cfg: ExperimentConfig, data: str, cache_dir: str | None = None,
                  epoch_hook: EpochHook | None = None) -> dict[str, Any]:
    """The ``train_loop_config`` of :func:`train_worker` (plain data, plus the optional hook)."""
    return {"experiment": dataclasses.asdict(cfg), "data": shared_path(data), "cache_dir": cache_dir,
            "epoch_hook": epoch_hook}


def train_worker(config: dict[str, Any]) -> dict[str, Any] | None:
    """The function every Ray Train worker runs (``config`` from :func:`worker_config`).

    Trains with :func:`~prtreid.train.loop.fit` from the latest checkpoint of the run, if any, and
    reports after every epoch. Rank 0 returns ``{"history": [...], "start_epoch": n}``.
    """
    context = ray.train.get_context()
    rank, world_size = context.get_world_rank(), context.get_world_size()
    cfg = experiment_from_dict(config["experiment"], "ray train_loop_config")
    clean_stale()  # what killed workers of earlier attempts left on this machine
    started: list[bool] = []

    def prepare(model: nn.Module) -> nn.Module:
        started.append(True)
        return ray.train.torch.prepare_model(model)

    try:
        store = local_store(config["data"], cfg.crops, config.get("cache_dir"))
        with scratch(f"rank{rank}-") as work:
            reporter = _Reporter(work / "stage", rank, config.get("epoch_hook"))
            runtime = Runtime(rank=rank, world_size=world_size, device=ray.train.torch.get_device(),
                              wrap_model=prepare, on_epoch=reporter,
                              resume_from=_fetch_checkpoint(ray.train.get_checkpoint(), work / "resume"),
                              progress=False)
            history = fit(cfg, store, work / "run", runtime)
    except REFUSED as exc:
        if started:  # once training runs, Ray restarts the worker group as for any other failure
            raise
        # Bad data or a run of other settings, met by every rank before any collective: a restart
        # would fail the same way, so the workers end and the driver raises it once.
        return {"refused": type(exc).__name__, "message": str(exc),
                "differences": getattr(exc, "differences", None)} if rank == 0 else None
    if rank != 0:
        return None
    return {"history": history, "start_epoch": len(history) - reporter.reported + 1}


def _raise_refusal(outcome: dict[str, Any], run_uri: str) -> None:
    """Raise, on the driver, what :func:`train_worker` refused to train (nothing when it trained)."""
    if "refused" not in outcome:
        return
    if outcome["differences"]:
        raise ConfigError(f"{run_uri}: its latest checkpoint holds a run with other settings or data "
                          f"({outcome['differences']}); launch with another --name, or delete {run_uri} to "
                          "start over")
    raise {cls.__name__: cls for cls in REFUSED}[outcome["refused"]](outcome["message"])


def _fetch_checkpoint(checkpoint: Checkpoint | None, into: Path) -> Path | None:
    """Download the checkpoint Ray resumes from (every rank needs the optimizer state and epoch)."""
    if checkpoint is None:
        return None
    checkpoint.to_directory(str(into))
    path = into / CHECKPOINT
    if not path.exists():
        raise FileNotFoundError(f"checkpoint {checkpoint.path} holds no {CHECKPOINT}")
    log.info("resuming from %s", checkpoint.path)
    return path


def _publish_model(checkpoint: Checkpoint, run_path: str) -> str | None:
    """Copy the final checkpoint's ``model.pt`` to the run folder; return its path there."""
    fs = checkpoint.filesystem
    source, target = f"{checkpoint.path}/{MODEL}", f"{run_path}/{MODEL}"
    if fs.get_file_info(source).type != pafs.FileType.File:
        log.warning("the latest checkpoint %s has no %s (the run did not finish)", checkpoint.path, MODEL)
        return None
    if isinstance(fs, pafs.S3FileSystem):  # an S3 object appears only once complete
        fs.copy_file(source, target)
        return target
    tmp = f"{run_path}/.{MODEL}.{uuid.uuid4().hex}.tmp"
    fs.copy_file(source, tmp)
    fs.move(tmp, target)
    return target


def _write_atomic(fs: pafs.FileSystem, path: str, data: bytes) -> None:
    """Write through a temporary name, so a reader never sees a partial file."""
    parent, base = path.rsplit("/", 1)
    fs.create_dir(parent, recursive=True)
    tmp = f"{parent}/.{base}.{uuid.uuid4().hex}.tmp"
    with fs.open_output_stream(tmp) as out:
        out.write(data)
    fs.move(tmp, path)


def _link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def _scalars(metrics: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def shared_path(data: str | Path) -> str:
    """``data`` as an absolute path, which workers on any node read (the driver's relative path would not
    resolve there).

    Raises:
        ConfigError: ``data`` is a URI (``s3://...``): training data must be a folder every node mounts.
    """
    if "://" in str(data):
        raise ConfigError(f"--data {data}: training data must be a crop store or sequences folder that every node "
                          "reads (a shared file system); s3:// is for --storage and --out")
    return os.path.abspath(data)
