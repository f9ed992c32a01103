"""Bulk tracking of a season of videos on Ray Data: every player's track, team and role, into S3.

Local run (starts a private Ray on this machine)::

    python jobs/track.py --input s3://archive/2024-25/ --out s3://results/2024-25/ \\
        --model s3://models/prtreid.pt --detector yolo:/models/yolo-soccer.pt --actors 4 --gpus-per-actor 0.5

On a cluster (the job's driver joins it through RAY_ADDRESS)::

    ray job submit --address http://HEAD:8265 --working-dir . -- python jobs/track.py --manifest s3://.../season.csv ...

A rerun with the same ``--out`` skips what is complete. Paths must be absolute or ``s3://`` when
the job runs on a cluster (git-ignored files are not uploaded with ``--working-dir``).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from pathlib import Path

from prtreid.cli import HelpFormatter, exit_status
from prtreid.cli.track import pipeline_config
from prtreid.distributed.track import BulkConfig, run_bulk


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line."""
    p = argparse.ArgumentParser(description="Track every video of a manifest or prefix on Ray Data.",
                                formatter_class=HelpFormatter)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--manifest", help="text (one URI a line), CSV or Parquet with a 'uri' column; local or s3://")
    src.add_argument("--input", help="folder or s3:// prefix: every video file and sequence folder below it")
    p.add_argument("--out", required=True, help="output folder or s3://bucket/prefix")
    p.add_argument("--model", help="PRTReID model.pt, local path or s3:// (omit: motion-only tracking)")
    p.add_argument("--detector", help="oracle (a sequence's gt boxes), det (its public det.txt) or yolo:WEIGHTS "
                                      "(a local .pt or model yaml, or s3://); default: the config's, else oracle")
    p.add_argument("--config", type=Path, help="pipeline YAML (PipelineConfig fields)")
    p.add_argument("--device", help="override the config's device (auto, cpu, cuda)")
    p.add_argument("--actors", type=int, default=1, help="actors in the pool (each loads the models once)")
    p.add_argument("--max-actors", type=int, help="autoscale the pool from --actors up to this")
    p.add_argument("--cpus-per-actor", type=float, default=1.0, help="CPUs Ray reserves for each actor")
    p.add_argument("--gpus-per-actor", type=float, default=0.0, help="e.g. 0.5: two actors share a GPU")
    p.add_argument("--max-task-retries", type=int, default=2, help="retries of a video whose worker died")
    p.add_argument("--no-retry-failed", action="store_true", help="skip inputs with a failure record too")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--address", help="Ray cluster to join (default: RAY_ADDRESS, else a local Ray)")
    p.add_argument("--fail-on-error", action="store_true",
                   help="exit with 1 when any input failed (without it: only when every input failed)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the job; print the report (exit 2 on bad input or settings)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    return exit_status("track", lambda: run(args))


def run(args: argparse.Namespace) -> int:
    """Track as ``args`` say; exit status 1 where every input failed (any input, with ``--fail-on-error``)."""
    cfg = pipeline_config(args.config, args.device)
    if args.detector:
        cfg = dataclasses.replace(cfg, detector=args.detector)
    bulk = BulkConfig(actors=args.actors, max_actors=args.max_actors, cpus_per_actor=args.cpus_per_actor,
                      gpus_per_actor=args.gpus_per_actor, max_task_retries=args.max_task_retries,
                      retry_failed=not args.no_retry_failed, progress=not args.no_progress)
    report = run_bulk(args.out, cfg, manifest=args.manifest, prefix=args.input, model_path=args.model,
                      bulk=bulk, address=args.address)
    print(report.format(), flush=True)
    counts = report.counts
    all_failed = counts["failed"] > 0 and counts["done"] + counts["skipped"] == 0
    return 1 if all_failed or (args.fail_on_error and counts["failed"]) else 0


if __name__ == "__main__":
    sys.exit(main())
