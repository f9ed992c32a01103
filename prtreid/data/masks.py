"""Per-frame body-part label maps stored beside a sequence (``parts/000001.png``).

Each map is a 16-bit PNG the size of the frame. A pixel holds ``track_id * PART_STRIDE + part``
for the person visible there (``part`` indexes :data:`prtreid.data.types.PARTS`, 1..5), or 0 where
no person is visible. Occlusion is therefore already resolved: cutting a box out of the map and
keeping the pixels of one track id gives that person's visible parts.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from prtreid.errors import FormatError

PART_STRIDE = 8
"""Track ids are multiplied by this before the part index is added."""

MAX_TRACK_ID = 65535 // PART_STRIDE


def encode_parts(track_ids: np.ndarray, parts: np.ndarray) -> np.ndarray:
    """Combine per-pixel track ids and part indices (0 = nobody) into one uint16 map."""
    if track_ids.max(initial=0) > MAX_TRACK_ID:
        raise ValueError(f"track ids above {MAX_TRACK_ID} do not fit a part map")
    out = track_ids.astype(np.uint16) * PART_STRIDE + parts.astype(np.uint16)
    out[parts == 0] = 0
    return out


def decode_parts(label_map: np.ndarray, track_id: int) -> np.ndarray:
    """Part indices (uint8, 0 = not this person) of one track in a label map or a crop of it."""
    lm = label_map.astype(np.int64)
    own = (lm // PART_STRIDE == track_id) & (lm > 0)
    return np.where(own, lm % PART_STRIDE, 0).astype(np.uint8)


def write_part_map(path: Path, label_map: np.ndarray) -> None:
    """Write a uint16 label map as a lossless 16-bit PNG."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), label_map.astype(np.uint16)):
        raise OSError(f"could not write part map {path}")


def read_part_map(path: Path) -> np.ndarray:
    """Read a label map written by :func:`write_part_map`."""
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise FormatError(path, None, "missing or unreadable part map")
    if img.dtype != np.uint16 or img.ndim != 2:
        raise FormatError(path, None, f"expected a 16-bit single-channel PNG, got {img.dtype} {img.shape}")
    return img
