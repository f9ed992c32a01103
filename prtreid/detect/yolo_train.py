"""Train a person detector (ultralytics YOLO) on SoccerNet-format sequences, offline.

:func:`export_yolo_dataset` turns sequence folders into the YOLO dataset layout::

    OUT/data.yaml                        path, train, val, names {0: person}
    OUT/images/{train,val}/SEQ_000001.jpg   links to (or copies of) the frames
    OUT/labels/{train,val}/SEQ_000001.txt   one "0 cx cy w h" line per person, normalised

Every labelled person is class 0 (players, goalkeepers, referees, others); the ball is not a
person and is left out. The split is by sequence (the seeded choice of
:func:`prtreid.data.crops.eval_sequences`), so validation frames never share a clip with training
frames. :func:`train_yolo` trains with ultralytics; :func:`train_detector` does both.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import yaml

from prtreid.data.crops import eval_sequences
from prtreid.data.soccernet import atomic_write_text, check_unique_names, find_sequences, load_sequence
from prtreid.data.types import Sequence
from prtreid.detect.base import PERSON_CLASS
from prtreid.detect.oracle import NOT_PEOPLE, MotFileDetector
from prtreid.detect.yolo import is_cuda, resolve_device, resolve_weights
from prtreid.errors import ConfigError, FormatError
from prtreid.storage import remove_stale_temps, temp_name

log = logging.getLogger(__name__)

SPLITS = ("train", "val")
FONT_NAME = "Arial.ttf"


def prepare_offline_ultralytics(config_dir: str | Path) -> Path:
    """Make ultralytics run without a network: for tests, demos and air-gapped machines.

    Sets the environment variables ``YOLO_OFFLINE=1`` (no pip auto-install, no version check) and
    ``YOLO_CONFIG_DIR=config_dir`` (settings kept out of ``~/.config``), and copies matplotlib's
    DejaVuSans into ``config_dir/Ultralytics/Arial.ttf``, the font every ultralytics train/val
    otherwise downloads. Nothing happens unless this is called; users with internet need not call it.

    Call it before ``ultralytics`` is first imported: ultralytics reads its settings folder at
    import time. When it was imported already, the font is also copied into the folder in use.

    Returns:
        the ultralytics settings folder in effect.
    """
    import matplotlib

    os.environ["YOLO_OFFLINE"] = "1"
    os.environ["YOLO_CONFIG_DIR"] = str(Path(config_dir).resolve())
    settings_dir = Path(config_dir).resolve() / "Ultralytics"
    font = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
    targets = [settings_dir]
    if "ultralytics" in sys.modules:
        from ultralytics.utils import USER_CONFIG_DIR

        if Path(USER_CONFIG_DIR).resolve() != settings_dir:
            log.warning("ultralytics was imported before prepare_offline_ultralytics: its settings stay in %s",
                        USER_CONFIG_DIR)
            settings_dir = Path(USER_CONFIG_DIR)
            targets.append(settings_dir)
    for folder in targets:
        folder.mkdir(parents=True, exist_ok=True)
        if not (folder / FONT_NAME).exists():
            shutil.copyfile(font, folder / FONT_NAME)
    return settings_dir


# --- dataset export ----------------------------------------------------------------------------

def export_yolo_dataset(
    seq_roots: Iterable[str | Path],
    out_dir: str | Path,
    frame_stride: int = 1,
    val_fraction: float = 0.2,
    seed: int = 0,
    copy: bool = False,
) -> Path:
    """Write a YOLO detection dataset of people from SoccerNet sequence folders.

    Args:
        seq_roots: sequence folders (``SNMOT-xxx`` or Game State folders) with frames and ground truth.
        out_dir: the dataset folder; its ``images``/``labels`` folders are replaced.
        frame_stride: keep frames 1, 1 + stride, ... of each sequence (neighbouring frames are near copies).
        val_fraction: fraction of the sequences used for validation. With a single sequence (or a
            fraction that would leave a split empty) both splits use the same sequences.
        seed: seed of the sequence split.
        copy: copy the frames instead of linking them.

    Returns:
        the path of ``data.yaml``, written last (a dataset without it is incomplete).

    Raises:
        FileNotFoundError: a frame image is missing.
        FormatError: no sequence with ground truth, or two sequences with one name.
        ConfigError: a bad stride.
    """
    if frame_stride < 1:
        raise ConfigError(f"frame_stride must be at least 1, got {frame_stride}")
    out_dir = Path(out_dir).resolve()
    sequences = _labelled_sequences(seq_roots)
    splits = split_sequences([s.name for s in sequences], val_fraction, seed)
    (out_dir / "data.yaml").unlink(missing_ok=True)  # until the new export is complete
    for split in SPLITS:
        for kind in ("images", "labels"):
            shutil.rmtree(out_dir / kind / split, ignore_errors=True)
            (out_dir / kind / split).mkdir(parents=True)
        (out_dir / "labels" / f"{split}.cache").unlink(missing_ok=True)
    counts = {split: 0 for split in SPLITS}
    for seq in sequences:
        for split in SPLITS:
            if seq.name in splits[split]:
                counts[split] += _export_sequence(seq, out_dir, split, frame_stride, copy)
    log.info("exported %d train and %d val frames from %d sequences to %s",
             counts["train"], counts["val"], len(sequences), out_dir)
    data = {"path": str(out_dir), "train": "images/train", "val": "images/val", "names": {PERSON_CLASS: "person"}}
    data_yaml = out_dir / "data.yaml"
    atomic_write_text(data_yaml, yaml.safe_dump(data, sort_keys=False))
    return data_yaml


def split_sequences(names: list[str], val_fraction: float, seed: int = 0) -> dict[str, set[str]]:
    """Sequence names per split (``train``, ``val``); both get every name when one would be empty."""
    if not 0.0 <= val_fraction <= 1.0:
        raise ValueError(f"val_fraction must lie in [0, 1], got {val_fraction}")
    val = eval_sequences(names, val_fraction, seed)
    train = set(names) - val
    if not val or not train:
        log.warning("cannot split %d sequence(s) with val_fraction=%s: validating on the training sequences",
                    len(names), val_fraction)
        return {"train": set(names), "val": set(names)}
    return {"train": train, "val": val}


def yolo_label_lines(xyxy: np.ndarray, width: int, height: int, min_size: float = 1.0) -> list[str]:
    """``"0 cx cy w h"`` lines (normalised to the image) of pixel boxes, clipped to the image.

    Boxes narrower or lower than ``min_size`` pixels after clipping are dropped.
    """
    box = np.asarray(xyxy, dtype=np.float64).reshape(-1, 4).copy()
    box[:, [0, 2]] = box[:, [0, 2]].clip(0, width)
    box[:, [1, 3]] = box[:, [1, 3]].clip(0, height)
    wh = box[:, 2:] - box[:, :2]
    box = box[(wh >= min_size).all(axis=1)]
    cx = (box[:, 0] + box[:, 2]) / 2 / width
    cy = (box[:, 1] + box[:, 3]) / 2 / height
    w = (box[:, 2] - box[:, 0]) / width
    h = (box[:, 3] - box[:, 1]) / height
    return [f"{PERSON_CLASS} {a:.6f} {b:.6f} {c:.6f} {d:.6f}" for a, b, c, d in zip(cx, cy, w, h)]


def _labelled_sequences(seq_roots: Iterable[str | Path]) -> list[Sequence]:
    seq_roots = list(seq_roots)
    sequences = []
    for root in seq_roots:
        seq = load_sequence(root, load_det=False)
        if seq.gt is None:
            log.warning("skipping %s: no ground truth", root)
            continue
        sequences.append(seq)
    if not sequences:
        raise FormatError(", ".join(map(str, seq_roots)) or "<no sequences>", None, "no sequence with ground truth")
    check_unique_names(sequences, "the dataset's images")
    return sequences


def _export_sequence(seq: Sequence, out_dir: Path, split: str, stride: int, copy: bool) -> int:
    """Write the images and labels of one sequence; returns the number of frames."""
    people = MotFileDetector.from_sequence(seq, "gt", drop_roles=NOT_PEOPLE)
    frames = range(1, seq.info.seq_length + 1, stride)
    for frame in frames:
        src = seq.frame_path(frame)
        if not src.is_file():
            raise FileNotFoundError(f"{src}: frame {frame} of {seq.name} is missing")
        stem = f"{seq.name}_{frame:06d}"
        _place_image(src, out_dir / "images" / split / f"{stem}{src.suffix}", copy)
        lines = yolo_label_lines(people.at_frame(frame).boxes, seq.info.im_width, seq.info.im_height)
        (out_dir / "labels" / split / f"{stem}.txt").write_text("".join(line + "\n" for line in lines))
    return len(frames)


def _place_image(src: Path, dst: Path, copy: bool) -> None:
    if copy:
        shutil.copyfile(src, dst)
        return
    try:
        os.symlink(src.resolve(), dst)
    except OSError:  # file systems without symlinks
        shutil.copyfile(src, dst)


# --- training ----------------------------------------------------------------------------------

def train_yolo(
    data_yaml: str | Path,
    out_dir: str | Path,
    model: str = "yolov8n.yaml",
    epochs: int = 50,
    imgsz: int = 640,
    batch: int = 16,
    device: str = "auto",
    name: str = "detector",
    seed: int = 0,
    amp: bool = False,
) -> Path:
    """Train a YOLO detector with ultralytics and return its ``best.pt``.

    Args:
        data_yaml: the dataset, as written by :func:`export_yolo_dataset`.
        out_dir: the run folder is ``out_dir/name`` (weights in ``weights/best.pt``, ``last.pt``);
            an existing run of that name is replaced once this one is complete. The run trains in a
            temporary folder beside it, so a killed run leaves the last complete one as it was (and the
            next run removes what it left).
        model: a model yaml (an untrained network) or a local ``.pt`` to fine-tune.
        epochs, imgsz, batch, seed: as in ultralytics.
        device: ``"auto"``, ``"cpu"``, ``"0"``, ...
        amp: mixed precision, CUDA only. Ultralytics checks AMP by loading hub weights, which
            fails offline: leave it off on air-gapped machines.

    Raises:
        FileNotFoundError: no weights were written.
    """
    from ultralytics import YOLO

    dev = resolve_device(device)
    out_dir = Path(out_dir).resolve()
    remove_stale_temps(out_dir, (name,))
    yolo = YOLO(resolve_weights(model), task="detect")
    temporary = temp_name(name)
    try:
        yolo.train(
            data=str(data_yaml), epochs=epochs, imgsz=imgsz, batch=batch, device=dev, seed=seed,
            workers=0, amp=amp and is_cuda(dev), plots=False, exist_ok=True,
            project=str(out_dir), name=temporary, verbose=False,
        )
        _trained_weights(out_dir / temporary / "weights")  # before the run replaces a complete one
        _replace_folder(out_dir / temporary, out_dir / name)
    finally:
        shutil.rmtree(out_dir / temporary, ignore_errors=True)
    return _trained_weights(out_dir / name / "weights")


def _trained_weights(weights: Path) -> Path:
    """``best.pt``, else ``last.pt`` of a weights folder; FileNotFoundError when it has neither."""
    for candidate in (weights / "best.pt", weights / "last.pt"):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"{weights}: training wrote no best.pt or last.pt")


def _replace_folder(new: Path, final: Path) -> None:
    """Put the folder ``new`` at ``final``; what was there is removed once ``new`` is in place."""
    if not final.exists():
        new.rename(final)
        return
    old = final.with_name(temp_name(final.name))
    final.rename(old)
    new.rename(final)
    shutil.rmtree(old, ignore_errors=True)


def train_detector(
    data_dir: str | Path,
    out_dir: str | Path,
    epochs: int = 50,
    imgsz: int = 640,
    model: str = "yolov8n.yaml",
    batch: int = 16,
    device: str = "auto",
    frame_stride: int = 5,
    val_fraction: float = 0.2,
) -> Path:
    """Export every sequence below ``data_dir`` to ``out_dir/dataset`` and train on it.

    Returns:
        the trained weights, ``out_dir/runs/detector/weights/best.pt``.
    """
    roots = find_sequences(data_dir)
    if not roots:
        raise FileNotFoundError(f"{data_dir}: no sequence folders found")
    data_yaml = export_yolo_dataset(roots, Path(out_dir) / "dataset", frame_stride=frame_stride,
                                    val_fraction=val_fraction)
    return train_yolo(data_yaml, Path(out_dir) / "runs", model=model, epochs=epochs, imgsz=imgsz,
                      batch=batch, device=device)
