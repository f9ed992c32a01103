"""Detectors: oracle/public boxes from files, YOLO plumbing, YOLO dataset export and training."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from prtreid.config import from_dict
from prtreid.data.soccernet import load_sequence, write_sequence
from prtreid.data.types import MotTable, SeqInfo, Sequence, TrackInfo
from prtreid.detect import (BALL_CLASS, PERSON_CLASS, DetectorConfig, FrameDetections, MotFileDetector, YoloDetector,
                            canonical_classes, make_detector)
from prtreid.detect.yolo_train import (
    export_yolo_dataset,
    prepare_offline_ultralytics,
    train_detector,
    yolo_label_lines,
)
from prtreid.errors import ConfigError

W, H = 192, 128
TRACKS = {
    1: TrackInfo(1, "player", "left", "10"),
    2: TrackInfo(2, "referee", detail="main"),
    3: TrackInfo(3, "ball", detail="1"),
    4: TrackInfo(4, "goalkeeper", "right", "1"),
}


@pytest.fixture(scope="module", autouse=True)
def offline_ultralytics(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Ultralytics settings in a temporary folder, with a local font, before it is first imported."""
    with pytest.MonkeyPatch.context() as mp:
        folder = tmp_path_factory.mktemp("ultralytics")
        mp.setenv("YOLO_CONFIG_DIR", str(folder))
        mp.setenv("YOLO_OFFLINE", "1")
        yield prepare_offline_ultralytics(folder)


def _table(rows: list[tuple[int, int, float, float, float, float, float]]) -> MotTable:
    arr = np.asarray(rows, dtype=np.float64).reshape(-1, 7)
    return MotTable(arr[:, 0].astype(np.int64), arr[:, 1].astype(np.int64), arr[:, 2:6], arr[:, 6])


def _moving_gt(frames: int, shift: int) -> MotTable:
    """Tracks 1, 2, 4 (people) and 3 (the ball) on every frame, moving right."""
    rows = []
    for f in range(1, frames + 1):
        dx = 4 * f + shift
        rows += [(f, 1, 10 + dx, 20, 16, 40, 1), (f, 2, 90 + dx, 50, 18, 44, 1),
                 (f, 3, 60 + dx, 100, 6, 6, 1), (f, 4, 165 + dx, 30, 20, 46, 1)]
    return _table(rows)


def _write_frames(seq: Sequence, seed: int) -> None:
    """Frames with a coloured block per person (the ball a white dot) on a noisy green pitch."""
    rng = np.random.default_rng(seed)
    for f in range(1, seq.info.seq_length + 1):
        img = np.zeros((H, W, 3), np.uint8)
        img[:] = (40, 140, 40)
        img = (img + rng.integers(0, 20, img.shape)).astype(np.uint8)
        rows = seq.gt.at_frame(f)
        for tid, (x, y, w, h) in zip(rows.track_id.tolist(), rows.box.astype(int).tolist()):
            color = (255, 255, 255) if TRACKS[tid].role == "ball" else (30 * tid, 0, 255 - 40 * tid)
            cv2.rectangle(img, (x, y), (x + w - 1, y + h - 1), color, -1)
        path = seq.frame_path(f)
        path.parent.mkdir(parents=True, exist_ok=True)
        assert cv2.imwrite(str(path), img)


def _make_sequence(root: Path, name: str, frames: int = 4, shift: int = 0) -> Path:
    seq = Sequence(SeqInfo(name=name, seq_length=frames, im_width=W, im_height=H),
                   tracks=dict(TRACKS), gt=_moving_gt(frames, shift))
    write_sequence(seq, root / name)
    _write_frames(seq, seed=shift)
    return root / name


@pytest.fixture(scope="module")
def hand_sequence(tmp_path_factory: pytest.TempPathFactory) -> Sequence:
    """3 frames: gt on frames 1-2 (with a ball), public detections on frames 1-2, frame 3 empty."""
    gt = _table([(1, 1, 10, 20, 30, 60, 1), (1, 2, 100, 40, 20, 50, 1), (1, 3, 50, 50, 4, 4, 1),
                 (2, 1, 12.5, 21, 30, 60, 1)])
    det = _table([(1, -1, 11, 19, 29, 61, 0.9), (1, -1, 99, 41, 22, 48, 0.3), (2, -1, 13, 20, 30, 60, 0.1)])
    seq = Sequence(SeqInfo(name="SNMOT-901", seq_length=3, im_width=640, im_height=360),
                   tracks={k: TRACKS[k] for k in (1, 2, 3)}, gt=gt, det=det)
    root = write_sequence(seq, tmp_path_factory.mktemp("hand") / "SNMOT-901")
    return load_sequence(root)


# --- containers and config ---------------------------------------------------------------------

def test_frame_detections_coerces_and_checks() -> None:
    d = FrameDetections([[1, 2, 3, 4]], [0.5], [0.0])
    assert d.boxes.dtype == np.float64 and d.scores.dtype == np.float64 and d.classes.dtype == np.int64
    assert len(d) == 1 and len(FrameDetections.empty()) == 0
    with pytest.raises(ValueError, match="disagree"):
        FrameDetections(np.zeros((2, 4)), np.zeros(1), np.zeros(2))


def test_detector_config_validates() -> None:
    cfg = from_dict(DetectorConfig, {"imgsz": 640, "classes": [0, 2]}, "pipeline.yaml", "detector.")
    assert cfg.classes == (0, 2) and cfg.imgsz == 640
    with pytest.raises(ConfigError, match="multiple of 32"):
        from_dict(DetectorConfig, {"imgsz": 100}, "pipeline.yaml")
    with pytest.raises(ValueError, match="conf"):
        DetectorConfig(conf=1.5)


def test_detector_classes_are_mapped_to_people_and_the_ball_by_name() -> None:
    coco = {0: "person", 2: "car", 32: "sports ball"}
    assert canonical_classes(coco) == {0: PERSON_CLASS, 2: -3, 32: BALL_CLASS}  # other classes: never 0 or 32
    soccer = {0: "Ball", 1: "goalkeeper", 2: "player", 3: "referee"}  # a model fine-tuned on soccer
    assert canonical_classes(soccer) == {0: BALL_CLASS, 1: PERSON_CLASS, 2: PERSON_CLASS, 3: PERSON_CLASS}
    assert canonical_classes({0: "0", 32: "32"}) == {0: 0, 32: 32}  # an untrained model: COCO's numbering
    goals = {0: "goal", 1: "player", 2: "football"}  # class 0 is not a person here
    assert canonical_classes(goals) == {0: -1, 1: PERSON_CLASS, 2: BALL_CLASS}


def test_yolo_refuses_a_class_filter_without_people() -> None:
    with pytest.raises(ConfigError, match="none is a person"):
        YoloDetector("yolov8n.yaml", DetectorConfig(classes=(5,), device="cpu"))


# --- oracle and public detections --------------------------------------------------------------

def test_oracle_converts_boxes_and_labels_the_ball(hand_sequence: Sequence) -> None:
    det = make_detector("oracle", hand_sequence)  # the pipeline's oracle: people and the ball
    f1, f2, f3 = det.detect([None, None, None], [1, 2, 3])
    np.testing.assert_allclose(f1.boxes, [[10, 20, 40, 80], [100, 40, 120, 90], [50, 50, 54, 54]])
    np.testing.assert_allclose(f1.scores, [1.0, 1.0, 1.0])
    np.testing.assert_array_equal(f1.classes, [PERSON_CLASS, PERSON_CLASS, BALL_CLASS])
    np.testing.assert_allclose(f2.boxes, [[12.5, 21, 42.5, 81]])
    assert f3.boxes.shape == (0, 4) and f3.scores.shape == (0,) and f3.classes.shape == (0,)
    assert f3.boxes.dtype == np.float64
    people = MotFileDetector.from_sequence(hand_sequence, "gt")  # by default the ball is dropped
    assert len(people.at_frame(1)) == 2 and len(people) == 3 and len(det) == 4
    np.testing.assert_array_equal(f1.select(f1.classes == PERSON_CLASS).boxes, people.at_frame(1).boxes)


def test_public_detections_keep_confidences(hand_sequence: Sequence) -> None:
    every = MotFileDetector.from_sequence(hand_sequence, "det")
    f1, f2 = every.detect([None, None], [1, 2])
    np.testing.assert_allclose(f1.scores, [0.9, 0.3])
    np.testing.assert_allclose(f1.boxes[1], [99, 41, 121, 89])
    np.testing.assert_allclose(f2.scores, [0.1])
    thresholded = make_detector("det", hand_sequence, DetectorConfig(conf=0.25))
    g1, g2 = thresholded.detect([None, None], [1, 2])
    np.testing.assert_allclose(g1.scores, [0.9, 0.3])
    assert len(g2) == 0


def test_roles_given_as_names_and_batch_checks(hand_sequence: Sequence) -> None:
    det = MotFileDetector(hand_sequence.gt, roles={3: "ball", 2: "referee"}, drop_roles=("ball", "referee"))
    assert len(det.at_frame(1)) == 1
    with pytest.raises(ValueError, match="frame ids"):
        det.detect([None], [1, 2])


def test_factory_errors(hand_sequence: Sequence, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown detector spec"):
        make_detector("rcnn", hand_sequence)
    with pytest.raises(ConfigError, match="sequence is required"):
        make_detector("oracle")
    no_det = Sequence(hand_sequence.info, gt=hand_sequence.gt)
    with pytest.raises(FileNotFoundError, match="det.txt"):
        make_detector("det", no_det)
    with pytest.raises(FileNotFoundError, match="missing.pt': no such file"):
        make_detector(f"yolo:{tmp_path / 'missing.pt'}")
    with pytest.raises(FileNotFoundError, match="not on disk, and YOLO_OFFLINE is set"):
        make_detector("yolo:yolov8n.pt")  # the tests run offline


def test_released_weights_are_left_to_ultralytics_to_download_when_online(monkeypatch: pytest.MonkeyPatch,
                                                                          tmp_path: Path) -> None:
    from prtreid.detect.yolo import resolve_weights

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("YOLO_OFFLINE", "0")
    assert resolve_weights("yolov8n.pt") == "yolov8n.pt"  # a name ultralytics resolves (downloads or its cache)
    with pytest.raises(FileNotFoundError, match="no such file"):
        resolve_weights("weights/yolov8n.pt")  # a path is a path, never a download
    monkeypatch.setenv("YOLO_OFFLINE", "true")
    with pytest.raises(FileNotFoundError, match="YOLO_OFFLINE is set"):
        resolve_weights("yolov8n.pt")


# --- YOLO --------------------------------------------------------------------------------------

def _assert_valid(dets: FrameDetections, width: int, height: int, max_det: int) -> None:
    n = len(dets)
    assert dets.boxes.shape == (n, 4) and dets.scores.shape == (n,) and dets.classes.shape == (n,)
    assert dets.boxes.dtype == np.float64 and dets.scores.dtype == np.float64 and dets.classes.dtype == np.int64
    assert n <= max_det
    x1, y1, x2, y2 = dets.boxes.T
    assert np.all((0 <= x1) & (x1 <= x2) & (x2 <= width) & (0 <= y1) & (y1 <= y2) & (y2 <= height))
    assert np.all((dets.scores >= 0) & (dets.scores <= 1)) and np.all(dets.classes == 0)


def test_yolo_detector_plumbing() -> None:
    cfg = DetectorConfig(imgsz=160, conf=0.0, batch=2, device="cpu", max_det=7)
    det = make_detector("yolo:yolov8n.yaml", cfg=cfg)
    assert isinstance(det, YoloDetector)
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 255, (120, 200, 3), dtype=np.uint8),
              rng.integers(0, 255, (90, 160, 3), dtype=np.uint8),
              rng.integers(0, 255, (120, 200, 3), dtype=np.uint8)]
    out = det.detect(frames, [1, 2, 3])
    assert len(out) == 3
    for dets, frame in zip(out, frames):
        _assert_valid(dets, frame.shape[1], frame.shape[0], cfg.max_det)
    # the same chunks through ultralytics itself: boxes in pixels of each frame, scores as given
    ref = [r.boxes for chunk in (frames[:2], frames[2:]) for r in det.model.predict(chunk, **det.predict_args())]
    for dets, boxes in zip(out, ref):
        assert len(dets) == len(boxes) > 0
        np.testing.assert_allclose(dets.boxes, boxes.xyxy.numpy(), atol=1e-4)
        np.testing.assert_allclose(dets.scores, boxes.conf.numpy(), atol=1e-6)
    assert det.detect([], []) == []
    with pytest.raises(ValueError, match="BGR uint8"):
        det.detect([np.zeros((10, 10), np.uint8)], [1])


# --- dataset export and training ---------------------------------------------------------------

def test_yolo_label_lines_normalise_and_clip() -> None:
    lines = yolo_label_lines(np.array([[10, 20, 30, 60], [-10, 0, 10, 50], [190, 0, 200, 10]]), 100, 200)
    # the third box lies outside the 100-px-wide image and is dropped; the second is clipped to x in [0, 10]
    assert lines == ["0 0.200000 0.200000 0.200000 0.200000", "0 0.050000 0.125000 0.100000 0.250000"]


def _read_labels(path: Path) -> np.ndarray:
    return np.loadtxt(path, ndmin=2).reshape(-1, 5)


def test_export_yolo_dataset(tmp_path: Path) -> None:
    roots = [_make_sequence(tmp_path / "data", f"SNMOT-{i:03d}", frames=5, shift=i) for i in range(3)]
    data_yaml = export_yolo_dataset(roots, tmp_path / "yolo", frame_stride=2, val_fraction=0.34)
    data = yaml.safe_load(data_yaml.read_text())
    assert data["names"] == {0: "person"} and Path(data["path"]) == (tmp_path / "yolo").resolve()
    stems = {s: sorted(p.stem for p in (tmp_path / "yolo" / "images" / s).iterdir()) for s in ("train", "val")}
    seqs = {s: {stem.rsplit("_", 1)[0] for stem in stems[s]} for s in stems}
    assert len(seqs["val"]) == 1 and len(seqs["train"]) == 2 and not seqs["val"] & seqs["train"]
    assert all(stem.endswith(("_000001", "_000003", "_000005")) for s in stems for stem in stems[s])
    assert sum(len(v) for v in stems.values()) == 9
    split = "val" if "SNMOT-001" in seqs["val"] else "train"
    image = tmp_path / "yolo" / "images" / split / "SNMOT-001_000003.jpg"
    assert image.resolve() == (roots[1] / "img1" / "000003.jpg").resolve()
    labels = _read_labels(tmp_path / "yolo" / "labels" / split / "SNMOT-001_000003.txt")
    gt = _moving_gt(5, shift=1).at_frame(3)
    people = gt.box[gt.track_id != 3]
    people[:, 2] = np.minimum(people[:, 0] + people[:, 2], W) - people[:, 0]  # track 4 leaves the image on the right
    expected = np.column_stack([(people[:, 0] + people[:, 2] / 2) / W, (people[:, 1] + people[:, 3] / 2) / H,
                                people[:, 2] / W, people[:, 3] / H])
    assert len(labels) == 3  # the ball is not a person
    np.testing.assert_array_equal(labels[:, 0], 0)
    np.testing.assert_allclose(labels[:, 1:], expected, atol=1e-6)
    (roots[1] / "img1" / "000003.jpg").unlink()
    with pytest.raises(FileNotFoundError, match="000003"):
        export_yolo_dataset(roots, tmp_path / "yolo", frame_stride=2, val_fraction=0.34)
    assert not data_yaml.exists()  # a half-done export does not look complete


def test_export_single_sequence_validates_on_itself(tmp_path: Path) -> None:
    root = _make_sequence(tmp_path / "data", "SNMOT-007", frames=2)
    export_yolo_dataset([root], tmp_path / "yolo", val_fraction=0.2, copy=True)
    for split in ("train", "val"):
        images = sorted((tmp_path / "yolo" / "images" / split).iterdir())
        assert [p.name for p in images] == ["SNMOT-007_000001.jpg", "SNMOT-007_000002.jpg"]
        assert not images[0].is_symlink()


@pytest.mark.filterwarnings("ignore:`get_trial_id`:UserWarning")  # ultralytics' Ray Tune callback
def test_train_detector_one_epoch_then_detect(tmp_path: Path) -> None:
    """train_detector = find_sequences + export_yolo_dataset + train_yolo."""
    roots = [_make_sequence(tmp_path / "data", f"SNMOT-{i:03d}", frames=4, shift=3 * i) for i in range(2)]
    start = time.perf_counter()
    weights = train_detector(tmp_path / "data", tmp_path / "out", epochs=1, imgsz=160, batch=4, device="cpu",
                             frame_stride=1, val_fraction=0.5)
    elapsed = time.perf_counter() - start
    assert weights.name in ("best.pt", "last.pt") and weights.is_file()
    assert (weights.parent / "last.pt").is_file()
    assert weights.parent.parent == (tmp_path / "out" / "runs" / "detector").resolve()
    assert len(list((tmp_path / "out" / "dataset" / "labels" / "train").glob("*.txt"))) == 4
    det = YoloDetector(weights, DetectorConfig(imgsz=160, conf=0.0, device="cpu", max_det=5))
    assert det.model.names == {0: "person"}
    frame = cv2.imread(str(roots[0] / "img1" / "000001.jpg"))
    (dets,) = det.detect([frame], [1])
    _assert_valid(dets, W, H, 5)
    print(f"train_detector, 1 epoch: {elapsed:.1f} s")  # reported with `pytest -s`
    assert os.environ["YOLO_OFFLINE"] == "1"
