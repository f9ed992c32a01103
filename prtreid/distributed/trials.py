"""The trials of a sweep: functions that Ray Tune runs, each reporting metrics and an objective.

* :func:`loss_trial` trains PRTReID in the trial's process and reports after every epoch.
* :func:`ddp_loss_trial` fits a ``TorchTrainer`` with N DDP workers (Ray Train V2's pattern for Tune:
  a function trainable whose trainer's ``RunConfig`` holds a ``TuneReportCallback``, here
  :class:`ObjectiveReportCallback`, which adds the objective to rank 0's report).
* :func:`tracker_trial` runs the pipeline over validation sequences and reports HOTA and the rest.

Every report holds the trial's scalar metrics plus ``objective``, the weighted sum
(:func:`objective_value`) that the sweep maximises, and ``epoch`` (ASHA's time axis).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ray import tune
from ray.train import CheckpointConfig, RunConfig, ScalingConfig
from ray.train.torch import TorchTrainer
from ray.tune.integration.ray_train import TuneReportCallback

from prtreid.config import from_dict
from prtreid.data.soccernet import find_sequences
from prtreid.distributed.track import load_pipeline
from prtreid.distributed.train import train_worker  # the worker loop of train_distributed, reused as is
from prtreid.distributed.train import local_store
from prtreid.errors import ConfigError
from prtreid.eval.tracking import COMBINED, evaluate_tracking
from prtreid.pipeline.video import PipelineConfig, write_result
from prtreid.scratch import clean_stale, scratch
from prtreid.search_space import apply_point
from prtreid.storage import Storage
from prtreid.train.config import experiment_from_dict
from prtreid.train.loop import CHECKPOINT, Runtime, fit

LOSS_OBJECTIVE: dict[str, float] = {"mAP": 0.5, "team_acc": 0.25, "role_acc": 0.25}
"""Default objective of loss sweeps: re-id mAP, team and role accuracy on the held-out split."""
TRACKER_OBJECTIVE: dict[str, float] = {"HOTA": 1.0}
"""Default objective of tracker sweeps."""
LOSS_METRICS = ("mAP", "rank1", "rank5", "team_acc", "team_acc_embedding", "role_acc", "role_macro_f1",
                "role_acc_crop")
"""What a loss trial reports that an objective may weigh (every epoch's evaluation; ``team_acc`` clusters
on the default team descriptor, ``team_acc_embedding`` on the team head's embedding alone)."""
TRACKER_METRICS = ("HOTA", "DetA", "AssA", "MOTA", "IDF1", "IDSW")
"""What a tracker trial reports that an objective may weigh; with a model also :data:`ATTRIBUTE_METRICS`."""
ATTRIBUTE_METRICS = ("team_acc", "role_acc", "keeper_team_acc")
LOWER_IS_BETTER = ("IDSW",)
"""Reported metrics a Pareto search (which maximises each) cannot take; an objective weighs them negatively."""


def objective_value(metrics: dict[str, Any], weights: dict[str, float]) -> float:
    """The weighted sum of ``metrics``; a missing metric is an error naming what is there."""
    missing = [k for k in weights if not isinstance(metrics.get(k), (int, float))]
    if missing:
        raise KeyError(f"objective metric {missing[0]!r} not reported (have: {', '.join(sorted(metrics))})")
    return float(sum(w * float(metrics[k]) for k, w in weights.items()))


def trial_metrics(metrics: dict[str, Any], weights: dict[str, float]) -> dict[str, Any]:
    """The scalar metrics of an epoch (or a tracking run) plus the weighted ``objective``."""
    scalars = {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    return scalars | {"objective": objective_value(scalars, weights)}


def loss_trial(config: dict[str, Any], *, experiment: dict[str, Any], data: str,
               weights: dict[str, float]) -> None:
    """A Tune trial that trains in its own process and reports after every epoch."""
    cfg = apply_point(experiment_from_dict(experiment, "sweep base"), config, source="trial")
    store = local_store(data, cfg.crops)

    def report(epoch: int, metrics: dict[str, Any], checkpoint_dir: Path | None, _model: Any) -> None:
        # ASHA kills a stopped trial's process: drop the epoch checkpoint first so none is left behind
        if checkpoint_dir is not None:
            (Path(checkpoint_dir) / CHECKPOINT).unlink(missing_ok=True)
        tune.report(trial_metrics(metrics, weights))

    clean_stale()  # what the trials ASHA stopped before this one left on this machine
    with scratch("trial-") as tmp:
        fit(cfg, store, tmp, Runtime(on_epoch=report, progress=False))


def ddp_loss_trial(config: dict[str, Any], *, experiment: dict[str, Any], data: str, weights: dict[str, float],
                   workers: int, use_gpu: bool, resources_per_worker: dict[str, float], storage_path: str,
                   storage_filesystem: Any) -> None:
    """A Tune trial that fits a ``TorchTrainer`` (Ray Train V2) whose reports reach Tune."""
    cfg = apply_point(experiment_from_dict(experiment, "sweep base"), config, source="trial")
    trainer = TorchTrainer(
        train_worker,
        train_loop_config={"experiment": dataclasses.asdict(cfg), "data": data, "cache_dir": None,
                           "epoch_hook": None},
        scaling_config=ScalingConfig(num_workers=workers, use_gpu=use_gpu, resources_per_worker=resources_per_worker),
        run_config=RunConfig(name=f"train-{tune.get_context().get_trial_id()}", storage_path=storage_path,
                             storage_filesystem=storage_filesystem, callbacks=[ObjectiveReportCallback(weights)],
                             checkpoint_config=CheckpointConfig(num_to_keep=1)))
    trainer.fit()


class ObjectiveReportCallback(TuneReportCallback):
    """Forwards rank 0's epoch metrics from Ray Train to Tune with the composite ``objective`` added."""

    def __init__(self, weights: dict[str, float]) -> None:
        super().__init__()
        self.weights = dict(weights)

    def after_report(self, run_context: Any, metrics: list[dict[str, Any]], checkpoint: Any) -> None:
        first = metrics[0] | {"objective": objective_value(metrics[0], self.weights)}
        super().after_report(run_context, [first, *metrics[1:]], checkpoint)


def tracker_trial(config: dict[str, Any], *, pipeline: dict[str, Any], sequences: str, model: str | None,
                  weights: dict[str, float]) -> None:
    """A Tune trial that tracks every validation sequence and reports HOTA (and the rest)."""
    cfg = apply_point(from_dict(PipelineConfig, pipeline, "sweep base"), config, source="trial")
    runner = load_pipeline(cfg, model)
    clean_stale()
    with scratch("tracktrial-") as tmp:
        out = Storage(str(tmp))
        for seq in find_sequences(sequences):
            write_result(runner.run(seq), out)
        metrics = evaluate_tracking(sequences, tmp)[COMBINED]
    tune.report(trial_metrics(metrics, weights) | {"epoch": 1})


def check_metrics(weights: dict[str, float], pareto: Sequence[str], reported: Sequence[str]) -> None:
    """Refuse objective or Pareto metrics that the sweep's trials do not report (every trial would fail).

    Raises:
        ConfigError: naming the unknown metric and the known ones, or a Pareto metric where lower is better.
    """
    for option, names in (("objective", weights), ("pareto", pareto)):
        unknown = [m for m in names if m not in reported]
        if unknown:
            raise ConfigError(f"sweep.{option}: the trials report no metric {unknown[0]!r} "
                              f"(they report {', '.join(reported)})")
    lower = [m for m in pareto if m in LOWER_IS_BETTER]
    if lower:
        raise ConfigError(f"sweep.pareto: {lower[0]} is better lower and a Pareto search maximises every metric: "
                          f"weigh it negatively in an objective instead (e.g. HOTA=1,{lower[0]}=-0.001)")
