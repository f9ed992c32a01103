"""The trackers of ``benchmarks/tracking.py`` behind one adapter interface.

PRT-Track gets the full part-based appearance and its camera motion as a warp computed upstream;
``PRT-Track + offline`` is the same online run followed by the pipeline's offline steps over the
whole sequence (each confirmed track's tentative first frames, gap interpolation, smoothing of
detector boxes: ``backfill_tentative``, then ``refine_boxes``);
boxmot's trackers (installed by ``make bench``) get ``boxmot.structures.Detections`` with one
embedding per detection and estimate their own camera motion inside ``update``, which a stopwatch
around their ``cmc.apply`` times separately. boxmot never builds a ReID model here: a guard refuses
it, so nothing is downloaded.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch

from prtreid.data.types import MotTable
from prtreid.pipeline.video import PipelineConfig, refine_boxes
from prtreid.track.config import TrackerConfig
from prtreid.track.tracker import Appearance, Detections, PRTTracker, Tracks
from prtreid.track.tracklets import TrackTable, backfill_tentative

PRT = "PRT-Track"
PRT_OFFLINE = "PRT-Track + offline"
BOXMOT_TRACKERS = ("StrongSORT", "BoT-SORT", "ByteTrack", "OC-SORT")


@dataclass(frozen=True)
class FrameInputs:
    """One frame's detections and their PRTReID outputs, shared by every tracker."""

    boxes: np.ndarray
    scores: np.ndarray
    feats: np.ndarray
    vis: np.ndarray
    team: np.ndarray
    role_probs: np.ndarray


class TrackerAdapter:
    """How the benchmark drives one tracker: :meth:`prepare` builds its inputs (untimed), then
    :meth:`update` (timed) calls the tracker's own ``update``; :meth:`read` gives ids and xyxy boxes."""

    name: str = ""
    needs_image = False
    tracker: Any = None

    def start(self, fps: float) -> None:
        """Build a fresh tracker for the next sequence."""
        raise NotImplementedError

    def prepare(self, inputs: FrameInputs, warp: np.ndarray | None, image: np.ndarray | None,
                sample_id: str) -> tuple[Any, ...]:
        """The positional arguments of the tracker's ``update`` for one frame."""
        raise NotImplementedError

    def update(self, args: tuple[Any, ...]) -> Any:
        """One ``update`` call of the tracker."""
        return self.tracker.update(*args)

    def read(self, out: Any) -> tuple[np.ndarray, np.ndarray]:
        """Track ids and xyxy boxes of an ``update`` result."""
        raise NotImplementedError

    def cmc_seconds(self) -> float:
        """Seconds spent estimating camera motion inside ``update`` so far."""
        return 0.0

    def finish(self, table: MotTable, detector: str, frame_ids: list[int]) -> MotTable:
        """Offline steps over one sequence's output (frames ``frame_ids``, in the order of the
        ``update`` calls), boxes from pipeline detector ``detector`` (none here)."""
        return table


class PrtAdapter(TrackerAdapter):
    """PRT-Track with the full part-based appearance; camera motion arrives as ``warp``."""

    def __init__(self, cfg: TrackerConfig, name: str = PRT, offline: PipelineConfig | None = None) -> None:
        self.cfg, self.name, self.offline = cfg, name, offline
        self.backfill = offline is not None and offline.backfill
        self.tentative: list[Tracks] = []

    def start(self, fps: float) -> None:
        self.tracker = PRTTracker(self.cfg)
        self.tentative = []

    def prepare(self, inputs: FrameInputs, warp: np.ndarray | None, image: np.ndarray | None,
                sample_id: str) -> tuple[Any, ...]:
        app = Appearance(inputs.feats, inputs.vis, inputs.team, inputs.role_probs)
        return Detections(inputs.boxes, inputs.scores), app, warp

    def read(self, out: Any) -> tuple[np.ndarray, np.ndarray]:
        if self.backfill:  # the tracker's state after the update that gave ``out``: read before the next one
            self.tentative.append(self.tracker.tentative)
        return out.ids, out.boxes

    def finish(self, table: MotTable, detector: str, frame_ids: list[int]) -> MotTable:
        if self.offline is None:
            return table
        xyxy = np.concatenate([table.box[:, :2], table.box[:, :2] + table.box[:, 2:]], axis=1)
        tracks = TrackTable(table.frame, table.track_id, xyxy, table.conf)
        if self.backfill:
            pending = TrackTable.concat(TrackTable.from_tracks(f, t) for f, t in zip(frame_ids, self.tentative,
                                                                                    strict=True))
            tracks = backfill_tentative(tracks, replace(pending, score=np.ones(len(pending))))  # conf 1, as the rest
        return refine_boxes(tracks, replace(self.offline, detector=detector)).to_mot()


class _NoReID:
    """A boxmot ``reid_model`` that refuses to run: embeddings are always given, nothing is downloaded."""

    def get_features(self, xyxy: np.ndarray, img: np.ndarray) -> np.ndarray:
        raise RuntimeError("the benchmark gives boxmot its embeddings; boxmot must not compute its own")


class _Stopwatch:
    """Wraps a callable and sums the seconds spent in it."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn, self.seconds = fn, 0.0

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return self.fn(*args, **kwargs)
        finally:
            self.seconds += time.perf_counter() - start


def boxmot_factory(name: str) -> Callable[[float], Any]:
    """Constructor of a boxmot tracker (default settings) taking the frame rate."""
    import boxmot

    factories: dict[str, Callable[[float], Any]] = {
        "StrongSORT": lambda fps: boxmot.StrongSort(reid_model=_NoReID()),
        "BoT-SORT": lambda fps: boxmot.BotSort(reid_model=_NoReID(), use_cmc=True, frame_rate=round(fps)),
        "ByteTrack": lambda fps: boxmot.ByteTrack(frame_rate=round(fps)),
        "OC-SORT": lambda fps: boxmot.OcSort(),
    }
    if name not in factories:
        raise ValueError(f"unknown boxmot tracker {name!r} (known: {', '.join(factories)})")
    return factories[name]


class BoxmotAdapter(TrackerAdapter):
    """A boxmot tracker fed ``boxmot.structures.Detections`` (with embeddings when it uses them)."""

    needs_image = True

    def __init__(self, name: str) -> None:
        self.name = name
        self.factory = boxmot_factory(name)
        self.stopwatch: _Stopwatch | None = None

    def start(self, fps: float) -> None:
        """A fresh tracker, its camera-motion estimator (if any) wrapped in a stopwatch."""
        self.tracker = self.factory(fps)
        self.embeddings = bool(getattr(self.tracker, "use_embeddings", False))
        cmc = getattr(self.tracker, "cmc", None)
        self.stopwatch = None if cmc is None else _Stopwatch(cmc.apply)
        if cmc is not None:
            cmc.apply = self.stopwatch

    def prepare(self, inputs: FrameInputs, warp: np.ndarray | None, image: np.ndarray | None,
                sample_id: str) -> tuple[Any, ...]:
        return to_boxmot_detections(inputs, sample_id, self.embeddings), image

    def read(self, out: Any) -> tuple[np.ndarray, np.ndarray]:
        """Track ids (made 1-based as in MOT files; boxmot counts from 0) and xyxy boxes."""
        return out.track_ids.numpy() + 1, out.geometry.values.numpy().astype(np.float64)

    def cmc_seconds(self) -> float:
        return 0.0 if self.stopwatch is None else self.stopwatch.seconds


def boxmot_embedding(feats: np.ndarray) -> np.ndarray:
    """One unit vector per detection from ``(N, P, D)`` PRTReID features: foreground ⊕ global.

    Rows of ``feats`` end with the foreground then the global embedding (see
    ``ModelOutput.reid_features``); each is L2-normalised, concatenated, and normalised again.
    """
    feats = np.asarray(feats, dtype=np.float32)
    pair = feats[:, -2:, :]
    pair = pair / np.maximum(np.linalg.norm(pair, axis=2, keepdims=True), 1e-12)
    flat = pair.reshape(len(feats), 2 * feats.shape[2])
    return flat / np.maximum(np.linalg.norm(flat, axis=1, keepdims=True), 1e-12)


def to_boxmot_detections(inputs: FrameInputs, sample_id: str, with_embeddings: bool) -> Any:
    """``boxmot.structures.Detections`` (class 0, float32) for one frame."""
    from boxmot.structures import Boxes
    from boxmot.structures import Detections as BoxmotDetections

    n = len(inputs.scores)
    emb = torch.from_numpy(np.ascontiguousarray(boxmot_embedding(inputs.feats))) if with_embeddings else None
    return BoxmotDetections(
        geometry=Boxes(torch.from_numpy(np.ascontiguousarray(inputs.boxes, dtype=np.float32))),
        scores=torch.from_numpy(np.clip(inputs.scores, 0.0, 1.0).astype(np.float32)),
        class_ids=torch.zeros(n, dtype=torch.int64), sample_id=sample_id, embeddings=emb)


def make_adapters(names: Iterable[str], prt_cfg: TrackerConfig) -> list[TrackerAdapter]:
    """Adapters for ``PRT-Track``, ``PRT-Track + offline`` and boxmot tracker names, in order."""
    made: dict[str, Callable[[], TrackerAdapter]] = {
        PRT: lambda: PrtAdapter(prt_cfg),
        PRT_OFFLINE: lambda: PrtAdapter(prt_cfg, PRT_OFFLINE, offline=PipelineConfig(tracker=prt_cfg)),
    }
    return [made[n]() if n in made else BoxmotAdapter(n) for n in names]

