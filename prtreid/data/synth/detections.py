"""Public detections (``det.txt``) derived from the ground truth with a detector's typical errors.

Each true box is missed with a probability that grows with occlusion and with smallness; kept
boxes are jittered in proportion to their size and clipped to the image; confidences rise with
visibility and size. A few false positives of person-like shape appear in every clip.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from prtreid.data.types import MotTable


@dataclass(frozen=True)
class DetNoise:
    """Noise model of the detector.

    Attributes:
        jitter: standard deviation of box centre and log-size noise, relative to box size.
        miss_rate: miss probability of a fully visible, large person.
        fp_rate: mean number of false positives per frame.
        ball_miss_rate: miss probability of the ball (``< 0`` leaves the ball out of det.txt).
    """

    jitter: float = 0.05
    miss_rate: float = 0.03
    fp_rate: float = 0.25
    ball_miss_rate: float = 0.35


def noisy_detections(gt: MotTable, visibility: np.ndarray, is_ball: np.ndarray, frames: int, width: int,
                     height: int, noise: DetNoise, rng: np.random.Generator) -> MotTable:
    """Detections of a clip from its ground truth.

    Args:
        gt: ground-truth rows (image-clipped boxes).
        visibility: per row, fraction of the person's pixels visible in the frame (0..1).
        is_ball: per row, whether it is the ball.
        frames: clip length (false positives are drawn on every frame).
    """
    box = gt.box.astype(np.float64)
    w, h = box[:, 2], box[:, 3]
    size = np.where(is_ball, 12.0, h)
    p_miss = noise.miss_rate + 0.7 * (1.0 - visibility) ** 2 + 0.35 * np.exp(-size / 14.0)
    p_miss = np.where(is_ball, noise.ball_miss_rate, np.clip(p_miss, 0.0, 0.97))
    keep = (rng.random(len(gt)) >= p_miss) & ~(is_ball & (noise.ball_miss_rate < 0))
    n = len(gt)
    cx = box[:, 0] + w / 2 + rng.normal(0, noise.jitter, n) * w
    cy = box[:, 1] + h / 2 + rng.normal(0, noise.jitter, n) * h
    nw = w * np.exp(rng.normal(0, noise.jitter, n))
    nh = h * np.exp(rng.normal(0, noise.jitter, n))
    conf = 0.3 + 0.65 * visibility * (1.0 - np.exp(-size / 30.0)) + rng.normal(0, 0.06, n)
    det_box = np.stack([cx - nw / 2, cy - nh / 2, nw, nh], axis=1)
    fp = _false_positives(frames, width, height, noise.fp_rate, rng)
    frame = np.r_[gt.frame[keep], fp.frame]
    det_box = np.r_[det_box[keep], fp.box]
    conf = np.r_[conf[keep], fp.conf]
    det_box = _clip(det_box, width, height)
    ok = (det_box[:, 2] >= 1.0) & (det_box[:, 3] >= 1.0)
    table = MotTable(frame[ok].astype(np.int64), np.full(int(ok.sum()), -1, np.int64),
                     np.round(det_box[ok], 2), np.round(np.clip(conf[ok], 0.05, 0.99), 2))
    return table.sorted()


def _false_positives(frames: int, width: int, height: int, rate: float, rng: np.random.Generator) -> MotTable:
    counts = rng.poisson(rate, frames)
    n = int(counts.sum())
    frame = np.repeat(np.arange(1, frames + 1), counts)
    h = rng.uniform(0.03, 0.12, n) * height
    w = h * rng.uniform(0.3, 0.55, n)
    x = rng.uniform(0, width - w)
    y = rng.uniform(0.15 * height, height - h)
    return MotTable(frame.astype(np.int64), np.full(n, -1, np.int64), np.stack([x, y, w, h], axis=1),
                    rng.uniform(0.05, 0.45, n))


def _clip(box: np.ndarray, width: int, height: int) -> np.ndarray:
    x0 = np.clip(box[:, 0], 0, width)
    y0 = np.clip(box[:, 1], 0, height)
    x1 = np.clip(box[:, 0] + box[:, 2], 0, width)
    y1 = np.clip(box[:, 1] + box[:, 3], 0, height)
    return np.stack([x0, y0, x1 - x0, y1 - y0], axis=1)
