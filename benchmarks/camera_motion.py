"""Camera-motion compensation against the true camera motion of generated clips.

The generator's broadcast camera pans, tilts and zooms about a fixed point, so the motion between two
frames is one exact image homography (``Camera.homography_to``), replayed with ``clip_cameras``. Each
estimator runs over every frame of the clips; its 2x3 warp and the true homography move a grid of
points spread over the frame (the border that estimators ignore left out), and the error is the mean
distance between the two, in pixels. The "players masked" rows give the estimator each frame's
people (the ground-truth boxes, as the pipeline would give its detections), whose pixels it ignores.
Time is ``perf_counter`` around each call, colour conversion included, with OpenCV on ``--threads``
threads. The peers are boxmot's estimators (``create_cmc``, as
its StrongSORT and BoT-SORT build them: ECC is translation-only at 0.15 scale there), when boxmot is
installed (``make bench``).

    python benchmarks/camera_motion.py [--seqs 3 --frames 150 --size 960 540 --seed 4242]
"""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from prtreid.data.frames import open_frames
from prtreid.data.soccernet import find_sequences, read_sequence
from prtreid.data.synth import SynthConfig, clip_cameras, generate_dataset
from prtreid.detect.oracle import MotFileDetector
from prtreid.track.cmc import CameraMotion

log = logging.getLogger("bench.camera_motion")

Estimator = Callable[[np.ndarray, np.ndarray], np.ndarray]
"""BGR frame and its people's xyxy boxes -> 2x3 warp from the previous frame to this one."""


@dataclass
class Clip:
    """Frames of one generated clip, their people's boxes, and the true motion into each frame (``None`` first)."""

    frames: list[np.ndarray]
    boxes: list[np.ndarray]
    truth: list[np.ndarray | None]


def load_clips(root: Path, cfg: SynthConfig) -> list[Clip]:
    """Generate the clips under ``root`` unless there, and pair their frames with the true motion."""
    if not root.exists() or not find_sequences(root):
        log.info("generating %d clips x %d frames under %s", cfg.seqs, cfg.frames, root)
        generate_dataset(root, cfg)
    clips = []
    for i, seq in enumerate(find_sequences(root)):
        cams = clip_cameras(i, cfg)
        people = MotFileDetector.from_sequence(read_sequence(seq))
        frames, boxes = [], []
        for frame, image in open_frames(seq):
            frames.append(image)
            boxes.append(people.at_frame(frame).boxes)
        if len(frames) != len(cams):
            raise ValueError(f"{seq}: {len(frames)} frames, but the generator drew {len(cams)}: other settings?")
        clips.append(Clip(frames, boxes, [None] + [a.homography_to(b) for a, b in zip(cams, cams[1:])]))
    return clips


def grid(width: int, height: int, margin: float = 0.05, n: int = 12) -> np.ndarray:
    """``(n * n, 2)`` points evenly over the frame, ``margin`` of each side left out."""
    xs = np.linspace(margin * width, (1 - margin) * width, n)
    ys = np.linspace(margin * height, (1 - margin) * height, n)
    return np.stack(np.meshgrid(xs, ys), -1).reshape(-1, 2)


def _affine(warp: np.ndarray, pts: np.ndarray) -> np.ndarray:
    return pts @ warp[:2, :2].T + warp[:2, 2]


def _homography(h: np.ndarray, pts: np.ndarray) -> np.ndarray:
    p = np.c_[pts, np.ones(len(pts))] @ h.T
    return p[:, :2] / p[:, 2:]


def ours(method: str, downscale: float, mask_players: bool = False, **kw) -> Callable[[], Estimator]:
    """A factory of this project's estimator (one per clip), fed grey frames as the pipeline does."""
    def make() -> Estimator:
        cmc = CameraMotion(method, downscale=downscale, **kw)
        return lambda bgr, boxes: cmc.estimate(cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY), boxes if mask_players else None)
    return make


def boxmot_peer(name: str) -> Callable[[], Estimator] | None:
    """A factory of boxmot's estimator ``name``, or ``None`` without boxmot."""
    try:
        from boxmot.motion.cmc import create_cmc
    except ImportError:
        return None

    def make() -> Estimator:
        cmc = create_cmc(name)
        return lambda bgr, boxes: np.asarray(cmc.apply(bgr, np.empty((0, 4))), np.float64)[:2]
    return make


def measure(make: Callable[[], Estimator], clips: list[Clip], pts: np.ndarray) -> dict[str, float]:
    """Mean / 95th-percentile point error (px) over the frames after the first, and ms per frame."""
    errors, seconds, calls = [], 0.0, 0
    for clip in clips:
        estimate = make()
        for frame, boxes, truth in zip(clip.frames, clip.boxes, clip.truth):
            start = time.perf_counter()
            warp = estimate(frame, boxes)
            seconds += time.perf_counter() - start
            calls += 1
            if truth is not None:
                errors.append(np.linalg.norm(_affine(warp, pts) - _homography(truth, pts), axis=1).mean())
    err = np.asarray(errors)
    return {"err": float(err.mean()), "p95": float(np.percentile(err, 95)), "ms": 1000 * seconds / calls}


def variants() -> Iterator[tuple[str, Callable[[], Estimator] | None]]:
    """(name, factory) of every estimator compared; the first is the pipeline's default."""
    yield "PRT sparse flow, 1/2 scale, 300 corners 8 px apart, players masked (default)", \
        ours("sparse", 2.0, mask_players=True)
    yield "PRT sparse flow, the same, players not masked", ours("sparse", 2.0)
    yield "PRT sparse flow, 1/2 scale, 1000 corners 1 px apart, 21 px window (before)", ours(
        "sparse", 2.0, max_corners=1000, min_distance=1.0, flow_window=21)
    yield "PRT sparse flow, 1/2 scale, 150 corners 16 px apart", ours("sparse", 2.0, max_corners=150, min_distance=16.0)
    yield "PRT sparse flow, full scale, 300 corners 16 px apart", ours("sparse", 1.0, min_distance=16.0)
    yield "PRT ECC euclidean, 1/2 scale", ours("ecc", 2.0)
    yield "PRT ECC euclidean, 1/2 scale, players masked", ours("ecc", 2.0, mask_players=True)
    yield "PRT ECC euclidean, 1/4 scale", ours("ecc", 4.0)
    yield "PRT ECC affine, 1/4 scale", ours("ecc", 4.0, ecc_motion="affine")
    yield "boxmot ECC (StrongSORT's, BoT-SORT's default)", boxmot_peer("ecc")
    yield "boxmot sparse optical flow (sof)", boxmot_peer("sof")
    yield "none (identity)", ours("none", 1.0)


def table(rows: dict[str, dict[str, float]], motion: float) -> str:
    ref = next(iter(rows.values()))
    lines = [f"True camera motion: {motion:.2f} px per frame on average over the grid.", "",
             "| estimator | error px (mean) | error px (p95) | ms/frame | ms vs default |",
             "|---|---|---|---|---|"]
    for name, r in rows.items():
        lines.append(f"| {name} | {r['err']:.2f} | {r['p95']:.2f} | {r['ms']:.1f} | {r['ms'] / ref['ms']:.2f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--work", type=Path, default=Path("runs/bench_cmc"))
    p.add_argument("--seqs", type=int, default=3)
    p.add_argument("--frames", type=int, default=150)
    p.add_argument("--size", type=int, nargs=2, default=(960, 540), metavar=("W", "H"))
    p.add_argument("--seed", type=int, default=4242)
    p.add_argument("--threads", type=int, default=1, help="OpenCV threads")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    cfg = SynthConfig(seqs=args.seqs, frames=args.frames, width=args.size[0], height=args.size[1], seed=args.seed)
    clips = load_clips(args.work / f"clips_seed{cfg.seed}_{cfg.seqs}x{cfg.frames}_{cfg.width}x{cfg.height}", cfg)
    pts = grid(cfg.width, cfg.height)
    motion = float(np.mean([np.linalg.norm(_homography(t, pts) - pts, axis=1).mean()
                            for c in clips for t in c.truth if t is not None]))
    rows, threads = {}, cv2.getNumThreads()
    cv2.setNumThreads(args.threads)
    try:
        for name, make in variants():
            if make is None:
                log.info("skipped %s (boxmot is not installed: make bench)", name)
                continue
            rows[name] = measure(make, clips, pts)
            log.info("%s: %.2f px, %.1f ms/frame", name, rows[name]["err"], rows[name]["ms"])
    finally:
        cv2.setNumThreads(threads)
    print(table(rows, motion))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
