"""A YOLO detector of people and the ball (ultralytics), batched.

``ultralytics`` is imported when a detector is built, not when this module is imported: reading
oracle boxes does not pay for it, and :func:`prtreid.detect.yolo_train.prepare_offline_ultralytics`
can still choose the settings folder (ultralytics fixes it at import time).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from prtreid.detect.base import (PERSON_CLASS, PERSON_NAMES, DetectorConfig, FrameDetections, canonical_classes,
                                 check_batch)
from prtreid.errors import ConfigError, FormatError, first_line

log = logging.getLogger(__name__)

MODEL_YAML_SUFFIXES = (".yaml", ".yml")


def resolve_weights(weights: str | Path) -> str:
    """Check that ``weights`` names a local file, a model yaml or a weights name ultralytics downloads.

    A model yaml (``yolov8n.yaml``) may be a bare name: ultralytics builds it, untrained, from the
    configurations it ships. A bare ``.pt`` name that is not on disk (``yolov8n.pt``) is one of
    ultralytics' released weights: it downloads them (or finds its cached copy), unless ``YOLO_OFFLINE``
    is set, as in this project's tests, CI and demo.

    Raises:
        FileNotFoundError: a weights path that is not on disk, or a released-weights name while offline.
    """
    text = str(weights)
    if Path(text).expanduser().is_file():
        return str(Path(text).expanduser())
    if text.lower().endswith(MODEL_YAML_SUFFIXES):
        return text
    if is_hub_name(text):
        if not offline():
            return text
        raise FileNotFoundError(f"detector weights {text!r}: not on disk, and YOLO_OFFLINE is set, so ultralytics "
                                "would not download them: give a local .pt file, or a model yaml such as "
                                "'yolov8n.yaml' for an untrained network")
    raise FileNotFoundError(f"detector weights {text!r}: no such file. Give a local .pt file, a model yaml such as "
                            "'yolov8n.yaml' for an untrained network, or the name of released weights ('yolov8n.pt')")


def is_hub_name(weights: str) -> bool:
    """Whether ``weights`` is a bare ``.pt`` name not on disk: ultralytics' released weights, downloaded by name."""
    return (weights.lower().endswith(".pt") and "/" not in weights and "\\" not in weights
            and not weights.startswith("~") and not Path(weights).exists())


def offline() -> bool:
    """``YOLO_OFFLINE`` set to a true value, read as ultralytics reads it."""
    return os.environ.get("YOLO_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on", "y", "t")


def resolve_device(device: str) -> str:
    """The ultralytics device string of a config's ``device`` (``"auto"``: CUDA 0 if present, else CPU)."""
    if device != "auto":
        return device
    import torch

    return "0" if torch.cuda.is_available() else "cpu"


def is_cuda(device: str) -> bool:
    """Whether an ultralytics device string names a CUDA device."""
    d = device.strip().lower()
    return d not in ("cpu", "mps", "") and not d.startswith("mps")


class YoloDetector:
    """Detection of people (and the ball, where kept) with an ultralytics YOLO model, loaded once.

    The model's classes are mapped by name to :data:`PERSON_CLASS` and
    :data:`~prtreid.detect.base.BALL_CLASS` (:func:`~prtreid.detect.base.canonical_classes`).

    Args:
        weights: a local ``.pt`` file, a model yaml (``yolov8n.yaml``) for an untrained network, or
            the name of ultralytics' released weights (see :func:`resolve_weights`).
        cfg: thresholds, size, batch and device.

    Raises:
        ConfigError: ``cfg.classes`` keeps no class that is a person (a model fine-tuned on soccer
            whose class 0 is the ball, say).
        FormatError: a weights file that ultralytics cannot load.
    """

    def __init__(self, weights: str | Path, cfg: DetectorConfig = DetectorConfig()) -> None:
        self.weights = resolve_weights(weights)
        from ultralytics import YOLO

        self.cfg = cfg
        self.device = resolve_device(cfg.device)
        try:
            self.model = YOLO(self.weights, task="detect")
        except Exception as exc:  # ultralytics and torch raise many types for a file they cannot read
            raise FormatError(self.weights, None, f"not YOLO weights ultralytics can load ({type(exc).__name__}: "
                                                  f"{first_line(exc)})") from None
        self.classes = canonical_classes(self.model.names)
        kept = list(cfg.classes) or list(self.classes)
        if PERSON_CLASS not in {self.classes.get(c, c) for c in kept}:
            names = {c: self.model.names.get(c, "?") for c in kept}
            raise ConfigError(f"detector {self.weights}: detection.classes {kept} keep {names}, and none is a "
                              f"person ({', '.join(PERSON_NAMES)}); this model's classes are {self.model.names}")
        log.debug("loaded detector %s on %s", self.weights, self.device)

    def detect(self, frames: Sequence[np.ndarray], frame_ids: Sequence[int]) -> list[FrameDetections]:
        """Detections of each BGR uint8 frame, ``cfg.batch`` frames per forward pass."""
        check_batch(frames, frame_ids)
        out: list[FrameDetections] = []
        for start in range(0, len(frames), self.cfg.batch):
            chunk = [_check_frame(f) for f in frames[start:start + self.cfg.batch]]
            results = self.model.predict(chunk, **self.predict_args())
            out.extend(_to_detections(r, self.classes) for r in results)
        return out

    def predict_args(self) -> dict[str, Any]:
        """Keyword arguments given to ``YOLO.predict``."""
        cfg = self.cfg
        return {
            "conf": cfg.conf,
            "iou": cfg.iou,
            "imgsz": cfg.imgsz,
            "max_det": cfg.max_det,
            "classes": list(cfg.classes) or None,
            "device": self.device,
            "verbose": False,
            "stream": False,
            **precision_args(cfg.half and is_cuda(self.device)),
        }


def precision_args(half: bool) -> dict[str, Any]:
    """fp16 or fp32 inference, spelled for the installed ultralytics (``quantize`` replaced ``half`` in 8.4)."""
    from ultralytics.cfg import DEFAULT_CFG_DICT

    if "quantize" in DEFAULT_CFG_DICT:
        return {"quantize": 16 if half else None}
    return {"half": half}


def _check_frame(frame: np.ndarray) -> np.ndarray:
    if not isinstance(frame, np.ndarray) or frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        desc = f"{frame.dtype} {frame.shape}" if isinstance(frame, np.ndarray) else type(frame).__name__
        raise ValueError(f"expected a BGR uint8 frame of shape (H, W, 3), got {desc}")
    return frame


def _to_detections(result: Any, classes: dict[int, int]) -> FrameDetections:
    """Convert one ultralytics ``Results`` (boxes already clipped to the frame), classes mapped by ``classes``."""
    boxes = result.boxes
    cls = boxes.cls.detach().cpu().numpy().round().astype(np.int64)
    return FrameDetections(
        boxes=boxes.xyxy.detach().cpu().numpy(),
        scores=boxes.conf.detach().cpu().numpy(),
        classes=np.array([classes.get(int(c), int(c)) for c in cls], np.int64),
    )
