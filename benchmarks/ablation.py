"""Ablation: re-id only vs re-id + team + role, same data, same budget, same seed.

The paper claims the multi-task heads help re-identification. This trains both variants on
generated data and evaluates them on held-out generated clips (sequences never trained on, with
their own kits and players), printing one table. The re-id-only model's team and role numbers come
from its untrained heads (chance level); its mAP is what the comparison is about.

    python benchmarks/ablation.py --seqs 30 --frames 40 --epochs 6
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import time
from pathlib import Path

import torch

from prtreid.data.crops import build_crops
from prtreid.data.synth import SynthConfig, generate_dataset
from prtreid.train.checkpoint import load_model
from prtreid.train.config import ExperimentConfig, load_experiment
from prtreid.train.evaluate import evaluate_store
from prtreid.train.loop import fit

METRICS = ("mAP", "rank1", "team_acc", "role_acc", "role_macro_f1")


def variants(base: ExperimentConfig) -> dict[str, ExperimentConfig]:
    """The two variants compared: the paper's multi-task weights, and re-id alone."""
    reid_only = dataclasses.replace(base.loss, team_weight=0.0, role_weight=0.0)
    return {"re-id + team + role": base, "re-id only": dataclasses.replace(base, loss=reid_only)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=Path("runs/ablation"))
    parser.add_argument("--config", type=Path, default=Path("configs/train_cpu_small.yaml"))
    parser.add_argument("--seqs", type=int, default=30)
    parser.add_argument("--frames", type=int, default=40)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--seed", type=int, default=21)
    parser.add_argument("--crops-per-identity", type=int, default=6,
                        help="crop cap per identity (the preset's 2 suits its 10-frame clips, not these)")
    args = parser.parse_args()

    base = load_experiment(args.config, [f"train.epochs={args.epochs}", "train.device=cpu",
                                         f"crops.max_per_identity={args.crops_per_identity}",
                                         "train.min_frame_gap=10"])
    inputs = args.work / f"seed{args.seed}_{args.seqs}x{args.frames}_cap{args.crops_per_identity}"
    data, store = inputs / "data", inputs / "crops"  # reused by a rerun with the same arguments
    if not (store / "index.parquet").exists():
        generate_dataset(data, SynthConfig(seqs=args.seqs, frames=args.frames, seed=args.seed))
        build_crops(data, store, base.crops)
    rows = {}
    for name, cfg in variants(base).items():
        model_dir = args.work / name.replace(" ", "").replace("+", "_")
        shutil.rmtree(model_dir, ignore_errors=True)  # trained afresh: fit would resume an earlier run
        start = time.perf_counter()
        fit(cfg, store, model_dir)
        minutes = (time.perf_counter() - start) / 60
        model, meta = load_model(model_dir / "model.pt")
        res = evaluate_store(model, store, torch.device("cpu"), image_size=cfg.model.image_size,
                             role_names=tuple(meta["role_names"]))
        rows[name] = {k: res[k] for k in METRICS} | {"minutes": minutes}
    print(f"\nAblation on {args.seqs} generated clips x {args.frames} frames, {args.epochs} epochs, "
          f"{base.model.backbone} at {base.model.image_size[0]}x{base.model.image_size[1]}, CPU\n")
    print("| variant | " + " | ".join(METRICS) + " | train min |")
    print("|---|" + "---|" * (len(METRICS) + 1))
    for name, r in rows.items():
        print(f"| {name} | " + " | ".join(f"{r[k]:.3f}" for k in METRICS) + f" | {r['minutes']:.1f} |")
    a, b = rows["re-id + team + role"]["mAP"], rows["re-id only"]["mAP"]
    print(f"\nmAP ratio multi-task / re-id only: {a / b:.3f}" if b else "\nmAP ratio: - (re-id only scored 0)")


if __name__ == "__main__":
    main()
