"""The stadium: mown grass, white pitch lines, goals, advertising boards and stands.

Textures live on world planes (the ground, the boards behind the far touchline, the inclined
stands) and are drawn through the camera with a homography per plane; pitch lines and goals are
world segments projected and drawn as antialiased quads whose width follows perspective.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from prtreid.data.synth.camera import NEAR_PLANE, Camera, clip_polygon_near

HALF_LENGTH, HALF_WIDTH = 52.5, 34.0
GOAL_HALF_WIDTH, GOAL_HEIGHT, GOAL_DEPTH = 3.66, 2.44, 2.0
LINE_HALF_WIDTH = 0.06
BOARD_Y, BOARD_HEIGHT = 37.5, 0.9
_SHIFT = 3


@dataclass(frozen=True, eq=False)
class TexturedPlane:
    """A texture on a world rectangle: ``origin`` is the texel (0, 0) corner, axes are unit vectors."""

    texture: np.ndarray
    origin: np.ndarray
    u_axis: np.ndarray
    v_axis: np.ndarray
    ppm: float  # texels per metre

    def corners(self) -> np.ndarray:
        """The four world corners of the rectangle."""
        h, w = self.texture.shape[:2]
        u = self.u_axis * (w / self.ppm)
        v = self.v_axis * (h / self.ppm)
        return np.stack([self.origin, self.origin + u, self.origin + u + v, self.origin + v])


@dataclass(frozen=True, eq=False)
class Stadium:
    """Everything static in a match's images."""

    planes: tuple[TexturedPlane, ...]  # drawn in order
    lines: np.ndarray  # (N, 2, 2) world segments of the pitch markings
    spots: np.ndarray  # (M, 2) penalty and centre spots
    line_color: tuple[float, float, float]
    backdrop: tuple[float, float, float]
    grass: tuple[float, float, float]


def build_stadium(rng: np.random.Generator, crowd_colors: list[tuple[float, float, float]]) -> Stadium:
    """A random stadium: grass tone and mowing pattern, boards and a crowd in the teams' colours."""
    grass_hsv = np.array([[[rng.uniform(36, 50), rng.uniform(105, 175), rng.uniform(95, 150)]]], np.uint8)
    grass = cv2.cvtColor(grass_hsv, cv2.COLOR_HSV2BGR).reshape(3).astype(np.float64)
    line_color = tuple(float(v) for v in np.clip(grass * 0.12 + 222, 0, 255))
    planes = (_stands(rng, crowd_colors), _ground(rng, grass), _boards(rng))
    backdrop = tuple(float(v) for v in rng.uniform(25, 60, 3))
    return Stadium(planes, pitch_segments(), pitch_spots(), line_color, backdrop,
                   tuple(float(v) for v in grass))


def _ground(rng: np.random.Generator, grass: np.ndarray) -> TexturedPlane:
    ppm = 8.0
    x0, x1, y0, y1 = -80.0, 80.0, -46.0, 40.0
    w, h = int((x1 - x0) * ppm), int((y1 - y0) * ppm)
    xs = x0 + (np.arange(w) + 0.5) / ppm
    ys = y0 + (np.arange(h) + 0.5) / ppm
    n_stripes = int(rng.choice([14, 16, 18, 20, 22]))
    amp = rng.uniform(0.05, 0.11)
    band_x = (np.floor((xs + HALF_LENGTH) / (2 * HALF_LENGTH / n_stripes)) % 2) * 2 - 1
    shade = np.ones((h, w)) + amp * band_x[None, :]
    if rng.random() < 0.25:  # chequered mowing
        band_y = (np.floor((ys + HALF_WIDTH) / (2 * HALF_WIDTH / int(rng.choice([8, 10, 12])))) % 2) * 2 - 1
        shade += 0.6 * amp * band_y[:, None] * band_x[None, :]
    low = cv2.resize(rng.normal(0, 1, (10, 14)).astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
    shade += 0.045 * low + rng.normal(0, 0.035, (h, w))
    tex = shade[..., None] * grass[None, None, :]
    worn = np.asarray([150.0, 175.0, 185.0]) * (grass.mean() / 150.0)
    for gx in (-HALF_LENGTH + 5.0, HALF_LENGTH - 5.0, 0.0):
        blob = np.exp(-(((xs[None, :] - gx) / 5.5) ** 2 + (ys[:, None] / 6.0) ** 2))
        tex += (rng.uniform(0.1, 0.35) * blob)[..., None] * (worn - tex)
    tex = np.clip(tex, 0, 255).astype(np.uint8)
    return TexturedPlane(tex, np.array([x0, y0, 0.0]), np.array([1.0, 0, 0]), np.array([0, 1.0, 0]), ppm)


_SYLLABLES = ("ka", "to", "ra", "vi", "sun", "mo", "zen", "fly", "bet", "pro", "max", "lo", "tek", "air", "go")


def _boards(rng: np.random.Generator) -> TexturedPlane:
    ppm = 40.0
    x0, length = -80.0, 160.0
    w, h = int(length * ppm), int(BOARD_HEIGHT * ppm)
    tex = np.zeros((h, w, 3), np.uint8)
    x = 0
    while x < w:
        pw = int(rng.uniform(6.0, 14.0) * ppm)
        bg = rng.uniform(0, 255, 3)
        if rng.random() < 0.3:
            bg *= 0.25
        fg = np.where(bg.mean() > 128, 25.0, 240.0) * np.ones(3)
        cv2.rectangle(tex, (x, 0), (x + pw, h), bg.tolist(), -1)
        word = "".join(str(rng.choice(_SYLLABLES)) for _ in range(int(rng.integers(2, 4)))).upper()
        scale = h / 30.0
        (tw, th), _ = cv2.getTextSize(word, cv2.FONT_HERSHEY_DUPLEX, scale, 2)
        for ox in range(x + 10, x + pw - tw, max(tw + 40, 1)):
            cv2.putText(tex, word, (ox, (h + th) // 2), cv2.FONT_HERSHEY_DUPLEX, scale, fg.tolist(), 2, cv2.LINE_AA)
        x += pw
    origin = np.array([x0, BOARD_Y, BOARD_HEIGHT])
    return TexturedPlane(tex, origin, np.array([1.0, 0, 0]), np.array([0, 0, -1.0]), ppm)


def _stands(rng: np.random.Generator, crowd_colors: list[tuple[float, float, float]]) -> TexturedPlane:
    ppm = 6.0
    x0, length = -110.0, 220.0
    rise = np.array([0.0, 40.0, 24.0])
    slant = float(np.linalg.norm(rise))
    w, h = int(length * ppm), int(slant * ppm)
    seat = rng.uniform(30, 120, 3)
    muted = [(35, 35, 40), (60, 60, 65), (200, 200, 205), (90, 60, 40), (120, 130, 140), (70, 100, 150),
             (100, 140, 190), (40, 50, 90)]
    palette = np.array(list(crowd_colors) * 3 + muted, np.float64)
    hw, hh = w // 2, h // 2
    pick = rng.integers(0, len(palette), (hh, hw))
    crowd = palette[pick] * rng.uniform(0.45, 0.95, (hh, hw, 1))
    occupied = rng.random((hh, hw)) < rng.uniform(0.55, 0.9)
    small = np.where(occupied[..., None], crowd, seat)
    tex = cv2.resize(small.astype(np.float32), (w, h), interpolation=cv2.INTER_NEAREST)
    rows = (np.arange(h) % max(2, int(0.8 * ppm))) == 0
    tex[rows] *= 0.55
    aisle = int(rng.uniform(15, 25) * ppm)
    for ax in range(int(rng.integers(0, aisle)), w, aisle):
        tex[:, ax:ax + int(1.2 * ppm)] = seat * 0.8
    tex[: int(2 * ppm)] = seat * 0.4  # roof shadow at the top
    tex[-int(1.0 * ppm):] = rng.uniform(20, 90, 3)  # front wall
    tex = np.clip(tex, 0, 255).astype(np.uint8)
    origin = np.array([x0, BOARD_Y + 1.5, 1.3]) + rise
    return TexturedPlane(tex, origin, np.array([1.0, 0, 0]), -rise / slant, ppm)


def pitch_segments(max_len: float = 2.0) -> np.ndarray:
    """World segments (N, 2, 2) of the pitch markings, cut into pieces of at most ``max_len``."""
    L, W = HALF_LENGTH, HALF_WIDTH
    polylines = [
        [(-L, -W), (L, -W)], [(-L, W), (L, W)], [(-L, -W), (-L, W)], [(L, -W), (L, W)], [(0, -W), (0, W)],
        _arc((0, 0), 9.15, 0, 2 * math.pi),
    ]
    for s in (-1, 1):
        for depth, half in ((16.5, 20.16), (5.5, 9.16)):
            polylines.append([(s * L, -half), (s * (L - depth), -half), (s * (L - depth), half), (s * L, half)])
        t = math.acos(5.5 / 9.15)  # the arc outside the penalty box
        start = math.pi - t if s > 0 else -t
        polylines.append(_arc((s * (L - 11.0), 0), 9.15, start, start + 2 * t))
        for cy in (-1, 1):
            a0 = math.atan2(-cy, -s)
            polylines.append(_arc((s * L, cy * W), 1.0, a0 - math.pi / 4, a0 + math.pi / 4))
    segs = []
    for pl in polylines:
        for a, b in zip(pl[:-1], pl[1:]):
            n = max(1, math.ceil(math.dist(a, b) / max_len))
            t = np.linspace(0, 1, n + 1)[:, None]
            pts = np.asarray(a) + t * (np.asarray(b) - np.asarray(a))
            segs.append(np.stack([pts[:-1], pts[1:]], axis=1))
    return np.concatenate(segs).astype(np.float64)


def _arc(c: tuple[float, float], r: float, a0: float, a1: float, n: int = 48) -> list[tuple[float, float]]:
    n = max(4, int(n * abs(a1 - a0) / (2 * math.pi)))
    return [(c[0] + r * math.cos(a), c[1] + r * math.sin(a)) for a in np.linspace(a0, a1, n + 1)]


def pitch_spots() -> np.ndarray:
    """The centre spot and both penalty spots."""
    return np.array([(0.0, 0.0), (-HALF_LENGTH + 11.0, 0.0), (HALF_LENGTH - 11.0, 0.0)])


def goal_segments() -> np.ndarray:
    """World 3D segments (N, 2, 3) of both goal frames and their nets."""
    segs = []
    for s in (-1, 1):
        gx = s * HALF_LENGTH
        g, h = GOAL_HALF_WIDTH, GOAL_HEIGHT
        segs += [((gx, -g, 0), (gx, -g, h)), ((gx, g, 0), (gx, g, h)), ((gx, -g, h), (gx, g, h))]
    return np.asarray(segs, np.float64)


def net_segments() -> np.ndarray:
    """World 3D segments (N, 2, 3) of the goal nets (back, roof and sides, as a coarse mesh)."""
    segs = []
    g, h = GOAL_HALF_WIDTH, GOAL_HEIGHT
    for s in (-1, 1):
        gx, bx = s * HALF_LENGTH, s * (HALF_LENGTH + GOAL_DEPTH)
        for y in np.linspace(-g, g, 15):
            segs += [((gx, y, h), (bx, y, h * 0.8)), ((bx, y, h * 0.8), (bx, y, 0))]
        for z in np.linspace(0, h * 0.8, 7):
            segs.append(((bx, -g, z), (bx, g, z)))
        for y in (-g, g):
            for z in np.linspace(0, h * 0.8, 5):
                segs.append(((gx, y, z * h / (h * 0.8)), (bx, y, z)))
    return np.asarray(segs, np.float64)


def draw_plane(frame: np.ndarray, cam: Camera, plane: TexturedPlane) -> None:
    """Draw a textured plane into ``frame`` (in place), clipped to the part in front of the camera."""
    cam_pts = clip_polygon_near(cam.to_camera(plane.corners()))
    if len(cam_pts) < 3:
        return
    poly = cam.project_camera(cam_pts)
    H, W = frame.shape[:2]
    x0, y0 = np.maximum(np.floor(poly.min(axis=0)).astype(int), 0)
    x1, y1 = np.minimum(np.ceil(poly.max(axis=0)).astype(int), [W, H])
    if x1 <= x0 or y1 <= y0:
        return
    hom = cam.plane_homography(plane.origin, plane.u_axis, plane.v_axis)
    hom = np.array([[1, 0, -x0], [0, 1, -y0], [0, 0, 1.0]]) @ hom @ np.diag([1 / plane.ppm, 1 / plane.ppm, 1.0])
    warped = cv2.warpPerspective(plane.texture, hom, (int(x1 - x0), int(y1 - y0)), flags=cv2.INTER_LINEAR,
                                 borderMode=cv2.BORDER_REPLICATE)
    mask = np.zeros(warped.shape[:2], np.uint8)
    pts = np.round((poly - [x0, y0]) * (1 << _SHIFT)).astype(np.int32)
    cv2.fillPoly(mask, [pts], 255, cv2.LINE_8, _SHIFT)
    cv2.copyTo(warped, mask, frame[y0:y1, x0:x1])


def draw_segments(frame: np.ndarray, cam: Camera, seg: np.ndarray, half_width: float,
                  color: tuple[float, float, float], on_ground: bool, min_px: float = 1.0) -> None:
    """Draw world segments (N, 2, 3) as antialiased quads, as wide as ``2 * half_width`` metres.

    Ground lines take their width across the segment on the ground (foreshortened); other segments
    (posts, nets) take the width facing the camera.
    """
    cam_a, cam_b = cam.to_camera(seg[:, 0]), cam.to_camera(seg[:, 1])
    keep = (cam_a[:, 2] > NEAR_PLANE) | (cam_b[:, 2] > NEAR_PLANE)
    cam_a, cam_b, seg = cam_a[keep], cam_b[keep], seg[keep]
    if not len(seg):
        return
    cam_a, cam_b = _clip_near(cam_a, cam_b), _clip_near(cam_b, cam_a)
    a, b = cam.project_camera(cam_a), cam.project_camera(cam_b)
    H, W = frame.shape[:2]
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    vis = (hi[:, 0] >= -4) & (lo[:, 0] <= W + 4) & (hi[:, 1] >= -4) & (lo[:, 1] <= H + 4)
    if not vis.any():
        return
    a, b, seg, cam_a, cam_b = a[vis], b[vis], seg[vis], cam_a[vis], cam_b[vis]
    d = b - a
    n_img = np.stack([-d[:, 1], d[:, 0]], axis=1) / np.maximum(np.linalg.norm(d, axis=1, keepdims=True), 1e-6)
    depth = np.maximum(0.5 * (cam_a[:, 2] + cam_b[:, 2]), NEAR_PLANE)
    if on_ground:
        dw = seg[:, 1] - seg[:, 0]
        n_w = np.stack([-dw[:, 1], dw[:, 0], np.zeros(len(dw))], axis=1)
        n_w *= half_width / np.maximum(np.linalg.norm(n_w, axis=1, keepdims=True), 1e-9)
        mid = seg.mean(axis=1)
        p, _ = cam.project(mid + n_w)
        q, _ = cam.project(mid - n_w)
        width = np.abs(((p - q) * n_img).sum(axis=1))
    else:
        width = 2 * half_width * cam.focal / depth
    half = (np.maximum(width, min_px) / 2)[:, None] * n_img
    quads = np.stack([a + half, b + half, b - half, a - half], axis=1)
    pts = np.round(quads * (1 << _SHIFT)).astype(np.int32)
    for quad in pts:  # one call per quad: a multi-polygon fill would leave the overlaps unfilled
        cv2.fillConvexPoly(frame, quad, color, cv2.LINE_AA, _SHIFT)


def _clip_near(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Move endpoints ``p`` behind the near plane along the segment toward ``q``."""
    out = p.copy()
    bad = p[:, 2] < NEAR_PLANE
    if bad.any():
        t = (NEAR_PLANE - p[bad, 2]) / (q[bad, 2] - p[bad, 2])
        out[bad] = p[bad] + t[:, None] * (q[bad] - p[bad])
    return out


def draw_stadium(frame: np.ndarray, cam: Camera, stadium: Stadium) -> None:
    """Backdrop, stands, grass, boards, pitch lines, spots and goals, far to near."""
    frame[:] = np.asarray(stadium.backdrop, np.uint8)
    for plane in stadium.planes:
        draw_plane(frame, cam, plane)
    lines3 = np.concatenate([stadium.lines, np.zeros(stadium.lines.shape[:2] + (1,))], axis=2)
    draw_segments(frame, cam, lines3, LINE_HALF_WIDTH, stadium.line_color, on_ground=True)
    uv, depth = cam.project(np.c_[stadium.spots, np.zeros(len(stadium.spots))])
    for (u, v), z in zip(uv, depth):
        if z > NEAR_PLANE and -5 < u < frame.shape[1] + 5 and -5 < v < frame.shape[0] + 5:
            r = max(1, int(round(0.2 * cam.focal / z)))
            cv2.circle(frame, (int(round(u)), int(round(v))), r, stadium.line_color, -1, cv2.LINE_AA)
    draw_segments(frame, cam, _NETS, 0.012, (205, 205, 205), on_ground=False, min_px=0.6)
    draw_segments(frame, cam, _GOALS, 0.06, (245, 245, 245), on_ground=False, min_px=1.2)


_GOALS = goal_segments()
_NETS = net_segments()
