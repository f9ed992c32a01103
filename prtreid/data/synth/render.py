"""Per-frame layout of people and ball through the camera, and compositing of the frame.

:func:`layout_frame` places every agent that can be in view (pose, primitives, amodal box,
depth); :func:`render_frame` draws the stadium, soft shadows, the people far to near (image and
part-label map together) and the ball, then the broadcast overlay.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from prtreid.data.masks import PART_STRIDE
from prtreid.data.synth.camera import Camera
from prtreid.data.synth.kits import Kit, Look
from prtreid.data.synth.motion import BALL_RADIUS
from prtreid.data.synth.people import Body, Pose, Sprite, body_primitives, material_colors, rasterize
from prtreid.data.synth.pitch import Stadium, draw_stadium

_SHIFT = 3


@dataclass(frozen=True)
class Person:
    """How one agent looks for the whole clip."""

    look: Look
    kit: Kit
    jersey: str | None  # the number printed on the shirt
    arms_out: float = 0.0


@dataclass(frozen=True)
class Placed:
    """One entity in one frame: agent index (``-1`` for the ball), its body, box and depth."""

    agent: int
    body: Body | None
    box: tuple[float, float, float, float]
    depth: float
    foot: tuple[float, float]


def layout_frame(cam: Camera, people: list[Person], pos: np.ndarray, heading: np.ndarray, speed: np.ndarray,
                 phase: np.ndarray, ball: np.ndarray, light: float) -> list[Placed]:
    """Lay out every agent (and the ball) that may be seen; boxes are amodal (occlusion ignored)."""
    n = len(people)
    heights = np.array([p.look.height_m for p in people])
    feet3 = np.c_[pos, np.zeros(n)]
    foot_uv, depth = cam.project(feet3)
    head_uv, _ = cam.project(feet3 + np.c_[np.zeros((n, 2)), heights])
    ahead_uv, _ = cam.project(feet3 + np.c_[heading, np.zeros(n)])
    right = np.array([math.cos(cam.yaw), -math.sin(cam.yaw)])
    view = pos - cam.position[:2]
    view /= np.linalg.norm(view, axis=1, keepdims=True)
    profile = np.abs(heading @ right)
    back = (heading * view).sum(axis=1) > 0.0
    placed = []
    for i in range(n):
        px_h = foot_uv[i, 1] - head_uv[i, 1]
        if depth[i] < 2.0 or px_h < 2.0 or not _may_show(foot_uv[i], px_h, cam):
            continue
        du = ahead_uv[i, 0] - foot_uv[i, 0]
        pose = Pose(phase=float(phase[i]), speed=float(speed[i]), facing=1.0 if du >= 0 else -1.0,
                    profile=float(profile[i]), back_view=bool(back[i]), arms_out=people[i].arms_out)
        foot = (float(foot_uv[i, 0]), float(foot_uv[i, 1]))
        body = body_primitives(people[i].look, people[i].kit, pose, foot, float(px_h), people[i].jersey, light)
        placed.append(Placed(i, body, body.box, float(depth[i]), foot))
    ball_place = _layout_ball(cam, ball)
    if ball_place is not None:
        placed.append(ball_place)
    return placed


def _may_show(foot: np.ndarray, px_h: float, cam: Camera) -> bool:
    return (-0.6 * px_h < foot[0] < cam.width + 0.6 * px_h) and (-0.1 * px_h < foot[1] < cam.height + 1.1 * px_h)


def _layout_ball(cam: Camera, ball: np.ndarray) -> Placed | None:
    uv, depth = cam.project(ball[None])
    if depth[0] < 2.0:
        return None
    r = BALL_RADIUS * cam.focal / depth[0]
    u, v = float(uv[0, 0]), float(uv[0, 1])
    if not (-10 < u < cam.width + 10 and -10 < v < cam.height + 10):
        return None
    ground, _ = cam.project(np.array([[ball[0], ball[1], 0.0]]))
    half = r + 1.0
    return Placed(-1, None, (u - half, v - half, u + half, v + half), float(depth[0]),
                  (float(ground[0, 0]), float(ground[0, 1])))


@dataclass(frozen=True)
class Overlay:
    """The broadcast score bug: team names, kit colours, score and the match clock."""

    names: tuple[str, str]
    colors: tuple[tuple[float, float, float], tuple[float, float, float]]
    score: tuple[int, int]
    clock_s: float


def render_frame(frame: np.ndarray, labels: np.ndarray, cam: Camera, stadium: Stadium, placed: list[Placed],
                 luts: list[np.ndarray], track_ids: dict[int, int], light: float,
                 overlay: Overlay | None) -> dict[int, tuple[int, int]]:
    """Draw one frame into ``frame`` (BGR uint8) and ``labels`` (uint16 part map), in place.

    ``track_ids`` maps the agents to label to their track ids; other agents are drawn and hide
    what is behind them in the label map, but get no label. Returns, per agent drawn, (pixels of
    its body, pixels of it still visible in the final frame).
    """
    draw_stadium(frame, cam, stadium)
    labels[:] = 0
    for p in placed:
        _shadow(frame, p, light)
    own: dict[int, int] = {}
    for p in sorted(placed, key=lambda q: -q.depth):
        if p.body is None:
            _draw_ball(frame, labels, p)
            continue
        sprite = rasterize(p.body, luts[p.agent])
        tid = track_ids.get(p.agent, 0)
        own[p.agent] = _composite(frame, labels, sprite, tid)
    if overlay is not None:
        _draw_overlay(frame, labels, overlay)
    visible = np.bincount((labels // PART_STRIDE).ravel(), minlength=max(track_ids.values(), default=0) + 1)
    return {a: (n, int(visible[track_ids[a]]) if a in track_ids else 0) for a, n in own.items()}


def person_luts(people: list[Person]) -> list[np.ndarray]:
    """Material colour tables of all agents (see :func:`material_colors`)."""
    return [material_colors(p.kit, p.look) for p in people]


def _clip_rect(x0: int, y0: int, w: int, h: int, W: int, H: int) -> tuple[int, int, int, int] | None:
    xa, ya, xb, yb = max(x0, 0), max(y0, 0), min(x0 + w, W), min(y0 + h, H)
    return (xa, ya, xb, yb) if xa < xb and ya < yb else None


def _composite(frame: np.ndarray, labels: np.ndarray, sprite: Sprite, tid: int) -> int:
    h, w = sprite.alpha.shape
    total = int((sprite.parts > 0).sum())
    rect = _clip_rect(sprite.x0, sprite.y0, w, h, frame.shape[1], frame.shape[0])
    if rect is None:
        return total
    xa, ya, xb, yb = rect
    sl = (slice(ya - sprite.y0, yb - sprite.y0), slice(xa - sprite.x0, xb - sprite.x0))
    a = sprite.alpha[sl][..., None]
    roi = frame[ya:yb, xa:xb]
    mixed = roi.astype(np.float32) * (1.0 - a) + sprite.color[sl]
    roi[:] = np.clip(mixed + 0.5, 0, 255).astype(np.uint8)
    parts = sprite.parts[sl]
    on = parts > 0
    # people without a track (not in the ground truth) still hide whoever is behind them
    labels[ya:yb, xa:xb][on] = tid * PART_STRIDE + parts[on] if tid > 0 else 0
    return total


def _shadow(frame: np.ndarray, p: Placed, light: float) -> None:
    size = p.body.px_height if p.body is not None else 4.0 * (p.box[2] - p.box[0])
    ax, ay = 0.3 * size, 0.055 * size
    if ay < 0.8:
        return
    cx, cy = p.foot[0] - light * 0.15 * size, p.foot[1] + 0.01 * size
    x0, y0 = int(cx - ax - 3), int(cy - ay - 3)
    w, h = int(2 * ax + 7), int(2 * ay + 7)
    rect = _clip_rect(x0, y0, w, h, frame.shape[1], frame.shape[0])
    if rect is None:
        return
    mask = np.zeros((h, w), np.float32)
    k = 1 << _SHIFT
    cv2.ellipse(mask, (int((cx - x0) * k), int((cy - y0) * k)), (int(ax * k), int(ay * k)), 0, 0, 360, 0.45, -1,
                cv2.LINE_AA, _SHIFT)
    mask = cv2.GaussianBlur(mask, (0, 0), max(0.6, 0.25 * ay))
    xa, ya, xb, yb = rect
    m = mask[ya - y0:yb - y0, xa - x0:xb - x0, None]
    roi = frame[ya:yb, xa:xb]
    roi[:] = (roi.astype(np.float32) * (1.0 - m)).astype(np.uint8)


def _draw_ball(frame: np.ndarray, labels: np.ndarray, p: Placed) -> None:
    k = 1 << _SHIFT
    cx, cy = (p.box[0] + p.box[2]) / 2, (p.box[1] + p.box[3]) / 2
    r = (p.box[2] - p.box[0]) / 2 - 1.0
    centre = (int(round(cx * k)), int(round(cy * k)))
    rad = max(k // 2, int(round(r * k)))
    cv2.circle(frame, centre, rad, (232, 236, 236), -1, cv2.LINE_AA, _SHIFT)
    if r >= 2.5:
        cv2.circle(frame, (int(round((cx + 0.3 * r) * k)), int(round((cy - 0.2 * r) * k))), int(0.35 * r * k),
                   (50, 50, 50), -1, cv2.LINE_AA, _SHIFT)
    cv2.circle(labels, centre, rad, 0, -1, cv2.LINE_8, _SHIFT)


def _draw_overlay(frame: np.ndarray, labels: np.ndarray, ov: Overlay) -> None:
    """Score bug at the top left: colour chip, ``AAA 1-0 BBB``, colour chip, match clock."""
    H, W = frame.shape[:2]
    x0, y0 = int(0.03 * W), int(0.04 * H)
    bh = max(10, int(0.045 * H))
    font, scale = cv2.FONT_HERSHEY_SIMPLEX, bh / 40.0
    thick = max(1, int(round(2 * scale)))
    clock = f"{int(ov.clock_s // 60):02d}:{int(ov.clock_s % 60):02d}"
    pieces = [f"{ov.names[0]} {ov.score[0]}-{ov.score[1]} {ov.names[1]}", clock]
    widths = [cv2.getTextSize(t, font, scale, thick)[0][0] for t in pieces]
    chip, pad = max(2, bh // 5), max(3, bh // 4)
    bw = 2 * chip + sum(widths) + 4 * pad
    cv2.rectangle(frame, (x0, y0), (x0 + bw, y0 + bh), (40, 25, 20), -1)
    cv2.rectangle(frame, (x0, y0), (x0 + chip, y0 + bh), ov.colors[0], -1)
    x = x0 + chip + pad
    baseline = y0 + int(0.72 * bh)
    cv2.putText(frame, pieces[0], (x, baseline), font, scale, (235, 235, 235), thick, cv2.LINE_AA)
    x += widths[0] + pad
    cv2.rectangle(frame, (x, y0), (x + chip, y0 + bh), ov.colors[1], -1)
    x += chip + pad
    cv2.putText(frame, pieces[1], (x, baseline), font, scale, (235, 235, 235), thick, cv2.LINE_AA)
    labels[y0:y0 + bh + 1, x0:x0 + bw + 1] = 0
