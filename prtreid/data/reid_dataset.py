"""The re-id dataset over a crop store (see :mod:`prtreid.data.crops`).

Each item is a dict of tensors that the default collate stacks (the batch contract):

- ``image``: float32 (3, H, W), RGB, normalised with the ImageNet mean and std.
- ``parts``: int64 (H, W) part labels (:data:`prtreid.data.types.PARTS`), all -1 without a mask.
- ``pid``: int64 identity index, dense over the identities of the split's family (below).
- ``team``: int64, 0 = left, 1 = right, -1 = no team.
- ``role``: int64 index into :attr:`ReidDataset.role_names`.
- ``match``: int64 sequence index, dense over the sequences of the split's family.
- ``frame``: int64 frame number; ``index``: int64 ``crop_id``, the crop's row in ``index.parquet``.

Splits come in two families: ``train``, and ``query`` + ``gallery`` (the held-out sequences).
Identity and match numbers are dense over a family, so a query dataset and a gallery dataset
built separately give the same ``pid`` to the same person.
"""

from __future__ import annotations

from collections.abc import Sequence as Seq
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset
from torchvision import tv_tensors
from torchvision.transforms import v2

from prtreid.data.crops import SPLITS, read_crop_index

DEFAULT_ROLE_NAMES: tuple[str, ...] = ("player", "goalkeeper", "referee", "other")
TEAM_INDEX: dict[str, int] = {"left": 0, "right": 1}
IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
MAX_HUE = 0.05
"""Largest hue jitter allowed: kit colour is what tells the teams apart."""

_FAMILY = {"train": "train", "query": "eval", "gallery": "eval"}


@dataclass(frozen=True)
class AugmentConfig:
    """Train-time augmentation.

    Attributes:
        flip_p: probability of a horizontal flip (image and part mask together).
        pad_fraction: pad each side by this fraction of the size, then crop back at random.
        brightness, contrast, saturation: colour-jitter strengths (torchvision ``ColorJitter``).
        hue: hue jitter, at most :data:`MAX_HUE` so that kit colours keep their team.
        erase_p: probability of random erasing (image only; the part mask is left as it is).
        kit_hue_p: probability that a match of a batch gets its clothes' hue rotated, the same for
            all its crops (:func:`prtreid.data.recolour.recolour_kits`; applied by the training loop).
    """

    flip_p: float = 0.5
    pad_fraction: float = 0.1
    brightness: float = 0.2
    contrast: float = 0.15
    saturation: float = 0.1
    hue: float = 0.0
    erase_p: float = 0.0
    kit_hue_p: float = 0.0

    def __post_init__(self) -> None:
        for name in ("flip_p", "erase_p", "kit_hue_p"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must lie in [0, 1]")
        for name in ("pad_fraction", "brightness", "contrast", "saturation"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must lie in [0, 1]")
        if not 0.0 <= self.hue <= MAX_HUE:
            raise ValueError(f"hue must lie in [0, {MAX_HUE}]: kit colour defines the team")


class ReidDataset(Dataset[dict[str, torch.Tensor]]):
    """Crops of one or more splits of a crop store, with labels for the re-id model.

    Attributes:
        index: the split's rows of ``index.parquet``, in item order, indexed by ``crop_id``.
        role_names: role of each role index.
        identity_names: identity key (``"SEQ:ID"``) of each pid.
        match_names: sequence name of each match index.
        pids, teams, roles, matches, frames, crop_ids: int64 arrays of the labels, one entry per item.
    """

    def __init__(
        self,
        root: str | Path,
        split: str | Seq[str] = "train",
        *,
        image_size: tuple[int, int] = (256, 128),
        train: bool | None = None,
        augment: AugmentConfig | None = None,
        role_names: Seq[str] = DEFAULT_ROLE_NAMES,
        index: pd.DataFrame | None = None,
    ) -> None:
        """Open a crop store.

        Args:
            root: the crop store folder.
            split: one split name or several (``"train"``, ``"query"``, ``"gallery"``).
            image_size: (height, width) of the returned images.
            train: apply augmentation; defaults to whether ``split`` is ``"train"``.
            augment: augmentation settings when ``train`` (default :class:`AugmentConfig`).
            role_names: role of each role index; every role in the split must be among them.
            index: the store's index, when already read.
        """
        self.root = Path(root)
        splits = (split,) if isinstance(split, str) else tuple(split)
        unknown = [s for s in splits if s not in SPLITS]
        if unknown:
            raise ValueError(f"unknown split {unknown[0]!r} (known: {', '.join(SPLITS)})")
        full = read_crop_index(self.root) if index is None else index
        family = full[full["split"].map(_FAMILY).isin({_FAMILY[s] for s in splits})]
        self.index = full[full["split"].isin(splits)].set_index("crop_id", drop=False)
        self.image_size = (int(image_size[0]), int(image_size[1]))
        self.role_names = tuple(role_names)
        self.identity_names = tuple(sorted(family["identity"].unique()))
        self.match_names = tuple(sorted(family["sequence"].unique()))
        self._labels()
        self.train = splits == ("train",) if train is None else train
        self.transform = _train_transform(self.image_size, augment or AugmentConfig()) if self.train else None
        self._erase = v2.RandomErasing(p=augment.erase_p) if self.train and augment and augment.erase_p else None
        self._normalize = v2.Compose([v2.ToDtype(torch.float32, scale=True), v2.Normalize(IMAGENET_MEAN, IMAGENET_STD)])

    @property
    def num_ids(self) -> int:
        """Number of identities of the split's family (``pid`` lies in ``0..num_ids-1``)."""
        return len(self.identity_names)

    @property
    def num_matches(self) -> int:
        """Number of sequences of the split's family."""
        return len(self.match_names)

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        image, parts = self.load(i)
        image_t = tv_tensors.Image(torch.from_numpy(image).permute(2, 0, 1))
        parts_t = None if parts is None else tv_tensors.Mask(torch.from_numpy(parts.astype(np.int64)))
        if self.transform is not None:
            image_t, parts_t = self.transform(image_t, parts_t)
        image_f = self._normalize(image_t)
        if self._erase is not None:
            image_f = self._erase(image_f)
        h, w = self.image_size
        return {
            "image": image_f.as_subclass(torch.Tensor).contiguous(),
            "parts": torch.full((h, w), -1, dtype=torch.int64) if parts_t is None
            else parts_t.as_subclass(torch.Tensor).contiguous(),
            "pid": torch.tensor(self.pids[i]),
            "team": torch.tensor(self.teams[i]),
            "role": torch.tensor(self.roles[i]),
            "match": torch.tensor(self.matches[i]),
            "frame": torch.tensor(self.frames[i]),
            "index": torch.tensor(self.crop_ids[i]),
        }

    def load(self, i: int) -> tuple[np.ndarray, np.ndarray | None]:
        """Item ``i`` resized to ``image_size``: RGB uint8 (H, W, 3) and uint8 part labels or ``None``."""
        h, w = self.image_size
        path = self.root / self._paths[i]
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is None:
            raise FileNotFoundError(f"{path}: missing or unreadable crop")
        image = cv2.cvtColor(cv2.resize(bgr, (w, h), interpolation=cv2.INTER_LINEAR), cv2.COLOR_BGR2RGB)
        if not self._has_mask[i]:
            return image, None
        mask_path = self.root / self._mask_paths[i]
        mask = cv2.imread(str(mask_path), cv2.IMREAD_UNCHANGED)
        if mask is None:
            raise FileNotFoundError(f"{mask_path}: missing or unreadable part mask")
        # nearest by pixel centre (INTER_NEAREST_EXACT), the sampling grid of INTER_LINEAR: plain INTER_NEAREST
        # samples pixel corners and shifts the parts by up to a pixel against the image
        return image, cv2.resize(mask, (w, h), interpolation=cv2.INTER_NEAREST_EXACT)

    def _labels(self) -> None:
        idx = self.index
        unknown = sorted(set(idx["role"]) - set(self.role_names))
        if unknown:
            raise ValueError(f"role {unknown[0]!r} of the crop store is not among role_names {self.role_names}")
        pid_of = {k: i for i, k in enumerate(self.identity_names)}
        match_of = {k: i for i, k in enumerate(self.match_names)}
        role_of = {k: i for i, k in enumerate(self.role_names)}
        self.pids = idx["identity"].map(pid_of).to_numpy(np.int64)
        self.matches = idx["sequence"].map(match_of).to_numpy(np.int64)
        self.roles = idx["role"].map(role_of).to_numpy(np.int64)
        self.teams = np.array([TEAM_INDEX.get(t, -1) for t in idx["team"]], dtype=np.int64)
        self.frames = idx["frame"].to_numpy(np.int64)
        self.crop_ids = idx["crop_id"].to_numpy(np.int64)
        self._paths = idx["path"].tolist()
        self._mask_paths = idx["mask_path"].tolist()
        self._has_mask = idx["has_mask"].to_numpy(bool)


def _train_transform(size: tuple[int, int], cfg: AugmentConfig) -> v2.Transform:
    """Joint geometric transforms (image and part mask) followed by image-only colour jitter."""
    h, w = size
    steps: list[v2.Transform] = []
    pad = (round(cfg.pad_fraction * w), round(cfg.pad_fraction * h))
    if max(pad) > 0:
        steps.append(v2.RandomCrop(size, padding=list(pad), fill={tv_tensors.Image: 0, tv_tensors.Mask: 0}))
    if cfg.flip_p > 0:
        steps.append(v2.RandomHorizontalFlip(cfg.flip_p))
    if max(cfg.brightness, cfg.contrast, cfg.saturation, cfg.hue) > 0:
        steps.append(v2.ColorJitter(cfg.brightness, cfg.contrast, cfg.saturation, cfg.hue or None))
    return v2.Compose(steps) if steps else v2.Identity()
