"""The match ball as one track.

One ball is in play, so the ball needs no association: in each frame the most confident detection
of :data:`~prtreid.detect.base.BALL_CLASS` joins the ball's track, which keeps one id for the whole
video, as the ball has one track per clip in SoccerNet's ground truth. The person tracker never sees
the ball: its box is a few pixels wide and moves too fast for the players' motion model, and the
re-id model was not trained on it. Where no detection of that class is given (public detections,
a person-only YOLO) there is no ball track.
"""

from __future__ import annotations

import numpy as np

from prtreid.detect.base import BALL_CLASS, FrameDetections
from prtreid.track.tracklets import TrackTable


class BallTrack:
    """The ball's box frame by frame: :meth:`update` once per frame, :meth:`table` at the end."""

    def __init__(self) -> None:
        self._frames: list[int] = []
        self._boxes: list[np.ndarray] = []
        self._scores: list[float] = []

    def __len__(self) -> int:
        return len(self._frames)

    def update(self, frame: int, dets: FrameDetections) -> None:
        """Add the most confident ball detection of ``frame``, if there is one."""
        balls = np.flatnonzero(dets.classes == BALL_CLASS)
        if len(balls):
            best = balls[np.argmax(dets.scores[balls])]
            self._frames.append(frame)
            self._boxes.append(dets.boxes[best])
            self._scores.append(float(dets.scores[best]))

    def table(self, track_id: int) -> TrackTable:
        """The ball's rows (xyxy boxes) under ``track_id``."""
        n = len(self)
        return TrackTable(np.asarray(self._frames, np.int64), np.full(n, track_id, np.int64),
                          np.asarray(self._boxes, np.float64).reshape(n, 4), np.asarray(self._scores, np.float64))
