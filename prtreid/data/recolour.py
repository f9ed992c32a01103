"""Kit recolouring: a batch augmentation that dresses a whole match in new kit colours.

What teaches team and role to generalise is the number of distinct kits seen in training, not
the number of frames. Rotating the hue of the clothes (torso, arms and legs of the part masks) of
every crop of one match by the same random angle makes a new match out of an old one: teams stay
apart (both kits turn together), identities stay consistent within the batch, and the role head
must rely on what survives a hue change (black shorts and socks, gloves, patterns) rather than on
the palette of the training generator. Grass, skin of the face and the background keep their
colours. Crops without a part mask are left unchanged.
"""

from __future__ import annotations

import torch
from torchvision.transforms.v2 import functional as TF

from prtreid.data.reid_dataset import IMAGENET_MEAN, IMAGENET_STD
from prtreid.data.types import CLOTHING_PARTS, PARTS


def recolour_kits(images: torch.Tensor, parts: torch.Tensor, matches: torch.Tensor, p: float,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """Rotate the clothes' hue of each match of a batch, with probability ``p`` per match.

    Args:
        images: ``(B, 3, H, W)`` ImageNet-normalised RGB crops.
        parts: ``(B, H, W)`` part labels (:data:`PARTS` indices; -1 where there is no mask).
        matches: ``(B,)`` match index of each crop: crops of one match share one angle.
        p: probability that a match is recoloured.
        generator: random source (default: torch's global one).

    Returns:
        The augmented images (a new tensor; the input is not modified).
    """
    if p <= 0:
        return images
    mean = torch.tensor(IMAGENET_MEAN, device=images.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=images.device).view(1, 3, 1, 1)
    clothes = torch.isin(parts, torch.tensor([PARTS.index(n) for n in CLOTHING_PARTS], device=parts.device))
    out = images.clone()
    for m in torch.unique(matches):
        if torch.rand((), generator=generator) >= p:
            continue
        sel = matches == m
        angle = float(torch.rand((), generator=generator)) - 0.5  # a full turn of hue, in [-0.5, 0.5)
        rgb = (images[sel] * std + mean).clamp(0, 1)
        turned = (TF.adjust_hue(rgb, angle) - mean) / std
        out[sel] = torch.where(clothes[sel].unsqueeze(1), turned, images[sel])
    return out
