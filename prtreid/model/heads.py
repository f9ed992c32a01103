"""Building blocks of the PRTReID head (after BPBReID).

* :class:`PartAttention`: a pixel-to-part classifier turning the feature map into K+1 logits
  (channel 0 is the background), whose softmax gives the part attention maps.
* :func:`attention_pool`, :func:`global_pool`: attention-weighted and global pooling.
* :func:`part_visibility`: one score per part from the attention maps.
* :class:`Reduction`: pooled features to ``embed_dim`` (Linear, BN, ReLU, dropout), shared by the
  parts.
* :class:`BNNeck`: batch norm between the metric-learning embedding and the classifiers
  (Luo et al., "Bag of Tricks"), one per embedding and per part.
* :class:`GroupedLinear`: one linear classifier per part.
* :class:`TeamHead`, :class:`RoleHead`: the team-affiliation embedding and the role classifier.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

PoolMode = Literal["avg", "max", "avgmax"]
VisibilityMode = Literal["argmax", "max"]


class PartAttention(nn.Module):
    """Pixel-wise part classifier: ``(B, C, h, w)`` features to ``(B, K+1, h, w)`` logits."""

    def __init__(self, in_channels: int, num_parts: int) -> None:
        super().__init__()
        self.norm = nn.BatchNorm2d(in_channels)
        self.classifier = nn.Conv2d(in_channels, num_parts + 1, kernel_size=1)
        nn.init.normal_(self.classifier.weight, std=0.001)
        nn.init.zeros_(self.classifier.bias)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Part logits; softmax over dim 1 gives the attention maps (background first)."""
        return self.classifier(self.norm(features))


def attention_pool(features: torch.Tensor, weights: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Weighted average of ``features`` (B, C, h, w) under ``weights`` (B, M, h, w): (B, M, C)."""
    pooled = torch.einsum("bchw,bmhw->bmc", features, weights)
    return pooled / weights.sum(dim=(2, 3)).clamp_min(eps).unsqueeze(-1)


def global_pool(features: torch.Tensor, mode: PoolMode = "avg") -> torch.Tensor:
    """Global pooling of ``(B, C, h, w)`` to ``(B, C)``; ``avgmax`` is the mean of both."""
    if mode == "avg":
        return features.mean(dim=(2, 3))
    if mode == "max":
        return features.amax(dim=(2, 3))
    if mode == "avgmax":
        return 0.5 * (features.mean(dim=(2, 3)) + features.amax(dim=(2, 3)))
    raise ValueError(f"unknown pooling mode {mode!r}")


def part_visibility(probabilities: torch.Tensor, mode: VisibilityMode = "argmax") -> torch.Tensor:
    """Visibility ``(B, K)`` in [0, 1] of the K parts of attention maps ``(B, K+1, h, w)``.

    ``"max"``: the highest probability of the part over the pixels (differentiable).
    ``"argmax"``: 1 when the part wins the argmax of at least one pixel, else 0 (BPBReID's binary
    score; no gradient).
    """
    if mode == "max":
        return probabilities[:, 1:].amax(dim=(2, 3))
    if mode == "argmax":
        winners = F.one_hot(probabilities.argmax(dim=1), probabilities.shape[1])  # (B, h, w, K+1)
        return winners.amax(dim=(1, 2))[:, 1:].to(probabilities.dtype)
    raise ValueError(f"unknown visibility mode {mode!r}")


class Reduction(nn.Module):
    """Linear, batch norm, ReLU and dropout from ``in_dim`` to ``out_dim`` on ``(..., in_dim)``."""

    def __init__(self, in_dim: int, out_dim: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.linear = nn.Linear(in_dim, out_dim)
        self.norm = nn.BatchNorm1d(out_dim)
        self.dropout = nn.Dropout(dropout)
        nn.init.kaiming_normal_(self.linear.weight, mode="fan_out")
        nn.init.zeros_(self.linear.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Reduce the last dimension; leading dimensions share the batch statistics."""
        lead = x.shape[:-1]
        y = self.norm(self.linear(x.reshape(-1, x.shape[-1])))
        return self.dropout(F.relu(y)).reshape(*lead, -1)


class BNNeck(nn.Module):
    """Batch norm with a frozen zero bias, per channel of ``(B, D)`` or of ``(B, G, D)`` (per group)."""

    def __init__(self, dim: int, groups: int = 1) -> None:
        super().__init__()
        self.norm = nn.BatchNorm1d(dim * groups)
        self.norm.bias.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalise; the output has the input's shape."""
        return self.norm(x.reshape(x.shape[0], -1)).reshape(x.shape)


class GroupedLinear(nn.Module):
    """One bias-free linear map per group: ``(B, G, in_dim)`` to ``(B, G, out_dim)``."""

    def __init__(self, groups: int, in_dim: int, out_dim: int, std: float = 0.001) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(groups, out_dim, in_dim) * std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply group ``g``'s weights to ``x[:, g]``."""
        return torch.einsum("bgi,goi->bgo", x, self.weight)


def classifier(in_dim: int, num_classes: int, std: float = 0.001) -> nn.Linear:
    """A bias-free linear classifier with small initial weights (BNNeck convention)."""
    layer = nn.Linear(in_dim, num_classes, bias=False)
    nn.init.normal_(layer.weight, std=std)
    return layer


class TeamHead(nn.Module):
    """MLP producing the team-affiliation embedding ``(B, out_dim)``, L2-normalised if asked."""

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int, normalize: bool = True) -> None:
        super().__init__()
        self.mlp = nn.Sequential(
            nn.Linear(in_dim, hidden_dim),
            nn.BatchNorm1d(hidden_dim),
            nn.ReLU(inplace=True),
            nn.Linear(hidden_dim, out_dim),
        )
        self.normalize = normalize

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Team embedding of ``(B, in_dim)`` features."""
        y = self.mlp(x)
        return F.normalize(y, dim=1) if self.normalize else y


class RoleHead(nn.Module):
    """Role classifier: dropout then a linear layer to ``num_roles`` logits.

    Training batches over-sample rare roles (the sampler puts a goalkeeper, a referee, ... in every
    batch), so the learnt logits carry the batches' role prior. In eval mode the head adds
    ``prior_correction`` = log(natural prior) - log(training-batch prior), set by the trainer:
    post-hoc logit adjustment (Menon et al., ICLR 2021), which restores the natural prior. It is a
    buffer, saved with the weights; zeros (no correction) until set.
    """

    def __init__(self, in_dim: int, num_roles: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.linear = nn.Linear(in_dim, num_roles)
        nn.init.normal_(self.linear.weight, std=0.001)
        nn.init.zeros_(self.linear.bias)
        self.register_buffer("prior_correction", torch.zeros(num_roles))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Role logits ``(B, num_roles)`` (prior-corrected in eval mode)."""
        logits = self.linear(self.dropout(x))
        return logits if self.training else logits + self.prior_correction

    def set_prior_correction(self, natural: torch.Tensor, sampled: torch.Tensor, eps: float = 1e-3) -> None:
        """Set the eval-time correction from two role distributions (counts or frequencies)."""
        natural = natural.float() / natural.sum().clamp_min(1)
        sampled = sampled.float() / sampled.sum().clamp_min(1)
        self.prior_correction.copy_((natural + eps).log() - (sampled + eps).log())
