"""Kit colour: the CIELAB colour of a crop's shirt and shorts, read under the model's own part maps.

Clustering the players' kit colours into two teams is the classical way to tell teams apart in
sports video. Here the pixels come from PRTReID's part attention (torso for the shirt, legs for
the shorts), sharpened so that the blend at a part's edge barely counts. Lightness is
down-weighted: with it at full weight, KMeans split players of one kit by their shading on the
unseen clips, where the chroma (a*, b*) told close kits apart (docs/experiments.md, "Kit colour
under the part maps").
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from prtreid.data.reid_dataset import IMAGENET_MEAN, IMAGENET_STD
from prtreid.data.types import PARTS
from prtreid.errors import ConfigError

KIT_PARTS: tuple[str, ...] = ("torso", "legs")
"""The parts whose colour makes the kit descriptor (shirt, then shorts)."""
LIGHTNESS_WEIGHT = 0.3
"""Weight of L* against a* and b* (all in CIELAB units)."""
SHARPNESS = 6.0
"""Exponent on each part's probabilities, relative to the crop's most probable pixel of that part."""

_SRGB_TO_XYZ = torch.tensor([[0.412453, 0.357580, 0.180423],
                             [0.212671, 0.715160, 0.072169],
                             [0.019334, 0.119193, 0.950227]])
_WHITE_D65 = torch.tensor([0.950456, 1.0, 1.088754])
_MEAN = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
_STD = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
_SCALE = torch.tensor([LIGHTNESS_WEIGHT, 1.0, 1.0])


def rgb_to_lab(rgb: torch.Tensor) -> torch.Tensor:
    """CIELAB (D65) of sRGB images ``(B, 3, H, W)`` in [0, 1]: L* in [0, 100], a* and b* about [-128, 127]."""
    linear = torch.where(rgb <= 0.04045, rgb / 12.92, ((rgb.clamp_min(0) + 0.055) / 1.055) ** 2.4)
    matrix = (_SRGB_TO_XYZ / _WHITE_D65[:, None]).to(rgb)
    xyz = torch.einsum("ij,bjhw->bihw", matrix, linear)
    delta = 6.0 / 29.0
    f = torch.where(xyz > delta**3, xyz.clamp_min(delta**3) ** (1.0 / 3.0), xyz / (3 * delta**2) + 4.0 / 29.0)
    fx, fy, fz = f.unbind(1)
    return torch.stack([116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)], dim=1)


def has_kit_parts(num_parts: int) -> bool:
    """Whether a model of ``num_parts`` parts has the part masks' parts, which :func:`kit_colour` reads."""
    return num_parts == len(PARTS) - 1


def kit_colour(images: torch.Tensor, part_logits: torch.Tensor) -> torch.Tensor:
    """Kit descriptors ``(B, 3 * len(KIT_PARTS))``: (0.3 L*, a*, b*) of the shirt, then of the shorts.

    Args:
        images: ``(B, 3, H, W)`` ImageNet-normalised RGB crops (the model's input).
        part_logits: ``(B, len(PARTS), h, w)`` pixel-to-part logits (background first, then
            :data:`~prtreid.data.types.PARTS` order), upsampled here to the crop's size.

    Raises:
        ConfigError: the part maps are not the part masks' (a model with another ``num_parts``).
    """
    # a TorchScript trace records shapes as tensors: the exporter checks the model's parts itself
    if not torch.jit.is_tracing() and not has_kit_parts(part_logits.shape[1] - 1):
        raise ConfigError(f"the kit colour reads the part masks' parts {PARTS[1:]}: this model has "
                          f"{part_logits.shape[1] - 1} parts (model.num_parts); use the team embedding instead")
    images, part_logits = images.float(), part_logits.float()
    lab = rgb_to_lab((images * _STD.to(images) + _MEAN.to(images)).clamp(0, 1))
    probs = part_logits.softmax(dim=1)[:, [PARTS.index(name) for name in KIT_PARTS]]
    probs = F.interpolate(probs, size=images.shape[-2:], mode="bilinear", align_corners=False)
    peak = probs.amax(dim=(2, 3), keepdim=True)
    # relative to the part's most probable pixel, so a part the model barely sees still has a colour;
    # one it does not see at all (probabilities that underflow to 0) takes the whole crop's
    weights = torch.where(peak > 0, probs / peak.clamp_min(torch.finfo(probs.dtype).tiny), 1.0) ** SHARPNESS
    colour = torch.einsum("bphw,bchw->bpc", weights, lab) / weights.sum(dim=(2, 3))[..., None]
    return (colour * _SCALE.to(colour)).flatten(1)
