"""Backbone factory: any timm model by name, returning one spatial feature map.

The re-id heads need a single feature map ``(B, C, h, w)``. :class:`Backbone` wraps a timm model
built with ``features_only=True`` and either takes one stage or fuses several (each resized to
the finest selected resolution, then concatenated along channels).

Presets (``ModelConfig`` fields, see :mod:`prtreid.model.prtreid`):

* CPU / tests: ``backbone="resnet18", output_stride=16``: 512 channels at stride 16, so a 256x128
  crop gives a 16x8 map (the last stage is dilated instead of strided, like BPBReID's
  ``last_stride=1``). The CPU preset (``configs/train_cpu_small.yaml``) adds
  ``feature_levels=(2, -1)``: layer2 (128 channels, stride 8) fused with layer4, a 12x6 map for
  its 96x48 crops, at no measurable cost per training step.
* GPU: ``backbone="resnet50", output_stride=16``: 2048 channels at stride 16.
* GPU, BPBReID's setting: ``backbone="hrnet_w32", output_stride=None,
  feature_levels=(1, 2, 3, 4), backbone_kwargs={"feature_location": ""}``: the four HRNet
  branches (32+64+128+256 = 480 channels) fused at stride 4 (a 64x32 map for 256x128 crops).

``pretrained`` is ``False`` (random init), ``True`` (timm's hub weights; needs network access) or a
path to a local weights file (loaded through timm's ``pretrained_cfg_overlay=dict(file=PATH)``).
"""

from __future__ import annotations

import difflib
import logging
from pathlib import Path
from typing import Any

import timm
import torch
import torch.nn.functional as F
from torch import nn

from prtreid.errors import ConfigError

log = logging.getLogger(__name__)


def check_backbone_name(name: str) -> None:
    """Raise :class:`ConfigError` naming close matches when ``name`` is not a timm model."""
    if timm.is_model(name):
        return
    close = difflib.get_close_matches(name, timm.list_models(), n=5, cutoff=0.6)
    hint = f" (did you mean: {', '.join(close)}?)" if close else ""
    raise ConfigError(f"backbone: unknown timm model {name!r}{hint}")


def timm_pretrained_kwargs(pretrained: bool | str | Path) -> dict[str, Any]:
    """Keyword arguments of ``timm.create_model`` for hub (``True``) or local-file weights."""
    if isinstance(pretrained, bool):
        return {"pretrained": pretrained}
    path = Path(pretrained).expanduser()
    if not path.is_file():
        raise ConfigError(f"pretrained: weights file {str(path)!r} does not exist")
    return {"pretrained": True, "pretrained_cfg_overlay": {"file": str(path)}}


class Backbone(nn.Module):
    """A timm feature extractor producing one feature map ``(B, out_channels, H/stride, W/stride)``.

    Args:
        name: a timm model name (``timm.list_models()``).
        pretrained: ``False``, ``True`` (hub) or a local weights path.
        output_stride: dilate the last stages so the deepest map has this stride (8, 16 or 32);
            ``None`` keeps the model's own strides (needed for models that do not support it).
        feature_levels: indices into the model's feature stages (negative from the end); several
            levels are resized to the finest of them and concatenated.
        timm_kwargs: extra keyword arguments for ``timm.create_model``.
    """

    def __init__(
        self,
        name: str,
        pretrained: bool | str | Path = False,
        output_stride: int | None = 16,
        feature_levels: tuple[int, ...] = (-1,),
        timm_kwargs: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        check_backbone_name(name)
        kwargs = dict(timm_kwargs or {})
        if output_stride is not None:
            kwargs["output_stride"] = output_stride
        kwargs.update(timm_pretrained_kwargs(pretrained))
        self.model = _create_features_model(name, feature_levels, kwargs)
        info = self.model.feature_info
        self.out_channels: int = sum(info.channels())
        self.stride: int = min(info.reduction())
        self.name = name
        log.debug("backbone %s: %d channels at stride %d", name, self.out_channels, self.stride)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Feature map of a batch of images ``(B, 3, H, W)``."""
        maps = self.model(images)
        if len(maps) == 1:
            return maps[0]
        size = max((m.shape[-2:] for m in maps), key=lambda s: s[0] * s[1])
        resized = [
            m if m.shape[-2:] == size else F.interpolate(m, size=size, mode="bilinear", align_corners=False)
            for m in maps
        ]
        return torch.cat(resized, dim=1)


def _create_features_model(name: str, feature_levels: tuple[int, ...], kwargs: dict[str, Any]) -> nn.Module:
    if not feature_levels:
        raise ConfigError("feature_levels: give at least one feature stage index")
    structural = {k: v for k, v in kwargs.items() if k not in ("pretrained", "pretrained_cfg_overlay")}
    try:
        return timm.create_model(name, features_only=True, out_indices=tuple(feature_levels), **kwargs)
    except IndexError:
        raise ConfigError(f"feature_levels: {feature_levels} out of range for timm model {name!r}") from None
    except (AssertionError, RuntimeError, TypeError) as exc:
        raise ConfigError(
            f"backbone: could not build timm model {name!r} as a feature extractor with {structural}: "
            f"{type(exc).__name__}: {exc}"
        ) from None
    except OSError as exc:  # hub unreachable or offline (huggingface_hub errors derive from OSError)
        raise ConfigError(
            f"model.pretrained: could not fetch the pretrained weights of {name!r} from the model hub "
            f"({exc.__class__.__name__}); set model.pretrained to a local weights file or to false"
        ) from exc
