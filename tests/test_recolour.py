"""Kit recolouring: one hue turn per match, clothes only."""

from __future__ import annotations

import torch

from prtreid.data.recolour import recolour_kits
from prtreid.data.reid_dataset import IMAGENET_MEAN, IMAGENET_STD
from prtreid.data.types import PARTS


def _batch() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    rgb = torch.zeros(4, 3, 8, 4)
    rgb[:, 0], rgb[:, 1], rgb[:, 2] = 0.8, 0.2, 0.1  # a red kit on every crop
    images = (rgb - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    parts = torch.full((4, 8, 4), PARTS.index("torso"))
    parts[:, :2] = PARTS.index("background")
    parts[3] = -1  # a crop without a mask
    return images, parts, torch.tensor([0, 0, 1, 1])


def test_a_match_turns_as_one_and_only_its_clothes_change() -> None:
    images, parts, matches = _batch()
    out = recolour_kits(images, parts, matches, p=1.0, generator=torch.Generator().manual_seed(0))
    clothes = slice(2, None)
    assert not torch.allclose(out[0, :, clothes], images[0, :, clothes], atol=1e-3)
    torch.testing.assert_close(out[0], out[1])  # same match, same turn
    assert not torch.allclose(out[0, :, clothes], out[2, :, clothes], atol=1e-3)  # the other match: another
    torch.testing.assert_close(out[:, :, :2], images[:, :, :2])  # background untouched
    torch.testing.assert_close(out[3], images[3])  # no mask, no change


def test_probability_zero_changes_nothing() -> None:
    images, parts, matches = _batch()
    assert recolour_kits(images, parts, matches, p=0.0) is images
