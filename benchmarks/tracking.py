"""Tracking benchmark: PRT-Track against boxmot's StrongSORT, BoT-SORT, ByteTrack and OC-SORT.

Every tracker gets exactly the same inputs, computed once per frame in this process: boxes and
scores (oracle ``gt.txt`` boxes of people with score 1, and noisy ``det.txt`` detections) and
PRTReID embeddings. The oracle input leaves out the ball (``prtreid track`` follows it apart, with
``BallTrack``), so its ground-truth rows are misses for every tracker alike. PRT-Track gets the full
part-based appearance (K part descriptors, foreground and global, part visibility, team
embedding); boxmot's appearance trackers get one vector per
detection, the L2-normalised foreground and global embeddings concatenated and L2-normalised again
(their cosine distance is the mean of the two cosine distances). ``PRT-Track + offline`` adds what
the pipeline does once a video is tracked (each confirmed track's first ``n_init - 1`` frames, matched
while it was tentative, then ``refine_boxes``: gaps of up to 10 frames filled, a
detector's boxes smoothed over 9 frames; oracle boxes are exact and stay as they are); no boxmot
tracker gets such a step, and its cost is not in the table.

Timing is ``time.perf_counter`` around each ``update`` call only. PRT-Track receives its camera
motion as a 2x3 warp computed upstream, once per frame and detection source (the pipeline's
``CameraMotion``, which leaves out the pixels of that source's boxes), while
boxmot's StrongSORT and BoT-SORT estimate theirs (ECC) inside ``update``. So each table shows the
per-frame cost with camera motion (PRT-Track: update + upstream CMC; boxmot: update) and without
it (boxmot's CMC is timed by wrapping its ``cmc.apply``, and subtracted). ByteTrack and OC-SORT
have no camera motion. boxmot trackers run with their default settings and never build a ReID
model (a guard refuses it): nothing is downloaded.

    python benchmarks/tracking.py                       # 3 generated clips x 150 frames, seed 4242
    python benchmarks/tracking.py --quick               # a small run
    python benchmarks/tracking.py --data DIR --model model.pt   # SoccerNet sequences
"""

from __future__ import annotations

import argparse
import itertools
import logging
import shlex
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from threadpoolctl import threadpool_limits

from prtreid.data.crops import build_crops
from prtreid.data.frames import open_frames
from prtreid.data.soccernet import find_sequences, load_sequence
from prtreid.data.synth import SynthConfig, generate_dataset
from prtreid.data.synth.generator import sequence_name
from prtreid.data.types import MotTable, Sequence
from prtreid.detect.oracle import MotFileDetector
from prtreid.eval.tracking import COMBINED, hota_metrics
from prtreid.pipeline.embed import Embedder
from prtreid.pipeline.video import PipelineConfig
from prtreid.track.cmc import CameraMotion
from prtreid.track.config import TrackerConfig
from prtreid.train.checkpoint import load_model
from prtreid.train.config import load_experiment
from prtreid.train.loop import Runtime, fit, resolve_device
from tracking_peers import BOXMOT_TRACKERS, PRT, PRT_OFFLINE, FrameInputs, PrtAdapter, TrackerAdapter, make_adapters

log = logging.getLogger("bench.tracking")

SOURCES: dict[str, str] = {"oracle": "gt", "noisy": "det"}
"""Detection inputs: table title -> MotFileDetector source."""
SMALL_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "train_cpu_small.yaml"


@dataclass
class PreparedSequence:
    """A sequence with its per-frame inputs and upstream camera motion, per detection source."""

    seq: Sequence
    frame_ids: list[int] = field(default_factory=list)
    inputs: dict[str, list[FrameInputs]] = field(default_factory=dict)
    warps: dict[str, list[np.ndarray | None]] = field(default_factory=dict)
    cmc_seconds: dict[str, float] = field(default_factory=dict)


@dataclass
class RunStats:
    """What one tracker produced on one detection source, summed over sequences."""

    tables: dict[str, MotTable] = field(default_factory=dict)
    frames: int = 0
    update_s: float = 0.0
    cmc_inside_s: float = 0.0
    cmc_upstream_s: float = 0.0


# -- inputs, computed once -------------------------------------------------------------------------


def _batches(frames: Iterable[tuple[int, np.ndarray]], size: int) -> Iterator[tuple[list[int], list[np.ndarray]]]:
    it = iter(frames)
    while chunk := list(itertools.islice(it, size)):
        yield [f for f, _ in chunk], [image for _, image in chunk]


def _valid(boxes: np.ndarray) -> np.ndarray:
    """Rows with a positive width and height (boxmot refuses the others)."""
    return (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])


def prepare_sequence(seq: Sequence, embedder: Embedder, sources: dict[str, str], cmc: str = "none",
                     batch: int = 8) -> PreparedSequence:
    """Detections, embeddings and camera motion (method ``cmc``) of every frame for each source, once."""
    detectors = {name: MotFileDetector.from_sequence(seq, src) for name, src in sources.items()}
    motion = {name: CameraMotion(cmc, downscale=PipelineConfig().cmc_downscale) for name in sources}
    out = PreparedSequence(seq, inputs={name: [] for name in sources}, warps={name: [] for name in sources},
                           cmc_seconds={name: 0.0 for name in sources})
    for ids, images in _batches(open_frames(seq.root), batch):
        out.frame_ids += ids
        for name, detector in detectors.items():
            dets = detector.detect(images, ids)
            for image, det in zip(images, dets):
                start = time.perf_counter()
                warp = motion[name].estimate(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), det.boxes)
                out.warps[name].append(None if cmc == "none" else warp)
                out.cmc_seconds[name] += time.perf_counter() - start
            keep = [_valid(d.boxes) for d in dets]
            embs = embedder.embed(images, [d.boxes[k] for d, k in zip(dets, keep)])
            out.inputs[name] += [FrameInputs(d.boxes[k], d.scores[k], e.feats, e.vis, e.team, e.role_probs)
                                 for d, k, e in zip(dets, keep, embs)]
    return out


# -- running and scoring ---------------------------------------------------------------------------


def tracks_table(frame_ids: list[int], ids: list[np.ndarray], boxes: list[np.ndarray]) -> MotTable:
    """A MOT table (left, top, width, height; conf 1) from per-frame track ids and xyxy boxes."""
    if not frame_ids:
        return MotTable.empty()
    xyxy = np.concatenate([np.asarray(b, np.float64).reshape(-1, 4) for b in boxes])
    frame = np.concatenate([np.full(len(i), f, np.int64) for f, i in zip(frame_ids, ids)])
    track = np.concatenate([np.asarray(i, np.int64) for i in ids])
    ltwh = np.concatenate([xyxy[:, :2], xyxy[:, 2:] - xyxy[:, :2]], axis=1)
    return MotTable(frame, track, ltwh, np.ones(len(frame)))


def run_tracker(adapter: TrackerAdapter, prepared: PreparedSequence, source: str, stats: RunStats,
                max_frames: int | None = None) -> None:
    """Run one tracker over one prepared sequence (its first ``max_frames``), timing ``update`` only."""
    seq = prepared.seq
    adapter.start(seq.info.frame_rate)
    images = (img for _, img in open_frames(seq.root)) if adapter.needs_image else None
    ids_out, boxes_out = [], []
    frame_ids = prepared.frame_ids[:max_frames]
    for i, frame_id in enumerate(frame_ids):
        image = next(images) if images is not None else None
        args = adapter.prepare(prepared.inputs[source][i], prepared.warps[source][i], image, f"{seq.name}:{frame_id}")
        start = time.perf_counter()
        out = adapter.update(args)
        stats.update_s += time.perf_counter() - start
        ids, boxes = adapter.read(out)
        ids_out.append(ids)
        boxes_out.append(boxes)
    detector = "oracle" if SOURCES[source] == "gt" else "det"  # the pipeline's name for these boxes
    stats.tables[seq.name] = adapter.finish(tracks_table(frame_ids, ids_out, boxes_out), detector, frame_ids)
    stats.frames += len(frame_ids)
    stats.cmc_inside_s += adapter.cmc_seconds()
    if isinstance(adapter, PrtAdapter):
        stats.cmc_upstream_s += prepared.cmc_seconds[source] * len(frame_ids) / max(len(prepared.frame_ids), 1)


def summarise(stats: RunStats, seqs: list[Sequence]) -> dict[str, float]:
    """HOTA, AssA, IDF1 (trackeval, all sequences combined) and per-frame milliseconds."""
    gt = {s.name: s.gt for s in seqs}
    lengths = {s.name: s.info.seq_length for s in seqs}
    metrics = hota_metrics(gt, stats.tables, lengths)[COMBINED]
    per_frame = 1000.0 / max(stats.frames, 1)
    cmc = (stats.cmc_inside_s + stats.cmc_upstream_s) * per_frame
    total = (stats.update_s + stats.cmc_upstream_s) * per_frame
    return {"HOTA": metrics["HOTA"], "AssA": metrics["AssA"], "IDF1": metrics["IDF1"],
            "ms": total, "cmc_ms": cmc, "ms_no_cmc": total - cmc}


def format_table(rows: dict[str, dict[str, float]], reference: str = PRT) -> str:
    """Markdown table; ratios are against ``reference`` (with and without camera motion)."""
    ref = rows.get(reference)
    lines = ["| tracker | HOTA | AssA | IDF1 | ms/frame | ratio ms vs PRT-Track | CMC ms/frame "
             "| ms/frame without CMC | ratio without CMC |", "|---|---|---|---|---|---|---|---|---|"]
    for name, r in rows.items():
        scores = f"| {name} | {100 * r['HOTA']:.1f} | {100 * r['AssA']:.1f} | {100 * r['IDF1']:.1f} "
        if name == PRT_OFFLINE:  # the online run's rows, post-processed untimed: no time of its own
            lines.append(scores + "| - | - | - | - | - |")
            continue
        ratio = f"{r['ms'] / ref['ms']:.2f}" if ref and ref["ms"] > 0 else "-"
        ratio_no = f"{r['ms_no_cmc'] / ref['ms_no_cmc']:.2f}" if ref and ref["ms_no_cmc"] > 0 else "-"
        cmc = f"{r['cmc_ms']:.2f}" if r["cmc_ms"] > 0 else "-"
        lines.append(scores + f"| {r['ms']:.2f} | {ratio} | {cmc} | {r['ms_no_cmc']:.2f} | {ratio_no} |")
    return "\n".join(lines)


def benchmark(prepared: list[PreparedSequence], adapters: list[TrackerAdapter], sources: Iterable[str],
              blas_threads: int | None = 1, warmup_frames: int = 10) -> dict[str, dict[str, dict[str, float]]]:
    """Per source, per tracker: metrics and timings over all sequences.

    Each tracker first runs untimed on ``warmup_frames`` frames (lazy imports, caches). BLAS is
    limited to ``blas_threads`` while trackers run: their matrices are tiny, and a multi-threaded
    OpenBLAS on a busy machine made a 4x4 triangular solve take milliseconds.
    """
    seqs = [p.seq for p in prepared]
    results: dict[str, dict[str, dict[str, float]]] = {}
    for source in sources:
        results[source] = {}
        for adapter in adapters:
            stats = RunStats()
            with threadpool_limits(limits=blas_threads, user_api="blas"):
                run_tracker(adapter, prepared[0], source, RunStats(), max_frames=warmup_frames)
                for p in prepared:
                    run_tracker(adapter, p, source, stats)
            results[source][adapter.name] = summarise(stats, seqs)
            log.info("%s / %s: %s", source, adapter.name, results[source][adapter.name])
    return results


# -- data and model --------------------------------------------------------------------------------


def generated_sequences(work: Path, cfg: SynthConfig) -> Path:
    """A generated evaluation set under ``work`` (reused when already complete)."""
    root = work / f"eval_seed{cfg.seed}_{cfg.seqs}x{cfg.frames}_{cfg.width}x{cfg.height}"
    if not all((root / sequence_name(i, cfg)).is_dir() for i in range(cfg.seqs)):
        log.info("generating %d evaluation clips in %s", cfg.seqs, root)
        generate_dataset(root, cfg)
    return root


def train_small_model(work: Path, synth: SynthConfig, epochs: int, device: str) -> Path:
    """Train PRTReID with ``configs/train_cpu_small.yaml`` on its own generated clips; returns model.pt."""
    # 6 crops per identity: the preset caps at 2 for the demo's 10-frame clips, these are longer
    cfg = load_experiment(SMALL_CONFIG, [f"train.epochs={epochs}", f"train.device={device}",
                                         "crops.max_per_identity=6", "train.min_frame_gap=10"])
    tag = f"seed{synth.seed}_{synth.seqs}x{synth.frames}_e{epochs}"
    data, store, run = work / f"train_{tag}", work / f"crops_{tag}", work / f"model_{tag}"
    if not (store / "index.parquet").exists():
        generate_dataset(data, synth)
        build_crops(data, store, cfg.crops)
    if not (run / "model.pt").exists():
        fit(cfg, store, run, Runtime(progress=False))
    return run / "model.pt"


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, help="folder of SoccerNet sequences (default: generated clips)")
    p.add_argument("--model", type=Path, help="PRTReID model file (default: train a small one)")
    p.add_argument("--work", type=Path, default=Path("runs/bench_tracking"))
    p.add_argument("--quick", action="store_true", help="2 clips x 60 frames at 640x360, model trained 1 epoch")
    p.add_argument("--seqs", type=int, default=3)
    p.add_argument("--frames", type=int, default=150)
    p.add_argument("--seed", type=int, default=4242)
    p.add_argument("--size", type=int, nargs=2, default=(960, 540), metavar=("W", "H"))
    p.add_argument("--train-epochs", type=int, default=3)
    p.add_argument("--device", default="auto", help="device of the embedding model (and of training)")
    p.add_argument("--cmc", choices=("sparse", "ecc", "none"), default=PipelineConfig().cmc,
                   help="PRT-Track's upstream camera motion (default: the pipeline's)")
    p.add_argument("--trackers", nargs="+", default=[PRT, PRT_OFFLINE, *BOXMOT_TRACKERS])
    p.add_argument("--blas-threads", type=int, default=1, help="BLAS threads while trackers run")
    args = p.parse_args(argv)
    if args.quick:
        args.seqs, args.frames, args.size, args.train_epochs = 2, 60, (640, 360), 1
    return args


def _model_path(args: argparse.Namespace, device: str) -> tuple[Path, list[str]]:
    """``--model``, or a small model trained for the occasion (and a note saying so)."""
    if args.model is not None:
        return args.model, []
    synth = SynthConfig(seqs=4 if args.quick else 12, frames=30 if args.quick else 50, seed=7, first_index=501)
    log.info("no --model: training a small PRTReID (%d epochs) on separately generated clips", args.train_epochs)
    path = train_small_model(args.work, synth, args.train_epochs, device)
    return path, [f"No --model given: trained configs/train_cpu_small.yaml for {args.train_epochs} epoch(s) on "
                  f"{synth.seqs} generated clips x {synth.frames} frames (seed {synth.seed}, disjoint from the "
                  f"evaluation clips) -> {path}"]


def main(argv: list[str] | None = None) -> None:
    """Parse arguments, prepare inputs once, run every tracker, print the tables."""
    args = _parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    if set(args.trackers) - {PRT, PRT_OFFLINE}:
        try:
            import boxmot.utils  # noqa: F401  (installs boxmot's INFO-level log handler on import)
        except ImportError:
            sys.exit("boxmot is not installed: make bench installs it (boxmot is AGPL-3.0), or pass "
                     f"--trackers {PRT} '{PRT_OFFLINE}'")
        logging.getLogger("boxmot").setLevel(logging.WARNING)
    device = resolve_device(args.device)
    model_path, notes = _model_path(args, device.type)
    model, _ = load_model(model_path, device)
    embedder = Embedder(model, device)
    w, h = args.size
    data = args.data or generated_sequences(args.work, SynthConfig(seqs=args.seqs, frames=args.frames,
                                                                   width=w, height=h, seed=args.seed))
    seqs = [load_sequence(p) for p in find_sequences(data)]
    sources = {k: v for k, v in SOURCES.items() if all(getattr(s, v) is not None for s in seqs)}
    for name in SOURCES.keys() - sources.keys():
        log.warning("skipping the %s detections: some sequence has no %s.txt", name, SOURCES[name])
    start = time.perf_counter()
    prepared = [prepare_sequence(s, embedder, sources, args.cmc) for s in seqs]
    log.info("inputs prepared once in %.1f s", time.perf_counter() - start)
    results = benchmark(prepared, make_adapters(args.trackers, TrackerConfig.sports()), sources, args.blas_threads)
    print(report(args, results, prepared, notes, str(data)))


def report(args: argparse.Namespace, results: dict[str, dict[str, dict[str, float]]],
           prepared: list[PreparedSequence], notes: list[str], data: str) -> str:
    """The Markdown printed at the end: command, settings, one table per detection source."""
    frames = sum(len(p.frame_ids) for p in prepared)
    cmd = " ".join(shlex.quote(a) for a in [sys.executable, *sys.argv])
    lines = [f"\nCommand: `{cmd}`", f"Data: {data} ({len(prepared)} sequences, {frames} frames)", *notes,
             f"PRT-Track: TrackerConfig.sports(), full part-based appearance; camera motion `{args.cmc}` "
             "estimated once per frame upstream and given as `warp`: its ms/frame = update + that estimation. "
             "boxmot: default settings, appearance = one unit vector per detection (foreground ⊕ global, "
             "each L2-normalised); StrongSORT and BoT-SORT estimate camera motion (ECC) inside update, timed "
             "there by wrapping `cmc.apply`. 'CMC' = estimating the warp (applying it to tracks stays in update). "
             "PRT-Track + offline: the same run, then the pipeline's offline steps (confirmed tracks' tentative "
             "first frames kept; refine_boxes: gap interpolation, detector boxes smoothed), untimed.",
             f"Timing: perf_counter around update, BLAS limited to {args.blas_threads} thread(s), each tracker "
             "warmed up untimed on 10 frames. HOTA/AssA/IDF1 in %: trackeval, all sequences combined, "
             "gt.txt as is (SoccerNet setting).", ""]
    for source, rows in results.items():
        lines += [f"### Detections: {source} ({SOURCES[source]}.txt)", "", format_table(rows), ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
