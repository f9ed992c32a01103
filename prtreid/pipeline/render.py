"""Overlay video: boxes, track ids, team colours and role tags drawn on the frames (H.264)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from prtreid.data.frames import open_frames, write_video

log = logging.getLogger(__name__)

TEAM_COLOURS = {0: (255, 140, 30), 1: (40, 40, 230)}  # BGR: blue-ish, red-ish
ROLE_COLOURS = {"goalkeeper": (0, 215, 255), "referee": (20, 20, 20), "other": (180, 180, 180),
                "ball": (255, 255, 255)}
ROLE_TAGS = {"player": "", "goalkeeper": "GK", "referee": "REF", "other": "OTH", "ball": "BALL"}
UNKNOWN = (200, 200, 200)
COLUMNS = ("frame", "track_id", "left", "top", "width", "height", "team", "role")
"""Columns of a ``.tracks.parquet`` table that :func:`render` draws."""


def colour_of(team: object, role: object) -> tuple[int, int, int]:
    """Team colour for players (and goalkeepers' outline), role colour for everyone else."""
    if role in ROLE_COLOURS and role != "goalkeeper":
        return ROLE_COLOURS[str(role)]
    if pd.notna(team):
        return TEAM_COLOURS.get(int(team), UNKNOWN)
    return ROLE_COLOURS.get(str(role), UNKNOWN)


def draw_frame(image: np.ndarray, rows: pd.DataFrame) -> np.ndarray:
    """A copy of ``image`` with every row's box, id and role tag."""
    out = image.copy()
    scale = max(0.4, image.shape[0] / 1080)
    height, width = image.shape[:2]
    for r in rows.itertuples(index=False):
        x1, x2 = (_pixel(x, width) for x in (r.left, r.left + r.width))
        y1, y2 = (_pixel(y, height) for y in (r.top, r.top + r.height))
        colour = colour_of(r.team, r.role)
        cv2.rectangle(out, (x1, y1), (x2, y2), colour, max(1, round(2 * scale)), cv2.LINE_AA)
        tag = f"{r.track_id}" + (f" {ROLE_TAGS.get(str(r.role), '')}" if pd.notna(r.role) else "")
        (tw, th), _ = cv2.getTextSize(tag.strip(), cv2.FONT_HERSHEY_SIMPLEX, 0.5 * scale, 1)
        cv2.rectangle(out, (x1, y1 - th - 4), (x1 + tw + 4, y1), colour, -1)
        cv2.putText(out, tag.strip(), (x1 + 2, y1 - 3), cv2.FONT_HERSHEY_SIMPLEX, 0.5 * scale,
                    (255, 255, 255), 1, cv2.LINE_AA)
    return out


def _pixel(value: float, size: int) -> int:
    """A box coordinate as a drawing position, kept within one image size of the image (OpenCV takes 32-bit
    positions, and a box edge that far out is not drawn anyway)."""
    return int(np.clip(value, -size, 2 * size))


def render(source: str | Path, tracks: pd.DataFrame, out: str | Path, max_frames: int | None = None,
           on_frames: Callable[[int, int | None], None] | None = None) -> int:
    """Draw ``tracks`` (a ``.tracks.parquet`` table with :data:`COLUMNS`) over the frames of ``source``.

    ``max_frames`` (``None``: all) stops after that frame number; returns the number of frames written.
    ``on_frames(done, total)`` is called after each frame drawn (``total`` is ``None`` where a video
    does not declare its length and no ``max_frames`` is given).
    """
    frames = open_frames(source)
    known = frames.info.num_frames
    total = max_frames if known is None else min(known, max_frames or known)
    by_frame = dict(tuple(tracks.groupby("frame")))
    empty = tracks.iloc[:0]

    last = 0

    def drawn() -> Iterator[np.ndarray]:
        nonlocal last
        for frame_id, image in frames:
            if max_frames is not None and frame_id > max_frames:
                return
            last = frame_id
            yield draw_frame(image, by_frame.get(frame_id, empty))
            if on_frames is not None:
                on_frames(frame_id, total)

    n = write_video(out, drawn(), fps=frames.info.fps)
    _warn_undrawn(tracks, source, last, max_frames)
    return n


def _warn_undrawn(tracks: pd.DataFrame, source: str | Path, last: int, max_frames: int | None) -> None:
    """Log the rows of frames after the source's last one (``last``), left out of the video."""
    if max_frames is not None and last >= max_frames:
        return  # the video stopped where it was asked to
    beyond = int((tracks["frame"] > last).sum())
    if beyond:
        log.warning("%s has %d frames, and %d rows of the tracks are in later frames (up to frame %d): they "
                    "were not drawn (tracks of another input?)", source, last, beyond, int(tracks["frame"].max()))
