"""Agents, formations, the start of play, and the per-frame motion arrays.

The football simulation itself is in :mod:`prtreid.data.synth.match`; people off the pitch
(staff, ball boys) move with :func:`idle_motion`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from prtreid.data.synth.pitch import HALF_LENGTH

BALL_RADIUS = 0.11


@dataclass(frozen=True)
class Agent:
    """A person on or near the pitch.

    Attributes:
        role: ``player``, ``goalkeeper``, ``referee`` or ``other``.
        team: 0 (left, attacks +x), 1 (right) or -1.
        detail: referee position (``main``, ``side top``, ``side bottom``) or what an other is.
        slot: formation slot of a player, (depth from own goal 0..1, lateral -1..1).
        top_speed: sprint speed in m/s.
    """

    role: str
    team: int = -1
    detail: str | None = None
    slot: tuple[float, float] = (0.0, 0.0)
    top_speed: float = 7.5


@dataclass(frozen=True, eq=False)
class Motion:
    """Per-frame state of all agents and the ball.

    Attributes:
        pos, vel, heading: (T, A, 2) ground position (m), velocity (m/s), unit facing direction.
        phase: (T, A) gait phase in radians.
        ball: (T, 3) ball centre.
    """

    pos: np.ndarray
    vel: np.ndarray
    heading: np.ndarray
    phase: np.ndarray
    ball: np.ndarray


FORMATIONS: dict[str, tuple[int, ...]] = {"4-4-2": (4, 4, 2), "4-3-3": (4, 3, 3), "3-5-2": (3, 5, 2),
                                          "4-5-1": (4, 5, 1), "5-3-2": (5, 3, 2)}


def formation_slots(n: int, rng: np.random.Generator) -> list[tuple[float, float]]:
    """Slots of ``n`` outfield players: a classic formation for 10, evenly split lines otherwise."""
    lines = FORMATIONS[str(rng.choice(list(FORMATIONS)))] if n == 10 else _split_lines(n)
    slots = []
    for k, count in enumerate(lines):
        depth = 0.18 + 0.5 * k / max(1, len(lines) - 1)
        for j in range(count):
            lat = 0.0 if count == 1 else -0.8 + 1.6 * j / (count - 1)
            slots.append((depth + float(rng.normal(0, 0.02)), lat * (0.6 if count <= 2 else 1.0)))
    return slots


def _split_lines(n: int) -> tuple[int, ...]:
    if n <= 3:
        return (n,)
    back = round(0.4 * n)
    mid = round(0.4 * n)
    return (back, mid, n - back - mid) if n - back - mid > 0 else (back, n - back)


@dataclass(frozen=True)
class Kickoff:
    """Where play starts: the ball position and the team in possession."""

    ball: tuple[float, float]
    team: int


def sample_start(rng: np.random.Generator, near_goal: bool) -> Kickoff:
    """A start of play, in a penalty-box area when ``near_goal`` (shots, corners, goal kicks)."""
    side = 1.0 if rng.random() < 0.5 else -1.0
    if near_goal:
        x = side * rng.uniform(HALF_LENGTH - 18.0, HALF_LENGTH - 6.0)
        y = rng.uniform(-18.0, 18.0)
    else:
        x, y = rng.uniform(-35.0, 35.0), rng.uniform(-25.0, 25.0)
    attacking = 0 if side > 0 else 1
    team = attacking if rng.random() < 0.75 else 1 - attacking
    return Kickoff((float(x), float(y)), team)


def idle_motion(homes: np.ndarray, frames: int, fps: float, rng: np.random.Generator,
                face: np.ndarray) -> Motion:
    """People off the pitch: standing near ``homes`` (K, 2), now and then walking a few metres.

    ``face`` (K, 2) is the direction they look at while standing (toward the pitch).
    """
    dt = 1.0 / fps
    k = len(homes)
    pos = homes.astype(np.float64).copy()
    vel = np.zeros((k, 2))
    goal = pos.copy()
    heading = face / np.linalg.norm(face, axis=1, keepdims=True)
    phase = rng.uniform(0, 2 * math.pi, k)
    out = {n: [] for n in ("pos", "vel", "heading", "phase")}
    for _ in range(frames):
        move = rng.random(k) < 0.15 * dt
        goal[move] = homes[move] + rng.normal(0, 2.5, (int(move.sum()), 2)) * [1.0, 0.3]
        delta = goal - pos
        dist = np.linalg.norm(delta, axis=1, keepdims=True)
        want = delta / np.maximum(dist, 1e-6) * np.minimum(1.3, dist)
        vel += np.clip(want - vel, -2.0 * dt, 2.0 * dt)
        pos += vel * dt
        speed = np.linalg.norm(vel, axis=1)
        target_h = np.where((speed > 0.3)[:, None], vel / np.maximum(speed, 1e-6)[:, None], face)
        heading += 0.1 * (target_h - heading)
        heading /= np.linalg.norm(heading, axis=1, keepdims=True)
        phase += 2 * math.pi * speed * dt / (1.4 + 0.25 * speed)
        for n, v in (("pos", pos), ("vel", vel), ("heading", heading), ("phase", phase)):
            out[n].append(v.copy())
    stacked = {n: np.stack(v) for n, v in out.items()}
    return Motion(ball=np.zeros((frames, 3)), **stacked)
