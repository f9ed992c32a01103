"""Distributed PRTReID training on Ray Train, resumable, with checkpoints in a folder or S3.

Locally (starts a private Ray unless RAY_ADDRESS is set)::

    python jobs/train.py --config configs/train_cpu_small.yaml --data demo_out/crops \\
        --storage runs/ray --name small --num-workers 2 --cpus-per-worker 0.9

On a cluster (the job's driver joins the cluster through the RAY_ADDRESS that Ray sets)::

    ray job submit --address http://127.0.0.1:8265 --working-dir . -- \\
        python jobs/train.py --config configs/train_gpu_resnet50.yaml --data /mnt/data/sequences \\
        --storage s3://BUCKET/prtreid/runs --name resnet50 --num-workers 4 --gpu --max-failures 3

Launching again with the same ``--name`` and ``--storage`` resumes the run from its latest
checkpoint. Prints one JSON line: the run's folder, its final model file and last metrics.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

REPORT_KEYS = ("epoch", "start_epoch", "loss/total", "mAP", "rank1", "team_acc", "role_acc", "role_macro_f1")


def build_parser() -> argparse.ArgumentParser:
    """The command line of the training job."""
    from prtreid.cli import HelpFormatter

    p = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("--config", help="experiment YAML (sections crops, sampler, augment, model, loss, train)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set train.epochs=20 (repeatable)")
    p.add_argument("--data", required=True,
                   help="crop store or sequences folder at the same absolute path on every node (shared "
                        "storage); under `ray job submit` relative paths point into the job's temporary copy")
    p.add_argument("--storage", required=True,
                   help="runs folder: s3://bucket/prefix, or an absolute local path (single node)")
    p.add_argument("--name", required=True, help="run name; the same name resumes the run")
    p.add_argument("--num-workers", type=int, default=2, help="training workers (one per GPU with --gpu)")
    p.add_argument("--gpu", action="store_true", help="one GPU per worker (mixed precision as train.amp says)")
    p.add_argument("--cpus-per-worker", type=float, help="CPUs reserved per worker (Ray's default: 1)")
    p.add_argument("--max-failures", type=int, default=2, help="worker-group restarts allowed; -1: no limit")
    p.add_argument("--keep", type=int, default=2, help="checkpoints kept in storage")
    p.add_argument("--address", help="Ray cluster to join (default: RAY_ADDRESS, else a local Ray)")
    return p


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, join or start Ray, train, print the summary (exit 2 on bad input or settings)."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from prtreid.cli import exit_status

    return exit_status("train", lambda: run(args))


def run(args: argparse.Namespace) -> int:
    """Train as ``args`` say and print the summary."""
    from prtreid.distributed.runtime import connect
    from prtreid.distributed.train import train_distributed
    from prtreid.train.config import load_experiment

    cfg = load_experiment(args.config, args.overrides)
    connect(args.address)
    resources = {"CPU": args.cpus_per_worker} if args.cpus_per_worker else None
    summary = train_distributed(cfg, args.data, args.storage, args.name, num_workers=args.num_workers,
                                use_gpu=args.gpu, resources_per_worker=resources,
                                max_failures=args.max_failures, checkpoints_to_keep=args.keep)
    from prtreid.cli.reid import retrieval_defined

    final = retrieval_defined(summary.metrics)  # mAP and rank-1 null, not 0, where no query could be scored
    metrics = {k: final[k] for k in REPORT_KEYS if k in final}
    print(json.dumps({"run": summary.run_uri, "model": summary.model_uri, "epochs": len(summary.history),
                      "start_epoch": summary.start_epoch, "metrics": metrics}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
