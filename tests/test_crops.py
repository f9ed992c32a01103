"""Crop store and re-id dataset on hand-made SoccerNet sequences (coloured rectangles)."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import torch
from torch.utils.data import DataLoader

from prtreid.config import from_dict
from prtreid.data.crops import (
    CropConfig, CropSummary, build_crops, eval_sequences, evenly_spaced, read_crop_index,
)
from prtreid.data.masks import encode_parts, write_part_map
from prtreid.data.reid_dataset import IMAGENET_MEAN, IMAGENET_STD, AugmentConfig, ReidDataset
from prtreid.data.sampler import MatchBatchSampler, SamplerConfig
from prtreid.data.soccernet import write_sequence
from prtreid.data.types import MotTable, SeqInfo, Sequence
from prtreid.errors import FormatError

W, H = 320, 180


@dataclass
class Person:
    tid: int
    label: str | None  # gameinfo.ini label; None = absent from gameinfo.ini
    color: tuple[int, int, int]  # BGR
    box: tuple[int, int, int, int]  # left, top, width, height at frame 1
    dx: int = 0
    frames: tuple[int, int] | None = None  # first, last (inclusive); None = whole sequence


def _part_layout(h: int, w: int) -> np.ndarray:
    """Head, torso with one arm on the left side only (not mirror-symmetric), legs, feet."""
    parts = np.zeros((h, w), np.uint8)
    rows = np.arange(h)[:, None] / h
    parts[:] = np.where(rows < 0.2, 1, np.where(rows < 0.55, 2, np.where(rows < 0.9, 4, 5)))
    parts[int(0.2 * h):int(0.55 * h), : max(1, w // 4)] = 3
    return parts


def make_sequence(root: Path, name: str, people: list[Person], length: int, parts: bool) -> None:
    rows = []
    for p in people:
        first, last = p.frames or (1, length)
        rows += [(f, p.tid, p.box[0] + p.dx * (f - 1), *p.box[1:]) for f in range(first, last + 1)]
    arr = np.array(rows, dtype=np.float64)
    gt = MotTable(arr[:, 0].astype(np.int64), arr[:, 1].astype(np.int64), arr[:, 2:6], np.ones(len(arr)))
    seq = Sequence(SeqInfo(name=name, seq_length=length, im_width=W, im_height=H), gt=gt)
    write_sequence(seq, root)
    labelled = [p for p in people if p.label is not None]
    (root / "gameinfo.ini").write_text(
        f"[Sequence]\nname={name}\ngameID=1\nnum_tracklets={len(labelled)}\n"
        + "".join(f"trackletID_{p.tid}= {p.label}\n" for p in labelled)
    )
    for f in range(1, length + 1):
        image = np.full((H, W, 3), (40, 140, 40), np.uint8)
        tids, labels = np.zeros((H, W), np.int64), np.zeros((H, W), np.uint8)
        for p in people:
            first, last = p.frames or (1, length)
            if first <= f <= last:
                x, (y, w, h) = p.box[0] + p.dx * (f - 1), p.box[1:]
                image[y:y + h, x:x + w] = p.color
                tids[y:y + h, x:x + w] = p.tid
                labels[y:y + h, x:x + w] = _part_layout(h, w)
        (root / "img1").mkdir(exist_ok=True)
        cv2.imwrite(str(root / "img1" / f"{f:06d}.jpg"), image)
        if parts:
            write_part_map(root / "parts" / f"{f:06d}.png", encode_parts(tids, labels))


PEOPLE_A = [  # generated-style: part maps, every gameinfo form
    Person(1, "player team left;10", (0, 0, 255), (20, 40, 20, 60), dx=5),
    Person(2, "player team right;7", (255, 0, 0), (200, 40, 20, 60), dx=-2),
    Person(3, "goalkeepers team left;y", (0, 255, 255), (5, 100, 18, 54)),
    Person(4, "referee;side top", (0, 0, 0), (230, 110, 16, 50)),
    Person(5, "other;coach", (255, 255, 255), (290, 100, 16, 48)),
    Person(6, "ball;1", (200, 200, 200), (100, 150, 6, 6)),
    Person(7, "player team left;3", (0, 128, 255), (260, 10, 8, 16)),  # below min_height
    Person(8, "player team right;X", (255, 0, 255), (170, 110, 20, 60)),  # hidden by 9 in frames 1-10
    Person(9, "player team right;5", (128, 0, 128), (168, 108, 24, 64), frames=(1, 10)),
]
PEOPLE_B = [  # real-style: no part maps
    Person(1, "player team left;4", (0, 0, 255), (20, 40, 20, 60)),
    Person(2, "player team left;8", (0, 0, 200), (60, 40, 20, 60), frames=(1, 3)),
    Person(3, "player team right;11", (255, 0, 0), (100, 40, 20, 60)),
    Person(4, "player team right;2", (200, 0, 0), (140, 40, 20, 60)),
    Person(5, "referee;main", (0, 0, 0), (180, 40, 20, 60)),
    Person(6, "goalkeeper team right;1", (0, 255, 255), (220, 40, 20, 60)),
]
PEOPLE_C = [
    Person(1, "player team left;9", (0, 0, 255), (20, 40, 20, 60)),
    Person(2, "player team right;9", (255, 0, 0), (100, 40, 20, 60)),
    Person(3, "referee;main", (0, 0, 0), (180, 40, 20, 60)),
    Person(4, None, (255, 255, 255), (260, 40, 20, 60)),  # not in gameinfo.ini
]
CFG = CropConfig(min_height=24, min_visibility=0.2, max_per_identity=5, eval_fraction=0.34,
                 query_per_identity=2, store_height=48, seed=1)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("soccernet")
    make_sequence(root / "train" / "SNMOT-101", "SNMOT-101", PEOPLE_A, 20, parts=True)
    make_sequence(root / "train" / "SNMOT-102", "SNMOT-102", PEOPLE_B, 12, parts=False)
    make_sequence(root / "test" / "SNMOT-103", "SNMOT-103", PEOPLE_C, 10, parts=False)
    return root


@pytest.fixture(scope="module")
def store(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("crops")
    calls = []
    build_crops(data_dir, out, CFG, progress=lambda i, n, name: calls.append((i, n, name)))
    assert calls == [(1, 3, "SNMOT-101"), (2, 3, "SNMOT-102"), (3, 3, "SNMOT-103")]
    return out


def _identity(index, key: str) -> dict:
    rows = index[index["identity"] == key]
    assert len(rows), key
    first = {k: (None if pd.isna(v) else v) for k, v in rows.iloc[0][["role", "team", "jersey"]].items()}
    return first | {"frames": rows["frame"].tolist(), "rows": rows}


def test_identities_roles_and_teams_for_every_gameinfo_form(store: Path) -> None:
    index = read_crop_index(store)
    expected = {
        "SNMOT-101:1": ("player", "left", "10"), "SNMOT-101:2": ("player", "right", "7"),
        "SNMOT-101:3": ("goalkeeper", "left", "y"), "SNMOT-101:4": ("referee", None, None),
        "SNMOT-101:5": ("other", None, None), "SNMOT-101:8": ("player", "right", "X"),
        "SNMOT-101:9": ("player", "right", "5"), "SNMOT-102:5": ("referee", None, None),
        "SNMOT-102:6": ("goalkeeper", "right", "1"), "SNMOT-103:3": ("referee", None, None),
    }
    for key, (role, team, jersey) in expected.items():
        got = _identity(index, key)
        assert (got["role"], got["team"], got["jersey"]) == (role, team, jersey), key
    # the ball, the too-small player and the track missing from gameinfo.ini are not cropped
    assert not {"SNMOT-101:6", "SNMOT-101:7", "SNMOT-103:4"} & set(index["identity"])
    assert index["identity"].nunique() == 16
    assert (index["identity"] == index["sequence"] + ":" + index["track_id"].astype(str)).all()


def test_summary_counts_identities(store: Path) -> None:
    summary = CropSummary.from_index(read_crop_index(store), CFG.roles)
    assert (summary.sequences, summary.identities) == (3, 16)
    assert summary.roles == {"player": 10, "goalkeeper": 2, "referee": 3, "other": 1}
    assert summary.teams == {"left": 5, "right": 7, "none": 4}
    assert summary.crops == len(read_crop_index(store))
    assert sum(s["crops"] for s in summary.splits.values()) == summary.crops
    assert json.loads((store / "summary.json").read_text()) == summary.to_dict()


def test_cap_picks_frames_evenly_along_the_track(store: Path) -> None:
    index = read_crop_index(store)
    assert _identity(index, "SNMOT-101:1")["frames"] == [3, 7, 11, 15, 19]  # 20 frames, cap 5
    assert _identity(index, "SNMOT-101:9")["frames"] == [2, 4, 6, 8, 10]  # 10 frames
    assert _identity(index, "SNMOT-102:2")["frames"] == [1, 2, 3]  # shorter than the cap
    assert index.groupby("identity").size().max() == 5
    assert evenly_spaced(7, 3).tolist() == [1, 3, 5] and evenly_spaced(2, 5).tolist() == [0, 1]


def test_visibility_filter_and_masks_only_with_part_maps(store: Path) -> None:
    index = read_crop_index(store)
    hidden = _identity(index, "SNMOT-101:8")
    assert min(hidden["frames"]) >= 11  # fully covered by track 9 before frame 11
    a, b = index[index["sequence"] == "SNMOT-101"], index[index["sequence"] != "SNMOT-101"]
    assert a["has_mask"].all() and np.allclose(a["visibility"], 1.0)
    assert not b["has_mask"].any() and b["visibility"].isna().all() and b["mask_path"].isna().all()
    assert not (store / "masks" / "SNMOT-102").exists()
    row = _identity(index, "SNMOT-101:1")["rows"].iloc[0]
    mask = cv2.imread(str(store / row["mask_path"]), cv2.IMREAD_UNCHANGED)
    crop = cv2.imread(str(store / row["path"]))
    assert mask.dtype == np.uint8 and mask.shape == crop.shape[:2] == (48, 16)  # 60x20 box, store height 48
    assert set(np.unique(mask)) == {1, 2, 3, 4, 5}
    assert (mask[0] == 1).all() and (mask[-1] == 5).all() and mask[20, 0] == 3 and mask[20, -1] == 2
    assert np.abs(crop.reshape(-1, 3).mean(0) - (0, 0, 255)).max() < 20  # the red player, not the pitch


def test_split_is_by_sequence_with_spread_queries(store: Path) -> None:
    index = read_crop_index(store)
    held = eval_sequences(["SNMOT-101", "SNMOT-102", "SNMOT-103"], CFG.eval_fraction, CFG.seed)
    assert held == {"SNMOT-102"} and held == eval_sequences(["SNMOT-103", "SNMOT-101", "SNMOT-102"], 0.34, CFG.seed)
    for name, rows in index.groupby("sequence"):
        splits = set(rows["split"])
        assert splits <= {"query", "gallery"} if name in held else splits == {"train"}
    for _, rows in index[index["sequence"].isin(held)].groupby("identity"):
        query = rows[rows["split"] == "query"]
        assert len(query) == min(2, len(rows) - 1)
        assert len(rows) < 5 or query["frame"].tolist() == rows["frame"].sort_values().iloc[[1, 3]].tolist()


def test_stride_and_unknown_role(data_dir: Path, tmp_path: Path) -> None:
    cfg = from_dict(CropConfig, {"frame_stride": 3, "max_per_identity": 0, "unknown_role": "other",
                                 "eval_fraction": 0.0})
    summary = build_crops(data_dir / "test", tmp_path, cfg)
    index = read_crop_index(tmp_path)
    assert sorted(index["frame"].unique()) == [1, 4, 7, 10]
    assert _identity(index, "SNMOT-103:4")["role"] == "other"
    assert (summary.identities, summary.crops, set(index["split"])) == (4, 16, {"train"})


def test_failed_rebuild_leaves_no_index(data_dir: Path, tmp_path: Path) -> None:
    src = tmp_path / "data"
    shutil.copytree(data_dir / "test", src)
    out = tmp_path / "crops"
    build_crops(src, out, CFG)
    assert len(read_crop_index(out)) > 0
    (src / "SNMOT-103" / "img1" / "000005.jpg").unlink()
    with pytest.raises(FormatError, match="000005"):
        build_crops(src, out, CropConfig(max_per_identity=0))
    with pytest.raises(FileNotFoundError):
        read_crop_index(out)
    assert not list(out.rglob("*.tmp"))


def test_frames_of_another_size_than_declared_are_an_error(data_dir: Path, tmp_path: Path) -> None:
    src = tmp_path / "data"
    shutil.copytree(data_dir / "test", src)
    frame = src / "SNMOT-103" / "img1" / "000004.jpg"
    cv2.imwrite(str(frame), cv2.resize(cv2.imread(str(frame)), None, fx=0.5, fy=0.5))
    with pytest.raises(FormatError, match=r"000004\.jpg: the frame is \d+x\d+, but the sequence declares"):
        build_crops(src, tmp_path / "crops", CropConfig(max_per_identity=0))


def test_a_run_folders_store_is_rebuilt_for_other_settings(data_dir: Path, tmp_path: Path) -> None:
    from prtreid.cli.reid import crop_store

    out = tmp_path / "crops"
    crop_store(data_dir / "test", out, CropConfig(max_per_identity=2))
    few, built = len(read_crop_index(out)), (out / "index.parquet").stat().st_mtime_ns
    crop_store(data_dir / "test", out, CropConfig(max_per_identity=2))
    assert (out / "index.parquet").stat().st_mtime_ns == built  # the same settings: reused
    crop_store(data_dir / "test", out, CropConfig(max_per_identity=0))
    assert len(read_crop_index(out)) > few  # other settings: rebuilt, not trained on the old crops


def test_rebuild_keeps_no_crop_of_an_earlier_build(data_dir: Path, tmp_path: Path) -> None:
    src = tmp_path / "data"
    shutil.copytree(data_dir, src)
    out = tmp_path / "crops"
    build_crops(src, out, CFG)
    shutil.rmtree(src / "test" / "SNMOT-103")
    build_crops(src, out, CFG)
    listed = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.suffix in (".jpg", ".png")}
    index = read_crop_index(out)
    assert listed == set(index["path"]) | set(index["mask_path"].dropna())


# --- dataset --------------------------------------------------------------------------------------

def test_dataset_items_follow_the_batch_contract(store: Path) -> None:
    ds = ReidDataset(store, "train", image_size=(64, 32))
    assert ds.train and ds.role_names == ("player", "goalkeeper", "referee", "other")
    assert len(ds) == (read_crop_index(store)["split"] == "train").sum()
    batch = next(iter(DataLoader(ds, batch_size=len(ds))))
    assert batch["image"].shape == (len(ds), 3, 64, 32) and batch["image"].dtype == torch.float32
    assert batch["parts"].shape == (len(ds), 64, 32) and batch["parts"].dtype == torch.int64
    for key in ("pid", "team", "role", "match", "frame", "index"):
        assert batch[key].dtype == torch.int64 and batch[key].shape == (len(ds),), key
    assert sorted(batch["pid"].unique().tolist()) == list(range(ds.num_ids))
    assert set(batch["team"].tolist()) <= {-1, 0, 1} and set(batch["role"].tolist()) <= set(range(4))
    assert set(batch["match"].tolist()) == set(range(ds.num_matches)) and ds.num_matches == 2
    has_mask = torch.from_numpy(ds.index["has_mask"].to_numpy(copy=True))
    assert (batch["parts"][~has_mask] == -1).all()
    assert batch["parts"][has_mask].min() >= 0 and batch["parts"][has_mask].max() <= 5
    assert (batch["index"].numpy() == ds.index["crop_id"].to_numpy()).all()
    assert -3 < batch["image"].mean() < 3 and batch["image"].std() > 0.3
    gk = torch.from_numpy(ds.index["role"].to_numpy() == "goalkeeper")
    no_team = torch.from_numpy(ds.index["team"].isna().to_numpy(copy=True))
    assert (batch["role"][gk] == 1).all() and (batch["team"][no_team] == -1).all()


def test_dataset_images_are_rgb(store: Path) -> None:
    # the red player (BGR (0, 0, 255) in the frames): red in the model's input, as the Embedder feeds it
    ds = ReidDataset(store, ("train", "query", "gallery"), image_size=(64, 32), train=False)
    item = ds[int(np.flatnonzero(ds.index["identity"].to_numpy() == "SNMOT-101:1")[0])]
    rgb = item["image"] * torch.tensor(IMAGENET_STD).view(3, 1, 1) + torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    r, g, b = rgb.mean((1, 2)).tolist()
    assert r > 0.8 and g < 0.2 and b < 0.2


def test_query_and_gallery_share_identity_numbers(store: Path) -> None:
    query, gallery = ReidDataset(store, "query"), ReidDataset(store, "gallery")
    assert not query.train and query.identity_names == gallery.identity_names
    for ds in (query, gallery):
        names = ds.index["identity"].to_numpy()
        assert all(ds.identity_names[p] == n for p, n in zip(ds.pids, names))


def test_flip_flips_image_and_mask_together(store: Path) -> None:
    plain = ReidDataset(store, "train", image_size=(64, 32), train=False)
    flip = AugmentConfig(flip_p=1.0, pad_fraction=0.0, brightness=0.0, contrast=0.0, saturation=0.0)
    flipped = ReidDataset(store, "train", image_size=(64, 32), train=True, augment=flip)
    i = int(np.flatnonzero(plain.index["has_mask"].to_numpy())[0])
    a, b = plain[i], flipped[i]
    assert not torch.equal(a["parts"], a["parts"].flip(-1))  # the layout is not mirror-symmetric
    assert torch.equal(b["parts"], a["parts"].flip(-1))
    assert torch.allclose(b["image"], a["image"].flip(-1))


def test_augmentation_pads_with_background_and_keeps_labels(store: Path) -> None:
    torch.manual_seed(0)
    aug = AugmentConfig(flip_p=0.0, pad_fraction=0.25, brightness=0.0, contrast=0.0, saturation=0.0)
    ds = ReidDataset(store, "train", image_size=(64, 32), augment=aug)
    plain = ReidDataset(store, "train", image_size=(64, 32), train=False)
    i = int(np.flatnonzero(ds.index["has_mask"].to_numpy())[0])
    shifted = [ds[i]["parts"] for _ in range(8)]
    assert any(not torch.equal(s, plain[i]["parts"]) for s in shifted)
    assert all(s.min() >= 0 and (s == 0).any() for s in shifted)  # padding is background, never -1
    assert ds[i]["pid"] == plain[i]["pid"]
    with pytest.raises(ValueError, match="hue"):
        AugmentConfig(hue=0.2)
    with pytest.raises(ValueError, match="role"):
        ReidDataset(store, "train", role_names=("player", "goalkeeper", "referee"))


def test_sampler_over_the_dataset_draws_single_match_batches(store: Path) -> None:
    ds = ReidDataset(store, "train", image_size=(32, 16), train=False)
    sampler = MatchBatchSampler.from_dataset(ds, SamplerConfig(p_ids=5, k_instances=2, min_per_team=1))
    batches = list(DataLoader(ds, batch_sampler=sampler))
    assert len(batches) == len(sampler) > 0
    player = ds.role_names.index("player")
    for batch in batches:
        assert batch["image"].shape[0] == 10 and len(batch["match"].unique()) == 1
        assert {0, 1} <= set(batch["team"][batch["role"] == player].tolist())  # a player of each team
    with pytest.raises(ValueError, match="team_role"):
        MatchBatchSampler.from_dataset(ds, SamplerConfig(team_role="coach"))
