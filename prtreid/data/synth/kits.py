"""Kits and the look of each person: colours, patterns, skin, hair, height and build.

Colours are BGR tuples of floats in 0..255 (OpenCV order). Distances between colours are
measured in CIELAB, so "close kits" means perceptually close, as on a real broadcast.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

Color = tuple[float, float, float]

TEAM_COLORS: dict[str, Color] = {
    "red": (40, 30, 200), "claret": (60, 30, 120), "orange": (20, 120, 240), "yellow": (30, 210, 240),
    "green": (60, 140, 30), "sky": (230, 180, 110), "blue": (170, 70, 20), "navy": (80, 35, 20),
    "purple": (130, 40, 100), "white": (240, 240, 240), "black": (35, 30, 30), "grey": (150, 150, 150),
    "maroon": (40, 20, 90), "teal": (130, 130, 20), "pink": (180, 120, 240), "lime": (60, 230, 170),
}
REFEREE_COLORS: dict[str, Color] = {
    "black": (30, 28, 28), "yellow": (40, 230, 245), "fluo green": (70, 240, 160), "red": (40, 40, 220),
    "pink": (170, 90, 240), "light blue": (235, 200, 120), "dark grey": (75, 75, 75),
}
OTHER_COLORS: dict[str, Color] = {
    "bib orange": (20, 140, 255), "bib yellow": (40, 235, 245), "bib green": (80, 245, 150),
    "tracksuit": (60, 45, 40), "staff grey": (110, 110, 115), "steward": (30, 190, 240),
}
SKIN_TONES: tuple[Color, ...] = (
    (165, 195, 235), (140, 175, 225), (120, 160, 210), (100, 140, 195), (80, 115, 170),
    (60, 90, 140), (45, 65, 105), (35, 50, 80),
)
HAIR_COLORS: tuple[Color, ...] = (
    (20, 20, 25), (25, 35, 50), (30, 50, 85), (50, 85, 130), (90, 160, 210), (40, 60, 140), (140, 140, 145),
)
BOOT_COLORS: tuple[Color, ...] = ((25, 25, 25), (235, 235, 235), (30, 200, 240), (200, 80, 30), (60, 60, 220))


@dataclass(frozen=True)
class Kit:
    """Clothing colours of a team, a goalkeeper, the referees or a staff member.

    Attributes:
        shirt, sleeves, shorts, socks: main colours.
        number: colour of the jersey number.
        pattern: ``"plain"``, ``"stripes"`` (vertical) or ``"hoops"`` (horizontal).
        second: the second colour of a patterned shirt.
        long_sleeves: sleeves down to the wrist.
        gloves: colour of goalkeeper gloves, or ``None``.
    """

    shirt: Color
    sleeves: Color
    shorts: Color
    socks: Color
    number: Color
    pattern: str = "plain"
    second: Color | None = None
    long_sleeves: bool = False
    gloves: Color | None = None


@dataclass(frozen=True)
class Look:
    """Everything that makes one person look like themself (kit aside)."""

    skin: Color
    hair: Color
    hair_style: str  # "short", "long", "bald", "buzz"
    boots: Color
    height_m: float
    build: float  # width factor, about 1


def lab(color: Color) -> np.ndarray:
    """CIELAB coordinates (L in 0..100) of a BGR colour."""
    px = np.asarray(color, np.float32).reshape(1, 1, 3) / 255.0
    return cv2.cvtColor(px, cv2.COLOR_BGR2LAB).reshape(3).astype(np.float64)


def color_distance(a: Color, b: Color) -> float:
    """Euclidean CIELAB distance (about 2 is just noticeable, above 40 is clearly different)."""
    return float(np.linalg.norm(lab(a) - lab(b)))


def _jitter(color: Color, rng: np.random.Generator, amount: float = 12.0) -> Color:
    c = np.clip(np.asarray(color, np.float64) + rng.normal(0.0, amount, 3), 0, 255)
    return (float(c[0]), float(c[1]), float(c[2]))


def _close_variant(color: Color, rng: np.random.Generator) -> Color:
    """A colour 10 to 22 CIELAB units away: a second shade of the same kit colour."""
    base = np.asarray(color, np.float64)
    for _ in range(200):
        direction = rng.normal(0.0, 1.0, 3)
        cand = np.clip(base + direction / np.linalg.norm(direction) * rng.uniform(15.0, 45.0), 0, 255)
        cand_t = (float(cand[0]), float(cand[1]), float(cand[2]))
        if 10.0 <= color_distance(color, cand_t) <= 22.0:
            return cand_t
    return _jitter(color, rng, 10.0)


def _pick_distinct(palette: dict[str, Color], avoid: list[Color], rng: np.random.Generator,
                   min_dist: float) -> Color:
    """A palette colour at least ``min_dist`` from every colour in ``avoid`` (the farthest if none is)."""
    names = list(palette)
    order = rng.permutation(len(names))
    best, best_d = palette[names[order[0]]], -1.0
    for i in order:
        cand = palette[names[i]]
        d = min((color_distance(cand, a) for a in avoid), default=1e9)
        if d >= min_dist:
            return _jitter(cand, rng, 6.0)
        if d > best_d:
            best, best_d = cand, d
    return best


def _contrast(color: Color) -> Color:
    return (20.0, 20.0, 20.0) if lab(color)[0] > 60 else (245.0, 245.0, 245.0)


def _team_kit(shirt: Color, rng: np.random.Generator) -> Kit:
    shorts_choice = rng.integers(4)
    shorts = [shirt, (240.0, 240.0, 240.0), (30.0, 30.0, 30.0), _jitter(shirt, rng, 30.0)][shorts_choice]
    socks = shorts if rng.random() < 0.5 else shirt
    pattern = str(rng.choice(["plain", "plain", "plain", "stripes", "hoops"]))
    second = _pick_distinct(TEAM_COLORS, [shirt], rng, 45.0) if pattern != "plain" else None
    sleeves = shirt if rng.random() < 0.8 else (second or _jitter(shirt, rng, 40.0))
    return Kit(shirt=shirt, sleeves=sleeves, shorts=shorts, socks=socks, number=_contrast(shirt),
               pattern=pattern, second=second, long_sleeves=bool(rng.random() < 0.2))


_GLOVE_COLORS: tuple[Color, ...] = ((230, 230, 230), (40, 200, 240), (30, 30, 30))


def _plain_kit(shirt: Color, rng: np.random.Generator, gloves: bool = False) -> Kit:
    shorts = shirt if rng.random() < 0.5 else (30.0, 30.0, 30.0)
    gl = _jitter(_GLOVE_COLORS[int(rng.integers(len(_GLOVE_COLORS)))], rng, 8.0) if gloves else None
    return Kit(shirt=shirt, sleeves=shirt, shorts=shorts, socks=shorts if rng.random() < 0.5 else shirt,
               number=_contrast(shirt), long_sleeves=bool(gloves and rng.random() < 0.7), gloves=gl)


_BLACK: Color = (30.0, 28.0, 28.0)


def _referee_kit(shirt: Color, rng: np.random.Generator) -> Kit:
    """Referees' convention: a shirt in the referees' palette over black shorts and black socks."""
    return Kit(shirt=shirt, sleeves=shirt, shorts=_jitter(_BLACK, rng, 4.0), socks=_jitter(_BLACK, rng, 4.0),
               number=_contrast(shirt), long_sleeves=bool(rng.random() < 0.3))


@dataclass(frozen=True)
class MatchKits:
    """The kits of one match."""

    teams: tuple[Kit, Kit]
    goalkeepers: tuple[Kit, Kit]
    referee: Kit
    close: bool


def sample_match_kits(rng: np.random.Generator, close_prob: float) -> MatchKits:
    """Two team kits (close in colour with probability ``close_prob``), keepers and referees.

    Keepers differ from both teams, from each other and from the referees; referees differ from
    both teams.
    """
    names = list(TEAM_COLORS)
    first = _jitter(TEAM_COLORS[names[int(rng.integers(len(names)))]], rng, 8.0)
    close = bool(rng.random() < close_prob)
    second = _close_variant(first, rng) if close else _pick_distinct(TEAM_COLORS, [first], rng, 50.0)
    teams = (_team_kit(first, rng), _team_kit(second, rng))
    shirts = [first, second]
    ref = _referee_kit(_pick_distinct(REFEREE_COLORS, shirts, rng, 40.0), rng)
    gk1 = _pick_distinct(TEAM_COLORS | REFEREE_COLORS, shirts + [ref.shirt], rng, 40.0)
    gk2 = _pick_distinct(TEAM_COLORS | REFEREE_COLORS, shirts + [ref.shirt, gk1], rng, 40.0)
    return MatchKits(teams=teams, goalkeepers=(_plain_kit(gk1, rng, True), _plain_kit(gk2, rng, True)),
                     referee=ref, close=close)


def other_kit(rng: np.random.Generator) -> Kit:
    """Clothes of a staff member, steward or ball boy."""
    names = list(OTHER_COLORS)
    shirt = _jitter(OTHER_COLORS[names[int(rng.integers(len(names)))]], rng, 8.0)
    k = _plain_kit(shirt, rng)
    return Kit(shirt=k.shirt, sleeves=k.sleeves, shorts=(40.0, 35.0, 35.0), socks=(40.0, 35.0, 35.0),
               number=k.number, long_sleeves=True)


def sample_look(rng: np.random.Generator, mean_height: float = 1.82) -> Look:
    """A random person: skin and hair tone, hairstyle, boots, height and build."""
    style = str(rng.choice(["short", "short", "short", "long", "buzz", "bald"]))
    return Look(skin=_jitter(SKIN_TONES[int(rng.integers(len(SKIN_TONES)))], rng, 5.0),
                hair=_jitter(HAIR_COLORS[int(rng.integers(len(HAIR_COLORS)))], rng, 5.0),
                hair_style=style, boots=BOOT_COLORS[int(rng.integers(len(BOOT_COLORS)))],
                height_m=float(np.clip(rng.normal(mean_height, 0.06), 1.62, 2.0)),
                build=float(np.clip(rng.normal(1.0, 0.06), 0.85, 1.18)))
