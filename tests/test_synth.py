"""Tests of the synthetic SoccerNet-Tracking generator (small clips, a few seconds in all)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import cv2
import numpy as np
import pytest

from prtreid.cli import main as cli
from prtreid.config import from_dict
from prtreid.data.masks import PART_STRIDE, decode_parts, read_part_map
from prtreid.data.soccernet import read_sequence
from prtreid.data.synth import SynthConfig, generate_dataset, generate_sequence
from prtreid.data.synth.camera import Camera
from prtreid.data.synth.kits import color_distance, sample_match_kits
from prtreid.data.types import ROLES, Sequence
from prtreid.errors import ConfigError

SMALL = SynthConfig(seqs=2, frames=20, width=480, height=270, seed=3, goal_action_prob=1.0, others_prob=1.0)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> list[Sequence]:
    root = tmp_path_factory.mktemp("synth")
    calls: list[tuple[int, int]] = []
    paths = generate_dataset(root, SMALL, progress=lambda done, total: calls.append((done, total)))
    assert calls == [(1, 2), (2, 2)]
    assert [p.name for p in paths] == ["SNMOT-001", "SNMOT-002"]
    return [read_sequence(p) for p in paths]


def _person_rows(seq: Sequence) -> np.ndarray:
    return np.array([seq.tracks[int(t)].role != "ball" for t in seq.gt.track_id])


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    lo = np.maximum(a[:, None, :2], b[None, :, :2])
    hi = np.minimum(a[:, None, :2] + a[:, None, 2:], b[None, :, :2] + b[None, :, 2:])
    inter = np.prod(np.clip(hi - lo, 0, None), axis=2)
    return inter / (np.prod(a[:, 2:], axis=1)[:, None] + np.prod(b[:, 2:], axis=1)[None] - inter)


def test_layout_images_and_seqinfo(dataset: list[Sequence]) -> None:
    for seq in dataset:
        assert seq.info.seq_length == SMALL.frames and seq.info.frame_rate == SMALL.fps
        assert (seq.info.im_width, seq.info.im_height) == (SMALL.width, SMALL.height)
        assert len(list((seq.root / "img1").glob("*.jpg"))) == SMALL.frames
        for frame in (1, SMALL.frames):
            img = cv2.imread(str(seq.frame_path(frame)))
            assert img is not None and img.shape == (SMALL.height, SMALL.width, 3)
            assert img.std() > 10  # a real picture, not a flat fill
            assert read_part_map(seq.part_mask_path(frame)).shape == (SMALL.height, SMALL.width)
        assert seq.game["actionClass"] and seq.game["gameID"]
        assert int(seq.game["num_tracklets"]) == len(seq.tracks)
        assert not list(seq.root.parent.glob(".SNMOT-*"))  # no temporary folder left behind
        assert seq.root.stat().st_mode & 0o777 == (seq.root / "img1").stat().st_mode & 0o777  # the umask's mode


def test_same_seed_same_bytes_and_other_seed_differs(tmp_path: Path) -> None:
    cfg = SynthConfig(frames=4, width=320, height=180, seed=11)
    a = generate_sequence(tmp_path / "a", 0, cfg)
    b = generate_sequence(tmp_path / "b", 0, cfg)
    c = generate_sequence(tmp_path / "c", 0, dataclasses.replace(cfg, seed=12))
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert len(files) == 2 * 4 + 4  # frames, part maps, seqinfo, gameinfo, gt, det
    assert files == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    for rel in files:
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel
    assert (a / "gt/gt.txt").read_bytes() != (c / "gt/gt.txt").read_bytes()
    assert (a / "img1/000001.jpg").read_bytes() != (c / "img1/000001.jpg").read_bytes()
    # the second clip of a dataset differs from the first
    d = generate_sequence(tmp_path / "a", 1, cfg)
    assert (d / "gt/gt.txt").read_bytes() != (a / "gt/gt.txt").read_bytes()


def test_gt_boxes_inside_image_and_labels_consistent(dataset: list[Sequence]) -> None:
    for seq in dataset:
        gt = seq.gt
        assert len(gt) > 100
        x, y, w, h = gt.box.T
        assert (x >= 0).all() and (y >= 0).all() and (w > 0).all() and (h > 0).all()
        assert (x + w <= SMALL.width).all() and (y + h <= SMALL.height).all()
        assert (gt.conf == 1).all()
        assert set(np.unique(gt.track_id).tolist()) == set(seq.tracks)
        for f in range(1, SMALL.frames + 1):  # one row per id and frame
            ids = gt.at_frame(f).track_id
            assert len(ids) == len(np.unique(ids))
        jerseys: dict[str, list[str]] = {"left": [], "right": []}
        for t in seq.tracks.values():
            assert t.role in ROLES
            assert (t.team in ("left", "right")) == (t.role in ("player", "goalkeeper"))
            if t.role in ("player", "goalkeeper") and t.jersey != "X":
                jerseys[t.team].append(t.jersey)
        for numbers in jerseys.values():
            assert len(numbers) == len(set(numbers)) and all(n.isdigit() for n in numbers)


def test_person_boxes_move_smoothly(dataset: list[Sequence]) -> None:
    steps = []
    for seq in dataset:
        for tid, info in seq.tracks.items():
            if info.role == "ball":
                continue
            rows = seq.gt.select(seq.gt.track_id == tid)
            consecutive = np.diff(rows.frame) == 1
            centre = rows.box[:, :2] + rows.box[:, 2:] / 2
            step = np.linalg.norm(np.diff(centre, axis=0), axis=1)[consecutive]
            height = np.maximum(rows.box[1:, 3], rows.box[:-1, 3])[consecutive]
            steps.append(step / height)
    steps = np.concatenate(steps)
    assert steps.max() < 1.0
    assert np.median(steps) < 0.15


def test_every_role_present_when_forced(dataset: list[Sequence], tmp_path: Path) -> None:
    roles = {t.role for seq in dataset for t in seq.tracks.values()}
    assert roles == set(ROLES)
    for seq in dataset:
        assert {"player", "ball", "referee"} <= {t.role for t in seq.tracks.values()}
    none = read_sequence(generate_sequence(tmp_path, 0, dataclasses.replace(SMALL, frames=3, others_prob=0.0)))
    assert "other" not in {t.role for t in none.tracks.values()}


def test_detections_are_noisy_copies_of_the_truth(dataset: list[Sequence]) -> None:
    hits = total = false_pos = 0
    conf_matched, conf_fp = [], []
    for seq in dataset:
        det = seq.det
        assert (det.track_id == -1).all()
        assert ((det.conf > 0) & (det.conf <= 1)).all()
        people = seq.gt.select(_person_rows(seq))
        for f in range(1, SMALL.frames + 1):
            g, d = people.at_frame(f), det.at_frame(f)
            if not len(d):
                total += len(g)
                continue
            iou = _iou(g.box, d.box) if len(g) else np.zeros((0, len(d)))
            hits += int((iou.max(axis=1) > 0.5).sum()) if len(g) else 0
            total += len(g)
            best = iou.max(axis=0) if len(g) else np.zeros(len(d))
            false_pos += int((best < 0.1).sum())
            conf_matched += d.conf[best > 0.5].tolist()
            conf_fp += d.conf[best < 0.1].tolist()
    recall = hits / total
    assert 0.75 < recall < 0.995  # most people found, some missed
    assert false_pos >= 2
    assert np.mean(conf_matched) > np.mean(conf_fp)


def test_part_maps_align_with_boxes(dataset: list[Sequence]) -> None:
    checked = 0
    for seq in dataset:
        for f in (1, SMALL.frames // 2, SMALL.frames):
            lm = read_part_map(seq.part_mask_path(f)).astype(np.int64)
            rows = seq.gt.at_frame(f)
            boxes = {int(t): b for t, b in zip(rows.track_id, rows.box)}
            ids = np.unique(lm[lm > 0] // PART_STRIDE)
            assert set(ids.tolist()) <= set(boxes)
            assert (lm[lm > 0] % PART_STRIDE <= 5).all()
            for tid in ids.tolist():
                ys, xs = np.nonzero(lm // PART_STRIDE == tid)
                x, y, w, h = boxes[tid]
                assert xs.min() >= x - 1 and xs.max() <= x + w and ys.min() >= y - 1 and ys.max() <= y + h
            # the largest person of the frame shows its own torso and legs inside its box
            people = rows.select(_person_rows(seq)[seq.gt.frame == f])
            big = int(np.argmax(people.box[:, 3]))
            x, y, w, h = people.box[big].astype(int)
            own = decode_parts(lm[y:y + h, x:x + w], int(people.track_id[big]))
            if (own > 0).mean() > 0.15:
                assert (own == 2).sum() > 3 and (own == 4).sum() > 3
                checked += 1
    assert checked >= 3


def _torso_colour(seq: Sequence, role: str, team: str | None) -> np.ndarray | None:
    pixels = []
    for f in range(1, SMALL.frames + 1, 2):
        lm = read_part_map(seq.part_mask_path(f)).astype(np.int64)
        img = cv2.imread(str(seq.frame_path(f)))
        tids = [t for t, i in seq.tracks.items() if i.role == role and i.team == team]
        torso = np.isin(lm // PART_STRIDE, tids) & (lm % PART_STRIDE == 2)
        pixels.append(img[torso].astype(np.float64))
    pixels = np.concatenate(pixels)
    return pixels.mean(axis=0) if len(pixels) > 10 else None


def test_team_and_keeper_kits_differ(dataset: list[Sequence]) -> None:
    teams = keepers = 0
    for seq in dataset:
        left, right = _torso_colour(seq, "player", "left"), _torso_colour(seq, "player", "right")
        if left is None or right is None:  # a short clip may show a single team
            continue
        assert np.linalg.norm(left - right) > 6.0
        teams += 1
        for team in ("left", "right"):
            keeper = _torso_colour(seq, "goalkeeper", team)
            if keeper is not None:
                assert np.linalg.norm(keeper - left) > 6.0 and np.linalg.norm(keeper - right) > 6.0
                keepers += 1
    assert teams >= 1 and keepers >= 1


def test_kit_sampling_close_and_distinct() -> None:
    for i in range(10):
        close = sample_match_kits(np.random.default_rng(i), close_prob=1.0)
        assert close.close and 9.9 <= color_distance(close.teams[0].shirt, close.teams[1].shirt) <= 22.1
        far = sample_match_kits(np.random.default_rng(i), close_prob=0.0)
        assert not far.close and color_distance(far.teams[0].shirt, far.teams[1].shirt) > 40
        for kits in (close, far):
            for gk in kits.goalkeepers:
                for shirt in (kits.teams[0].shirt, kits.teams[1].shirt, kits.referee.shirt):
                    assert color_distance(gk.shirt, shirt) > 25


def test_camera_projection_and_homography_agree() -> None:
    cam = Camera(np.array([0.0, -70.0, 17.0]), yaw=0.3, tilt=0.25, focal=1500.0, width=960, height=540)
    pts = np.array([[10.0, 0.0, 0.0], [-5.0, 20.0, 0.0], [20.0, -10.0, 0.0]])
    uv, depth = cam.project(pts)
    assert (depth > 0).all()
    hom = cam.plane_homography(np.zeros(3), np.array([1.0, 0, 0]), np.array([0, 1.0, 0]))
    h = np.c_[pts[:, :2], np.ones(3)] @ hom.T
    np.testing.assert_allclose(h[:, :2] / h[:, 2:], uv, atol=1e-6)
    # a point on the optical axis lands in the image centre; one above it lands higher in the image
    ahead = cam.position + 50.0 * cam.rotation[2]
    centre, _ = cam.project(ahead[None])
    np.testing.assert_allclose(centre[0], [480.0, 270.0], atol=1e-6)
    above, _ = cam.project((ahead + [0, 0, 2.0])[None])
    assert above[0, 1] < 270.0


def test_config_validation() -> None:
    assert from_dict(SynthConfig, {"seqs": 2, "others_prob": 1}).others_prob == 1.0
    with pytest.raises(ConfigError):
        from_dict(SynthConfig, {"referees": 4})
    with pytest.raises(ConfigError):
        from_dict(SynthConfig, {"framez": 10})
    with pytest.raises(ValueError):
        SynthConfig(close_kits_prob=1.5)


def test_synth_command_sets_any_config_field(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    args = ["synth", "--out", str(tmp_path), "--seqs", "1", "--frames", "2", "--width", "160", "--height", "90"]
    assert cli([*args, "--set", "referees=0", "--set", "others_prob=0"]) == 0
    seq = read_sequence(tmp_path / "SNMOT-001")
    assert {t.role for t in seq.tracks.values()} <= {"player", "goalkeeper", "ball"}
    assert cli([*args, "--set", "referee=0"]) == 2
    assert "unknown key referee" in capsys.readouterr().err


def test_crops_command_takes_any_experiment_config(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    data = tmp_path / "data"
    assert cli(["synth", "--out", str(data), "--seqs", "1", "--frames", "2", "--width", "480", "--height", "270"]) == 0
    gpu = Path(__file__).resolve().parents[1] / "configs" / "train_gpu_resnet50.yaml"  # no crops section
    assert cli(["crops", "--data", str(data), "--out", str(tmp_path / "crops"), "--config", str(gpu)]) == 0
    (tmp_path / "bad.yaml").write_text("crops: [1, 2]\n")
    assert cli(["crops", "--data", str(data), "--out", str(tmp_path / "c2"), "--config", str(tmp_path / "bad.yaml")]) == 2
    assert "bad.yaml: crops: expected a mapping, got [1, 2]" in capsys.readouterr().err
    (tmp_path / "typo.yaml").write_text("crops:\n  max_per_identity: 2\ntrain:\n  epochz: 3\n")  # checked whole
    typo = ["crops", "--data", str(data), "--out", str(tmp_path / "c3"), "--config", str(tmp_path / "typo.yaml")]
    assert cli(typo) == 2
    assert "typo.yaml: unknown key train.epochz" in capsys.readouterr().err

