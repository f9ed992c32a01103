"""Tracking subcommands: ``track``, ``eval-tracking``, ``render`` and ``train-detector``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from prtreid.cli.progress import bar

RESULT_SUFFIXES = (".txt", ".tracks.parquet", ".summary.json")
"""The files ``prtreid track`` writes per input (``DIR/<name><suffix>``)."""


def register(sub: argparse._SubParsersAction) -> None:
    """Add the tracking subcommands."""
    p = sub.add_parser("track", help="track one or more sequence folders / videos")
    p.add_argument("--input", type=Path, nargs="+", required=True,
                   help="sequence folders, video files, or a folder of them")
    p.add_argument("--model", type=Path, help="PRTReID model.pt (omit for motion-only tracking)")
    p.add_argument("--detector", help="oracle (a sequence's gt boxes), det (its public det.txt) or yolo:WEIGHTS "
                                      "(.pt or model yaml); default: the config's, else oracle")
    p.add_argument("--config", type=Path, help="pipeline YAML (PipelineConfig fields: tracker, detection, cmc, ...)")
    p.add_argument("--out", required=True, help="output folder or s3://bucket/prefix")  # a Path would make s3:/
    p.add_argument("--device", help="auto, cpu, cuda or cuda:N (default: the config's, else auto)")
    p.set_defaults(func=run_track)

    p = sub.add_parser("eval-tracking", help="HOTA/DetA/AssA/MOTA/IDF1 (trackeval) plus team and role accuracy")
    p.add_argument("--gt", type=Path, required=True, help="folder of ground-truth sequences")
    p.add_argument("--pred", type=Path, required=True, help="folder with <seq>.txt (and <seq>.tracks.parquet)")
    p.add_argument("--json", action="store_true", help="print JSON only")
    p.set_defaults(func=run_eval_tracking)

    p = sub.add_parser("render", help="draw tracks, teams and roles over a clip (H.264 mp4)")
    p.add_argument("--input", type=Path, required=True, help="sequence folder or video")
    p.add_argument("--pred", type=Path, required=True, help="results folder of `prtreid track`")
    p.add_argument("--out", type=Path, required=True, help="output .mp4")
    p.add_argument("--name", help="result name (default: the input's name)")
    p.add_argument("--max-frames", type=int, help="render only the first N frames (default: all)")
    p.set_defaults(func=run_render)

    p = sub.add_parser("train-detector", help="train a YOLO person detector on SoccerNet sequences (ultralytics)")
    p.add_argument("--data", type=Path, required=True, help="folder of SoccerNet sequences (gt/gt.txt boxes)")
    p.add_argument("--out", type=Path, required=True,
                   help="folder for the YOLO dataset and the run (weights: OUT/runs/detector/weights/best.pt)")
    p.add_argument("--epochs", type=int, default=30, help="training epochs (default: 30)")
    p.add_argument("--imgsz", type=int, default=640, help="training image size in pixels (default: 640)")
    p.add_argument("--model", default="yolov8n.yaml", help="model yaml (from scratch) or local .pt")
    p.add_argument("--frame-stride", type=int, default=5, help="every Nth frame of each sequence (default: 5)")
    p.set_defaults(func=run_train_detector)


def pipeline_config(path: Path | None, device: str | None = None):
    """A PipelineConfig from YAML (or defaults), with an optional device override."""
    import dataclasses

    from prtreid.config import from_dict, load_yaml
    from prtreid.pipeline.video import PipelineConfig

    cfg = from_dict(PipelineConfig, load_yaml(path), str(path)) if path else PipelineConfig()
    return dataclasses.replace(cfg, device=device) if device else cfg


def expand_inputs(paths: list[Path]) -> list[Path]:
    """Sequence folders and videos; in a folder that is neither, sequence folders are found at any depth
    and videos directly in it.

    Raises:
        FileNotFoundError: such a folder holds no sequence folder and no video.
    """
    from prtreid.data.frames import VIDEO_SUFFIXES
    from prtreid.data.soccernet import find_sequences

    out: list[Path] = []
    for p in paths:
        if p.is_dir() and not (p / "seqinfo.ini").exists():
            found = find_sequences(p) + sorted(v for v in p.iterdir() if v.suffix.lower() in VIDEO_SUFFIXES)
            if not found:
                raise FileNotFoundError(f"{p}: no sequence folders (with seqinfo.ini) or videos "
                                        f"({', '.join(VIDEO_SUFFIXES)}) in it")
            out += found
        else:
            out.append(p)
    return out


def check_unique_names(inputs: list[Path]) -> list[str]:
    """The inputs' result names; refuses inputs whose results would share a name (and overwrite each other),
    before any work.

    Raises:
        ConfigError: two inputs with one result name (a sequence's ``seqinfo.ini`` name, a video's stem).
        FrameError: an input that cannot be opened.
    """
    from prtreid.data.frames import open_frames
    from prtreid.errors import ConfigError

    seen: dict[str, Path] = {}
    for path in inputs:
        name = open_frames(path).info.name
        if name in seen:
            raise ConfigError(f"{path} and {seen[name]} would both write the results named {name!r}: "
                              "track them into separate --out folders")
        seen[name] = path
    return list(seen)


def run_track(args: argparse.Namespace) -> int:
    """``prtreid track``."""
    import dataclasses

    from prtreid.pipeline.video import VideoPipeline, write_result
    from prtreid.storage import Storage, remove_stale_temps

    cfg = pipeline_config(args.config, args.device)
    if args.detector:
        cfg = dataclasses.replace(cfg, detector=args.detector)
    inputs = expand_inputs(args.input)
    names = check_unique_names(inputs)
    out = Storage(args.out)
    out.check_bucket()
    if out.is_local:  # what a run killed while it wrote these results left behind
        remove_stale_temps(out.root, [f"{n}{suffix}" for n in names for suffix in RESULT_SUFFIXES])
    pipeline = VideoPipeline(cfg, args.model)
    for i, (path, name) in enumerate(zip(inputs, names)):
        progress, close = bar(f"track {i + 1}/{len(inputs)} {name}", unit="frame")  # a match takes long: frames
        try:
            progress(0, None)  # drawn now, not once the first batch is done
            result = pipeline.run(path, on_frames=progress)
        finally:
            close()
        write_result(result, out)
    print(f"tracked {len(inputs)} input(s) into {args.out}")
    return 0


def run_eval_tracking(args: argparse.Namespace) -> int:
    """``prtreid eval-tracking``."""
    from prtreid.eval.tracking import COMBINED, evaluate_tracking
    from prtreid.scratch import clean_stale

    clean_stale()  # the trackeval tables of an evaluation that was killed, as eval-reid does for its crops
    res = evaluate_tracking(args.gt, args.pred)
    if args.json:
        print(json.dumps(res))
        return 0
    keys = ["HOTA", "DetA", "AssA", "MOTA", "IDF1", "team_acc", "role_acc", "keeper_team_acc"]
    width = {k: max(10, len(k) + 2) for k in keys}
    print(f"{'sequence':<16}" + "".join(f"{k:>{width[k]}}" for k in keys))
    for seq, m in sorted(res.items(), key=lambda kv: kv[0] == COMBINED):
        print(f"{seq:<16}" + "".join(f"{m[k]:>{width[k]}.4f}" if k in m else f"{'-':>{width[k]}}" for k in keys))
    return 0


def run_render(args: argparse.Namespace) -> int:
    """``prtreid render``."""
    from prtreid.data.frames import open_frames
    from prtreid.errors import ConfigError
    from prtreid.eval.tracking import read_tracks
    from prtreid.pipeline.render import COLUMNS, render

    if args.max_frames is not None and args.max_frames < 1:
        raise ConfigError(f"--max-frames must be 1 or more, got {args.max_frames} (leave it out for every frame)")
    name = args.name or open_frames(args.input).info.name
    table = args.pred / f"{name}.tracks.parquet"
    if not table.is_file():
        raise FileNotFoundError(f"{table}: no such file (the --pred folder of `prtreid track`; --name picks "
                                "another result than the input's name)")
    tracks = read_tracks(table, COLUMNS)
    progress, close = bar(f"render {name}", unit="frame")
    try:
        n = render(args.input, tracks, args.out, args.max_frames, on_frames=progress)
    finally:
        close()
    print(f"wrote {n} frames to {args.out}")
    return 0


def run_train_detector(args: argparse.Namespace) -> int:
    """``prtreid train-detector``."""
    import warnings

    from prtreid.detect.yolo_train import train_detector

    with warnings.catch_warnings():
        # ultralytics' Ray Tune callback asks Ray, every epoch, whether it runs in a Tune trial; outside one
        # Ray warns that it does not, and the callback does nothing: harmless, and nothing a user can change
        warnings.filterwarnings("ignore", message="`get_trial_id` is meant to only be called", category=UserWarning)
        weights = train_detector(args.data, args.out, epochs=args.epochs, imgsz=args.imgsz, model=args.model,
                                 frame_stride=args.frame_stride)
    print(f"detector weights: {weights}")
    return 0
