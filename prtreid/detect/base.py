"""What every detector returns and how it is configured.

A detector turns a batch of frames into one :class:`FrameDetections` per frame: boxes in pixels
(``x1, y1, x2, y2``), a score and a class index each (:data:`PERSON_CLASS` for people of any role,
:data:`BALL_CLASS` for the ball; a YOLO's own classes are mapped by name, :func:`canonical_classes`).
Detection happens upstream of the tracker, in batches; the tracker only sees these arrays.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

PERSON_CLASS = 0
"""Class index of a person, in COCO models and in the detectors trained by this package."""

BALL_CLASS = 32
"""Class index of the ball: COCO's ``sports ball``; the ground truth's ball rows carry it too."""

PERSON_NAMES = ("person", "player", "goalkeeper", "referee")
"""Detector class names that are people (COCO's, and those of detectors fine-tuned on soccer)."""

BALL_NAMES = ("sports ball", "ball", "football")
"""Detector class names of the ball."""


def canonical_classes(names: Mapping[int, str]) -> dict[int, int]:
    """A detector's class index -> this package's: :data:`PERSON_CLASS` for every person class,
    :data:`BALL_CLASS` for the ball, by class name (case-insensitive). Models whose classes have no
    names (digits, as an untrained model's) keep COCO's numbering; any other named class becomes
    ``-1 - index``, so that a soccer model's class 0 (a goal, say) is never taken for a person."""
    out = {}
    for index, name in names.items():
        key = str(name).strip().lower()
        if key in PERSON_NAMES:
            out[int(index)] = PERSON_CLASS
        elif key in BALL_NAMES:
            out[int(index)] = BALL_CLASS
        else:
            out[int(index)] = int(index) if key.isdigit() else -1 - int(index)
    return out


@dataclass(frozen=True)
class FrameDetections:
    """The detections of one frame.

    Attributes:
        boxes: (N, 4) float64, ``x1, y1, x2, y2`` in pixels of the frame.
        scores: (N,) float64 confidences.
        classes: (N,) int64 class indices (:data:`PERSON_CLASS`, :data:`BALL_CLASS`, ...).
    """

    boxes: np.ndarray
    scores: np.ndarray
    classes: np.ndarray

    def __post_init__(self) -> None:
        boxes = np.asarray(self.boxes, dtype=np.float64).reshape(-1, 4)
        scores = np.asarray(self.scores, dtype=np.float64).reshape(-1)
        classes = np.asarray(self.classes, dtype=np.int64).reshape(-1)
        if not len(boxes) == len(scores) == len(classes):
            raise ValueError(
                f"FrameDetections columns disagree: boxes {boxes.shape}, scores {scores.shape}, "
                f"classes {classes.shape}"
            )
        object.__setattr__(self, "boxes", boxes)
        object.__setattr__(self, "scores", scores)
        object.__setattr__(self, "classes", classes)

    def __len__(self) -> int:
        return len(self.scores)

    def select(self, rows: np.ndarray) -> FrameDetections:
        """The detections at ``rows`` (a boolean mask or indices)."""
        return FrameDetections(self.boxes[rows], self.scores[rows], self.classes[rows])

    @classmethod
    def empty(cls) -> FrameDetections:
        """A frame without detections."""
        return cls(np.zeros((0, 4)), np.zeros(0), np.zeros(0, np.int64))


@dataclass(frozen=True)
class DetectorConfig:
    """Settings of a learned detector (the oracle detectors use ``conf`` only, see the factory).

    Attributes:
        conf: minimum confidence kept.
        iou: IoU threshold of non-maximum suppression.
        imgsz: inference size in pixels (longest side), a multiple of 32.
        batch: frames per forward pass.
        device: ``"auto"`` (first CUDA device, else CPU), ``"cpu"``, ``"0"``, ``"cuda:1"``, ...
        half: fp16 inference; only applied on CUDA devices.
        classes: the model's class indices kept (``(0,)``: COCO's person); an empty tuple keeps
            every class. With COCO weights, ``(0, 32)`` keeps the ball too, which the pipeline tracks
            apart. A model fine-tuned on soccer (say ball, goalkeeper, player, referee) needs its own
            indices here, or ``[]``: its classes are mapped to people and the ball by name.
        max_det: at most this many detections per frame.
    """

    conf: float = 0.25
    iou: float = 0.7
    imgsz: int = 960
    batch: int = 8
    device: str = "auto"
    half: bool = False
    classes: tuple[int, ...] = (PERSON_CLASS,)
    max_det: int = 100

    def __post_init__(self) -> None:
        checks = (
            (0.0 <= self.conf <= 1.0, f"conf must lie in [0, 1], got {self.conf}"),
            (0.0 < self.iou <= 1.0, f"iou must lie in (0, 1], got {self.iou}"),
            (self.imgsz > 0 and self.imgsz % 32 == 0, f"imgsz must be a positive multiple of 32, got {self.imgsz}"),
            (self.batch >= 1, f"batch must be at least 1, got {self.batch}"),
            (self.max_det >= 1, f"max_det must be at least 1, got {self.max_det}"),
            (all(c >= 0 for c in self.classes), f"classes must be non-negative, got {self.classes}"),
        )
        for ok, message in checks:
            if not ok:
                raise ValueError(message)


@runtime_checkable
class Detector(Protocol):
    """Anything that detects people in batches of frames."""

    def detect(self, frames: Sequence[np.ndarray | None], frame_ids: Sequence[int]) -> list[FrameDetections]:
        """Detections of each frame.

        Args:
            frames: BGR uint8 images (H, W, 3); detectors that read boxes from files accept ``None``.
            frame_ids: the 1-based frame numbers of ``frames`` in their sequence.

        Returns:
            one :class:`FrameDetections` per frame, in order.
        """
        ...


def check_batch(frames: Sequence[object], frame_ids: Sequence[int]) -> None:
    """Raise ``ValueError`` when a batch has different numbers of frames and frame ids."""
    if len(frames) != len(frame_ids):
        raise ValueError(f"got {len(frames)} frames but {len(frame_ids)} frame ids")
