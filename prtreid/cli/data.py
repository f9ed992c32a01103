"""Data subcommands: ``synth`` (generate SoccerNet-format clips) and ``crops`` (build the re-id store)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from prtreid.cli.progress import bar


def register(sub: argparse._SubParsersAction) -> None:
    """Add the data subcommands."""
    p = sub.add_parser("synth", help="generate synthetic broadcast clips in the SoccerNet-Tracking layout")
    p.add_argument("--out", type=Path, required=True, help="output folder (one SNMOT-xxx folder per clip)")
    p.add_argument("--seqs", type=int, default=4, help="number of sequences")
    p.add_argument("--frames", type=int, default=150, help="frames per sequence")
    p.add_argument("--seed", type=int, default=0, help="random seed (the same seed gives the same clips)")
    p.add_argument("--width", type=int, default=960, help="frame width in pixels")
    p.add_argument("--height", type=int, default=540, help="frame height in pixels")
    p.add_argument("--first-index", type=int, default=1, help="number of the first sequence name (SNMOT-001)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="any other SynthConfig field, e.g. --set goal_action_prob=0.8 (repeatable)")
    p.set_defaults(func=run_synth)

    p = sub.add_parser("crops", help="build the re-id crop store from sequences")
    p.add_argument("--data", type=Path, required=True, help="folder of SoccerNet sequences")
    p.add_argument("--out", type=Path, required=True, help="crop store folder")
    p.add_argument("--config", type=Path, help="YAML with CropConfig fields, or an experiment YAML (its crops section)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=run_crops)


def run_synth(args: argparse.Namespace) -> int:
    """``prtreid synth``."""
    from prtreid.config import from_dict, merge, parse_override
    from prtreid.data.synth import SynthConfig, generate_dataset

    fields = {"seqs": args.seqs, "frames": args.frames, "width": args.width, "height": args.height,
              "seed": args.seed, "first_index": args.first_index}
    for text in args.overrides:
        fields = merge(fields, parse_override(text))
    cfg = from_dict(SynthConfig, fields, source="prtreid synth --set")
    progress, close = bar("synth", unit="seq")
    try:
        paths = generate_dataset(args.out, cfg, progress=progress)
    finally:
        close()
    print(f"wrote {len(paths)} sequences to {args.out}")
    return 0


def run_crops(args: argparse.Namespace) -> int:
    """``prtreid crops``."""
    import dataclasses

    from prtreid.config import from_dict, load_yaml
    from prtreid.data.crops import CropConfig, build_crops
    from prtreid.train.config import ExperimentConfig, experiment_from_dict

    raw = load_yaml(args.config) if args.config else {}
    sections = {f.name for f in dataclasses.fields(ExperimentConfig)}
    experiment = bool(sections & set(raw))  # an experiment file (its crops section) or a bare CropConfig
    if experiment:  # validated whole: a typo beside the crops section is an error, not ignored
        cfg = experiment_from_dict(raw, str(args.config)).crops
    else:
        cfg = from_dict(CropConfig, raw, f"{args.config} (crops)") if args.config else CropConfig()
    progress, close = bar("crops", unit="seq")
    try:
        summary = build_crops(args.data, args.out, cfg, progress=progress)
    finally:
        close()
    doc = summary.to_dict()
    print(json.dumps(doc, indent=None if args.json else 2))
    return 0
