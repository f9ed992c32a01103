"""Read SoccerNet Game State Reconstruction labels (``Labels-GameState.json``) into a Sequence.

The file holds ``info`` (sequence metadata), ``images`` (``image_id``, ``file_name``, ``width``,
``height``), ``annotations`` and ``categories``. Person and ball annotations carry ``track_id``,
``attributes`` (``role``, ``team``: left/right/null, ``jersey``) and ``bbox_image``
(``x``, ``y``, ``w``, ``h``, plus centres); pitch-line and camera annotations carry no
``bbox_image`` and are skipped. Per-frame attributes vary (a jersey is null while unreadable), so a
track's labels are the most common non-null value over its annotations.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from prtreid.data.types import (ROLES, TEAMS, MotTable, SeqInfo, Sequence, TrackInfo, image_dir_problem,
                                image_ext_problem)
from prtreid.errors import FormatError
from prtreid.storage import name_problem


def read_gamestate(path: str | Path) -> Sequence:
    """Read a ``Labels-GameState.json``; the sequence root is the file's folder."""
    path = Path(path)
    doc = _load_json(path)
    info_raw = _require(doc, "info", dict, path, "info")
    images = _require(doc, "images", list, path, "images")
    frames, width, height = _frame_numbers(images, path)
    rows, labels = _boxes_and_labels(_require(doc, "annotations", list, path, "annotations"), frames, path)
    name = str(info_raw.get("name") or path.parent.name)
    im_dir, im_ext = str(info_raw.get("im_dir") or "img1"), str(info_raw.get("im_ext") or ".jpg")
    for key, problem in (("info.name", name_problem(name, "sequence name")),
                         ("info.im_dir", image_dir_problem(im_dir)), ("info.im_ext", image_ext_problem(im_ext))):
        if problem:
            raise FormatError(path, key, problem)
    info = SeqInfo(
        name=name,
        seq_length=_number(info_raw.get("seq_length") or (max(frames.values()) if frames else 1), int, path,
                           "info.seq_length"),
        im_width=width,
        im_height=height,
        frame_rate=_number(info_raw.get("frame_rate") or 25.0, float, path, "info.frame_rate"),
        im_dir=im_dir,
        im_ext=im_ext,
    )
    tracks = {tid: _vote(tid, votes) for tid, votes in labels.items()}
    game = {k: str(v) for k, v in info_raw.items() if isinstance(v, (str, int, float)) and v is not None}
    return Sequence(info=info, tracks=tracks, gt=_table(rows), det=None, root=path.parent, game=game)


def _load_json(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FormatError(path, None, "file not found") from None
    except json.JSONDecodeError as exc:
        raise FormatError(path, exc.lineno, f"invalid JSON: {exc.msg}") from None
    except UnicodeDecodeError as exc:
        raise FormatError(path, None, f"not UTF-8 text (byte {exc.start}: {exc.reason})") from None
    if not isinstance(doc, dict):
        raise FormatError(path, None, "expected a JSON object at the top level")
    return doc


def _require(obj: dict[str, Any], key: str, kind: type | tuple[type, ...], path: Path, where: str) -> Any:
    if key not in obj:
        raise FormatError(path, where, f"missing key {key!r}")
    if not isinstance(obj[key], kind):
        expected = " or ".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))
        raise FormatError(path, where, f"expected {expected}, got {type(obj[key]).__name__}")
    return obj[key]


def _number(value: Any, kind: type[int] | type[float], path: Path, where: str) -> Any:
    """``value`` as a positive, finite ``kind`` (an integral value for ``int``), else a :class:`FormatError`."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise FormatError(path, where, f"expected a number, got {value!r}") from None
    if not (np.isfinite(number) and number > 0) or (kind is int and not number.is_integer()):
        raise FormatError(path, where, f"expected a positive {'whole ' if kind is int else ''}number, got {value!r}")
    return kind(number)


def _frame_numbers(images: list[Any], path: Path) -> tuple[dict[str, int], int, int]:
    """Map image_id -> 1-based frame number (from the file name, else the list order), and the image size."""
    frames: dict[str, int] = {}
    sizes: set[tuple[int, int]] = set()
    for i, img in enumerate(images):
        where = f"images[{i}]"
        if not isinstance(img, dict):
            raise FormatError(path, where, "expected an object")
        image_id = str(_require(img, "image_id", (str, int), path, where))
        stem = Path(str(img.get("file_name", ""))).stem
        frames[image_id] = _number(stem, int, path, f"{where}.file_name") if stem.isdigit() else i + 1
        sizes.add((_number(img.get("width"), int, path, f"{where}.width"),
                   _number(img.get("height"), int, path, f"{where}.height")))
    if len(sizes) > 1:
        raise FormatError(path, "images", f"images of different sizes {sorted(sizes)}")
    if not sizes:
        raise FormatError(path, "images", "no image")
    width, height = sizes.pop()
    return frames, width, height


def _boxes_and_labels(
    annotations: list[Any], frames: dict[str, int], path: Path
) -> tuple[list[tuple[float, ...]], dict[int, dict[str, Counter]]]:
    rows: list[tuple[float, ...]] = []
    labels: dict[int, dict[str, Counter]] = defaultdict(lambda: defaultdict(Counter))
    for i, ann in enumerate(annotations):
        where = f"annotations[{i}]"
        if not isinstance(ann, dict):
            raise FormatError(path, where, "expected an object")
        if "bbox_image" not in ann or ann.get("track_id") is None:
            continue  # pitch lines and camera parameters
        image_id = str(_require(ann, "image_id", (str, int), path, where))
        if image_id not in frames:
            raise FormatError(path, f"{where}.image_id", f"unknown image_id {image_id!r}")
        box = _bbox(ann["bbox_image"], path, f"{where}.bbox_image")
        tid = _number(ann["track_id"], int, path, f"{where}.track_id")
        rows.append((frames[image_id], tid, *box, 1.0))
        attrs = ann.get("attributes") or {}
        if not isinstance(attrs, dict):
            raise FormatError(path, f"{where}.attributes", f"expected an object, got {type(attrs).__name__}")
        _collect_attributes(attrs, labels[tid], path, f"{where}.attributes")
    return rows, labels


def _bbox(bb: Any, path: Path, where: str) -> tuple[float, float, float, float]:
    if not isinstance(bb, dict):
        raise FormatError(path, where, "expected an object")
    try:
        x, y, w, h = (float(bb[k]) for k in ("x", "y", "w", "h"))
    except KeyError as exc:
        raise FormatError(path, where, f"missing key {exc.args[0]!r}") from None
    except (TypeError, ValueError):
        raise FormatError(path, where, "non-numeric box value") from None
    if w < 0 or h < 0 or not np.isfinite([x, y, w, h]).all():
        raise FormatError(path, where, f"invalid box {x, y, w, h}")
    return x, y, w, h


def _collect_attributes(attrs: dict[str, Any], votes: dict[str, Counter], path: Path, where: str) -> None:
    role = attrs.get("role")
    if role is not None:
        if role not in ROLES:
            raise FormatError(path, f"{where}.role", f"unknown role {role!r} (known: {', '.join(ROLES)})")
        votes["role"][role] += 1
    team = attrs.get("team")
    if team is not None:
        if team not in TEAMS:
            raise FormatError(path, f"{where}.team", f"unknown team {team!r} (expected left, right or null)")
        votes["team"][team] += 1
    jersey = attrs.get("jersey")
    if jersey not in (None, ""):
        votes["jersey"][str(jersey)] += 1


def _vote(tid: int, votes: dict[str, Counter]) -> TrackInfo:
    def top(key: str) -> str | None:
        return votes[key].most_common(1)[0][0] if votes.get(key) else None

    return TrackInfo(track_id=tid, role=top("role") or "other", team=top("team"), jersey=top("jersey"))


def _table(rows: list[tuple[float, ...]]) -> MotTable:
    if not rows:
        return MotTable.empty()
    arr = np.asarray(rows, dtype=np.float64)
    return MotTable(arr[:, 0].astype(np.int64), arr[:, 1].astype(np.int64), arr[:, 2:6].copy(), arr[:, 6].copy()).sorted()
