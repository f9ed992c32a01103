"""The re-id crop store: person crops cut from SoccerNet-format sequences.

Layout of a store (``out_dir``)::

    index.parquet                       one row per crop (written last: its presence means complete)
    summary.json                        counts of identities (see :class:`CropSummary`)
    images/<seq>/<track>_<frame>.jpg    the crop, resized to at most ``store_height`` pixels high
    masks/<seq>/<track>_<frame>.png     uint8 part labels of the crop (only for sequences with parts/)

Index columns: ``crop_id`` (its row number), ``path`` and ``mask_path`` (relative to the store;
``mask_path`` is ``None`` without a mask), ``sequence``, ``track_id``, ``identity`` (``"SEQ:ID"``),
``frame``, ``left``, ``top``, ``width``, ``height`` (the ground-truth box), ``role``, ``team``
(``"left"``/``"right"``/``None``), ``jersey``, ``visibility`` (fraction of the box's pixels that show
the person's own parts, NaN when unknown), ``has_mask`` and ``split`` (``"train"``, ``"query"`` or
``"gallery"``). The split is by sequence: held-out sequences give the query and gallery crops.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from prtreid.data.masks import decode_parts, read_part_map
from prtreid.data.soccernet import check_unique_names, find_sequences, load_sequence
from prtreid.data.types import ROLES, Sequence
from prtreid.errors import FormatError
from prtreid.storage import atomic_path, atomic_write_bytes, remove_stale_temps

log = logging.getLogger(__name__)

INDEX_FILE = "index.parquet"
CROP_FOLDER = "images"
MASK_FOLDER = "masks"
SUMMARY_FILE = "summary.json"
SPLITS: tuple[str, ...] = ("train", "query", "gallery")

ProgressFn = Callable[[int, int, str], None]
"""Called after each sequence with ``(sequences done, sequences total, sequence name)``."""


@dataclass(frozen=True)
class CropConfig:
    """Settings of the crop store and of the re-id dataset read from it.

    Attributes:
        min_height: boxes whose part inside the frame is lower than this (pixels) are skipped.
        min_visibility: crops whose visibility is known and below this are skipped.
        max_per_identity: at most this many crops per track, evenly spaced along it; 0 = no cap.
        frame_stride: only frames 1, 1 + stride, 1 + 2 * stride, ... are considered.
        roles: roles to crop (the ball is not a person).
        unknown_role: role given to tracks missing from ``gameinfo.ini``; ``None`` skips them.
        eval_fraction: fraction of sequences held out for query/gallery (seeded choice).
        query_per_identity: crops per held-out identity, evenly spread, that become queries.
        seed: seed of the sequence split.
        store_height: crops taller than this are downscaled to it (aspect kept).
        jpeg_quality: JPEG quality of stored crops.
    """

    min_height: int = 24
    min_visibility: float = 0.2
    max_per_identity: int = 60
    frame_stride: int = 1
    roles: tuple[str, ...] = ("player", "goalkeeper", "referee", "other")
    unknown_role: str | None = None
    eval_fraction: float = 0.2
    query_per_identity: int = 2
    seed: int = 0
    store_height: int = 256
    jpeg_quality: int = 95

    def __post_init__(self) -> None:
        bad_roles = [r for r in (*self.roles, self.unknown_role) if r is not None and r not in ROLES]
        checks = [
            (self.min_height >= 1, "min_height must be >= 1"),
            (0.0 <= self.min_visibility <= 1.0, "min_visibility must lie in [0, 1]"),
            (self.max_per_identity >= 0, "max_per_identity must be >= 0 (0 = no cap)"),
            (self.frame_stride >= 1, "frame_stride must be >= 1"),
            (not bad_roles, f"unknown role {bad_roles[0] if bad_roles else ''!r} (known: {ROLES})"),
            (0.0 <= self.eval_fraction <= 1.0, "eval_fraction must lie in [0, 1]"),
            (self.query_per_identity >= 0, "query_per_identity must be >= 0"),
            (self.store_height >= 8, "store_height must be >= 8"),
            (1 <= self.jpeg_quality <= 100, "jpeg_quality must lie in [1, 100]"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)


@dataclass(frozen=True)
class CropSummary:
    """What a crop store holds; all role and team numbers count identities, not crops.

    Attributes:
        sequences: sequences with at least one crop.
        identities: distinct identities (sequence + track id).
        crops: crops in the index.
        roles: identities per role (every configured role, zeros included).
        teams: identities per team, ``{"left": n, "right": n, "none": n}``.
        splits: per split, ``{"sequences": n, "identities": n, "crops": n}``.
    """

    sequences: int
    identities: int
    crops: int
    roles: dict[str, int]
    teams: dict[str, int]
    splits: dict[str, dict[str, int]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form printed by ``prtreid crops --json``."""
        return {
            "sequences": self.sequences, "identities": self.identities, "crops": self.crops,
            "roles": dict(self.roles), "teams": dict(self.teams),
            "splits": {k: dict(v) for k, v in self.splits.items()},
        }

    @classmethod
    def from_index(cls, index: pd.DataFrame, roles: tuple[str, ...] = ()) -> CropSummary:
        """Count a crop index; ``roles`` lists roles to report even when absent."""
        ids = index.drop_duplicates("identity")
        role_counts = {r: 0 for r in roles} | ids["role"].value_counts().to_dict()
        team = ids["team"].fillna("none")
        splits = {
            s: {"sequences": int(g["sequence"].nunique()), "identities": int(g["identity"].nunique()),
                "crops": len(g)}
            for s, g in ((s, index[index["split"] == s]) for s in SPLITS)
        }
        return cls(
            sequences=int(index["sequence"].nunique()), identities=len(ids), crops=len(index),
            roles={str(k): int(v) for k, v in role_counts.items()},
            teams={t: int((team == t).sum()) for t in ("left", "right", "none")},
            splits=splits,
        )


def build_crops(data_dir: str | Path, out_dir: str | Path, cfg: CropConfig | None = None,
                progress: ProgressFn | None = None) -> CropSummary:
    """Cut the crops of every sequence below ``data_dir`` into a crop store at ``out_dir``.

    Each frame image (and part map) is read once. Once every sequence has loaded (so a mistyped
    ``data_dir`` or a malformed annotation leaves an existing store as it was), the index is removed,
    and it is written last, through a temporary file, so an interrupted build never leaves an index
    that looks complete. The store's own ``images/`` and ``masks/`` folders are emptied first: a
    rebuild keeps no crop of an earlier build.

    Raises:
        FileNotFoundError: ``data_dir`` does not exist.
        FormatError: a sequence or one of its frames is malformed or missing, two sequences share
            a name, or no sequence has a ground-truth box to crop.
    """
    cfg = cfg or CropConfig()
    sequences = _load_sequences(data_dir)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(out_dir, (INDEX_FILE, SUMMARY_FILE))  # left by a build killed while it wrote them
    (out_dir / INDEX_FILE).unlink(missing_ok=True)
    for folder in (CROP_FOLDER, MASK_FOLDER):
        shutil.rmtree(out_dir / folder, ignore_errors=True)
    held_out = eval_sequences([s.name for s in sequences], cfg.eval_fraction, cfg.seed)
    frames: list[pd.DataFrame] = []
    for n, seq in enumerate(sequences, start=1):
        rows = crop_sequence(seq, out_dir, cfg)
        if len(rows):
            rows = rows.reset_index(drop=True)
            rows["split"] = _eval_splits(rows, cfg.query_per_identity) if seq.name in held_out else "train"
            frames.append(rows)
        if progress is not None:
            progress(n, len(sequences), seq.name)
    if not frames:
        raise FormatError(str(data_dir), None, "no ground-truth box to crop in any sequence (gt/gt.txt or "
                                               "Labels-GameState.json), or every box was filtered out by the crop "
                                               "settings")
    index = _finish_index(frames)
    summary = CropSummary.from_index(index, cfg.roles)
    atomic_write_bytes(out_dir / SUMMARY_FILE, json.dumps(summary.to_dict(), indent=2).encode())
    _write_parquet(out_dir / INDEX_FILE, index)
    log.info("crop store %s: %d crops of %d identities", out_dir, summary.crops, summary.identities)
    return summary


def read_crop_index(out_dir: str | Path) -> pd.DataFrame:
    """Read the index of a complete crop store (see the module docstring for its columns).

    Raises:
        FileNotFoundError: no index (the store was never built, or its build did not finish).
    """
    path = Path(out_dir) / INDEX_FILE
    if not path.exists():
        raise FileNotFoundError(f"{path}: no crop index (build the store with `prtreid crops` first)")
    return pq.read_table(path).to_pandas()


def eval_sequences(names: list[str], fraction: float, seed: int) -> set[str]:
    """The sequences held out for evaluation: a seeded choice among the sorted names.

    At least one sequence is held out when ``fraction > 0`` and one kept when ``fraction < 1``
    (given at least two sequences).
    """
    names = sorted(names)
    n = len(names)
    k = int(round(fraction * n))
    if n >= 2:
        k = min(max(k, 1 if fraction > 0 else 0), n - 1 if fraction < 1 else n)
    chosen = np.random.default_rng(seed).choice(n, size=k, replace=False) if k else []
    return {names[i] for i in chosen}


def evenly_spaced(n: int, k: int) -> np.ndarray:
    """``min(n, k)`` distinct positions in ``range(n)``, centred in ``k`` equal segments."""
    if k >= n:
        return np.arange(n)
    return np.floor((np.arange(k) + 0.5) * n / k).astype(np.int64)


def crop_sequence(seq: Sequence, out_dir: Path, cfg: CropConfig) -> pd.DataFrame:
    """Write the crops of one sequence into the store and return their index rows (no split yet)."""
    rows = _candidates(seq, cfg)
    if not len(rows):
        return rows
    has_parts = seq.root is not None and (seq.root / "parts").is_dir()
    if has_parts:
        rows["visibility"] = _visibility(seq, rows)
        rows = rows[~(rows["visibility"] < cfg.min_visibility)]
    rows = _cap_per_track(rows, cfg.max_per_identity).sort_values(["track_id", "frame"])
    written: dict[Any, tuple[str, str | None]] = {}
    for frame, group in rows.groupby("frame", sort=True):
        image = _read_frame(seq, int(frame))
        parts = read_part_map(seq.part_mask_path(int(frame))) if has_parts else None
        for row in group.itertuples():
            written[row.Index] = _write_crop(out_dir, seq.name, row, image, parts, cfg)
    paths = [written[i] for i in rows.index]
    return rows.assign(path=[p for p, _ in paths], mask_path=[m for _, m in paths], has_mask=has_parts)


def _load_sequences(data_dir: str | Path) -> list[Sequence]:
    sequences = [load_sequence(p, load_det=False) for p in find_sequences(data_dir)]
    if not sequences:
        raise FileNotFoundError(f"{data_dir}: no sequence folders (with seqinfo.ini or Labels-GameState.json)")
    check_unique_names(sequences, "the crops")
    return sorted(sequences, key=lambda s: s.name)


def _candidates(seq: Sequence, cfg: CropConfig) -> pd.DataFrame:
    """Ground-truth rows kept by stride, role, height and image bounds, with integer crop boxes."""
    if seq.gt is None or not len(seq.gt):
        return pd.DataFrame()
    gt = seq.gt.sorted()
    info = {tid: seq.tracks.get(tid) for tid in np.unique(gt.track_id).tolist()}
    role = np.array([t.role if t else cfg.unknown_role for t in map(info.get, gt.track_id.tolist())], dtype=object)
    x0 = np.clip(np.floor(gt.box[:, 0]), 0, seq.info.im_width).astype(np.int64)
    y0 = np.clip(np.floor(gt.box[:, 1]), 0, seq.info.im_height).astype(np.int64)
    x1 = np.clip(np.ceil(gt.box[:, 0] + gt.box[:, 2]), 0, seq.info.im_width).astype(np.int64)
    y1 = np.clip(np.ceil(gt.box[:, 1] + gt.box[:, 3]), 0, seq.info.im_height).astype(np.int64)
    # the height that shows in the frame: a box mostly above or below the image gives a sliver of a crop
    shown = np.minimum(gt.box[:, 1] + gt.box[:, 3], seq.info.im_height) - np.maximum(gt.box[:, 1], 0.0)
    keep = (
        ((gt.frame - 1) % cfg.frame_stride == 0)
        & np.isin(role, list(cfg.roles))
        & (shown >= cfg.min_height)
        & (x1 > x0) & (y1 > y0)
    )
    tracks = [info[t] for t in gt.track_id[keep].tolist()]
    return pd.DataFrame({
        "sequence": seq.name,
        "track_id": gt.track_id[keep],
        "identity": [f"{seq.name}:{t}" for t in gt.track_id[keep].tolist()],
        "frame": gt.frame[keep],
        "left": gt.box[keep, 0], "top": gt.box[keep, 1], "width": gt.box[keep, 2], "height": gt.box[keep, 3],
        "role": role[keep].astype(str),
        "team": [t.team if t else None for t in tracks],
        "jersey": [t.jersey if t else None for t in tracks],
        "visibility": np.nan,
        "x0": x0[keep], "y0": y0[keep], "x1": x1[keep], "y1": y1[keep],
    })


def _visibility(seq: Sequence, rows: pd.DataFrame) -> np.ndarray:
    """Fraction of each (image-clipped) box whose part-map pixels belong to the row's own track."""
    out = np.full(len(rows), np.nan)
    for frame, pos in rows.groupby("frame").indices.items():
        label_map = read_part_map(seq.part_mask_path(int(frame)))
        for p in pos:
            r = rows.iloc[p]
            own = decode_parts(label_map[r.y0:r.y1, r.x0:r.x1], int(r.track_id))
            out[p] = float(np.count_nonzero(own)) / own.size
    return out


def _cap_per_track(rows: pd.DataFrame, cap: int) -> pd.DataFrame:
    """Keep at most ``cap`` rows per track, evenly spaced in frame order (0 keeps all)."""
    if cap <= 0:
        return rows
    picks = [
        g.index[evenly_spaced(len(g), cap)]
        for _, g in rows.sort_values(["track_id", "frame"]).groupby("track_id", sort=True)
    ]
    return rows.loc[np.concatenate(picks)].sort_values(["track_id", "frame"])


def _eval_splits(rows: pd.DataFrame, per_identity: int) -> np.ndarray:
    """``"query"`` for up to ``per_identity`` evenly spread crops of each identity, else ``"gallery"``.

    An identity keeps at least one gallery crop, so an identity with a single crop has no query.
    """
    split = np.full(len(rows), "gallery", dtype=object)
    frames = rows["frame"].to_numpy()
    for pos in rows.groupby("identity").indices.values():
        pos = pos[np.argsort(frames[pos], kind="stable")]
        n_query = min(per_identity, len(pos) - 1)
        if n_query > 0:
            split[pos[evenly_spaced(len(pos), n_query)]] = "query"
    return split


def _read_frame(seq: Sequence, frame: int) -> np.ndarray:
    path = seq.frame_path(frame)
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise FormatError(path, None, f"missing or unreadable frame {frame} of {seq.name}")
    if image.shape[:2] != (seq.info.im_height, seq.info.im_width):  # boxes are clipped to the declared size
        raise FormatError(path, None, f"the frame is {image.shape[1]}x{image.shape[0]}, but the sequence "
                                      f"declares {seq.info.im_width}x{seq.info.im_height}")
    return image


def _write_crop(out_dir: Path, seq_name: str, row: Any, image: np.ndarray,
                part_map: np.ndarray | None, cfg: CropConfig) -> tuple[str, str | None]:
    """Write one crop (``row`` is an index row with its integer box) and its part mask.

    Returns the paths of the crop and of the mask (``None`` without a part map), relative to the store.
    """
    ys, xs = slice(row.y0, row.y1), slice(row.x0, row.x1)
    crop = image[ys, xs]
    h, w = crop.shape[:2]
    size = None
    if h > cfg.store_height:
        size = (max(1, round(w * cfg.store_height / h)), cfg.store_height)
        crop = cv2.resize(crop, size, interpolation=cv2.INTER_AREA)
    name = f"{int(row.track_id)}_{int(row.frame):06d}"
    rel = f"{CROP_FOLDER}/{seq_name}/{name}.jpg"
    ok, jpg = cv2.imencode(".jpg", crop, [cv2.IMWRITE_JPEG_QUALITY, cfg.jpeg_quality])
    if not ok:
        raise OSError(f"could not encode crop {rel}")
    atomic_write_bytes(out_dir / rel, jpg.tobytes())
    if part_map is None:
        return rel, None
    mask = decode_parts(part_map[ys, xs], int(row.track_id))
    if size is not None:
        mask = cv2.resize(mask, size, interpolation=cv2.INTER_NEAREST_EXACT)  # pixel centres, as INTER_AREA
    mask_rel = f"{MASK_FOLDER}/{seq_name}/{name}.png"
    ok, png = cv2.imencode(".png", mask)
    if not ok:
        raise OSError(f"could not encode mask {mask_rel}")
    atomic_write_bytes(out_dir / mask_rel, png.tobytes())
    return rel, mask_rel


_COLUMNS = ("crop_id", "path", "mask_path", "sequence", "track_id", "identity", "frame", "left", "top",
            "width", "height", "role", "team", "jersey", "visibility", "has_mask", "split")

_SCHEMA = pa.schema([
    ("crop_id", pa.int64()), ("path", pa.string()), ("mask_path", pa.string()), ("sequence", pa.string()),
    ("track_id", pa.int64()), ("identity", pa.string()), ("frame", pa.int64()), ("left", pa.float64()),
    ("top", pa.float64()), ("width", pa.float64()), ("height", pa.float64()), ("role", pa.string()),
    ("team", pa.string()), ("jersey", pa.string()), ("visibility", pa.float64()), ("has_mask", pa.bool_()),
    ("split", pa.string()),
])


def _finish_index(frames: list[pd.DataFrame]) -> pd.DataFrame:
    if not frames:
        return _SCHEMA.empty_table().to_pandas()
    index = pd.concat(frames, ignore_index=True)
    index["crop_id"] = np.arange(len(index), dtype=np.int64)
    return index[list(_COLUMNS)]


def _write_parquet(path: Path, index: pd.DataFrame) -> None:
    table = pa.Table.from_pandas(index, schema=_SCHEMA, preserve_index=False)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)
