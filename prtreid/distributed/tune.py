"""Overnight hyper-parameter sweeps on Ray Tune with Optuna (TPE) and ASHA.

Two sweeps share one engine:

* :func:`tune_losses` searches loss weights, margins and optimiser settings of PRTReID training
  (space root :class:`~prtreid.train.config.ExperimentConfig`, e.g. ``search_spaces/losses.yaml``).
  A trial trains with :func:`prtreid.train.loop.fit` in-process on one CPU/GPU (default), or runs a
  ``TorchTrainer`` with N DDP workers (``workers_per_trial``; Ray Train V2 pattern: a function
  trainable that fits a trainer whose ``RunConfig`` holds a ``TuneReportCallback``). It reports
  after every epoch, so ASHA (``time_attr="epoch"``) stops poor trials early.
* :func:`tune_tracker` searches PRT-Track settings (space root
  :class:`~prtreid.pipeline.video.PipelineConfig`, e.g. ``search_spaces/tracker.yaml``): a trial runs
  the pipeline (oracle detections, a given PRTReID model) over validation sequences and reports HOTA.

Objective: by default the composite ``0.5 * mAP + 0.25 * team_acc + 0.25 * role_acc`` on the crop
store's held-out query/gallery split (losses) and ``HOTA`` (tracker), maximised; other weights via
``SweepConfig.objective``. ``SweepConfig.pareto`` names metrics for a multi-objective (Pareto) search
instead (Optuna multi-objective TPE, no ASHA); ``best_config.yaml`` is then the Pareto-optimal trial
with the best composite.

Persistence and resume: the Optuna study (``SWEEP/study.db`` SQLite, or ``study_storage``, any
database URL, for a study shared between machines) records every trial. ``resume=True`` continues a
sweep: trials left running by a killed driver are failed and their points enqueued again, then only
the missing trials run, so the sweep ends with exactly ``num_samples`` finished trials, none
repeated (see :mod:`prtreid.distributed.study`). The first trial of a new sweep evaluates the base
config itself (each parameter's value there, or the space's default where the space does not hold
it), so the sweep's best is never worse than the configuration it started from.

Outputs in the sweep folder (local or ``s3://``): ``results.csv``, ``best_config.yaml`` (a full
config: ``prtreid train --config`` / ``prtreid track --config`` read it unchanged), ``plots/*.png``,
``summary.json``, Tune's own run folders under ``ray/`` and, for an S3 sweep, a copy of ``study.db``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
import pyarrow.fs as pafs
from optuna.trial import TrialState
from ray import tune
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler
from ray.tune.search.optuna import OptunaSearch
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from prtreid.data.soccernet import find_sequences
from prtreid.distributed import study as studies
from prtreid.distributed import trials
from prtreid.distributed.study_file import StudyBackup, refuse_a_held_study, study_file
from prtreid.distributed.runtime import check_fits, storage_for_ray
from prtreid.distributed.track import check_model
from prtreid.distributed.train import shared_path
from prtreid.distributed.trials import (ATTRIBUTE_METRICS, LOSS_METRICS, LOSS_OBJECTIVE, TRACKER_METRICS,
                                       TRACKER_OBJECTIVE)
from prtreid.errors import ConfigError
from prtreid.pipeline.video import PipelineConfig
from prtreid.search_space import SearchSpace
from prtreid.storage import Storage, check_folder_name
from prtreid.train.config import ExperimentConfig

log = logging.getLogger(__name__)

KEPT_METRICS = ("objective", "epoch", "mAP", "rank1", "team_acc", "role_acc", "role_macro_f1", "loss/total",
                "HOTA", "DetA", "AssA", "IDF1", "MOTA", "IDSW")
"""Metrics stored with each trial in the study (and so in ``results.csv``)."""
DDP_RUNS = "ray/_train_runs"
"""Ray Train runs of ``TorchTrainer`` trials (checkpoints for in-trial recovery; deleted after a sweep)."""
SUMMARY = "summary.json"
_SECRET_PARAMETERS = ("password", "passwd", "sslpassword")
"""Database URL query parameters that carry a password (libpq, MySQL drivers)."""
TRIAL_LENGTH_KEYS = ("train.epochs", "train.eval_every", "train.budget_minutes")
"""Not searchable in a losses space: every trial trains ``train.epochs`` epochs, so ASHA can compare them."""


@dataclass(frozen=True)
class SweepConfig:
    """How a sweep runs.

    Attributes:
        name: the Optuna study name (and the prefix of Tune's run folders).
        num_samples: total finished trials wanted, across resumes.
        max_concurrent_trials: trials running at once.
        seed: seed of the TPE sampler (offset by the study's size on resume).
        startup_trials: random trials before TPE models the space.
        objective: ``{metric: weight}`` of the maximised composite; empty for the sweep's default
            (:data:`LOSS_OBJECTIVE` or :data:`TRACKER_OBJECTIVE`).
        pareto: metrics of a multi-objective search (all maximised); empty for a single objective.
        asha: stop poor trials early (single objective, training sweeps only).
        grace_period, reduction_factor: ASHA's minimum epochs and halving rate.
        trial_resources: Tune resources of a trial, e.g. ``{"cpu": 1, "gpu": 1}``; empty for the
            default: one CPU (plus one GPU when ``use_gpu``), or ``{"cpu": 0.2}`` for a trial that
            only drives a ``TorchTrainer``.
        workers_per_trial: 0 trains in the trial's process; N > 0 runs a ``TorchTrainer`` with N workers.
        resources_per_worker: Ray Train resources of each worker (``workers_per_trial > 0``).
        use_gpu: the trial (or each worker) takes a GPU.
        study_storage: Optuna database URL (e.g. ``postgresql://...``) of a shared study; ``None`` for
            ``study.db`` in the sweep folder (or in ``work_dir`` for an S3 sweep).
        baseline: the first trial of a new sweep evaluates the base config (see the module doc).
        plots: draw the PNG plots.
        verbose: Tune's console verbosity (0-3).
    """

    name: str = "sweep"
    num_samples: int = 20
    max_concurrent_trials: int = 1
    seed: int = 0
    startup_trials: int = 10
    objective: dict[str, float] = field(default_factory=dict)
    pareto: tuple[str, ...] = ()
    asha: bool = True
    grace_period: int = 1
    reduction_factor: float = 2.0
    trial_resources: dict[str, float] = field(default_factory=dict)
    workers_per_trial: int = 0
    resources_per_worker: dict[str, float] = field(default_factory=lambda: {"CPU": 1.0})
    use_gpu: bool = False
    study_storage: str | None = None
    baseline: bool = True
    plots: bool = True
    verbose: int = 1

    def __post_init__(self) -> None:
        check_folder_name(self.name, "sweep.name")  # names folders: Tune's run, an S3 sweep's local study copy
        if self.num_samples < 1 or self.max_concurrent_trials < 1:
            raise ConfigError("sweep: num_samples and max_concurrent_trials must be at least 1")
        if self.workers_per_trial < 0:
            raise ConfigError(f"sweep.workers_per_trial: must be >= 0, got {self.workers_per_trial}")
        if any(not math.isfinite(w) for w in self.objective.values()):
            raise ConfigError(f"sweep.objective: weights must be finite, got {self.objective}")
        if self.grace_period < 1:
            raise ConfigError(f"sweep.grace_period: must be at least 1 epoch, got {self.grace_period}")
        resources = {**self.trial_resources, **self.resources_per_worker}
        if any(not v >= 0 for v in resources.values()) or any(
                not resources.get(k, 1) > 0 for k in ("cpu", "CPU")):
            raise ConfigError(f"sweep: resources must be positive CPUs and non-negative GPUs, got {resources}")


def tune_losses(space: SearchSpace, base: ExperimentConfig, data: str | Path, out: str, sweep: SweepConfig,
                resume: bool = False, work_dir: str | Path | None = None) -> dict[str, Any]:
    """Search the training config over ``space``; every trial trains ``base.train.epochs`` epochs.

    Args:
        space: a space over :class:`ExperimentConfig` keys.
        base: the experiment every trial starts from (``train.eval_every`` is forced to 1 in trials).
        data: crop store or sequences folder, readable by every Ray node.
        out: the sweep folder, local or ``s3://bucket/prefix``.
        sweep: how to run it.
        resume: continue the sweep in ``out`` (its study must exist).
        work_dir: local folder of the SQLite study of an S3 sweep (default: a folder in the system
            temp folder named after the sweep); a copy goes to ``out/study.db`` after every trial,
            and a resume on a machine without the local file starts from that copy.

    Returns:
        The summary written to ``summary.json`` (trial counts, best trial and objective, files).
    """
    _check_root(space, ExperimentConfig)
    length = sorted(set(space.keys) & set(TRIAL_LENGTH_KEYS))
    if length:
        raise ConfigError(f"{space.source}: {length[0]} cannot be searched: every trial trains train.epochs epochs "
                          "(set it in the base config), so that ASHA and the study compare trials alike")
    weights = sweep.objective or LOSS_OBJECTIVE
    trials.check_metrics(weights, sweep.pareto, LOSS_METRICS)
    if base.train.budget_minutes > 0:  # trials must train alike to compare: a budget depends on the machine
        log.info("sweep: trials train train.epochs=%d epochs each; train.budget_minutes is not used",
                 base.train.epochs)
    trial_cfg = dataclasses.replace(base, train=dataclasses.replace(base.train, eval_every=1, budget_minutes=0.0))
    consts = {"experiment": dataclasses.asdict(trial_cfg), "data": shared_path(data), "weights": weights}
    if sweep.workers_per_trial > 0:
        ray_path, ray_fs = storage_for_ray(Storage(out).url(DDP_RUNS))
        trainable = tune.with_parameters(trials.ddp_loss_trial, **consts, workers=sweep.workers_per_trial,
                                         use_gpu=sweep.use_gpu, resources_per_worker=sweep.resources_per_worker,
                                         storage_path=ray_path, storage_filesystem=ray_fs)
    else:
        trainable = tune.with_parameters(trials.loss_trial, **consts)
    return _run_sweep(trainable, space, base, out, sweep, resume, work_dir, weights, base.train.epochs)


def tune_tracker(space: SearchSpace, base: PipelineConfig, sequences: str | Path, model: str | Path | None,
                 out: str, sweep: SweepConfig, resume: bool = False,
                 work_dir: str | Path | None = None) -> dict[str, Any]:
    """Search tracker (pipeline) settings over ``space``, scored by HOTA on ``sequences``.

    Args:
        space: a space over :class:`PipelineConfig` keys (``tracker.*``, ``interpolate_gap``, ...).
        base: the pipeline every trial starts from (its ``detector`` is used as is: ``oracle``
            reads ``gt.txt``, ``det`` the public ``det.txt``).
        sequences: a folder of SoccerNet sequences with ground truth, readable by every Ray node.
        model: a PRTReID ``model.pt`` for appearance (``None``: motion only).
        out, sweep, resume, work_dir: as :func:`tune_losses`.
    """
    _check_root(space, PipelineConfig)
    weights = sweep.objective or TRACKER_OBJECTIVE
    trials.check_metrics(weights, sweep.pareto, TRACKER_METRICS + (ATTRIBUTE_METRICS if model is not None else ()))
    sequences = shared_path(sequences)
    if not find_sequences(sequences):
        raise FileNotFoundError(f"{sequences}: no SoccerNet sequence folder")
    check_model(model, base.detector, base.detection)  # local or s3://, staged by each trial
    trainable = tune.with_parameters(trials.tracker_trial, pipeline=dataclasses.asdict(base),
                                     sequences=sequences,
                                     model=None if model is None else _absolute(model), weights=weights)
    return _run_sweep(trainable, space, base, out, sweep, resume, work_dir, weights, max_t=1)


def check_resources(sweep: SweepConfig, private: bool) -> None:
    """Refuse trials (and their DDP workers) that a private local Ray can never place (see :func:`check_fits`)."""
    check_fits(_trial_resources(sweep), private, "a trial (--cpus-per-trial, --gpus-per-trial)")
    if sweep.workers_per_trial > 0:
        check_fits(sweep.resources_per_worker | ({"GPU": 1.0} if sweep.use_gpu else {}), private,
                   "a training worker (--cpus-per-worker, --gpus-per-trial)")


def check_study_storage(url: str | None) -> None:
    """Refuse a study database URL that holds a password (as ``user:secret@`` or a ``?password=`` parameter),
    which Ray Tune would save with the search state under ``OUT/ray``, or that is not a database URL.

    Raises:
        ConfigError: such a URL (the message never shows it).
    """
    if not url:
        return
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        raise ConfigError("study_storage: not a database URL (expected dialect://user@host/database)") from None
    if parsed.password or any(key.lower() in _SECRET_PARAMETERS for key in parsed.query):
        raise ConfigError("study_storage: the URL holds a password, which Ray Tune would save with the search "
                          "state under OUT/ray: give it through the database driver (PGPASSWORD, ~/.pgpass)")


def check_sweep_folder(out: str, sweep: SweepConfig, resume: bool) -> Storage:
    """Refuse, without Ray, a sweep folder in a bucket that does not exist, a study URL with a password,
    or a new sweep over a folder that holds a study; return the folder's storage.

    Raises:
        FileNotFoundError: no such bucket.
        ConfigError: the study URL or the folder (see :func:`check_study_storage`, :func:`refuse_a_held_study`).
    """
    storage = Storage(out)
    storage.check_bucket()
    check_study_storage(sweep.study_storage)
    if not sweep.study_storage:
        refuse_a_held_study(storage, resume)
    return storage


def _run_sweep(trainable: Any, space: SearchSpace, base: Any, out: str, sweep: SweepConfig, resume: bool,
               work_dir: str | Path | None, weights: dict[str, float], max_t: int) -> dict[str, Any]:
    storage = check_sweep_folder(out, sweep, resume)
    if os.environ.get("AWS_SECRET_ACCESS_KEY"):
        log.warning("AWS keys are in the environment: Ray Tune copies them into every trial's runtime environment, "
                    "which Ray's runtime_env_agent.log records in plain text. Give sweeps their credentials "
                    "through AWS_PROFILE, a credentials file or an instance role instead.")
    url = sweep.study_storage or studies.sqlite_url(study_file(storage, sweep.name, work_dir))
    metrics = list(sweep.pareto) or ["objective"]
    db = studies.open_storage(url)
    if resume:
        studies.check_study_exists(db, sweep.name, _redact(url))
    study = studies.open_study(db, sweep.name, ["maximize"] * len(metrics), metrics)
    studies.check_same_setup(study, {"objective_weights": weights, "pareto": list(sweep.pareto),
                                     "base": studies.comparable(base)})
    done = _prepare_study(study, space, sweep, resume, url, base)
    remaining = sweep.num_samples - done
    if remaining > 0:
        log.info("sweep %s: %d trial(s) done, running %d more", sweep.name, done, remaining)
        _fit_tuner(trainable, space, study, url, sweep, storage, weights, max_t, remaining)
    elif remaining < 0:
        log.warning("sweep %s already has %d trials (> %d requested)", sweep.name, done, sweep.num_samples)
    summary = studies.write_report(study, storage, lambda t: space.apply(base, t.params), plots=sweep.plots)
    summary |= {"objective_weights": weights, "pareto": list(sweep.pareto), "study_storage": _redact(url),
                "sweep": storage.url("")}
    if _backs_up(storage, sweep):
        StudyBackup(url, storage).upload()
    storage.write_text(SUMMARY, json.dumps(summary, indent=2, default=str))
    return summary


def _prepare_study(study: optuna.Study, space: SearchSpace, sweep: SweepConfig, resume: bool, url: str,
                   base: Any) -> int:
    """Check resume/new, recover interrupted trials, enqueue the baseline; returns trials done."""
    if study.trials and not resume:
        raise ConfigError(f"sweep {sweep.name!r} already has {len(study.trials)} trials in {_redact(url)}: "
                          "pass resume to continue it, or choose another name or folder")
    if resume:
        if not study.trials:
            log.warning("resume: study %s has no trial yet; starting it", sweep.name)
        studies.check_same_space(study, space)
        if sweep.study_storage is None:  # a shared study's running trials may be another driver's, alive
            studies.recover_interrupted(study)
    if sweep.baseline:
        studies.enqueue_baseline(study, space.baseline(base))
    return len(studies.counted_trials(study))


def _fit_tuner(trainable: Any, space: SearchSpace, study: optuna.Study, url: str, sweep: SweepConfig,
               storage: Storage, weights: dict[str, float], max_t: int, remaining: int) -> None:
    multi = bool(sweep.pareto)
    metric: str | list[str] = list(sweep.pareto) if multi else "objective"
    mode: str | list[str] = ["max"] * len(sweep.pareto) if multi else "max"
    search = _StudySearch(space.distributions(), metric=metric, mode=mode, study_name=sweep.name,
                          storage=studies.open_storage(url),
                          sampler=studies.tpe_sampler(sweep.seed, study, sweep.startup_trials),
                          max_t=max_t, keep=(*KEPT_METRICS, *weights, *sweep.pareto))
    scheduler = FIFOScheduler()
    if sweep.asha and not multi and max_t > 1:
        scheduler = ASHAScheduler(time_attr="epoch", metric="objective", mode="max", max_t=max_t,
                                  grace_period=min(sweep.grace_period, max_t),
                                  reduction_factor=sweep.reduction_factor)
    ray_path, ray_fs = storage_for_ray(storage.url("ray"))
    tuner = tune.Tuner(
        tune.with_resources(trainable, _trial_resources(sweep)),
        tune_config=tune.TuneConfig(search_alg=search, scheduler=scheduler, num_samples=remaining,
                                    max_concurrent_trials=sweep.max_concurrent_trials, reuse_actors=False,
                                    trial_dirname_creator=_trial_dirname),
        run_config=tune.RunConfig(name=f"{sweep.name}-{time.strftime('%Y%m%d-%H%M%S')}", storage_path=ray_path,
                                  storage_filesystem=ray_fs, verbose=sweep.verbose,
                                  failure_config=tune.FailureConfig(max_failures=0),
                                  callbacks=[StudyBackup(url, storage)] if _backs_up(storage, sweep) else None))
    grid = tuner.fit()
    for result in grid:
        if result.error is not None:
            log.warning("trial %s failed: %s", result.path, result.error)
    if sweep.workers_per_trial > 0:
        runs_path, runs_fs = storage_for_ray(storage.url(DDP_RUNS))
        (runs_fs or pafs.LocalFileSystem()).delete_dir_contents(runs_path, missing_dir_ok=True)


class _StudySearch(OptunaSearch):
    """``OptunaSearch`` that also stores each trial's metrics as Optuna user attributes and records
    trials stopped early by ASHA as ``PRUNED`` (Ray records them ``COMPLETE``)."""

    def __init__(self, *args: Any, max_t: int, keep: Sequence[str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._max_t = max_t
        self._keep = tuple(dict.fromkeys(keep))

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        ot_trial = self._ot_trials.get(trial_id)  # Ray's map of Tune trial -> Optuna trial
        if ot_trial is None or trial_id in self._completed_trials:
            return super().on_trial_complete(trial_id, result, error)
        for key, value in (result or {}).items():
            if key in self._keep and isinstance(value, (int, float)) and math.isfinite(value):
                ot_trial.set_user_attr(key, value)
        ot_trial.set_user_attr("tune_trial_id", trial_id)
        stopped_early = result and result.get("epoch", self._max_t) < self._max_t
        if not error and stopped_early and not isinstance(self.metric, list):
            self._ot_study.tell(ot_trial, state=TrialState.PRUNED)
            self._completed_trials.add(trial_id)
            return None
        return super().on_trial_complete(trial_id, result, error)


def _backs_up(storage: Storage, sweep: SweepConfig) -> bool:
    return not storage.is_local and sweep.study_storage is None


def _trial_dirname(trial: Any) -> str:
    return f"trial_{trial.trial_id}"


def _trial_resources(sweep: SweepConfig) -> dict[str, float]:
    if sweep.trial_resources:
        return dict(sweep.trial_resources)
    if sweep.workers_per_trial > 0:
        return {"cpu": 0.2}
    return {"cpu": 1.0} | ({"gpu": 1.0} if sweep.use_gpu else {})


def _check_root(space: SearchSpace, root: type) -> None:
    if space.root is not root:
        raise ConfigError(f"{space.source}: a {space.root.__name__} space, this sweep needs a {root.__name__} space")


def _absolute(path: str | Path) -> str:
    return str(path) if "://" in str(path) else os.path.abspath(path)


def _redact(url: str) -> str:
    """A database URL without its password."""
    return make_url(url).render_as_string(hide_password=True)

