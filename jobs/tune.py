"""Overnight hyper-parameter sweeps on Ray Tune + Optuna: loss weights or tracker settings.

Loss weights, margins and optimiser (trials train PRTReID; ASHA stops poor ones early)::

    python jobs/tune.py losses --space search_spaces/losses.yaml --data CROPS_OR_SEQUENCES \\
        --config configs/train_cpu_small.yaml --out sweeps/losses --num-samples 50 --max-concurrent 2

Tracker settings (trials track validation sequences with oracle detections and a model; HOTA)::

    python jobs/tune.py tracker --space search_spaces/tracker.yaml --sequences VAL_SEQUENCES \\
        --model runs/prtreid/model.pt --out sweeps/tracker --num-samples 40

``--resume`` continues an interrupted sweep in ``--out`` up to exactly ``--num-samples`` trials.
The morning after: ``OUT/results.csv``, ``OUT/plots/*.png`` and ``OUT/best_config.yaml``, which
``prtreid train --config`` (or ``prtreid track --config`` for a tracker sweep) takes unchanged.
On a cluster: ``ray job submit --address http://HEAD:8265 --working-dir . -- python jobs/tune.py ...``
with absolute or ``s3://`` paths (``--out s3://bucket/sweeps/x``; the SQLite study is kept in
``--work-dir`` and copied to ``OUT/study.db``), or ``--study-storage postgresql://user@host/db`` to share
a study (the password through ``PGPASSWORD`` or ``~/.pgpass``: a URL with one is refused).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
from pathlib import Path

from prtreid.cli import HelpFormatter, exit_status
from prtreid.cli.track import pipeline_config
from prtreid.errors import ConfigError
from prtreid.pipeline.video import PipelineConfig
from prtreid.search_space import load_space
from prtreid.train.config import ExperimentConfig, load_experiment


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line."""
    p = argparse.ArgumentParser(description="Hyper-parameter sweep on Ray Tune with Optuna.",
                                formatter_class=HelpFormatter)
    sub = p.add_subparsers(dest="kind", required=True)
    about = "loss weights, margins, optimiser: trials train PRTReID"
    losses = sub.add_parser("losses", help=about, description=about, formatter_class=HelpFormatter)
    losses.add_argument("--data", required=True, help="crop store or SoccerNet sequences folder")
    losses.add_argument("--config", type=Path, help="base experiment YAML (default: the defaults)")
    losses.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override the base experiment, e.g. --set train.epochs=6 (repeatable)")
    losses.add_argument("--workers-per-trial", type=int, default=0,
                        help="N > 0: each trial runs a TorchTrainer with N DDP workers")
    losses.add_argument("--cpus-per-worker", type=float, default=1.0, help="CPUs of each DDP worker")
    losses.add_argument("--no-asha", action="store_true", help="train every trial to the end")
    losses.add_argument("--grace-period", type=int, default=1, help="ASHA: epochs before a trial may stop")
    about = "tracker settings: trials track validation sequences (HOTA)"
    tracker = sub.add_parser("tracker", help=about, description=about, formatter_class=HelpFormatter)
    tracker.add_argument("--sequences", required=True, help="validation sequences with gt/gt.txt")
    tracker.add_argument("--model", help="PRTReID model.pt (omit: motion-only tracking)")
    tracker.add_argument("--config", type=Path, help="base pipeline YAML (default: the sports preset)")
    tracker.add_argument("--detector", help="oracle (gt boxes), det (public det.txt) or yolo:WEIGHTS; "
                                            "default: the config's, else oracle")
    tracker.add_argument("--device", help="override the pipeline's device")
    for q in (losses, tracker):
        q.add_argument("--space", type=Path, required=True, help="search space YAML")
        q.add_argument("--out", required=True, help="sweep folder, local or s3://bucket/prefix")
        q.add_argument("--name", default="sweep", help="study name")
        q.add_argument("--num-samples", type=int, default=20, help="total trials, across resumes")
        q.add_argument("--max-concurrent", type=int, default=1, help="trials running at once")
        q.add_argument("--seed", type=int, default=0, help="seed of the Optuna sampler")
        q.add_argument("--resume", action="store_true", help="continue the sweep in --out")
        q.add_argument("--objective", help="composite weights, e.g. mAP=0.5,team_acc=0.25,role_acc=0.25")
        q.add_argument("--pareto", help="multi-objective search over these metrics, e.g. mAP,team_acc,role_acc")
        q.add_argument("--cpus-per-trial", type=float,
                       help="Tune resources of a trial (default 1; 0.2 with --workers-per-trial, whose workers get "
                            "--cpus-per-worker each)")
        q.add_argument("--gpus-per-trial", type=float, default=0.0,
                       help="GPUs of a trial (losses: with --workers-per-trial, any value > 0 gives each worker one)")
        q.add_argument("--study-storage", help="Optuna database URL of a shared study, without a password "
                       "(default: OUT/study.db)")
        q.add_argument("--work-dir", help="local folder of the SQLite study when --out is on S3")
        q.add_argument("--no-baseline", action="store_true", help="do not evaluate the base config first")
        q.add_argument("--no-plots", action="store_true", help="do not draw OUT/plots/*.png")
        q.add_argument("--address", help="Ray cluster to join (default: RAY_ADDRESS, else a local Ray)")
    return p.parse_args(argv)


def sweep_config(args: argparse.Namespace):
    """The :class:`SweepConfig` of the command line."""
    from prtreid.distributed.tune import SweepConfig

    workers = getattr(args, "workers_per_trial", 0)
    # with DDP workers, each worker takes a GPU; the trial itself only drives them
    trial_gpus = 0.0 if workers else args.gpus_per_trial
    resources = {}
    if args.cpus_per_trial is not None or trial_gpus:
        resources = {"cpu": args.cpus_per_trial if args.cpus_per_trial is not None else 1.0}
        resources |= {"gpu": trial_gpus} if trial_gpus else {}
    return SweepConfig(
        name=args.name, num_samples=args.num_samples, max_concurrent_trials=args.max_concurrent,
        seed=args.seed, objective=_weights(args.objective), asha=not getattr(args, "no_asha", True),
        grace_period=getattr(args, "grace_period", 1),
        pareto=tuple(m.strip() for m in args.pareto.split(",")) if args.pareto else (),
        trial_resources=resources, workers_per_trial=workers,
        resources_per_worker={"CPU": getattr(args, "cpus_per_worker", 1.0)},
        use_gpu=args.gpus_per_trial > 0, study_storage=args.study_storage,
        baseline=not args.no_baseline, plots=not args.no_plots)


def main(argv: list[str] | None = None) -> int:
    """Validate the inputs, join or start Ray, run the sweep, print its summary (exit 2 on bad input)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    return exit_status("tune", lambda: run(args))


def run(args: argparse.Namespace) -> int:
    """Run the sweep ``args`` describe and print its summary; exit status 1 when no trial finished."""
    if args.kind == "losses":
        space = load_space(args.space, ExperimentConfig)
        base = load_experiment(args.config, args.overrides)
    else:
        space = load_space(args.space, PipelineConfig)
        base = pipeline_config(args.config, args.device)
        base = dataclasses.replace(base, detector=args.detector) if args.detector else base
    sweep = sweep_config(args)
    from prtreid.distributed import tune
    from prtreid.distributed.runtime import connect

    tune.check_sweep_folder(args.out, sweep, args.resume)  # before a local Ray takes seconds to start
    tune.check_resources(sweep, private=connect(args.address)["local"])
    if args.kind == "losses":
        summary = tune.tune_losses(space, base, args.data, args.out, sweep, resume=args.resume,
                                   work_dir=args.work_dir)
    else:
        summary = tune.tune_tracker(space, base, args.sequences, args.model, args.out, sweep,
                                    resume=args.resume, work_dir=args.work_dir)
    print(json.dumps(summary, indent=2, default=str), flush=True)
    if summary["best_trial"] is None:
        print("tune: no trial finished (their errors are in the trials' logs under OUT/ray)", file=sys.stderr)
        return 1
    return 0


def _weights(text: str | None) -> dict[str, float]:
    """``"mAP=0.5,team_acc=0.25"`` -> ``{"mAP": 0.5, "team_acc": 0.25}``."""
    weights: dict[str, float] = {}
    for item in filter(None, (text or "").split(",")):
        key, _, value = item.partition("=")
        try:
            weights[key.strip()] = float(value)
        except ValueError:
            raise ConfigError(f"--objective: expected METRIC=WEIGHT, got {item!r}") from None
    return weights


if __name__ == "__main__":
    sys.exit(main())
