"""Bulk tracking throughput: end to end on Ray Data against each stage alone, 1 vs 2 actors.

Each stage (decode, detect, embed, track) is timed alone in this process on the same videos and
settings as the bulk runs (one torch thread per actor CPU, like Ray gives an actor). A perfectly
overlapped pipeline would run at the slowest stage's rate; one actor runs its stages one after the
other, so its ceiling is the serial rate 1 / (sum of per-frame stage times). The table prints both
ratios; "wall" rates include Ray Data start-up and model loading, "in actors" rates only the time
actors spent on videos (all actors together).

    python benchmarks/bulk.py                        # CPU, generated clips, untrained YOLOv8n and CPU-preset PRTReID
    python benchmarks/bulk.py --gpu --image-size 256 128 --imgsz 640   # frames/s per GPU
    python benchmarks/bulk.py --gpu --stages-only    # each stage alone (no Ray needed)
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from prtreid.config import from_dict
from prtreid.data.frames import open_frames, write_video
from prtreid.data.synth import SynthConfig, generate_dataset
from prtreid.detect.factory import make_detector
from prtreid.model.prtreid import PRTReID
from prtreid.pipeline.video import PipelineConfig, VideoPipeline
from prtreid.track.cmc import CameraMotion
from prtreid.track.tracker import Appearance, Detections, PRTTracker
from prtreid.track.tracklets import TrackTable
from prtreid.train.checkpoint import load_model, model_meta, save_model
from prtreid.train.config import load_experiment

PRESET = Path(__file__).resolve().parents[1] / "configs" / "train_cpu_small.yaml"


def make_videos(work: Path, seqs: int, frames: int, width: int, height: int) -> Path:
    """Generated broadcast clips encoded as H.264 mp4 files (what a season archive holds)."""
    out = work / "videos"
    for seq in generate_dataset(work / "seqs", SynthConfig(seqs=seqs, frames=frames, width=width, height=height,
                                                           seed=3)):
        write_video(out / f"{seq.name}.mp4", (img for _, img in open_frames(seq)), fps=25)
    return out


def make_model(path: Path, image_size: tuple[int, int] | None) -> Path:
    """An untrained PRTReID of the CPU preset's architecture (random weights: the cost is what is
    measured), at ``image_size`` instead of the preset's 96x48 when given."""
    cfg = load_experiment(PRESET).model
    cfg = dataclasses.replace(cfg, image_size=image_size) if image_size else cfg
    roles = ("player", "goalkeeper", "referee", "other")
    save_model(path, PRTReID.from_config(cfg, num_roles=len(roles)), model_meta(cfg, len(roles), 0, roles))
    return path


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    """Result and seconds of ``fn()`` (CUDA work included)."""
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    start = time.perf_counter()
    out = fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return out, time.perf_counter() - start


def isolated_stages(videos: list[Path], cfg: PipelineConfig, model: Path) -> dict[str, float]:
    """Seconds each stage takes alone over every frame of ``videos`` (plus the frame count)."""
    pipeline = VideoPipeline(cfg, model)
    detector = make_detector(cfg.detector, None, cfg.detection)
    secs = dict.fromkeys(("decode", "detect", "embed", "track"), 0.0) | {"frames": 0.0}
    for video in videos:
        frames, t = timed(lambda: [img for _, img in open_frames(video)])
        secs["decode"] += t
        secs["frames"] += len(frames)
        step = cfg.batch_frames
        batches = [list(range(i, min(i + step, len(frames)))) for i in range(0, len(frames), step)]
        dets, t = timed(lambda: [d for b in batches
                                 for d in detector.detect([frames[i] for i in b], [i + 1 for i in b])])
        secs["detect"] += t
        embs, t = timed(lambda: [e for b in batches for e in pipeline.embedder.embed(
            [frames[i] for i in b], [dets[i].boxes for i in b])])
        secs["embed"] += t
        _, t = timed(lambda: track_only(frames, dets, embs, cfg))
        secs["track"] += t
    return secs


def track_only(frames: list[np.ndarray], dets: list[Any], embs: list[Any], cfg: PipelineConfig) -> int:
    """The pipeline's track stage on given detections and embeddings (camera motion and the tentative
    rows kept for ``cfg.backfill`` included)."""
    tracker, cmc = PRTTracker(cfg.tracker), CameraMotion(cfg.cmc, downscale=cfg.cmc_downscale)
    rows, tentative = [], []
    for i, (image, det, emb) in enumerate(zip(frames, dets, embs)):
        warp = cmc.estimate(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), det.boxes) if cfg.cmc != "none" else None
        app = Appearance(emb.feats, emb.vis, emb.team, emb.role_probs)
        rows.append(TrackTable.from_tracks(i + 1, tracker.update(Detections(det.boxes, det.scores), app, warp), app))
        if cfg.backfill:
            tentative.append(TrackTable.from_tracks(i + 1, tracker.tentative, app))
    return len(rows)


def bulk_run(videos: Path, out: Path, cfg: PipelineConfig, model: Path, actors: int, cpus: float,
             gpus: float) -> dict[str, float]:
    """One bulk run; frames/s on the wall clock and inside the actors."""
    from prtreid.distributed.manifest import list_inputs
    from prtreid.distributed.track import BulkConfig, track_bulk

    shutil.rmtree(out, ignore_errors=True)
    report = track_bulk(list_inputs(str(videos)), str(out), cfg, model,
                        BulkConfig(actors=actors, cpus_per_actor=cpus, gpus_per_actor=gpus, progress=False))
    assert report.counts["failed"] == 0, report.failures
    in_actor = report.stage_seconds["total"] / actors
    return {"frames": report.frames, "wall": report.fps, "in_actors": report.frames / in_actor}


def bulk_runs(videos: Path, work: Path, cfg: PipelineConfig, model: Path, args: argparse.Namespace,
              threads: int) -> dict[int, dict[str, float]]:
    """Bulk runs with 1 and 2 actors on a local Ray."""
    from prtreid.distributed.runtime import start_local_ray, stop_ray

    start_local_ray(args.cpus, num_gpus=1 if args.gpu else 0, include_dashboard=False)  # Ray's short /tmp path
    runs = {}
    try:
        for actors in (1, 2):
            cpus = args.cpus / 2 if actors == 2 or args.gpu else threads
            gpus = 1 / actors if args.gpu else 0
            runs[actors] = bulk_run(videos, work / f"out{actors}", cfg, model, actors, cpus, gpus)
    finally:
        stop_ray()
    return runs


def table(stages: dict[str, float], runs: dict[int, dict[str, float]], gpus: int) -> str:
    """The printed comparison."""
    n = stages["frames"]
    fps = {k: n / stages[k] for k in ("decode", "detect", "embed", "track")}
    slowest = min(fps.values())
    serial = n / sum(stages[k] for k in fps)
    lines = [f"{'measure':<28}{'frames/s':>10}{'/slowest':>10}{'/serial':>9}"]
    for k, v in fps.items():
        lines.append(f"{k + ' alone':<28}{v:>10.1f}{v / slowest:>10.2f}{v / serial:>9.2f}")
    lines.append(f"{'serial (1 / sum of stages)':<28}{serial:>10.1f}{serial / slowest:>10.2f}{1:>9.2f}")
    for actors, r in runs.items():
        for kind in ("wall", "in_actors"):
            v = r[kind]
            label = f"bulk, {actors} actor{'s' if actors > 1 else ''} ({kind.replace('_', ' ')})"
            lines.append(f"{label:<28}{v:>10.1f}{v / slowest:>10.2f}{v / serial:>9.2f}")
    if 1 in runs and 2 in runs:
        lines.append(f"2 actors / 1 actor: wall {runs[2]['wall'] / runs[1]['wall']:.2f}x, "
                     f"in actors {runs[2]['in_actors'] / runs[1]['in_actors']:.2f}x")
    if gpus and runs:
        best = max(r["wall"] for r in runs.values())
        lines.append(f"frames/s per GPU (best wall rate / {gpus} GPU): {best / gpus:.1f}")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--videos", type=Path, help="folder of videos to use (default: generate)")
    p.add_argument("--seqs", type=int, default=4)
    p.add_argument("--frames", type=int, default=40)
    p.add_argument("--size", type=int, nargs=2, default=(640, 360), metavar=("W", "H"))
    p.add_argument("--model", type=Path, help="PRTReID model file (default: an untrained one)")
    p.add_argument("--image-size", type=int, nargs=2, metavar=("H", "W"),
                   help="re-id crop size of the untrained model (default: the CPU preset's 96x48)")
    p.add_argument("--detector", default="yolo:yolov8n.yaml")
    p.add_argument("--imgsz", type=int, default=320)
    p.add_argument("--cpus", type=int, default=2, help="CPUs given to Ray")
    p.add_argument("--gpu", action="store_true", help="run on CUDA: actors share the GPU")
    p.add_argument("--stages-only", action="store_true", help="time the stages alone, no Ray runs")
    args = p.parse_args()

    work = Path(tempfile.mkdtemp(prefix="prtreid-bench-bulk-"))
    try:
        videos = args.videos or make_videos(work, args.seqs, args.frames, *args.size)
        model = args.model or make_model(work / "model.pt", tuple(args.image_size) if args.image_size else None)
        device = "cuda" if args.gpu else "cpu"
        untrained = args.detector == "yolo:yolov8n.yaml"  # tiny scores: keep every box so the tracker works
        cfg = from_dict(PipelineConfig, {
            "detector": args.detector, "device": device, "amp": args.gpu,  # fp16 detection and embedding on GPU
            "detection": {"imgsz": args.imgsz, "device": "0" if args.gpu else "cpu", "max_det": 25, "half": args.gpu}
            | ({"conf": 0.0} if untrained else {}),
            "tracker": {"min_conf": 0.0, "birth_conf": 0.0} if untrained else {}})
        threads = 1 if args.gpu else max(1, args.cpus // 2)
        torch.set_num_threads(threads)  # what one actor gets (Ray sets OMP_NUM_THREADS to its CPUs)
        stages = isolated_stages(sorted(videos.glob("*.mp4")), cfg, model)
        runs = {} if args.stages_only else bulk_runs(videos, work, cfg, model, args, threads)
        where = torch.cuda.get_device_name() if args.gpu else "cpu"
        crop_size = tuple(load_model(model)[1]["model_config"]["image_size"])
        print(f"\n{int(stages['frames'])} frames in {len(list(videos.glob('*.mp4')))} videos, detector {args.detector} "
              f"at {args.imgsz}, re-id crops {crop_size}, {where}, {threads} torch thread(s) per actor")
        print(table(stages, runs, 1 if args.gpu else 0))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
