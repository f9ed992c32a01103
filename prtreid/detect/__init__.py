"""Detectors: a :class:`Detector` protocol, oracle/public detections read from files, YOLO.

Training a YOLO person detector on SoccerNet-format data lives in :mod:`prtreid.detect.yolo_train`
(imported on demand: it needs the crop-store split and ultralytics).
"""

from prtreid.detect.base import BALL_CLASS, PERSON_CLASS, Detector, DetectorConfig, FrameDetections, canonical_classes
from prtreid.detect.factory import make_detector
from prtreid.detect.oracle import MotFileDetector
from prtreid.detect.yolo import YoloDetector

__all__ = [
    "BALL_CLASS", "PERSON_CLASS", "Detector", "DetectorConfig", "FrameDetections", "MotFileDetector", "YoloDetector",
    "canonical_classes", "make_detector",
]
