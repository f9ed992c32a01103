"""One video end to end: frames -> detect -> embed -> track -> tracklets -> result files.

:class:`VideoPipeline` loads its models once (a CLI run builds one; each Ray Data actor builds one)
and :meth:`VideoPipeline.run` processes one input (a SoccerNet sequence folder or a video file),
streaming frames in small batches so a match never sits in memory. :func:`write_result` stores
``<name>.txt`` (SoccerNet/MOTChallenge submission format), ``<name>.tracks.parquet`` (one row per
track and frame with team and role) and ``<name>.summary.json`` — the summary last, so its
presence marks a complete result.
"""

from __future__ import annotations

import io
import json
import logging
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from prtreid.data.frames import SequenceFrames, open_frames
from prtreid.data.soccernet import format_mot, load_sequence
from prtreid.data.types import BALL_ROLE, MotTable
from prtreid.detect.base import PERSON_CLASS, DetectorConfig, FrameDetections
from prtreid.detect.factory import make_detector
from prtreid.errors import ConfigError
from prtreid.model.kit import has_kit_parts
from prtreid.pipeline.embed import Embedder
from prtreid.storage import Storage
from prtreid.track.ball import BallTrack
from prtreid.track.cmc import CameraMotion
from prtreid.track.config import TrackerConfig
from prtreid.track.context import RoleContext
from prtreid.track.teams import DEFAULT_TEAM_FROM, TRACKLET_TEAM_SPLIT, TeamFrom, TeamSplit
from prtreid.track.tracker import Appearance, Detections, PRTTracker
from prtreid.track.tracklets import (
    TrackTable, assign_teams, backfill_tentative, interpolate_gaps, smooth_boxes, vote_roles,
)
from prtreid.train.checkpoint import load_model
from prtreid.train.loop import resolve_device

log = logging.getLogger(__name__)

STAGES = ("decode", "detect", "embed", "track", "post")


@dataclass(frozen=True)
class PipelineConfig:
    """Settings of the per-video pipeline.

    Attributes:
        detector: ``oracle`` (gt.txt), ``det`` (det.txt) or ``yolo:WEIGHTS`` (a .pt or a model yaml).
        detection: YOLO settings (confidence, NMS IoU, image size, batch).
        tracker: tracker settings (default: the sports preset).
        cmc: camera-motion compensation method, ``sparse``, ``ecc`` or ``none``.
        cmc_downscale: frames are shrunk by this factor for camera-motion estimation.
        batch_frames: frames decoded, detected and embedded together.
        backfill: report a confirmed track from its first detection, not from its ``n_init``-th
            (the frames it was matched in while tentative).
        interpolate_gap: fill track gaps up to this many frames (0: off).
        smooth_window: smooth each track's boxes over this many frames (odd; 0: off) with a
            Savitzky-Golay filter of order 2, after the gaps are filled. Applies to a detector's
            boxes (``det``, ``yolo:``), not to ``oracle`` ones, which are exact.
        role_context: the match-context role decision over tracklets (:mod:`prtreid.track.context`).
        team_from: what player tracklets are clustered into teams on (:mod:`prtreid.track.teams`):
            ``both`` (default), ``kit`` (the kit colour under the model's part maps) or ``embedding``
            (the team head's output, the paper's).
        team_split: how they are split in two (:func:`prtreid.track.teams.split_teams`):
            ``kmeans`` (default, the paper's) or ``mixture``.
        device: ``auto``, ``cpu`` or ``cuda``; amp: fp16 embedding on CUDA.
    """

    detector: str = "oracle"
    detection: DetectorConfig = field(default_factory=DetectorConfig)
    tracker: TrackerConfig = field(default_factory=TrackerConfig.sports)
    cmc: Literal["sparse", "ecc", "none"] = "sparse"
    cmc_downscale: float = 2.0
    batch_frames: int = 8
    backfill: bool = True
    interpolate_gap: int = 10
    smooth_window: int = 9
    role_context: RoleContext = field(default_factory=RoleContext)
    team_from: TeamFrom = DEFAULT_TEAM_FROM
    team_split: TeamSplit = TRACKLET_TEAM_SPLIT
    device: str = "auto"
    amp: bool = False

    def __post_init__(self) -> None:
        if self.batch_frames < 1:
            raise ConfigError(f"batch_frames: must be at least 1, got {self.batch_frames}")
        if not self.cmc_downscale > 0:
            raise ConfigError(f"cmc_downscale: must be positive, got {self.cmc_downscale}")
        if self.interpolate_gap < 0:
            raise ConfigError(f"interpolate_gap: must be 0 (off) or positive, got {self.interpolate_gap}")
        if self.smooth_window != 0 and (self.smooth_window < 5 or self.smooth_window % 2 == 0):
            raise ConfigError(f"smooth_window: must be 0 (off) or an odd number of frames >= 5, "
                              f"got {self.smooth_window}")


@dataclass
class VideoResult:
    """The tracks of one video and what it cost."""

    name: str
    tracks: pd.DataFrame
    summary: dict[str, Any]

    def mot_text(self) -> str:
        """The SoccerNet submission file (MOTChallenge CSV)."""
        return format_mot(_mot(self.tracks))


class VideoPipeline:
    """Detector, PRTReID embedder and tracker for one video at a time; models load once."""

    def __init__(self, cfg: PipelineConfig, model_path: str | Path | None = None) -> None:
        self.cfg = cfg
        self.device = resolve_device(cfg.device)
        self.embedder: Embedder | None = None
        self.role_names: tuple[str, ...] = ()
        if model_path is not None:
            model, meta = load_model(model_path, self.device)
            if cfg.team_from != "embedding" and not has_kit_parts(model.cfg.num_parts):
                raise ConfigError(f"team_from {cfg.team_from!r} reads the kit colour under the part masks' parts, "
                                  f"and {model_path} has {model.cfg.num_parts} parts (model.num_parts): "
                                  "set team_from: embedding")
            self.embedder = Embedder(model, self.device, amp=cfg.amp)
            self.role_names = tuple(meta["role_names"])
        self._detector = None if cfg.detector in ("oracle", "det") else make_detector(cfg.detector, None, cfg.detection)

    def run(self, source_path: str | Path, name: str | None = None, meta: dict[str, Any] | None = None,
            on_frames: Callable[[int, int | None], None] | None = None) -> VideoResult:
        """Track every person of one sequence folder or video file, and the ball where it is detected.

        Boxes with no pixel in their frame (see :func:`in_frame`) are dropped; the summary's
        ``dropped_boxes`` counts them. ``on_frames(done, total)`` is called after each batch of frames
        (``total`` is ``None`` where a video does not declare its length).
        """
        source = open_frames(source_path)  # a missing or undecodable input fails here, with its path
        name = name or source.info.name
        if self._detector is None and not isinstance(source, SequenceFrames):
            raise ConfigError(f"{source_path}: detector {self.cfg.detector!r} reads the boxes of a SoccerNet "
                              "sequence folder, and this input is a video file: use a learned detector (yolo:WEIGHTS)")
        detector = self._detector or make_detector(self.cfg.detector, load_sequence(source_path), self.cfg.detection)
        tracker = PRTTracker(self.cfg.tracker)
        ball = BallTrack()
        cmc = CameraMotion(self.cfg.cmc, downscale=self.cfg.cmc_downscale)
        timings = dict.fromkeys(STAGES, 0.0)
        rows: list[TrackTable] = []
        tentative: list[TrackTable] = []
        frames_done = dropped = 0
        start = time.perf_counter()
        for ids, frames in _batches(source, self.cfg.batch_frames, timings):
            t = time.perf_counter()
            shown = [in_frame(det, image.shape) for det, image in zip(detector.detect(frames, ids), frames)]
            dropped += sum(s.dropped for s in shown)
            for frame_id, s in zip(ids, shown):
                ball.update(frame_id, s.kept)
            dets = [s.kept.select(s.kept.classes == PERSON_CLASS) for s in shown]  # a YOLO may keep other classes
            timings["detect"] += (t2 := time.perf_counter()) - t
            embs = self.embedder.embed(frames, [d.boxes for d in dets]) if self.embedder else [None] * len(ids)
            timings["embed"] += (t3 := time.perf_counter()) - t2
            for frame_id, image, det, emb in zip(ids, frames, dets, embs):
                # the players move on their own: their pixels are left out (sparse flow 0.51 -> 0.31 px error)
                warp = cmc.estimate(image, det.boxes) if self.cfg.cmc != "none" else None
                app = None if emb is None else Appearance(emb.feats, emb.vis, emb.team, emb.role_probs, emb.kit)
                tracks = tracker.update(Detections(det.boxes, det.scores), app, warp)
                rows.append(TrackTable.from_tracks(frame_id, tracks, app))
                if self.cfg.backfill:
                    tentative.append(TrackTable.from_tracks(frame_id, tracker.tentative, app))
            timings["track"] += time.perf_counter() - t3
            frames_done += len(ids)
            if on_frames is not None:
                on_frames(frames_done, source.info.num_frames)
        t = time.perf_counter()
        table = TrackTable.concat(rows)
        if tentative:
            table = backfill_tentative(table, TrackTable.concat(tentative))
        table = self._postprocess(table, ball)
        timings["post"] = time.perf_counter() - t
        summary = _summary(name, os.path.abspath(source_path), frames_done, table, timings,
                           time.perf_counter() - start, meta)
        summary["config"] = {"detector": self.cfg.detector, "cmc": self.cfg.cmc, "model": self.embedder is not None}
        summary["dropped_boxes"] = dropped
        if dropped:
            log.warning("%s: %d detector boxes with no pixel in their frame (no width or height, or outside the "
                        "image) were dropped", source_path, dropped)
        return VideoResult(name, table, summary)

    def _postprocess(self, table: TrackTable, ball: BallTrack) -> pd.DataFrame:
        teams: dict[int, int | None] = {}
        roles: dict[int, str] = {}
        if table.role_probs is not None and len(table):
            roles = vote_roles(table.track_id, table.role_probs, self.role_names, frames=table.frame,
                               team_rows=table.team, context=self.cfg.role_context)
            teams = assign_teams(table.track_id, table.team, roles, frames=table.frame, kit_rows=table.kit,
                                 team_from=self.cfg.team_from, team_split=self.cfg.team_split)
        table = refine_boxes(table, self.cfg)
        if len(ball):  # the ball's track takes the next free id; a role only where people have one (a model)
            ball_id = int(table.track_id.max(initial=0)) + 1
            if roles or self.embedder is not None:
                roles[ball_id] = BALL_ROLE
            table = TrackTable.concat([table, ball.table(ball_id)]).sorted()
        ltwh = np.concatenate([table.box[:, :2], table.box[:, 2:] - table.box[:, :2]], axis=1)
        return pd.DataFrame({
            "frame": table.frame, "track_id": table.track_id,
            "left": ltwh[:, 0], "top": ltwh[:, 1], "width": ltwh[:, 2], "height": ltwh[:, 3],
            "conf": table.score,
            "team": pd.array([teams.get(int(t)) for t in table.track_id], dtype="Int64"),
            "role": pd.array([roles.get(int(t)) for t in table.track_id], dtype="string"),
            "interpolated": table.interpolated,
        })


@dataclass(frozen=True)
class InFrame:
    """A frame's detections split into those kept and the number dropped."""

    kept: FrameDetections
    dropped: int


def in_frame(det: FrameDetections, shape: tuple[int, ...]) -> InFrame:
    """The detections whose box covers part of an image of ``shape`` (H, W, ...).

    A box without a positive width or height, or entirely outside the image, shows nothing to track
    or embed: it is dropped. A box partly outside the image is kept as it is.
    """
    b = det.boxes
    width = np.minimum(b[:, 2], shape[1]) - np.maximum(b[:, 0], 0.0)
    height = np.minimum(b[:, 3], shape[0]) - np.maximum(b[:, 1], 0.0)
    keep = (width > 0) & (height > 0)
    return InFrame(det if keep.all() else det.select(keep), int((~keep).sum()))


def refine_boxes(table: TrackTable, cfg: PipelineConfig) -> TrackTable:
    """The offline box steps of ``cfg``: gap interpolation, then smoothing of a detector's boxes.

    Returns the table sorted by frame, then track.
    """
    if cfg.interpolate_gap > 0 and len(table):
        table = interpolate_gaps(table, cfg.interpolate_gap)
    if cfg.smooth_window > 0 and cfg.detector != "oracle" and len(table):
        table = smooth_boxes(table, cfg.smooth_window)
    return table.sorted()


def _batches(source: Any, size: int, timings: dict[str, float]) -> Iterator[tuple[list[int], list[np.ndarray]]]:
    """Group a frame stream into lists of ``size`` frames, timing the decoding."""
    ids: list[int] = []
    frames: list[np.ndarray] = []
    it = iter(source)
    while True:
        t = time.perf_counter()
        item = next(it, None)
        timings["decode"] += time.perf_counter() - t
        if item is not None:
            ids.append(item[0])
            frames.append(item[1])
        if (item is None and ids) or len(ids) == size:
            yield ids, frames
            ids, frames = [], []
        if item is None:
            return


def _mot(tracks: pd.DataFrame) -> MotTable:
    return MotTable(tracks["frame"].to_numpy(np.int64), tracks["track_id"].to_numpy(np.int64),
                    tracks[["left", "top", "width", "height"]].to_numpy(np.float64),
                    tracks["conf"].to_numpy(np.float64))


def _summary(name: str, source: str, frames: int, tracks: pd.DataFrame, timings: dict[str, float],
             wall: float, meta: dict[str, Any] | None) -> dict[str, Any]:
    per_track = tracks.drop_duplicates("track_id")
    return {
        "name": name, "source": source, "frames": frames, "rows": len(tracks),
        "tracks": int(per_track.shape[0]),
        "roles": {str(k): int(v) for k, v in per_track["role"].value_counts().items()},
        "teams": {str(k): int(v) for k, v in per_track["team"].value_counts().items()},
        "seconds": {k: round(v, 4) for k, v in timings.items()} | {"total": round(wall, 4)},
        "fps": round(frames / wall, 3) if wall > 0 else None,
        "meta": meta or {},
    }


def write_result(result: VideoResult, out: Storage) -> None:
    """Write the three result files of a video; the summary JSON goes last (completion marker)."""
    out.write_text(f"{result.name}.txt", result.mot_text())
    buf = io.BytesIO()
    result.tracks.to_parquet(buf, index=False)
    out.write_bytes(f"{result.name}.tracks.parquet", buf.getvalue())
    out.write_text(f"{result.name}.summary.json", json.dumps(result.summary, indent=2, default=str))


def is_complete(name: str, out: Storage) -> bool:
    """Whether the results of ``name`` were completely written."""
    return out.exists(f"{name}.summary.json")
