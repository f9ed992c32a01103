"""Correctness checks of the data layer found in review: crop geometry, mask alignment, labels."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from prtreid.data.crops import CropConfig, build_crops, read_crop_index
from prtreid.data.masks import encode_parts, read_part_map, write_part_map
from prtreid.data.reid_dataset import ReidDataset
from prtreid.data.soccernet import write_sequence
from prtreid.data.types import MotTable, SeqInfo, Sequence

W, H = 160, 180
HEAD, TORSO = 1, 2


def _write_clip(root: Path, name: str, boxes: dict[int, tuple[int, int, int, int]], head_rows: int,
                frames: int = 2) -> None:
    """One clip, the same boxes on every frame: a white head of ``head_rows`` rows over a black torso."""
    rows = [(f, tid, *box) for f in range(1, frames + 1) for tid, box in boxes.items()]
    arr = np.array(rows, np.float64)
    gt = MotTable(arr[:, 0].astype(np.int64), arr[:, 1].astype(np.int64), arr[:, 2:6], np.ones(len(arr)))
    write_sequence(Sequence(SeqInfo(name=name, seq_length=frames, im_width=W, im_height=H), gt=gt), root)
    (root / "gameinfo.ini").write_text(
        f"[Sequence]\nname={name}\nnum_tracklets={len(boxes)}\n"
        + "".join(f"trackletID_{tid}= player team left;{tid}\n" for tid in boxes))
    image = np.full((H, W, 3), 90, np.uint8)
    tids, parts = np.zeros((H, W), np.int64), np.zeros((H, W), np.uint8)
    for tid, (x, y, w, h) in boxes.items():
        ys, xs = slice(max(y, 0), y + h), slice(max(x, 0), x + w)
        head_end = y + head_rows
        image[ys, xs], parts[ys, xs], tids[ys, xs] = 0, TORSO, tid
        if head_end > 0:
            image[max(y, 0):head_end, xs], parts[max(y, 0):head_end, xs] = 255, HEAD
    (root / "img1").mkdir(exist_ok=True)
    for f in range(1, frames + 1):
        cv2.imwrite(str(root / "img1" / f"{f:06d}.jpg"), image, [cv2.IMWRITE_JPEG_QUALITY, 100])
        write_part_map(root / "parts" / f"{f:06d}.png", encode_parts(tids, parts))


def _centre_labels(n_src: int, n_dst: int, boundary: int) -> np.ndarray:
    """Label of each resized row: that of the source row under the row's centre (head above ``boundary``)."""
    src = np.floor((np.arange(n_dst) + 0.5) * n_src / n_dst).astype(np.int64)
    return np.where(src < boundary, HEAD, TORSO)


def test_downscaled_crop_mask_follows_the_crop_pixels(tmp_path: Path) -> None:
    """A crop taller than store_height is resized by pixel area; its mask must sample the same grid."""
    _write_clip(tmp_path / "data" / "SNMOT-001", "SNMOT-001", {1: (60, 10, 40, 150)}, head_rows=31)
    build_crops(tmp_path / "data", tmp_path / "store",
                CropConfig(eval_fraction=0.0, store_height=60, min_visibility=0.0, jpeg_quality=100))
    row = read_crop_index(tmp_path / "store").iloc[0]
    mask = cv2.imread(str(tmp_path / "store" / row["mask_path"]), cv2.IMREAD_UNCHANGED)
    crop = cv2.imread(str(tmp_path / "store" / row["path"]), cv2.IMREAD_GRAYSCALE)
    assert mask.shape == crop.shape == (60, 16)
    np.testing.assert_array_equal(mask[:, 8], _centre_labels(150, 60, 31))
    bright = crop[:, 8] >= 128  # the white head covers more than half of the row's source pixels
    np.testing.assert_array_equal(bright, mask[:, 8] == HEAD)


def test_dataset_mask_follows_the_resized_image(tmp_path: Path) -> None:
    """ReidDataset.load resizes image and mask to image_size on one pixel grid."""
    _write_clip(tmp_path / "data" / "SNMOT-001", "SNMOT-001", {1: (60, 10, 21, 70)}, head_rows=14)
    build_crops(tmp_path / "data", tmp_path / "store",
                CropConfig(eval_fraction=0.0, store_height=256, min_visibility=0.0, jpeg_quality=100))
    image, mask = ReidDataset(tmp_path / "store", image_size=(256, 128), train=False).load(0)
    np.testing.assert_array_equal(mask[:, 64], _centre_labels(70, 256, 14))
    luma = image[:, 64].mean(axis=1)
    clear = np.abs(luma - 127.5) > 40  # rows away from the interpolated edge
    np.testing.assert_array_equal((luma >= 128)[clear], (mask[:, 64] == HEAD)[clear])


def test_min_height_counts_the_part_of_the_box_inside_the_frame(tmp_path: Path) -> None:
    """A box 100 px tall with 6 px inside the image gives no 6-pixel crop (min_height is 24)."""
    boxes = {1: (10, 40, 30, 100), 2: (60, -94, 30, 100), 3: (110, 174, 30, 100)}
    _write_clip(tmp_path / "data" / "SNMOT-001", "SNMOT-001", boxes, head_rows=20)
    build_crops(tmp_path / "data", tmp_path / "store", CropConfig(eval_fraction=0.0, min_visibility=0.0))
    index = read_crop_index(tmp_path / "store")
    assert set(index["track_id"]) == {1}
    for path in index["path"]:
        assert cv2.imread(str(tmp_path / "store" / path)).shape[0] >= 24


def test_part_map_round_trip_keeps_every_track(tmp_path: Path) -> None:
    """Sanity of the helper above: the written part map decodes to the boxes drawn."""
    _write_clip(tmp_path / "SNMOT-001", "SNMOT-001", {3: (10, 10, 20, 50)}, head_rows=10, frames=1)
    labels = read_part_map(tmp_path / "SNMOT-001" / "parts" / "000001.png")
    assert set(np.unique(labels).tolist()) == {0, 3 * 8 + HEAD, 3 * 8 + TORSO}

