"""A pinhole broadcast camera over the pitch and its pan/zoom trajectory.

World frame: metres, origin at the centre spot, ``x`` along the touchlines (left goal at
``x = -52.5``), ``y`` across the pitch away from the camera (near touchline ``y = -34``, far
touchline ``y = +34``), ``z`` up. The camera stands behind the near touchline at the halfway line.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

NEAR_PLANE = 0.5
"""Points closer than this (metres along the optical axis) are clipped away."""


@dataclass(frozen=True, eq=False)
class Camera:
    """One frame's camera: position, pan (yaw), tilt and focal length in pixels.

    ``yaw = 0`` looks along ``+y``; positive yaw pans toward ``+x``; positive tilt looks down.
    """

    position: np.ndarray
    yaw: float
    tilt: float
    focal: float
    width: int
    height: int

    @cached_property
    def rotation(self) -> np.ndarray:
        """World-to-camera rotation; rows are the camera's right, down and forward axes."""
        sy, cy = np.sin(self.yaw), np.cos(self.yaw)
        st, ct = np.sin(self.tilt), np.cos(self.tilt)
        forward = np.array([sy * ct, cy * ct, -st])
        right = np.array([cy, -sy, 0.0])
        down = np.cross(forward, right)
        return np.stack([right, down, forward])

    @cached_property
    def intrinsics(self) -> np.ndarray:
        """The 3x3 intrinsic matrix (principal point at the image centre)."""
        return np.array([[self.focal, 0.0, self.width / 2.0],
                         [0.0, self.focal, self.height / 2.0],
                         [0.0, 0.0, 1.0]])

    def to_camera(self, points: np.ndarray) -> np.ndarray:
        """World points (..., 3) in camera coordinates (x right, y down, z forward)."""
        return (np.asarray(points, np.float64) - self.position) @ self.rotation.T

    def project_camera(self, cam_points: np.ndarray) -> np.ndarray:
        """Pixel coordinates (..., 2) of camera-frame points (depth must be positive)."""
        z = cam_points[..., 2:3]
        return cam_points[..., :2] * (self.focal / z) + np.array([self.width / 2.0, self.height / 2.0])

    def project(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pixel coordinates (..., 2) and depths (...) of world points; depth <= 0 is behind."""
        cam = self.to_camera(points)
        depth = cam[..., 2]
        safe = cam.copy()
        safe[..., 2] = np.maximum(depth, 1e-6)
        return self.project_camera(safe), depth

    def homography_to(self, other: Camera) -> np.ndarray:
        """The 3x3 homography taking this frame's pixels to ``other``'s.

        Exact for every point when both cameras stand at one position (a broadcast camera pans,
        tilts and zooms about a fixed point, as :func:`camera_track` draws it): the true camera
        motion that camera-motion compensation estimates.
        """
        if not np.allclose(self.position, other.position):
            raise ValueError("the cameras stand at different positions: no single image homography")
        return other.intrinsics @ other.rotation @ self.rotation.T @ np.linalg.inv(self.intrinsics)

    def plane_homography(self, origin: np.ndarray, u_axis: np.ndarray, v_axis: np.ndarray) -> np.ndarray:
        """Homography from plane coordinates ``(u, v)`` (metres along the axes) to pixels."""
        r = self.rotation
        m = np.stack([r @ u_axis, r @ v_axis, r @ (np.asarray(origin, np.float64) - self.position)], axis=1)
        return self.intrinsics @ m


def clip_polygon_near(cam_points: np.ndarray, near: float = NEAR_PLANE) -> np.ndarray:
    """Clip a convex or simple polygon (N, 3) in camera coordinates to ``z >= near``."""
    out: list[np.ndarray] = []
    n = len(cam_points)
    for i in range(n):
        a, b = cam_points[i], cam_points[(i + 1) % n]
        a_in, b_in = a[2] >= near, b[2] >= near
        if a_in:
            out.append(a)
        if a_in != b_in:
            t = (near - a[2]) / (b[2] - a[2])
            out.append(a + t * (b - a))
    return np.asarray(out, np.float64).reshape(-1, 3)


@dataclass(frozen=True)
class CameraRig:
    """Where the broadcast camera stands and how it frames play (all in metres).

    Attributes:
        back: distance behind the near touchline.
        height: height above the pitch.
        min_view, max_view: range of the visible width at the aim point (the zoom).
        lag_s: time constant of the pan following the play.
    """

    back: float = 35.0
    height: float = 17.0
    min_view: float = 28.0
    max_view: float = 58.0
    lag_s: float = 0.7


def sample_rig(rng: np.random.Generator) -> CameraRig:
    """A camera placement typical of a main broadcast camera."""
    return CameraRig(back=float(rng.uniform(30.0, 40.0)), height=float(rng.uniform(15.0, 20.0)),
                     min_view=float(rng.uniform(22.0, 28.0)), max_view=float(rng.uniform(42.0, 52.0)),
                     lag_s=float(rng.uniform(0.5, 0.9)))


def camera_track(ball: np.ndarray, fps: float, width: int, height: int, rig: CameraRig,
                 rng: np.random.Generator) -> list[Camera]:
    """Cameras that follow the ball (T, 3) with lag, occasional fast pans and slow zooms.

    The aim point is a damped spring toward the ball (stiffer when far behind, which gives the
    fast pans of long balls); the visible width drifts slowly and widens while the ball flies fast.
    """
    n = len(ball)
    dt = 1.0 / fps
    t = np.arange(n) * dt
    base = rng.uniform(rig.min_view + 4.0, rig.max_view - 8.0)
    zoom = base + rng.uniform(3.0, 8.0) * np.sin(2 * np.pi * t / rng.uniform(6.0, 14.0) + rng.uniform(0, 2 * np.pi))
    ball_speed = np.r_[0.0, np.linalg.norm(np.diff(ball[:, :2], axis=0), axis=1) / dt]
    cam_x = float(rng.normal(0.0, 1.0))
    position = np.array([cam_x, -34.0 - rig.back, rig.height])
    aim = _follow(ball[:, :2], dt, rig.lag_s)
    widen = _smooth(np.clip(ball_speed - 10.0, 0.0, 15.0), dt, 1.0)
    views = np.clip(zoom + widen, rig.min_view, rig.max_view)
    shake = _smooth(rng.normal(0.0, 1.0, (n, 2)), dt, 0.3) * np.array([0.0008, 0.0005])
    cams = []
    for i in range(n):
        dx, dy = aim[i, 0] - position[0], aim[i, 1] - position[1]
        ground = np.hypot(dx, dy)
        dist = np.hypot(ground, position[2])
        yaw = np.arctan2(dx, dy) + shake[i, 0]
        # the aim point sits a little below the image centre, as operators frame play
        tilt = np.arctan2(position[2], ground) - 0.02 + shake[i, 1]
        focal = width * dist / views[i]
        cams.append(Camera(position, float(yaw), float(tilt), float(focal), width, height))
    return cams


def _follow(target: np.ndarray, dt: float, lag: float) -> np.ndarray:
    """A critically damped spring chasing ``target`` (T, 2), stiffer when far behind."""
    aim = np.empty_like(target)
    pos = _aim_target(target[0])
    vel = np.zeros(2)
    omega0 = 2.0 / lag
    for i in range(len(target)):
        goal = _aim_target(target[i])
        err = goal - pos
        omega = omega0 * (1.0 + np.clip((abs(err[0]) - 12.0) / 10.0, 0.0, 1.5))
        acc = omega**2 * err - 2.0 * omega * vel
        vel = vel + acc * dt
        speed = np.hypot(*vel)
        if speed > 30.0:
            vel *= 30.0 / speed
        pos = pos + vel * dt
        aim[i] = pos
    return aim


def _aim_target(ball_xy: np.ndarray) -> np.ndarray:
    return np.array([np.clip(ball_xy[0], -44.0, 44.0), np.clip(0.6 * ball_xy[1], -18.0, 18.0)])


def _smooth(x: np.ndarray, dt: float, tau: float) -> np.ndarray:
    """First-order low-pass filter along axis 0."""
    out = np.empty_like(x, dtype=np.float64)
    alpha = dt / (tau + dt)
    acc = x[0] * 1.0
    for i in range(len(x)):
        acc = acc + alpha * (x[i] - acc)
        out[i] = acc
    return out
