"""Re-id subcommands: ``train``, ``eval-reid`` and ``export``."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import sys
import warnings
from pathlib import Path

from prtreid.cli.progress import bar

REPORT_KEYS = ("mAP", "rank1", "team_acc", "role_acc", "role_macro_f1")


def register(sub: argparse._SubParsersAction) -> None:
    """Add the re-id subcommands."""
    p = sub.add_parser("train", help="train PRTReID on a crop store or on SoccerNet sequences")
    p.add_argument("--data", type=Path, required=True, help="crop store (index.parquet) or sequences folder")
    p.add_argument("--out", type=Path, required=True, help="run folder (checkpoint.pt, model.pt, metrics)")
    p.add_argument("--config", type=Path, help="experiment YAML (sections crops, sampler, augment, model, loss, train)")
    p.add_argument("--epochs", type=int, help="override train.epochs (default: the config's)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set loss.team_weight=0.2 (repeatable)")
    p.set_defaults(func=run_train)

    p = sub.add_parser("eval-reid", help="re-id mAP/rank-1, team and role accuracy of a model")
    p.add_argument("--data", type=Path, required=True, help="crop store or sequences folder (all held out)")
    p.add_argument("--model", type=Path, required=True, help="model.pt or checkpoint.pt")
    p.add_argument("--device", default="auto", help="auto (CUDA where available), cpu, cuda or cuda:N")
    # prtreid.track.teams' TEAM_DESCRIPTORS and TEAM_SPLITS, spelt out: importing prtreid.track would slow every --help
    p.add_argument("--team-from", choices=("both", "kit", "embedding"), default="both",
                   help="what players' teams are clustered on: the team head's embedding and the kit colour "
                        "under the model's part maps side by side, either alone (each accuracy is printed "
                        "without --json)")
    p.add_argument("--team-split", choices=("mixture", "kmeans"), default="mixture",
                   help="how they are split in two: KMeans(2) then a Gaussian mixture with one covariance "
                        "shared by both teams, or KMeans(2) alone, the paper's (its accuracy is printed "
                        "without --json)")
    p.add_argument("--json", action="store_true", help="print only the JSON metrics")
    p.set_defaults(func=run_eval)

    p = sub.add_parser("export", help="export a model's embedding network to ONNX and TorchScript, checked")
    p.add_argument("--model", type=Path, required=True, help="model.pt or checkpoint.pt")
    p.add_argument("--out", type=Path, required=True, help="folder for model.onnx and model.torchscript.pt")
    p.add_argument("--tolerance", type=float, default=1e-3, help="largest output difference from the eager model")
    p.set_defaults(func=run_export)


def crop_store(data: Path, out: Path, cfg) -> Path:
    """``data`` itself when it is a crop store, else a store built from its sequences into ``out``.

    A store already in ``out`` is reused only when it was built from the same sequences with the
    same crop settings (``out/build.json``); otherwise it is rebuilt.
    """
    from prtreid.data.crops import build_crops
    from prtreid.storage import atomic_write_text, remove_stale_temps

    if (data / "index.parquet").exists():
        return data
    remove_stale_temps(out, ("build.json",))
    # through JSON once, so that tuples compare equal to the lists read back from build.json
    stamp = json.loads(json.dumps({"data": str(data.resolve()), "crops": dataclasses.asdict(cfg)}))
    built = out / "build.json"
    if (out / "index.parquet").exists() and built.exists() and json.loads(built.read_text()) == stamp:
        return out
    built.unlink(missing_ok=True)  # stamped again once the new build is complete
    progress, close = bar(f"crops {data.name}", unit="seq")
    try:
        build_crops(data, out, cfg, progress=progress)
    finally:
        close()
    atomic_write_text(built, json.dumps(stamp, indent=2))
    return out


def run_train(args: argparse.Namespace) -> int:
    """``prtreid train``."""
    from prtreid.storage import atomic_write_text, remove_stale_temps
    from prtreid.train.config import load_experiment
    from prtreid.train.loop import check_resumable, fit

    remove_stale_temps(args.out, ("metrics.json",))  # fit removes those of the checkpoint and the model
    overrides = list(args.overrides) + ([f"train.epochs={args.epochs}"] if args.epochs is not None else [])
    cfg = load_experiment(args.config, overrides)
    check_resumable(args.out, cfg)  # before RUN/crops is rebuilt for settings the checkpoint does not hold
    store = crop_store(args.data, args.out / "crops", cfg.crops)
    history = [retrieval_defined(h) for h in fit(cfg, store, args.out)]
    atomic_write_text(args.out / "metrics.json", json.dumps(history, indent=2))
    final = history[-1]
    print(json.dumps({k: final[k] if final[k] is None else round(final[k], 4) for k in REPORT_KEYS if k in final}))
    if final.get("mAP", 0) is None:
        print(f"prtreid train: no query crop of the held-out data has a gallery crop of the same person at least "
              f"{cfg.train.min_frame_gap} frames away in its clip: mAP and rank-1 are undefined (null)",
              file=sys.stderr)
    print(f"prtreid train: model in {args.out / 'model.pt'} (checkpoint.pt and metrics.json beside it)",
          file=sys.stderr)
    return 0


def retrieval_defined(metrics: dict) -> dict:
    """``metrics`` with mAP and rank-k set to None where no query was scored (they are undefined, not 0)."""
    if metrics.get("num_queries") != 0:
        return metrics
    return metrics | {k: None for k in ("mAP", "rank1", "rank5") if k in metrics}


def run_eval(args: argparse.Namespace) -> int:
    """``prtreid eval-reid``."""
    from prtreid.data.crops import CropConfig
    from prtreid.errors import FormatError
    from prtreid.model.prtreid import inference_layout
    from prtreid.scratch import clean_stale, scratch
    from prtreid.train.checkpoint import load_model
    from prtreid.train.config import TrainConfig
    from prtreid.train.evaluate import evaluate_store
    from prtreid.train.loop import resolve_device

    device = resolve_device(args.device)
    model, meta = load_model(args.model, device)
    model = model.to(memory_format=inference_layout(device))
    clean_stale()  # the crops of an evaluation that was killed (they can be large)
    with scratch("eval-") as tmp:
        cfg = dataclasses.replace(CropConfig(), eval_fraction=1.0, roles=tuple(meta["role_names"]))
        store = crop_store(args.data, tmp, cfg)
        progress, close = bar("embed", unit="crop")
        try:
            metrics = evaluate_store(model, store, device, image_size=tuple(meta["model_config"]["image_size"]),
                                     role_names=tuple(meta["role_names"]), min_frame_gap=TrainConfig.min_frame_gap,
                                     team_from=args.team_from, team_split=args.team_split, progress=progress)
        finally:
            close()
    if metrics["num_queries"] == 0:
        raise FormatError(str(args.data), None, f"no query crop has a gallery crop of the same person at least "
                                                f"{TrainConfig.min_frame_gap} frames away in its clip, so mAP and "
                                                "rank-1 are undefined: evaluate longer clips")
    report = {k: metrics[k] for k in REPORT_KEYS}
    if not args.json:
        report |= {k: metrics[k] for k in ("rank5", "num_queries", "skipped_queries", "team_acc_both", "team_acc_kit",
                                           "team_acc_embedding", "team_acc_kmeans", "team_acc_per_sequence",
                                           "role_acc_crop", "role_confusion", "role_names") if k in metrics}
    print(json.dumps(report, indent=None if args.json else 2))
    return 0


def run_export(args: argparse.Namespace) -> int:
    """``prtreid export``: exit 1 when an export's outputs differ from the model's by more than the tolerance."""
    from prtreid.model.export import export_onnx, export_torchscript, max_abs_difference
    from prtreid.storage import atomic_path, remove_stale_temps
    from prtreid.train.checkpoint import load_model

    model, _ = load_model(args.model, "cpu")  # CPU graphs run anywhere; a CUDA trace only on CUDA
    onnx_path, script_path = args.out / "model.onnx", args.out / "model.torchscript.pt"
    remove_stale_temps(args.out, (onnx_path.name, script_path.name))
    if not getattr(args, "verbose", False):  # onnxscript's optimiser logs each of its passes at INFO
        for name in ("onnx_ir", "onnxscript"):
            logging.getLogger(name).setLevel(logging.WARNING)
    # both under temporary names until both are written and run: a killed export leaves no file that looks whole
    with atomic_path(onnx_path) as onnx_tmp, atomic_path(script_path) as script_tmp, warnings.catch_warnings(), \
            contextlib.redirect_stdout(sys.stderr):  # torch.onnx prints its steps: stdout is for the JSON report
        # torch.jit.trace/load are deprecated in favour of torch.export; TorchScript is a format this command
        # promises, and the warning is not one a user can act on
        warnings.filterwarnings("ignore", message=r"`torch\.jit\.\w+` is deprecated", category=FutureWarning)
        diffs = max_abs_difference(model, export_onnx(model, onnx_tmp), export_torchscript(model, script_tmp))
    worst = max(diffs.values())
    print(json.dumps({"onnx": str(onnx_path), "torchscript": str(script_path), "max_abs_difference": worst}))
    if worst > args.tolerance:
        print(f"prtreid export: outputs differ from the model's by {worst:.3g} (tolerance {args.tolerance:g}): "
              f"{diffs}", file=sys.stderr)
        return 1
    return 0
