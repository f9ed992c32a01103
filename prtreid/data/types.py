"""Typed objects for SoccerNet-format tracking data.

A :class:`Sequence` is what a SoccerNet-Tracking folder (``SNMOT-xxx``) or a Game State
Reconstruction ``Labels-GameState.json`` holds: sequence metadata, one :class:`TrackInfo` per
track (role, team, jersey), ground-truth boxes and optionally public detections.
Boxes are kept column-wise in a :class:`MotTable` so that a whole clip is a handful of arrays.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROLES: tuple[str, ...] = ("player", "goalkeeper", "referee", "ball", "other")
"""Canonical roles, in the order used for role class indices."""

BALL_ROLE = "ball"
"""The ball's role (one of :data:`ROLES`)."""

TEAMS: tuple[str, ...] = ("left", "right")
"""Team sides as SoccerNet names them."""

PARTS: tuple[str, ...] = ("background", "head", "torso", "arms", "legs", "feet")
"""Body-part labels of the part masks; index 0 is background."""
CLOTHING_PARTS: tuple[str, ...] = ("torso", "arms", "legs")
"""The parts that a kit covers (with the skin of arms and legs)."""


@dataclass(frozen=True)
class TrackInfo:
    """Identity-level labels of one track (one ``trackletID_N`` line of ``gameinfo.ini``).

    Attributes:
        track_id: the track id used in ``gt.txt``.
        role: one of :data:`ROLES`.
        team: ``"left"``, ``"right"`` or ``None`` (referees, ball, others).
        jersey: the jersey text (``"10"``; ``"X"``/``"x"``/``"y"`` mean unknown in SoccerNet) or ``None``.
        detail: role detail, for example ``"main"`` or ``"side top"`` for referees.
    """

    track_id: int
    role: str
    team: str | None = None
    jersey: str | None = None
    detail: str | None = None

    @property
    def jersey_number(self) -> int | None:
        """The jersey as an int, or ``None`` when absent or unknown."""
        return int(self.jersey) if self.jersey is not None and self.jersey.isdigit() else None


def image_dir_problem(im_dir: str) -> str | None:
    """Why ``im_dir`` (``imDir``) cannot name the frames' folder inside the sequence folder, or ``None``.

    It must be a relative path that stays in the sequence folder: an absolute path or a ``..``
    would read images from anywhere on the machine (and cut them into crop stores).
    """
    parts = im_dir.replace("\\", "/").split("/")
    if not im_dir.strip() or im_dir.startswith(("/", "\\")) or ".." in parts or any(ord(c) < 32 for c in im_dir):
        return f"imDir {im_dir!r} must be a folder inside the sequence folder (relative, no '..')"
    return None


def image_ext_problem(im_ext: str) -> str | None:
    """Why ``im_ext`` (``imExt``) is not a file extension such as ``.jpg``, or ``None``."""
    if not im_ext.startswith(".") or len(im_ext) < 2 or any(c in "/\\" or ord(c) < 32 for c in im_ext):
        return f"imExt {im_ext!r} must be a file extension such as '.jpg' (no '/' or backslash)"
    return None


@dataclass(frozen=True)
class SeqInfo:
    """The ``[Sequence]`` section of ``seqinfo.ini``."""

    name: str
    seq_length: int
    im_width: int
    im_height: int
    frame_rate: float = 25.0
    im_dir: str = "img1"
    im_ext: str = ".jpg"


@dataclass(frozen=True)
class MotTable:
    """Boxes of a MOTChallenge text file, column-wise.

    Attributes:
        frame: (N,) int64, 1-based frame numbers.
        track_id: (N,) int64; -1 for detections without identity.
        box: (N, 4) float64, left, top, width, height in pixels.
        conf: (N,) float64 confidence (1 for ground truth).
    """

    frame: np.ndarray
    track_id: np.ndarray
    box: np.ndarray
    conf: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.frame)
        if self.box.shape != (n, 4) or len(self.track_id) != n or len(self.conf) != n:
            raise ValueError(
                f"MotTable columns disagree: frame {n}, track_id {len(self.track_id)}, "
                f"box {self.box.shape}, conf {len(self.conf)}"
            )

    def __len__(self) -> int:
        return len(self.frame)

    @classmethod
    def empty(cls) -> MotTable:
        """A table with no rows."""
        return cls(
            frame=np.zeros(0, np.int64),
            track_id=np.zeros(0, np.int64),
            box=np.zeros((0, 4), np.float64),
            conf=np.zeros(0, np.float64),
        )

    def select(self, mask: np.ndarray) -> MotTable:
        """Rows where ``mask`` (a boolean array or an index array) selects."""
        return MotTable(self.frame[mask], self.track_id[mask], self.box[mask], self.conf[mask])

    def sorted(self) -> MotTable:
        """Rows ordered by frame, then track id."""
        return self.select(np.lexsort((self.track_id, self.frame)))

    def at_frame(self, frame: int) -> MotTable:
        """Rows of one frame."""
        return self.select(self.frame == frame)


@dataclass
class Sequence:
    """One clip with its labels.

    Attributes:
        info: sequence metadata.
        tracks: labels per track id (empty when ``gameinfo.ini`` is absent).
        gt: ground-truth boxes, or ``None`` for an unlabelled clip.
        det: public detections, or ``None``.
        root: the sequence folder on disk, when read from or written to one.
        game: other ``gameinfo.ini`` keys (``gameID``, ``clipStart``, ...) kept verbatim.
    """

    info: SeqInfo
    tracks: dict[int, TrackInfo] = field(default_factory=dict)
    gt: MotTable | None = None
    det: MotTable | None = None
    root: Path | None = None
    game: dict[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """The sequence name (``SNMOT-060``)."""
        return self.info.name

    def frame_path(self, frame: int) -> Path:
        """Path of the image of a 1-based frame number."""
        if self.root is None:
            raise ValueError(f"sequence {self.name} has no folder on disk")
        return self.root / self.info.im_dir / f"{frame:06d}{self.info.im_ext}"

    def part_mask_path(self, frame: int) -> Path:
        """Path of the part-label map of a frame (see :mod:`prtreid.data.masks`)."""
        if self.root is None:
            raise ValueError(f"sequence {self.name} has no folder on disk")
        return self.root / "parts" / f"{frame:06d}.png"
