"""Detectors that read their boxes from a sequence's files instead of looking at the frames.

``gt/gt.txt`` gives oracle detections (every labelled person, score 1, and the ball when asked
for, with :data:`BALL_CLASS`): tracking from them isolates association errors from detection
errors. ``det/det.txt`` gives the public detections shipped with SoccerNet-Tracking, with their own
confidences.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from collections.abc import Sequence as SequenceABC
from typing import Literal

import numpy as np

from prtreid.data.soccernet import DET_FILE
from prtreid.data.types import BALL_ROLE, MotTable, Sequence, TrackInfo
from prtreid.detect.base import BALL_CLASS, PERSON_CLASS, FrameDetections, check_batch

NOT_PEOPLE: tuple[str, ...] = (BALL_ROLE,)
"""Roles whose boxes are not people and are dropped by default."""


class MotFileDetector:
    """Per-frame boxes of a MOTChallenge table (``gt.txt`` or ``det.txt``).

    Args:
        table: the rows (1-based frames, ``left, top, width, height`` boxes, confidences).
        roles: track id -> role (a role name or a :class:`TrackInfo`), from ``gameinfo.ini``;
            rows of tracks whose role is in ``drop_roles`` are removed, kept rows of the ball get
            :data:`BALL_CLASS` (every other row :data:`PERSON_CLASS`). ``None`` keeps every row, as
            a person.
        drop_roles: roles that are not people (the ball).
        min_conf: rows with a lower confidence are removed.
    """

    def __init__(
        self,
        table: MotTable,
        roles: Mapping[int, str | TrackInfo] | None = None,
        drop_roles: Collection[str] = NOT_PEOPLE,
        min_conf: float = 0.0,
    ) -> None:
        keep = table.conf >= min_conf
        dropped = _track_ids_with_role(roles or {}, drop_roles)
        if dropped:
            keep &= ~np.isin(table.track_id, list(dropped))
        rows = table.select(keep)
        order = np.argsort(rows.frame, kind="stable")
        self._frame = rows.frame[order]
        self._xyxy = _xywh_to_xyxy(rows.box[order])
        self._conf = rows.conf[order]
        balls = list(_track_ids_with_role(roles or {}, (BALL_ROLE,)))
        self._class = np.where(np.isin(rows.track_id[order], balls), BALL_CLASS, PERSON_CLASS).astype(np.int64)

    @classmethod
    def from_sequence(
        cls,
        seq: Sequence,
        source: Literal["gt", "det"] = "gt",
        min_conf: float = 0.0,
        drop_roles: Collection[str] = NOT_PEOPLE,
    ) -> MotFileDetector:
        """Oracle (``source="gt"``, every score 1) or public (``"det"``) detections of a sequence.

        Oracle rows of ``drop_roles`` (by default the ball) are removed; with ``drop_roles=()`` the
        ball stays, with :data:`BALL_CLASS`. Public detections carry no class: every row is a person.

        Raises:
            FileNotFoundError: the sequence has no such table.
            ValueError: an unknown ``source``.
        """
        if source == "gt":
            if seq.gt is None:
                raise FileNotFoundError(f"sequence {seq.name} has no ground truth (gt/gt.txt) for oracle detections")
            table = MotTable(seq.gt.frame, seq.gt.track_id, seq.gt.box, np.ones(len(seq.gt)))
            return cls(table, seq.tracks, drop_roles=drop_roles, min_conf=min_conf)
        if source == "det":
            if seq.det is None:
                raise FileNotFoundError(f"sequence {seq.name} has no public detections ({DET_FILE})")
            return cls(seq.det, None, min_conf=min_conf)
        raise ValueError(f"unknown detection source {source!r} (known: gt, det)")

    def __len__(self) -> int:
        """Number of boxes over the whole sequence."""
        return len(self._frame)

    def detect(self, frames: SequenceABC[np.ndarray | None], frame_ids: SequenceABC[int]) -> list[FrameDetections]:
        """Boxes of each requested frame; ``frames`` are not read and may be ``None``."""
        check_batch(frames, frame_ids)
        return [self.at_frame(int(f)) for f in frame_ids]

    def at_frame(self, frame: int) -> FrameDetections:
        """Boxes of one 1-based frame (empty arrays for a frame without rows)."""
        lo, hi = np.searchsorted(self._frame, [frame, frame + 1])
        return FrameDetections(
            boxes=self._xyxy[lo:hi].copy(),
            scores=self._conf[lo:hi].copy(),
            classes=self._class[lo:hi].copy(),
        )


def _track_ids_with_role(roles: Mapping[int, str | TrackInfo], wanted: Collection[str]) -> set[int]:
    """Track ids whose role is one of ``wanted``."""
    out = set()
    for tid, role in roles.items():
        name = role.role if isinstance(role, TrackInfo) else role
        if name in wanted:
            out.add(int(tid))
    return out


def _xywh_to_xyxy(box: np.ndarray) -> np.ndarray:
    out = np.asarray(box, dtype=np.float64).copy()
    out[:, 2:] += out[:, :2]
    return out
