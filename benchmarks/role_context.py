"""Roles from match context vs the role head alone, on unseen generated clips, one model.

The same model, the same clips, the same tracks: only the role decision differs. Tracking rows
are per tracklet-frame accuracies (oracle detections, `prtreid eval-tracking`); crop rows are the
`eval-reid` crops of the same clips.

    python benchmarks/role_context.py --model demo_out/ray/demo/model.pt
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
from pathlib import Path

import torch

from prtreid.data.crops import CropConfig, build_crops
from prtreid.data.synth import SynthConfig, generate_dataset
from prtreid.eval.tracking import COMBINED, evaluate_tracking
from prtreid.pipeline.video import PipelineConfig, VideoPipeline, write_result
from prtreid.storage import Storage
from prtreid.track.context import RoleContext
from prtreid.train.checkpoint import load_model
from prtreid.train.evaluate import evaluate_store

VARIANTS: dict[str, RoleContext] = {
    "role head alone (mean softmax)": RoleContext(enabled=False),
    "+ team kits are players": RoleContext(outsiders=False, small_second_team=False, shared_kit_roles=(),
                                           one_keeper_in_view=False),
    "+ outsiders are not players": RoleContext(small_second_team=False, shared_kit_roles=(), one_keeper_in_view=False),
    "+ referees and others share their kit's role": RoleContext(small_second_team=False, one_keeper_in_view=False),
    "+ a second team seen on fewer than 3 at once": RoleContext(one_keeper_in_view=False),
    "+ one goalkeeper in view at a time (default)": RoleContext(),
}


def track_rows(data: Path, model: Path, work: Path) -> dict[str, tuple[float, float]]:
    """Team and role accuracy per tracklet-frame of each variant."""
    rows = {}
    for i, (name, ctx) in enumerate(VARIANTS.items()):
        pipeline = VideoPipeline(PipelineConfig(device="cpu", role_context=ctx), model)
        out = work / f"tracks{i}"
        for seq in sorted(p for p in data.iterdir() if p.is_dir()):
            write_result(pipeline.run(seq), Storage(str(out)))
        res = evaluate_tracking(data, out)[COMBINED]
        rows[name] = (res.get("team_acc", float("nan")), res.get("role_acc", float("nan")))  # absent: nobody a player
        print(f"tracking, {name}: team {rows[name][0]:.3f} role {rows[name][1]:.3f}", flush=True)
    return rows


def crop_rows(data: Path, model_path: Path) -> dict[str, float]:
    """Role accuracy over the eval-reid crops of each variant."""
    model, meta = load_model(model_path)
    roles = tuple(meta["role_names"])
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        build_crops(data, Path(tmp), dataclasses.replace(CropConfig(), eval_fraction=1.0, roles=roles))
        store = Path(tmp)
        for name, ctx in VARIANTS.items():
            res = evaluate_store(model, store, torch.device("cpu"), role_names=roles, role_context=ctx,
                                 image_size=tuple(meta["model_config"]["image_size"]))
            rows[name] = res["role_acc"]
            print(f"crops, {name}: role {rows[name]:.3f}", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=Path("demo_out/ray/demo/model.pt"))
    parser.add_argument("--work", type=Path, default=Path("runs/role_context"))
    parser.add_argument("--seqs", type=int, default=8)
    parser.add_argument("--frames", type=int, default=80)
    parser.add_argument("--seed", type=int, default=5001)
    args = parser.parse_args()
    if not args.model.exists():
        raise SystemExit(f"{args.model}: no such model (run `make demo`, or pass --model)")
    data = args.work / f"data_seed{args.seed}_{args.seqs}x{args.frames}"
    if not data.exists():
        generate_dataset(data, SynthConfig(seqs=args.seqs, frames=args.frames, seed=args.seed, first_index=201))
    tracking = track_rows(data, args.model, args.work)
    crops = crop_rows(data, args.model)
    print(f"\n{args.seqs} unseen clips x {args.frames} frames (seed {args.seed}), model {args.model}\n")
    print("| role decision | tracking team acc | tracking role acc | eval-reid crop role acc |")
    print("|---|---|---|---|")
    for name, (team, role) in tracking.items():
        crop = f"{crops[name]:.3f}" if name in crops else "-"
        print(f"| {name} | {team:.3f} | {role:.3f} | {crop} |")


if __name__ == "__main__":
    main()
