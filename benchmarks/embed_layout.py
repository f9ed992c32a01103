"""The bulk pipeline's embed stage on a CPU: the model in ``channels_last`` layout against the default.

:class:`prtreid.pipeline.embed.Embedder` runs the model in ``channels_last`` on a CPU. This script
times the stage both ways in one process, on generated clips with their oracle detections (the
ground-truth people, as ``--detector oracle`` gives them), one layout after the other for each
round, and prints frames/s, the ratio to the default layout and how far the outputs differ.

    python benchmarks/embed_layout.py                       # untrained model of the CPU preset
    python benchmarks/embed_layout.py --model RUN/model.pt --threads 2
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from statistics import median

import numpy as np
import torch

from prtreid.data.frames import open_frames
from prtreid.data.soccernet import read_sequence
from prtreid.data.synth import SynthConfig, generate_dataset
from prtreid.detect.oracle import MotFileDetector
from prtreid.model.prtreid import PRTReID
from prtreid.pipeline.embed import Embedder
from prtreid.train.checkpoint import load_model
from prtreid.train.config import load_experiment

LAYOUTS = {"channels_last (the Embedder's)": torch.channels_last, "default (contiguous)": torch.contiguous_format}


def clips(root: Path, seqs: int, frames: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Frames (BGR) of generated 640x360 clips and their oracle detections (xyxy, people only)."""
    images, boxes = [], []
    for path in generate_dataset(root, SynthConfig(seqs=seqs, frames=frames, width=640, height=360, seed=5)):
        oracle = MotFileDetector.from_sequence(read_sequence(path))
        for frame, image in open_frames(path):
            images.append(image)
            boxes.append(oracle.at_frame(frame).boxes)
    return images, boxes


def weight_layout(model: torch.nn.Module) -> str:
    """The memory format the first 4-D weight is in: what a ``.to(memory_format=...)`` left."""
    w = next(p for p in model.parameters() if p.dim() == 4)
    return "channels_last" if w.is_contiguous(memory_format=torch.channels_last) and not w.is_contiguous() \
        else "contiguous"


def run(embedder: Embedder, images: list[np.ndarray], boxes: list[np.ndarray], batch: int) -> tuple[float, np.ndarray]:
    """Seconds to embed every frame, and the re-id features of the first batch."""
    start = time.perf_counter()
    first = None
    for i in range(0, len(images), batch):
        out = embedder.embed(images[i:i + batch], boxes[i:i + batch])
        first = first if first is not None else np.concatenate([e.feats for e in out])
    return time.perf_counter() - start, first


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path, help="PRTReID model file (default: an untrained model of --config)")
    p.add_argument("--config", type=Path, default=Path("configs/train_cpu_small.yaml"))
    p.add_argument("--threads", type=int, default=1, help="torch threads (a bulk actor gets one per CPU)")
    p.add_argument("--seqs", type=int, default=4)
    p.add_argument("--frames", type=int, default=40)
    p.add_argument("--batch-frames", type=int, default=8, help="frames per embedding call, as the pipeline's")
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args(argv)

    torch.set_num_threads(args.threads)
    if args.model:
        model, _ = load_model(args.model)
    else:
        model = PRTReID.from_config(load_experiment(args.config).model, num_roles=4)
    with tempfile.TemporaryDirectory(prefix="prtreid-bench-layout-") as tmp:
        images, boxes = clips(Path(tmp), args.seqs, args.frames)
    embedder = Embedder(model, torch.device("cpu"))
    seconds: dict[str, list[float]] = {name: [] for name in LAYOUTS}
    feats: dict[str, np.ndarray] = {}
    held: dict[str, str] = {}
    for layout in LAYOUTS.values():  # warm-up: each layout's first call (kernel choice, caches) is not timed
        embedder.model.to(memory_format=layout)
        run(embedder, images[:args.batch_frames], boxes[:args.batch_frames], args.batch_frames)
    for _ in range(args.rounds):
        for name, layout in LAYOUTS.items():
            embedder.model.to(memory_format=layout)
            held[name] = weight_layout(embedder.model)
            t, feats[name] = run(embedder, images, boxes, args.batch_frames)
            seconds[name].append(t)
    crops = sum(len(b) for b in boxes)
    print(f"\n{len(images)} frames, {crops / len(images):.1f} boxes per frame, image size "
          f"{tuple(model.cfg.image_size)}, {args.threads} thread(s), median of {args.rounds} rounds")
    print(f"{'model layout':32s} {'weights':>14s} {'frames/s':>9s} {'crops/s':>8s} {'/default':>9s}")
    base = len(images) / median(seconds["default (contiguous)"])
    for name, ts in seconds.items():
        fps = len(images) / median(ts)
        print(f"{name:32s} {held[name]:>14s} {fps:9.2f} {fps * crops / len(images):8.1f} {fps / base:8.2f}x")
    a, b = feats.values()
    print(f"largest difference of the re-id features between layouts: {np.abs(a - b).max():.1e}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
