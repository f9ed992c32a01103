"""Overlay video: boxes, track ids, team colours and role tags drawn on the frames (H.264)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from prtreid.data.frames import open_frames, write_video

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
    for r in rows.itertuples(index=False):
        x1, y1 = int(r.left), int(r.top)
        x2, y2 = int(r.left + r.width), int(r.top + r.height)
        colour = colour_of(r.team, r.role)
        cv2.rectangle(out, (x1, y1), (x2, y2), colour, max(1, round(2 * scale)), cv2.LINE_AA)
        tag = f"{r.track_id}" + (f" {ROLE_TAGS.get(str(r.role), '')}" if pd.notna(r.role) else "")
        (tw, th), _ = cv2.getTextSize(tag.strip(), cv2.FONT_HERSHEY_SIMPLEX, 0.5 * scale, 1)
        cv2.rectangle(out, (x1, y1 - th - 4), (x1 + tw + 4, y1), colour, -1)
        cv2.putText(out, tag.strip(), (x1 + 2, y1 - 3), cv2.FONT_HERSHEY_SIMPLEX, 0.5 * scale,
                    (255, 255, 255), 1, cv2.LINE_AA)
    return out


def render(source: str | Path, tracks: pd.DataFrame, out: str | Path, max_frames: int | None = None) -> int:
    """Draw ``tracks`` (a ``.tracks.parquet`` table with :data:`COLUMNS`) over the frames of ``source``.

    ``max_frames`` (``None``: all) stops after that frame number; returns the number of frames written.
    """
    frames = open_frames(source)
    by_frame = dict(tuple(tracks.groupby("frame")))
    empty = tracks.iloc[:0]

    def drawn() -> Iterator[np.ndarray]:
        for frame_id, image in frames:
            if max_frames is not None and frame_id > max_frames:
                return
            yield draw_frame(image, by_frame.get(frame_id, empty))

    return write_video(out, drawn(), fps=frames.info.fps)
