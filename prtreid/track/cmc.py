"""Camera-motion compensation: a global affine motion between consecutive frames.

Broadcast cameras pan, tilt and zoom all the time; without compensation every Kalman prediction
lags by the camera motion. :class:`CameraMotion` estimates, on downscaled grey frames, the 2x3
affine that maps a point of the previous frame to the current one, by ECC image alignment
(``cv2.findTransformECC``, as StrongSORT) or by sparse optical flow (corners tracked with
Lucas-Kanade, then a RANSAC similarity fit, as BoT-SORT). :func:`warp_tracks` applies such an
affine to Kalman states. The estimator runs upstream of the tracker (it needs pixels); the tracker
only receives the matrix.
"""

from __future__ import annotations

import logging
from typing import Literal

import cv2
import numpy as np

log = logging.getLogger(__name__)

IDENTITY = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])

_ECC_MOTION = {
    "translation": cv2.MOTION_TRANSLATION,
    "euclidean": cv2.MOTION_EUCLIDEAN,
    "affine": cv2.MOTION_AFFINE,
}


class CameraMotion:
    """Frame-to-frame camera motion estimator (it keeps the previous frame).

    Args:
        method: ``ecc``, ``sparse`` or ``none`` (always the identity).
        downscale: frames are shrunk by this factor before estimation.
        ecc_motion: motion model of ECC (``euclidean`` is rotation plus translation).
        ecc_iterations, ecc_eps: ECC stopping criteria.
        max_corners: corners tracked by the sparse method.
        min_distance: least distance between two of its corners, in downscaled pixels.
        flow_window: side of its Lucas-Kanade window, in downscaled pixels.
        border: fraction of the frame on each side ignored (broadcast overlays, black borders).

    The sparse defaults (300 corners at least 8 pixels apart, a 15-pixel window, on frames halved)
    were chosen with ``benchmarks/camera_motion.py`` against the generator's true camera motion:
    against 1000 corners 1 pixel apart, 0.51 instead of 0.49 pixels of error on 960x540 clips (0.40
    instead of 0.33 at 640x360) in 3.3-4.4x less time; ECC is less accurate, as its rotation-and-shift
    model cannot follow a zoom.
    """

    def __init__(
        self,
        method: Literal["ecc", "sparse", "none"] = "sparse",
        downscale: float = 2.0,
        ecc_motion: Literal["translation", "euclidean", "affine"] = "euclidean",
        ecc_iterations: int = 100,
        ecc_eps: float = 1e-5,
        max_corners: int = 300,
        min_distance: float = 8.0,
        flow_window: int = 15,
        border: float = 0.02,
    ) -> None:
        if method not in ("ecc", "sparse", "none"):
            raise ValueError(f"unknown camera-motion method {method!r} (ecc, sparse or none)")
        if downscale < 1:
            raise ValueError(f"downscale must be at least 1, got {downscale}")
        if max_corners < 4 or min_distance < 0 or flow_window < 3:
            raise ValueError(f"sparse flow needs max_corners >= 4, min_distance >= 0 and flow_window >= 3, got "
                             f"{max_corners}, {min_distance}, {flow_window}")
        self.method = method
        self.downscale = float(downscale)
        self.ecc_motion = _ECC_MOTION[ecc_motion]
        self.criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, ecc_iterations, ecc_eps)
        self.max_corners = max_corners
        self.min_distance = float(min_distance)
        self.flow_window = (int(flow_window), int(flow_window))
        self.border = border
        self._prev: np.ndarray | None = None
        self._prev_mask: np.ndarray | None = None

    def reset(self) -> None:
        """Forget the previous frame (next video)."""
        self._prev = self._prev_mask = None

    def estimate(self, frame: np.ndarray, exclude_boxes: np.ndarray | None = None) -> np.ndarray:
        """The 2x3 affine from the previous frame to ``frame`` (identity on the first frame).

        Args:
            frame: grey ``(H, W)`` or BGR ``(H, W, 3)`` uint8 image.
            exclude_boxes: optional ``(N, 4)`` xyxy boxes (the players) whose pixels are ignored,
                since they move on their own.
        """
        if self.method == "none":
            return IDENTITY.copy()
        small, mask = self._prepare(frame, exclude_boxes)
        prev, prev_mask = self._prev, self._prev_mask
        self._prev, self._prev_mask = small, mask
        if prev is None or prev.shape != small.shape:
            return IDENTITY.copy()
        warp = self._ecc(prev, small, mask) if self.method == "ecc" else self._sparse(prev, small, prev_mask)
        warp[:, 2] *= self.downscale
        return warp

    def _prepare(self, frame: np.ndarray, exclude_boxes: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY) if frame.ndim == 3 else frame
        h, w = gray.shape
        size = (max(1, round(w / self.downscale)), max(1, round(h / self.downscale)))
        small = cv2.resize(gray, size, interpolation=cv2.INTER_AREA) if self.downscale > 1 else gray.copy()
        mask = np.zeros(small.shape, np.uint8)
        bh, bw = int(small.shape[0] * self.border), int(small.shape[1] * self.border)
        mask[bh:small.shape[0] - bh, bw:small.shape[1] - bw] = 255
        if exclude_boxes is not None and len(exclude_boxes):
            b = np.round(np.asarray(exclude_boxes, dtype=np.float64) / self.downscale).astype(int)
            b = np.clip(b, 0, [small.shape[1], small.shape[0]] * 2)
            for x1, y1, x2, y2 in b:
                mask[y1:y2, x1:x2] = 0
        return small, mask

    def _ecc(self, prev: np.ndarray, cur: np.ndarray, mask: np.ndarray) -> np.ndarray:
        warp = np.eye(2, 3, dtype=np.float32)
        try:
            _, warp = cv2.findTransformECC(prev, cur, warp, self.ecc_motion, self.criteria, mask, 1)
        except cv2.error as exc:
            log.warning("ECC camera motion did not converge (%s); using the identity", exc.msg)
            return IDENTITY.copy()
        return warp.astype(np.float64)

    def _sparse(self, prev: np.ndarray, cur: np.ndarray, prev_mask: np.ndarray | None) -> np.ndarray:
        pts = cv2.goodFeaturesToTrack(prev, self.max_corners, 0.01, self.min_distance, mask=prev_mask, blockSize=3)
        if pts is None or len(pts) < 4:
            return IDENTITY.copy()
        nxt, status, _ = cv2.calcOpticalFlowPyrLK(prev, cur, pts, None, winSize=self.flow_window)
        ok = status.ravel() == 1
        if ok.sum() < 4:
            return IDENTITY.copy()
        warp, _ = cv2.estimateAffinePartial2D(pts[ok], nxt[ok], method=cv2.RANSAC)
        return IDENTITY.copy() if warp is None else warp.astype(np.float64)


def _linear_and_scale(warp: np.ndarray) -> tuple[np.ndarray, float]:
    a = np.asarray(warp, dtype=np.float64)[:, :2]
    return a, float(np.sqrt(abs(np.linalg.det(a))))


def warp_boxes(boxes: np.ndarray, warp: np.ndarray) -> np.ndarray:
    """Move ``(N, 4)`` xyxy boxes by a 2x3 affine: centres transform, sizes scale by ``sqrt|det A|``."""
    boxes = np.asarray(boxes, dtype=np.float64)
    a, s = _linear_and_scale(warp)
    centre = (boxes[:, :2] + boxes[:, 2:]) / 2 @ a.T + np.asarray(warp)[:, 2]
    half = (boxes[:, 2:] - boxes[:, :2]) / 2 * s
    return np.concatenate([centre - half, centre + half], axis=1)


def warp_tracks(mean: np.ndarray, covariance: np.ndarray, warp: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Apply a 2x3 affine to Kalman states ``(N, 8)`` / ``(N, 8, 8)`` of :mod:`prtreid.track.kalman`.

    The centre maps through the affine, the centre velocity through its linear part ``A``; width,
    height and their velocities scale by ``s = sqrt|det A|``. With ``T`` that linear map,
    ``x = T x + t`` and ``P = T P T^T`` (BoT-SORT's GMC update).
    """
    if warp is None or len(mean) == 0:
        return mean, covariance
    a, s = _linear_and_scale(warp)
    t = np.zeros((8, 8))
    t[0:2, 0:2] = a
    t[4:6, 4:6] = a
    t[[2, 3, 6, 7], [2, 3, 6, 7]] = s
    new_mean = mean @ t.T
    new_mean[:, :2] += np.asarray(warp, dtype=np.float64)[:, 2]
    return new_mean, t @ covariance @ t.T
