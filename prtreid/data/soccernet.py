"""Read and write SoccerNet-Tracking sequence folders.

Layout of one sequence (``SNMOT-060/``)::

    seqinfo.ini        [Sequence] name, imDir, frameRate, seqLength, imWidth, imHeight, imExt
    gameinfo.ini       [Sequence] gameID, ..., num_tracklets, trackletID_N= <label>
    gt/gt.txt          frame, id, left, top, width, height, conf, x, y, z   (1-based frames)
    det/det.txt        the same columns, id -1
    img1/000001.jpg    frames

Labels of ``trackletID_N`` lines come in these forms (all seen in the public data)::

    player team left;10      goalkeeper team right;X      goalkeepers team left;y
    referee;main             referee;side top             ball;1            other;...

Every malformed input raises :class:`prtreid.errors.FormatError` naming the file and line.
The Game State Reconstruction JSON format is read by :mod:`prtreid.data.gamestate`.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from prtreid.data.gamestate import read_gamestate
from prtreid.data.types import (ROLES, TEAMS, MotTable, SeqInfo, Sequence, TrackInfo, image_dir_problem,
                                image_ext_problem)
from prtreid.errors import FormatError
from prtreid.storage import atomic_write_text, is_temp_name, name_problem

SEQINFO = "seqinfo.ini"
GAMEINFO = "gameinfo.ini"
GT_FILE = "gt/gt.txt"
DET_FILE = "det/det.txt"

_ROLE_ALIASES = {r: r for r in ROLES} | {r + "s": r for r in ROLES}
_GAME_KEY_ORDER = ("name", "gameID", "actionPosition", "actionClass", "visibility",
                   "clipStart", "clipStop", "gameTimeStart", "gameTimeStop")


# --- ini files ---------------------------------------------------------------------------------

def read_ini(path: Path) -> dict[str, tuple[str, int]]:
    """Read the ``[Sequence]`` section of an ini file as ``key -> (value, line number)``.

    Hand-parsed because :mod:`configparser` lowercases keys and forgets line numbers.
    """
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise FormatError(path, None, "file not found") from None
    except UnicodeDecodeError as exc:
        raise FormatError(path, None, f"not UTF-8 text ({exc.reason})") from None
    entries: dict[str, tuple[str, int]] = {}
    section = None
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            if not line.endswith("]"):
                raise FormatError(path, lineno, f"unterminated section header {line!r}")
            section = line[1:-1].strip()
            continue
        if "=" not in line:
            raise FormatError(path, lineno, f"expected key=value, got {line!r}")
        if section != "Sequence":
            raise FormatError(path, lineno, "key outside the [Sequence] section")
        key, value = line.split("=", 1)
        key = key.strip()
        if key in entries:
            raise FormatError(path, lineno, f"duplicate key {key!r} (first on line {entries[key][1]})")
        entries[key] = (value.strip(), lineno)
    if section is None:
        raise FormatError(path, None, "no [Sequence] section")
    return entries


def _write_ini(path: Path, items: list[tuple[str, str]]) -> None:
    body = "[Sequence]\n" + "".join(f"{k}={v}\n" for k, v in items)
    atomic_write_text(path, body)


# --- seqinfo.ini -------------------------------------------------------------------------------

def read_seqinfo(path: Path) -> SeqInfo:
    """Parse ``seqinfo.ini``; ``name`` and the image size and length are required."""
    entries = read_ini(path)

    def get(key: str, kind: type, default: object = None) -> object:
        if key not in entries:
            if default is None:
                raise FormatError(path, key, f"missing required key {key!r}")
            return default
        value, lineno = entries[key]
        try:
            parsed = kind(value)
        except ValueError:
            raise FormatError(path, lineno, f"{key}={value!r} is not a valid {kind.__name__}") from None
        if kind in (int, float) and not (math.isfinite(parsed) and parsed > 0):
            raise FormatError(path, lineno, f"{key}={value!r} must be a positive number")
        return parsed

    im_ext = str(get("imExt", str, ".jpg"))
    im_ext = im_ext if im_ext.startswith(".") else "." + im_ext
    im_dir = str(get("imDir", str, "img1"))
    name = str(get("name", str))
    for key, problem in (("name", name_problem(name, "sequence name")), ("imDir", image_dir_problem(im_dir)),
                         ("imExt", image_ext_problem(im_ext))):
        if problem:
            raise FormatError(path, entries[key][1], problem)
    return SeqInfo(
        name=name,
        seq_length=int(get("seqLength", int)),
        im_width=int(get("imWidth", int)),
        im_height=int(get("imHeight", int)),
        frame_rate=float(get("frameRate", float, 25.0)),
        im_dir=im_dir,
        im_ext=im_ext,
    )


def write_seqinfo(path: Path, info: SeqInfo) -> None:
    """Write ``seqinfo.ini`` in the SoccerNet key order."""
    rate = int(info.frame_rate) if float(info.frame_rate).is_integer() else info.frame_rate
    _write_ini(path, [
        ("name", info.name), ("imDir", info.im_dir), ("frameRate", str(rate)),
        ("seqLength", str(info.seq_length)), ("imWidth", str(info.im_width)),
        ("imHeight", str(info.im_height)), ("imExt", info.im_ext),
    ])


# --- gameinfo.ini ------------------------------------------------------------------------------

def parse_track_label(text: str) -> tuple[str, str | None, str | None, str | None]:
    """Split a tracklet label into ``(role, team, jersey, detail)``.

    ``"player team left;10"`` -> ``("player", "left", "10", None)``;
    ``"referee;side top"`` -> ``("referee", None, None, "side top")``;
    ``"ball;1"`` -> ``("ball", None, None, "1")``.

    Raises:
        ValueError: unknown role or team.
    """
    head, _, tail = text.strip().partition(";")
    words = head.split()
    if not words:
        raise ValueError(f"empty tracklet label {text!r}")
    role = _ROLE_ALIASES.get(words[0].lower())
    if role is None:
        raise ValueError(f"unknown role {words[0]!r} in {text!r} (known: {', '.join(ROLES)})")
    team = None
    rest = words[1:]
    if rest and rest[0].lower() == "team":
        if len(rest) < 2 or rest[1].lower() not in TEAMS:
            raise ValueError(f"expected 'team left' or 'team right' in {text!r}")
        team, rest = rest[1].lower(), rest[2:]
    if rest:
        raise ValueError(f"unexpected words {' '.join(rest)!r} in {text!r}")
    tail = tail.strip() or None
    if role in ("player", "goalkeeper"):
        return role, team, tail, None
    return role, team, None, tail


def format_track_label(track: TrackInfo) -> str:
    """Inverse of :func:`parse_track_label` in the canonical singular form."""
    head = track.role if track.team is None else f"{track.role} team {track.team}"
    tail = track.jersey if track.role in ("player", "goalkeeper") else track.detail
    return f"{head};{tail if tail is not None else ''}"


def read_gameinfo(path: Path) -> tuple[dict[int, TrackInfo], dict[str, str]]:
    """Parse ``gameinfo.ini`` into tracks by id and the other keys (verbatim)."""
    tracks: dict[int, TrackInfo] = {}
    game: dict[str, str] = {}
    for key, (value, lineno) in read_ini(path).items():
        if not key.startswith("trackletID_"):
            game[key] = value
            continue
        suffix = key[len("trackletID_"):]
        if not suffix.isdigit():
            raise FormatError(path, lineno, f"track id in {key!r} is not an integer")
        try:
            role, team, jersey, detail = parse_track_label(value)
        except ValueError as exc:
            raise FormatError(path, lineno, str(exc)) from None
        tid = int(suffix)
        tracks[tid] = TrackInfo(track_id=tid, role=role, team=team, jersey=jersey, detail=detail)
    declared = game.get("num_tracklets")
    if declared is not None and declared.isdigit() and int(declared) < len(tracks):
        raise FormatError(path, "num_tracklets", f"declares {declared} tracklets but lists {len(tracks)}")
    return tracks, game


def write_gameinfo(path: Path, name: str, tracks: dict[int, TrackInfo], game: dict[str, str]) -> None:
    """Write ``gameinfo.ini``: known game keys first, then ``num_tracklets`` and the tracklets."""
    extra = {k: v for k, v in game.items() if k not in ("name", "num_tracklets")}
    ordered = [k for k in _GAME_KEY_ORDER if k in extra] + sorted(k for k in extra if k not in _GAME_KEY_ORDER)
    items = [("name", name)] + [(k, extra[k]) for k in ordered]
    items.append(("num_tracklets", str(len(tracks))))
    items += [(f"trackletID_{tid}", " " + format_track_label(tracks[tid])) for tid in sorted(tracks)]
    _write_ini(path, items)


# --- MOT text files ----------------------------------------------------------------------------

def read_mot(path: Path) -> MotTable:
    """Read a MOTChallenge CSV (``gt.txt``, ``det.txt`` or a tracker result).

    At least 6 columns (frame, id, left, top, width, height); the 7th, when present, is the
    confidence (1 otherwise). Frames must be >= 1, widths and heights >= 0.
    """
    rows: list[tuple[float, ...]] = []
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except FileNotFoundError:
        raise FormatError(path, None, "file not found") from None
    except UnicodeDecodeError as exc:
        raise FormatError(path, None, f"not UTF-8 text ({exc.reason})") from None
    for lineno, line in enumerate(lines, start=1):
        if line.strip():
            rows.append(_parse_mot_line(path, lineno, line))
    if not rows:
        return MotTable.empty()
    arr = np.asarray(rows, dtype=np.float64)
    return MotTable(arr[:, 0].astype(np.int64), arr[:, 1].astype(np.int64), arr[:, 2:6].copy(), arr[:, 6].copy())


def _parse_mot_line(path: Path, lineno: int, line: str) -> tuple[float, ...]:
    parts = [p.strip() for p in line.replace(" ", "").split(",")]
    if len(parts) < 6:
        raise FormatError(path, lineno, f"expected at least 6 comma-separated columns, got {len(parts)}")
    try:
        values = [float(p) for p in parts[:7]]
    except ValueError:
        raise FormatError(path, lineno, f"non-numeric value in {line.strip()!r}") from None
    if not all(np.isfinite(values)):
        raise FormatError(path, lineno, "non-finite value")
    frame, tid = values[0], values[1]
    if frame != int(frame) or frame < 1:
        raise FormatError(path, lineno, f"frame {parts[0]!r} is not a positive integer")
    if tid != int(tid):
        raise FormatError(path, lineno, f"track id {parts[1]!r} is not an integer")
    if values[4] < 0 or values[5] < 0:
        raise FormatError(path, lineno, "negative box width or height")
    conf = values[6] if len(values) > 6 else 1.0
    return frame, tid, values[2], values[3], values[4], values[5], conf


def format_mot(table: MotTable) -> str:
    """MOTChallenge text of a table, rows sorted by frame then id, 10 columns."""
    t = table.sorted()
    return "".join(
        f"{f},{i},{_num(b[0])},{_num(b[1])},{_num(b[2])},{_num(b[3])},{_num(c)},-1,-1,-1\n"
        for f, i, b, c in zip(t.frame.tolist(), t.track_id.tolist(), t.box.tolist(), t.conf.tolist())
    )


def write_mot(path: Path, table: MotTable) -> None:
    """Write a MOTChallenge text file atomically."""
    atomic_write_text(path, format_mot(table))


def _num(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else f"{v:.2f}".rstrip("0").rstrip(".")


# --- whole sequences ---------------------------------------------------------------------------

def read_sequence(root: str | Path, load_det: bool = True) -> Sequence:
    """Read a SoccerNet-Tracking sequence folder (``gameinfo.ini``, gt and det are optional).

    Raises:
        FormatError: a malformed file, or gt/det rows in frames after ``seqLength``.
    """
    root = Path(root)
    if not root.is_dir():
        raise FormatError(root, None, "not a sequence folder")
    info = read_seqinfo(root / SEQINFO)
    tracks, game = read_gameinfo(root / GAMEINFO) if (root / GAMEINFO).exists() else ({}, {})
    gt = read_mot(root / GT_FILE) if (root / GT_FILE).exists() else None
    det = read_mot(root / DET_FILE) if load_det and (root / DET_FILE).exists() else None
    for table, name in ((gt, GT_FILE), (det, DET_FILE)):
        _check_frames(table, info.seq_length, root / name)
    return Sequence(info=info, tracks=tracks, gt=gt, det=det, root=root, game=game)


def _check_frames(table: MotTable | None, seq_length: int, path: Path) -> None:
    """Refuse rows of ``table`` (read from ``path``; ``None``: no such file) in frames after ``seq_length``."""
    if table is None:
        return
    beyond = np.flatnonzero(table.frame > seq_length)
    if len(beyond):
        raise FormatError(path, None, f"row {beyond[0] + 1} has frame {table.frame[beyond[0]]} beyond "
                                      f"seqLength={seq_length} ({len(beyond)} such rows)")


def write_sequence(seq: Sequence, root: str | Path) -> Path:
    """Write the text files of a sequence (ini files, gt, det) into ``root``; images are not touched.

    ``seqinfo.ini``, which makes a folder a sequence (:func:`find_sequences`), is written last.
    """
    root = Path(root)
    if seq.tracks or seq.game:
        write_gameinfo(root / GAMEINFO, seq.info.name, seq.tracks, seq.game)
    if seq.gt is not None:
        write_mot(root / GT_FILE, seq.gt)
    if seq.det is not None:
        write_mot(root / DET_FILE, seq.det)
    write_seqinfo(root / SEQINFO, seq.info)
    seq.root = root
    return root


def check_unique_names(sequences: list[Sequence], purpose: str) -> None:
    """Refuse two sequences of one name, where names key ``purpose`` (crops, dataset images...).

    Raises:
        FormatError: naming the second folder and the first.
    """
    first: dict[str, Sequence] = {}
    for seq in sequences:
        if seq.name in first:
            raise FormatError(str(seq.root), None, f"its name {seq.name!r} is also that of {first[seq.name].root}: "
                                                   f"names key {purpose}")
        first[seq.name] = seq


def find_sequences(root: str | Path) -> list[Path]:
    """Sequence folders below ``root`` (or ``root`` itself), sorted by path.

    A folder is a sequence when it holds ``seqinfo.ini`` or ``Labels-GameState.json``. Symbolic
    links to folders are followed (a dataset assembled from links to another), each real folder once.
    Hidden ``.NAME.*.tmp`` folders, clips still being written (or left by a killed writer), are skipped.
    """
    root = Path(root)
    if not root.exists():
        raise FileNotFoundError(f"{root}: no such folder")
    markers = ("seqinfo.ini", "Labels-GameState.json")
    found, seen = [], set()
    for folder, subfolders, files in os.walk(root, followlinks=True):
        real = os.path.realpath(folder)
        if real in seen:
            subfolders.clear()
            continue
        seen.add(real)
        subfolders[:] = [s for s in subfolders if not is_temp_name(s)]  # clips still being written
        if any(m in files for m in markers):
            found.append(Path(folder))
            subfolders.clear()  # a sequence's own folders (img1, gt) hold no sequence
    return sorted(found)


def load_sequence(root: str | Path, load_det: bool = True) -> Sequence:
    """Read a sequence folder in either format (SoccerNet-Tracking or Game State JSON)."""
    root = Path(root)
    if (root / SEQINFO).exists():
        return read_sequence(root, load_det=load_det)
    return read_gamestate(root / "Labels-GameState.json")
