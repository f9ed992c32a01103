"""The PRTReID model: a timm backbone, BPBReID part-based re-id embeddings, a team and a role head.

Data flow of :meth:`PRTReID.forward`::

    images (B, 3, H, W)
      -> backbone feature map (B, C, h, w)                                     forward_features
      -> part logits (B, K+1, h, w) -> softmax attention maps, visibility (B, K)
      -> pooled features: global (GAP/GMP), foreground (sum of part maps), parts (one per map)
      -> Reduction to embed_dim: embeddings {"global", "foreground", "parts"}   (metric learning)
      -> BNNeck: bn_embeddings (same keys)                                      (classifiers)
      -> identity logits per embedding, team embedding, role logits             forward_head

Numbers of roles and identities come from the dataset (:meth:`PRTReID.from_config`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any, Callable, Literal

import torch
from torch import nn

from prtreid.data.types import CLOTHING_PARTS, PARTS
from prtreid.errors import ConfigError
from prtreid.model.backbone import Backbone, check_backbone_name
from prtreid.model.heads import (
    BNNeck,
    GroupedLinear,
    PartAttention,
    PoolMode,
    Reduction,
    RoleHead,
    TeamHead,
    VisibilityMode,
    attention_pool,
    classifier,
    global_pool,
    part_visibility,
)

HeadInput = Literal["global", "foreground", "concat", "clothes"]
EMBEDDING_NAMES: tuple[str, ...] = ("global", "foreground", "parts")


@dataclass(frozen=True)
class ModelConfig:
    """Settings of :class:`PRTReID` (``model:`` section of a training config).

    Attributes:
        backbone: timm model name; see :mod:`prtreid.model.backbone` for presets.
        pretrained: ``False``, ``True`` (timm hub) or a local weights file path.
        output_stride: stride of the deepest feature map (8/16/32), ``None`` for the model's own.
        feature_levels: backbone stages used (several are fused at the finest resolution).
        backbone_kwargs: extra ``timm.create_model`` arguments (e.g. ``{"feature_location": ""}``).
        num_parts: K, the number of body parts (5 = head, torso, arms, legs, feet of the masks).
        embed_dim: dimension of every re-id embedding after reduction.
        global_pool: pooling of the global embedding: ``avg``, ``max`` or ``avgmax``.
        visibility: ``argmax`` (binary, BPBReID) or ``max`` (continuous) part visibility.
        team_dim: dimension of the team embedding.
        team_hidden: hidden width of the team MLP.
        team_normalize: L2-normalise the team embedding.
        team_input / role_input: which BNNeck embedding feeds the head: ``global``,
            ``foreground`` or ``concat`` (both concatenated); the team head also takes ``clothes``,
            an embedding of its own pooled over the torso, arms and legs part maps (needs the
            5 parts of the masks, and the part-mask loss to make the maps those parts).
        id_classifier: add identity classifiers (needs ``num_ids > 0``).
        dropout: dropout after the reduction layers and before the role classifier.
        image_size: (height, width) of the input crops.
    """

    backbone: str = "resnet18"
    pretrained: bool | str = False
    output_stride: int | None = 16
    feature_levels: tuple[int, ...] = (-1,)
    backbone_kwargs: dict[str, Any] = field(default_factory=dict)
    num_parts: int = 5
    embed_dim: int = 256
    global_pool: PoolMode = "avg"
    visibility: VisibilityMode = "argmax"
    team_dim: int = 64
    team_hidden: int = 256
    team_normalize: bool = True
    team_input: HeadInput = "foreground"
    role_input: HeadInput = "foreground"
    id_classifier: bool = True
    dropout: float = 0.0
    image_size: tuple[int, int] = (256, 128)

    def __post_init__(self) -> None:
        check_backbone_name(self.backbone)
        for name in ("num_parts", "embed_dim", "team_dim", "team_hidden"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}: must be at least 1, got {getattr(self, name)}")
        if self.output_stride not in (None, 8, 16, 32):
            raise ConfigError(f"output_stride: expected 8, 16, 32 or null, got {self.output_stride}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout: must be in [0, 1), got {self.dropout}")
        if self.role_input == "clothes":
            raise ConfigError("role_input: 'clothes' is a team input only")
        if self.team_input == "clothes" and self.num_parts != len(PARTS) - 1:
            raise ConfigError(f"team_input 'clothes' needs num_parts {len(PARTS) - 1} (the part masks' parts)")
        if len(self.image_size) != 2 or min(self.image_size) < 1:
            raise ConfigError(f"image_size: expected (height, width), got {self.image_size}")


@dataclass(frozen=True)
class ModelOutput:
    """Everything :class:`PRTReID` predicts for a batch of B crops.

    Attributes:
        embeddings: re-id embeddings before the BNNeck, for metric learning and retrieval:
            ``"global"`` (B, D), ``"foreground"`` (B, D), ``"parts"`` (B, K, D).
        bn_embeddings: the same after the BNNeck (inputs of the classifiers).
        visibility: (B, K) part visibility scores in [0, 1].
        part_logits: (B, K+1, h, w) pixel-to-part logits at the feature-map resolution,
            channel 0 being the background.
        team: (B, Dt) team-affiliation embedding.
        role_logits: (B, R) role logits.
        id_logits: identity logits ``"global"`` (B, N), ``"foreground"`` (B, N), ``"parts"``
            (B, K, N), or ``None`` without identity classifiers.
    """

    embeddings: dict[str, torch.Tensor]
    bn_embeddings: dict[str, torch.Tensor]
    visibility: torch.Tensor
    part_logits: torch.Tensor
    team: torch.Tensor
    role_logits: torch.Tensor
    id_logits: dict[str, torch.Tensor] | None = None

    def reid_features(self, use_bn: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Test-time re-id descriptor: features (B, K+2, D) and visibility (B, K+2).

        Rows are the K parts, then foreground, then global (those two always visible). Compare
        two descriptors with :func:`prtreid.eval.reid.part_distance` (BPBReID's test-time distance,
        parts weighted by the product of their visibilities), as evaluation and the tracker do.
        """
        source = self.bn_embeddings if use_bn else self.embeddings
        holistic = torch.stack([source["foreground"], source["global"]], dim=1)
        features = torch.cat([source["parts"], holistic], dim=1)
        ones = self.visibility.new_ones(self.visibility.shape[0], 2)
        return features, torch.cat([self.visibility, ones], dim=1)

    def role_probabilities(self) -> torch.Tensor:
        """Softmax of the role logits, (B, R)."""
        return self.role_logits.softmax(dim=1)

    def part_probabilities(self) -> torch.Tensor:
        """Softmax of the part logits, (B, K+1, h, w)."""
        return self.part_logits.softmax(dim=1)

    def tensors(self) -> list[torch.Tensor]:
        """Every tensor of the output."""
        out: list[torch.Tensor] = []
        for f in fields(self):
            value = getattr(self, f.name)
            out += list(value.values()) if isinstance(value, dict) else [value] if isinstance(value, torch.Tensor) else []
        return out

    def apply(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> ModelOutput:
        """A copy with ``fn`` applied to every tensor, e.g. ``out.apply(lambda t: t.detach().cpu())``."""
        changes: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, dict):
                changes[f.name] = {k: fn(v) for k, v in value.items()}
            elif isinstance(value, torch.Tensor):
                changes[f.name] = fn(value)
        return replace(self, **changes)


class PRTReID(nn.Module):
    """Part-based re-id model with team-affiliation and role heads.

    Args:
        cfg: the model settings.
        num_roles: number of role classes (the dataset's ``len(role_names)``).
        num_ids: number of training identities; 0 disables the identity classifiers.
    """

    def __init__(self, cfg: ModelConfig, num_roles: int, num_ids: int = 0) -> None:
        super().__init__()
        if num_roles < 1:
            raise ConfigError(f"num_roles must be at least 1, got {num_roles}")
        if num_ids < 0:
            raise ConfigError(f"num_ids must be non-negative, got {num_ids}")
        self.cfg = cfg
        self.num_roles = num_roles
        self.num_ids = num_ids if cfg.id_classifier else 0
        self.backbone = Backbone(
            cfg.backbone, cfg.pretrained, cfg.output_stride, cfg.feature_levels, cfg.backbone_kwargs
        )
        channels, dim, parts = self.backbone.out_channels, cfg.embed_dim, cfg.num_parts
        self.attention = PartAttention(channels, parts)
        self.reduce = nn.ModuleDict({_key(n): Reduction(channels, dim, cfg.dropout) for n in EMBEDDING_NAMES})
        self.bnneck = nn.ModuleDict(
            {_key("global"): BNNeck(dim), _key("foreground"): BNNeck(dim), _key("parts"): BNNeck(dim, groups=parts)}
        )
        if cfg.team_input == "clothes":
            self.clothes = nn.Sequential(Reduction(channels, dim, cfg.dropout), BNNeck(dim))
        team_in = _head_dim(cfg.team_input, dim)
        self.team_head = TeamHead(team_in, cfg.team_hidden, cfg.team_dim, cfg.team_normalize)
        self.role_head = RoleHead(_head_dim(cfg.role_input, dim), num_roles, cfg.dropout)
        self.id_heads = self._id_heads(dim, parts) if self.num_ids else None

    @classmethod
    def from_config(cls, cfg: ModelConfig, num_roles: int, num_ids: int = 0) -> PRTReID:
        """Build the model; ``num_roles`` and ``num_ids`` come from the training dataset."""
        return cls(cfg, num_roles=num_roles, num_ids=num_ids)

    @property
    def feature_size(self) -> tuple[int, int]:
        """(h, w) of the feature map for ``cfg.image_size`` inputs."""
        height, width = self.cfg.image_size
        stride = self.backbone.stride
        return -(-height // stride), -(-width // stride)

    def forward_features(self, images: torch.Tensor) -> torch.Tensor:
        """Backbone feature map (B, C, h, w) of normalised RGB images (B, 3, H, W)."""
        return self.backbone(images)

    def forward_head(self, features: torch.Tensor) -> ModelOutput:
        """All predictions from a backbone feature map."""
        part_logits = self.attention(features)
        probabilities = part_logits.softmax(dim=1)
        embeddings = self._embeddings(features, probabilities)
        bn_embeddings = {name: self.bnneck[_key(name)](emb) for name, emb in embeddings.items()}
        return ModelOutput(
            embeddings=embeddings,
            bn_embeddings=bn_embeddings,
            visibility=part_visibility(probabilities, self.cfg.visibility),
            part_logits=part_logits,
            team=self.team_head(self._team_input(features, probabilities, bn_embeddings)),
            role_logits=self.role_head(_head_input(bn_embeddings, self.cfg.role_input)),
            id_logits=self._id_logits(bn_embeddings),
        )

    def forward(self, images: torch.Tensor) -> ModelOutput:
        """Predict a batch of crops (B, 3, H, W)."""
        return self.forward_head(self.forward_features(images))

    def _embeddings(self, features: torch.Tensor, probabilities: torch.Tensor) -> dict[str, torch.Tensor]:
        parts_maps = probabilities[:, 1:]
        pooled = {
            "global": global_pool(features, self.cfg.global_pool),
            "foreground": attention_pool(features, parts_maps.sum(dim=1, keepdim=True))[:, 0],
            "parts": attention_pool(features, parts_maps),
        }
        return {name: self.reduce[_key(name)](value) for name, value in pooled.items()}

    def _team_input(self, features: torch.Tensor, probabilities: torch.Tensor,
                    bn_embeddings: dict[str, torch.Tensor]) -> torch.Tensor:
        if self.cfg.team_input != "clothes":
            return _head_input(bn_embeddings, self.cfg.team_input)
        weights = probabilities[:, [PARTS.index(name) for name in CLOTHING_PARTS]].sum(dim=1, keepdim=True)
        return self.clothes(attention_pool(features, weights)[:, 0])

    def _id_heads(self, dim: int, parts: int) -> nn.ModuleDict:
        return nn.ModuleDict(
            {
                _key("global"): classifier(dim, self.num_ids),
                _key("foreground"): classifier(dim, self.num_ids),
                _key("parts"): GroupedLinear(parts, dim, self.num_ids),
            }
        )

    def _id_logits(self, bn_embeddings: dict[str, torch.Tensor]) -> dict[str, torch.Tensor] | None:
        if self.id_heads is None:
            return None
        return {name: self.id_heads[_key(name)](bn_embeddings[name]) for name in EMBEDDING_NAMES}


def inference_layout(device: torch.device) -> torch.memory_format:
    """The memory format to run PRTReID in for inference on ``device``.

    ``channels_last`` on a CPU, whose oneDNN convolutions take it faster (1.2-1.5x with the CPU
    preset's model, the same outputs within 1e-6: ``benchmarks/embed_layout.py``); on a GPU, where it
    was not measured, the model's own layout. Training keeps the default layout (no gain measured).
    """
    return torch.channels_last if device.type == "cpu" else torch.preserve_format


def _key(name: str) -> str:
    """Module name of an embedding's layers ("global" is a Python keyword, which breaks FX/ONNX codegen)."""
    return f"{name}_emb"


def _head_dim(which: HeadInput, dim: int) -> int:
    return 2 * dim if which == "concat" else dim


def _head_input(bn_embeddings: dict[str, torch.Tensor], which: HeadInput) -> torch.Tensor:
    if which == "concat":
        return torch.cat([bn_embeddings["global"], bn_embeddings["foreground"]], dim=1)
    return bn_embeddings[which]
