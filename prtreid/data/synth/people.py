"""The articulated person: body geometry (primitives in image pixels) and its rasterisation.

:func:`body_primitives` turns a pose (gait phase, speed, facing) into a list of drawing
primitives in image coordinates; its bounding box is the ground-truth box. :func:`rasterize`
draws them into a supersampled material map, from which the colour sprite (antialiased by
block averaging), its alpha and its body-part labels (majority of each pixel's samples) are all
derived, so part labels are exactly aligned with the drawn pixels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from prtreid.data.synth.kits import Kit, Look

SHIFT = 3
"""Fixed-point bits of cv2 drawing coordinates (sub-pixel precision)."""
_ONE = 1 << SHIFT

# materials; far-side limbs use the same id plus FAR (drawn darker)
NONE, SKIN_HEAD, HAIR, SHIRT, SECOND, NUMBER, SLEEVE, SKIN_ARM, GLOVE, SHORTS, SKIN_LEG, SOCK, BOOT = range(13)
FAR = 16
_PART_OF_MATERIAL = (0, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4, 5, 0, 0, 0)
PART_OF_MATERIAL = np.array(_PART_OF_MATERIAL + _PART_OF_MATERIAL, np.uint8)
"""Body part (index into :data:`prtreid.data.types.PARTS`) of every material id."""
N_PARTS = 6
_FONT = cv2.FONT_HERSHEY_DUPLEX


@dataclass(frozen=True)
class Pose:
    """What the renderer needs to know about a person's motion in one frame.

    Attributes:
        phase: gait phase in radians (one full cycle is two steps).
        speed: ground speed in m/s (drives stride, knee bend, arm swing and lean).
        facing: +1 when the person faces image right, -1 for image left.
        profile: 0 when seen from the front or back, 1 when seen from the side.
        back_view: the back is turned to the camera (the large back number shows).
        arms_out: outward spread of the arms (goalkeepers), in body units.
    """

    phase: float
    speed: float
    facing: float
    profile: float
    back_view: bool
    arms_out: float = 0.0


@dataclass(frozen=True)
class Prim:
    """One drawing primitive in image pixels: a thick ``line``, a ``poly``, an ``ellipse``."""

    kind: str
    material: int
    pts: tuple[tuple[float, float], ...]
    size: tuple[float, float] = (0.0, 0.0)  # line: (thickness, 0); ellipse: half axes


@dataclass(frozen=True)
class Body:
    """A person laid out in one frame: primitives, jersey text, pattern and the amodal box."""

    prims: tuple[Prim, ...]
    box: tuple[float, float, float, float]  # x0, y0, x1, y1 in pixels
    px_height: float
    number: tuple[str, float, float, float] | None  # text, centre x, centre y, glyph height (px)
    pattern: str
    light: float  # -1..1, side the light comes from


def body_primitives(look: Look, kit: Kit, pose: Pose, foot: tuple[float, float], px_height: float,
                    jersey: str | None, light: float = 0.5) -> Body:
    """Lay out a person standing on image point ``foot``, ``px_height`` pixels tall."""
    c, d, b = pose.profile, pose.facing, look.build
    s = min(pose.speed, 9.0)
    walk = min(1.0, s / 0.8)
    alpha = min(0.55, 0.05 + 0.07 * s) * walk
    knee_amp = min(1.5, 0.12 + 0.17 * s) * walk
    lean = 0.012 * s * c * d
    legs = [_leg_joints(i, pose, b, alpha, knee_amp) for i in (0, 1)]
    lift = 0.035 - min(leg[2][1] for leg in legs)  # the lower foot touches the ground
    fx, fy = foot

    def P(x: float, y: float) -> tuple[float, float]:
        return (fx + x * px_height, fy - (y + lift) * px_height)

    def line(mat: int, a: tuple[float, float], z: tuple[float, float], t: float) -> Prim:
        return Prim("line", mat, (P(*a), P(*z)), (t * px_height, 0.0))

    far = FAR if c > 0.4 else 0
    prims: list[Prim] = []
    limbs = [_leg(legs[i], c, d, b, far if i == 1 else 0, line) for i in (0, 1)]
    arms = [_arm(i, pose, kit, look, alpha, lean, far if i == 1 else 0, line) for i in (0, 1)]
    prims += limbs[1] + arms[1]
    sw = (0.115 * (1 - c) + 0.07 * c) * b
    hw = (0.085 * (1 - c) + 0.06 * c) * b
    prims.append(Prim("poly", SHIRT, (P(-sw + lean, 0.815), P(sw + lean, 0.815), P(hw, 0.52), P(-hw, 0.52))))
    prims += [line(SHIRT, (lean - sw + 0.03, 0.80), (lean + sw - 0.03, 0.80), 0.06 * b)]
    prims += limbs[0]
    prims.append(Prim("poly", SHORTS, (P(-hw - 0.005, 0.55), P(hw + 0.005, 0.55), P(hw + 0.01, 0.47),
                                       P(-hw - 0.01, 0.47))))
    prims += arms[0]
    prims += _head(look, pose, lean, P, line, px_height)
    number = _number_spec(pose, jersey, lean, P, px_height)
    box = _extent(prims)
    return Body(tuple(prims), box, px_height, number, kit.pattern, light)


def _leg_joints(i: int, pose: Pose, b: float, alpha: float, knee_amp: float):
    """Hip, knee and ankle of leg ``i`` in body units (x right, y up, feet near 0, head near 1)."""
    c, d = pose.profile, pose.facing
    psi = pose.phase + math.pi * i
    sgn = 1.0 if i == 0 else -1.0
    hip = (sgn * 0.045 * b * (1.0 - 0.85 * c), 0.53)
    th1 = alpha * math.sin(psi)  # thigh swing; the knee bends most early in the swing forward
    th2 = th1 - (0.05 + knee_amp * max(0.0, math.cos(psi - 0.5)) ** 1.5)
    knee = (hip[0] + 0.245 * (math.sin(th1) * c * d + sgn * 0.02 * (1 - c)), hip[1] - 0.245 * math.cos(th1))
    ankle = (knee[0] + 0.245 * math.sin(th2) * c * d, knee[1] - 0.245 * math.cos(th2))
    return hip, knee, ankle


def _leg(leg, c: float, d: float, b: float, far: int, line) -> list[Prim]:
    hip, knee, ankle = leg
    sock_top = (knee[0] + 0.3 * (ankle[0] - knee[0]), knee[1] + 0.3 * (ankle[1] - knee[1]))
    short_end = (hip[0] + 0.45 * (knee[0] - hip[0]), hip[1] + 0.45 * (knee[1] - hip[1]))
    toe = (ankle[0] + 0.075 * d * max(c, 0.3), ankle[1] - 0.02)
    heel = (ankle[0] - 0.02 * d * c, ankle[1] - 0.022)
    return [
        line(SKIN_LEG + far, hip, knee, 0.082 * b),
        line(SKIN_LEG + far, knee, ankle, 0.06 * b),
        line(SOCK + far, sock_top, ankle, 0.066 * b),
        line(SHORTS + far, hip, short_end, 0.1 * b),
        line(BOOT + far, heel, toe, 0.048),
    ]


def _arm(i: int, pose: Pose, kit: Kit, look: Look, alpha: float, lean: float, far: int, line) -> list[Prim]:
    c, d, b = pose.profile, pose.facing, look.build
    sgn = 1.0 if i == 0 else -1.0
    s = min(pose.speed, 9.0)
    psi = pose.phase + math.pi * i
    shoulder = (sgn * (0.105 * b * (1 - c) + 0.02 * c) + lean, 0.80)
    a1 = -0.9 * alpha * math.sin(psi)
    # the elbow bends more as the arm swings forward, as in running
    a2 = a1 + min(1.2, 0.2 + 0.1 * s) + min(0.6, 0.06 * s) * max(0.0, math.sin(-psi))
    out = sgn * (0.08 * (1 - c) + pose.arms_out)
    elbow = (shoulder[0] + 0.165 * (math.sin(a1) * c * d + out), shoulder[1] - 0.165 * math.cos(a1))
    hand = (elbow[0] + 0.15 * (math.sin(a2) * c * d + out), elbow[1] - 0.15 * math.cos(a2))
    prims = [line(SKIN_ARM + far, shoulder, elbow, 0.05 * b), line(SKIN_ARM + far, elbow, hand, 0.042 * b)]
    if kit.long_sleeves:
        prims = [line(SLEEVE + far, shoulder, elbow, 0.058 * b), line(SLEEVE + far, elbow, hand, 0.05 * b)]
    else:
        mid = (shoulder[0] + 0.55 * (elbow[0] - shoulder[0]), shoulder[1] + 0.55 * (elbow[1] - shoulder[1]))
        prims.append(line(SLEEVE + far, shoulder, mid, 0.064 * b))
    if kit.gloves is not None:
        prims.append(line(GLOVE + far, hand, hand, 0.06))
    else:
        prims.append(line(SKIN_ARM + far, hand, hand, 0.045))
    return prims


def _head(look: Look, pose: Pose, lean: float, P, line, px_height: float) -> list[Prim]:
    c = pose.profile
    hx = 1.4 * lean
    rx, ry = (0.056 + 0.008 * c) * px_height, 0.068 * px_height
    back_shift = -0.012 * pose.facing * c
    prims = [line(SKIN_HEAD, (0.9 * lean, 0.80), (hx, 0.88), 0.045)]
    if look.hair_style == "long":
        prims.append(Prim("ellipse", HAIR, (P(hx + 2 * back_shift, 0.90),), (rx * 1.2, ry * 1.15)))
    prims.append(Prim("ellipse", SKIN_HEAD, (P(hx, 0.925),), (rx, ry)))
    if look.hair_style != "bald":
        if pose.back_view:
            dy, scale_y = 0.004, 1.0
        else:
            dy, scale_y = (0.05, 0.5) if look.hair_style == "buzz" else (0.038, 0.62)
        prims.append(Prim("ellipse", HAIR, (P(hx + back_shift, 0.925 + dy),), (rx * 1.04, ry * scale_y)))
    return prims


def _number_spec(pose: Pose, jersey: str | None, lean: float, P, px_height: float):
    if jersey is None or pose.profile > 0.6:
        return None
    height = (0.11 if pose.back_view else 0.05) * px_height
    if height < 4.0:
        return None
    cx, cy = P(0.5 * lean + (0.0 if pose.back_view else 0.035), 0.70 if pose.back_view else 0.74)
    return (jersey, cx, cy, height)


def _extent(prims: list[Prim]) -> tuple[float, float, float, float]:
    x0 = y0 = math.inf
    x1 = y1 = -math.inf
    for p in prims:
        if p.kind == "line":
            r = p.size[0] / 2.0
            rx = ry = r
        elif p.kind == "ellipse":
            rx, ry = p.size
        else:
            rx = ry = 0.0
        for x, y in p.pts:
            x0, x1 = min(x0, x - rx), max(x1, x + rx)
            y0, y1 = min(y0, y - ry), max(y1, y + ry)
    return (x0, y0, x1, y1)


@dataclass(frozen=True, eq=False)
class Sprite:
    """A rasterised person: premultiplied colour, coverage and part labels, placed at (x0, y0)."""

    x0: int
    y0: int
    color: np.ndarray  # (h, w, 3) float32, premultiplied by alpha
    alpha: np.ndarray  # (h, w) float32
    parts: np.ndarray  # (h, w) uint8, 0..5


def material_colors(kit: Kit, look: Look) -> np.ndarray:
    """The (32, 3) float32 BGR colour of every material for one person."""
    lut = np.zeros((2 * FAR, 3), np.float32)
    skin = look.skin
    table = {SKIN_HEAD: skin, HAIR: look.hair, SHIRT: kit.shirt, SECOND: kit.second or kit.shirt,
             NUMBER: kit.number, SLEEVE: kit.sleeves, SKIN_ARM: skin, GLOVE: kit.gloves or skin,
             SHORTS: kit.shorts, SKIN_LEG: skin, SOCK: kit.socks, BOOT: look.boots}
    for mat, col in table.items():
        lut[mat] = col
        lut[mat + FAR] = np.asarray(col, np.float32) * 0.78
    return lut


def _supersample(px_height: float) -> int:
    return 4 if px_height < 30 else 3 if px_height < 90 else 2


def rasterize(body: Body, lut: np.ndarray) -> Sprite:
    """Draw a laid-out body into a sprite (supersampled, then block-averaged)."""
    x0, y0 = math.floor(body.box[0]) - 1, math.floor(body.box[1]) - 1
    w, h = math.ceil(body.box[2]) + 1 - x0, math.ceil(body.box[3]) + 1 - y0
    s = _supersample(body.px_height)
    mat = np.zeros((h * s, w * s), np.uint8)
    k = s * _ONE

    def fx(pt: tuple[float, float]) -> tuple[int, int]:
        return (int(round((pt[0] - x0) * k)), int(round((pt[1] - y0) * k)))

    for p in body.prims:
        if p.kind == "line":
            t = max(1, int(round(p.size[0] * s)))
            cv2.line(mat, fx(p.pts[0]), fx(p.pts[1]), p.material, t, cv2.LINE_8, SHIFT)
        elif p.kind == "poly":
            cv2.fillPoly(mat, [np.array([fx(q) for q in p.pts], np.int32)], p.material, cv2.LINE_8, SHIFT)
        else:
            axes = (max(1, int(round(p.size[0] * k))), max(1, int(round(p.size[1] * k))))
            cv2.ellipse(mat, fx(p.pts[0]), axes, 0, 0, 360, p.material, -1, cv2.LINE_8, SHIFT)
    _decorate(mat, body, x0, y0, s)
    color = cv2.resize(lut[mat], (w, h), interpolation=cv2.INTER_AREA)
    alpha = cv2.resize((mat > 0).astype(np.float32), (w, h), interpolation=cv2.INTER_AREA)
    shade = 1.0 + 0.14 * body.light * (np.linspace(-0.5, 0.5, w, dtype=np.float32))
    color *= shade[None, :, None]
    return Sprite(x0, y0, color, alpha, _majority_parts(PART_OF_MATERIAL[mat], h, w, s))


def _majority_parts(part_ss: np.ndarray, h: int, w: int, s: int) -> np.ndarray:
    """The most frequent part among each pixel's s x s samples (ties go to the lower index)."""
    blocks = part_ss.reshape(h, s, w, s).transpose(0, 2, 1, 3).reshape(h * w, s * s)
    keys = blocks.astype(np.int64) + (np.arange(h * w, dtype=np.int64) * N_PARTS)[:, None]
    counts = np.bincount(keys.ravel(), minlength=h * w * N_PARTS).reshape(h * w, N_PARTS)
    return counts.argmax(axis=1).astype(np.uint8).reshape(h, w)


def _decorate(mat: np.ndarray, body: Body, x0: int, y0: int, s: int) -> None:
    """Shirt pattern and jersey number, painted only over (near-side) shirt pixels."""
    torso = mat == SHIRT
    if body.pattern != "plain" and torso.any():
        band = max(2, int(round(0.045 * body.px_height * s)))
        idx = np.arange(mat.shape[1] if body.pattern == "stripes" else mat.shape[0])
        on = (idx // band) % 2 == 1
        sel = torso & (on[None, :] if body.pattern == "stripes" else on[:, None])
        mat[sel] = SECOND
    if body.number is None:
        return
    text, cx, cy, gh = body.number
    scale = gh * s / 21.0
    thick = max(1, int(round(scale * 2.2)))
    (tw, th), _ = cv2.getTextSize(text, _FONT, scale, thick)
    glyphs = np.zeros_like(mat)
    org = (int(round((cx - x0) * s - tw / 2)), int(round((cy - y0) * s + th / 2)))
    cv2.putText(glyphs, text, org, _FONT, scale, 1, thick, cv2.LINE_8)
    mat[(glyphs > 0) & ((mat == SHIRT) | (mat == SECOND))] = NUMBER
