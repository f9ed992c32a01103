"""Build a detector from a short text spec (what the CLI and the pipeline config carry)."""

from __future__ import annotations

from prtreid.data.types import Sequence
from prtreid.detect.base import Detector, DetectorConfig
from prtreid.detect.oracle import MotFileDetector
from prtreid.errors import ConfigError

SPECS = ("oracle", "det", "yolo:PATH")
"""The forms a detector spec takes."""


def make_detector(spec: str, sequence: Sequence | None = None, cfg: DetectorConfig = DetectorConfig()) -> Detector:
    """A detector from its spec.

    Args:
        spec: ``"oracle"`` (ground-truth boxes of ``sequence``, score 1, the ball's with
            :data:`~prtreid.detect.base.BALL_CLASS`), ``"det"``
            (the public detections of ``sequence``, those scoring below ``cfg.conf`` dropped) or
            ``"yolo:PATH"`` (a YOLO model from a local ``.pt`` or a model yaml).
        sequence: the sequence being tracked; required by ``oracle`` and ``det``.
        cfg: detector settings.

    Raises:
        ConfigError: an unknown spec, or a file-based spec without a sequence.
        FileNotFoundError: the sequence lacks the table the spec reads, or YOLO weights are not on disk.
    """
    kind, _, arg = spec.partition(":")
    kind = kind.strip().lower()
    weights = yolo_weights(spec)
    if kind in ("oracle", "det") and not arg:
        if sequence is None:
            raise ConfigError(f"detector {spec!r} reads the sequence's files: a sequence is required")
        source = "gt" if kind == "oracle" else "det"
        if kind == "oracle":  # the ball too: the ground truth, which scores the result, has it
            return MotFileDetector.from_sequence(sequence, source, drop_roles=())
        return MotFileDetector.from_sequence(sequence, source, min_conf=cfg.conf)
    if weights:
        from prtreid.detect.yolo import YoloDetector

        return YoloDetector(weights, cfg)
    raise ConfigError(f"unknown detector spec {spec!r} (known: {', '.join(SPECS)})")


def yolo_weights(spec: str) -> str | None:
    """The weights of a ``yolo:WEIGHTS`` detector spec (a path, a model yaml or a URI), else ``None``."""
    kind, _, arg = spec.partition(":")
    return arg.strip() if kind.strip().lower() == "yolo" and arg.strip() else None
