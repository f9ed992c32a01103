"""A stateless, vectorised constant-velocity Kalman filter on boxes.

The state is ``(cx, cy, w, h, vx, vy, vw, vh)``: box centre, width, height and their velocities
(BoT-SORT's xywh state, which follows width changes better than the xyah state of DeepSORT).
Noise is proportional to the box size. The filter holds no track state: every function takes
means of shape ``(..., 8)`` and covariances ``(..., 8, 8)``, so one call serves one track or all
of them. ``update`` optionally scales the measurement noise by ``1 - confidence`` (StrongSORT's NSA
Kalman): a confident detection moves the state further. The covariance is scaled, as the NSA paper
writes it; StrongSORT's code scales the standard deviations, so there a detection of confidence 0.9
weighs 10x more than here. ``std_weight_position`` of the sports preset was tuned with this form.
"""

from __future__ import annotations

import numpy as np

CHI2INV95: dict[int, float] = {
    1: 3.8415, 2: 5.9915, 3: 7.8147, 4: 9.4877, 5: 11.070, 6: 12.592, 7: 14.067, 8: 15.507, 9: 16.919,
}
"""0.95 quantile of the chi-square distribution by degrees of freedom (the gating thresholds)."""

NDIM = 4


def xyxy_to_xywh(boxes: np.ndarray) -> np.ndarray:
    """``(x1, y1, x2, y2)`` -> ``(cx, cy, w, h)``, any leading shape."""
    boxes = np.asarray(boxes, dtype=np.float64)
    wh = boxes[..., 2:] - boxes[..., :2]
    return np.concatenate([boxes[..., :2] + wh / 2, wh], axis=-1)


def xywh_to_xyxy(boxes: np.ndarray) -> np.ndarray:
    """``(cx, cy, w, h)`` -> ``(x1, y1, x2, y2)``, any leading shape."""
    boxes = np.asarray(boxes, dtype=np.float64)
    half = boxes[..., 2:4] / 2
    return np.concatenate([boxes[..., :2] - half, boxes[..., :2] + half], axis=-1)


def _diag(std: np.ndarray) -> np.ndarray:
    """Diagonal covariance matrices ``(..., k, k)`` from standard deviations ``(..., k)``."""
    return (std**2)[..., :, None] * np.eye(std.shape[-1])


class KalmanFilter:
    """Constant-velocity Kalman filter on ``(cx, cy, w, h)`` boxes (stateless, vectorised).

    Args:
        std_weight_position: position noise as a fraction of the box size.
        std_weight_velocity: velocity noise as a fraction of the box size.
    """

    def __init__(self, std_weight_position: float = 1.0 / 20, std_weight_velocity: float = 1.0 / 160) -> None:
        self.std_pos = std_weight_position
        self.std_vel = std_weight_velocity
        self.motion_mat = np.eye(2 * NDIM)
        self.motion_mat[:NDIM, NDIM:] = np.eye(NDIM)

    def _size(self, mean: np.ndarray) -> np.ndarray:
        """``(w, h, w, h)`` of each state, at least 1 pixel (a long prediction may shrink a box below 0,
        and a zero size would make the noise, and so the innovation covariance, singular)."""
        wh = np.maximum(np.abs(mean[..., 2:4]), 1.0)
        return np.concatenate([wh, wh], axis=-1)

    def initiate(self, measurement: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """New states from boxes ``(..., 4)`` in ``(cx, cy, w, h)``, with zero velocity.

        Returns the mean ``(..., 8)`` and covariance ``(..., 8, 8)``.
        """
        measurement = np.asarray(measurement, dtype=np.float64)
        mean = np.concatenate([measurement, np.zeros_like(measurement)], axis=-1)
        size = self._size(mean)
        std = np.concatenate([2 * self.std_pos * size, 10 * self.std_vel * size], axis=-1)
        return mean, _diag(std)

    def process_noise(self, mean: np.ndarray) -> np.ndarray:
        """Process noise covariance ``Q`` of each state ``(..., 8, 8)``."""
        size = self._size(mean)
        return _diag(np.concatenate([self.std_pos * size, self.std_vel * size], axis=-1))

    def measurement_noise(self, mean: np.ndarray, confidence: np.ndarray | None = None) -> np.ndarray:
        """Measurement noise ``R`` ``(..., 4, 4)``; scaled by ``1 - confidence`` when one is given (NSA)."""
        r = _diag(self.std_pos * self._size(mean))
        if confidence is not None:
            r = r * (1.0 - np.asarray(confidence, dtype=np.float64))[..., None, None]
        return r

    def predict(self, mean: np.ndarray, covariance: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One time step: ``x = F x``, ``P = F P F^T + Q`` (for one state or a batch)."""
        f = self.motion_mat
        q = self.process_noise(mean)
        return mean @ f.T, f @ covariance @ f.T + q

    def multi_predict(self, mean: np.ndarray, covariance: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`predict` for a batch ``(N, 8)``, ``(N, 8, 8)`` (same computation, named for clarity)."""
        return self.predict(mean, covariance)

    def project(
        self, mean: np.ndarray, covariance: np.ndarray, confidence: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Measurement-space mean ``H x`` and innovation covariance ``H P H^T + R``."""
        r = self.measurement_noise(mean, confidence)
        return mean[..., :NDIM], covariance[..., :NDIM, :NDIM] + r

    def update(
        self,
        mean: np.ndarray,
        covariance: np.ndarray,
        measurement: np.ndarray,
        confidence: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Correct states with boxes ``(..., 4)`` in ``(cx, cy, w, h)``.

        ``K = P H^T S^-1`` with ``S = H P H^T + R``; ``x = x + K (z - H x)``; ``P = P - K S K^T``.
        ``confidence`` (detection scores, ``(...)``) turns on NSA noise scaling.
        """
        proj_mean, s = self.project(mean, covariance, confidence)
        hp = covariance[..., :NDIM, :]  # H P, (..., 4, 8)
        gain = np.swapaxes(np.linalg.solve(s, hp), -1, -2)  # P H^T S^-1, S and P symmetric
        innovation = np.asarray(measurement, dtype=np.float64) - proj_mean
        new_mean = mean + (gain @ innovation[..., None])[..., 0]
        new_cov = covariance - gain @ s @ np.swapaxes(gain, -1, -2)
        return new_mean, new_cov

    def gating_distance(
        self,
        mean: np.ndarray,
        covariance: np.ndarray,
        measurements: np.ndarray,
        only_position: bool = False,
    ) -> np.ndarray:
        """Squared Mahalanobis distances between T states and D boxes -> ``(T, D)``.

        Args:
            mean: ``(T, 8)`` states.
            covariance: ``(T, 8, 8)``.
            measurements: ``(D, 4)`` boxes in ``(cx, cy, w, h)``.
            only_position: compare box centres only (compare with ``CHI2INV95[2]`` instead of ``[4]``).
        """
        proj_mean, s = self.project(mean, covariance)
        dims = slice(0, 2) if only_position else slice(0, NDIM)
        s_inv = np.linalg.inv(s[:, dims, dims])
        d = np.asarray(measurements, dtype=np.float64)[None, :, dims] - proj_mean[:, None, dims]
        return np.einsum("tdi,tij,tdj->td", d, s_inv, d)
