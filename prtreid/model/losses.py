"""Multi-task losses of PRTReID: part-based re-id, team affiliation, role and part masks.

The distances and the triplet / contrastive losses live in :mod:`prtreid.model.metric`; here are
the classification and mask losses and their weighted sum. Every loss is a plain function on
tensors; :class:`MultiTaskLoss` reads a :class:`ModelOutput` and a batch (the re-id dataset's dict:
``pid``, ``team``, ``role``, ``match``, ``parts``), returns each term by name (unweighted) and their
weighted sum as ``"total"``. Nothing here moves tensors
between devices or steps an optimizer. Anchors or pixels with nothing to compare contribute zero
(no data-dependent branching), so every process of a distributed run does the same work; the only
host-device synchronisation is the range check of the part labels.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from prtreid.errors import ConfigError
from prtreid.model.metric import (
    Metric,
    part_averaged_triplet_loss,
    team_supcon_loss,
    team_triplet_loss,
    triplet_loss,
)
from prtreid.model.prtreid import ModelOutput

TeamLoss = Literal["triplet", "supcon"]
_Term = tuple[str, float, torch.Tensor]  # name, weight, unweighted value
DEFAULT_ROLE_NAMES: tuple[str, ...] = ("player", "goalkeeper", "referee", "other")
"""The re-id dataset's default ``role_names``; pass the dataset's own to :class:`MultiTaskLoss`."""


@dataclass(frozen=True)
class LossConfig:
    """Weights and hyper-parameters of :class:`MultiTaskLoss` (``loss:`` section of a config).

    Defaults follow the papers: re-id margin 0.3 and label smoothing 0.1 (BPBReID's GiLt loss:
    identity on holistic embeddings, part-averaged triplet on parts), part-mask weight 0.35
    (BPBReID), team margin 0.4, team weight 0.1, role weight 1.5 and focal gamma 2 (PRTReID). One
    departure: ``id_parts`` puts the identity cross-entropy on every part too (GiLt has none there).

    Attributes:
        reid_margin: margin of the re-id triplet losses.
        distance: ``euclidean`` or ``cosine`` (1 - cosine similarity) for the re-id triplets.
        triplet_parts / triplet_global / triplet_foreground: weights of the batch-hard triplet on
            the part-averaged distance and on the holistic embeddings.
        id_global / id_foreground / id_parts: weights of the identity cross-entropy per embedding
            (used only when the model has identity classifiers).
        label_smoothing: label smoothing of the identity cross-entropy.
        team_weight / team_margin: weight and margin of the within-match team triplet.
        team_loss: ``triplet`` (batch-hard, the paper's) or ``supcon`` (supervised contrastive over
            every pair of the match, Khosla et al. 2020, at ``team_temperature``).
        team_roles: roles whose samples take part in the team triplet (empty: every sample with a
            team); goalkeepers wear their own kit, so the default keeps players only.
        kit_negatives: people outside ``team_roles`` take part in the team triplet as other kits,
            never as a team's positives: the referees of a match share one kit, every other person
            (goalkeeper, staff) wears their own. The team embedding then tells every kit of a
            match apart, which the role context relies on; off, only team players take part.
        role_weight / focal_gamma: weight and focusing parameter of the role focal loss.
        role_alpha: per-role class weights (empty: none); one per role of the dataset.
        mask_weight / mask_label_smoothing: weight and smoothing of the pixel-wise part loss.
    """

    reid_margin: float = 0.3
    distance: Metric = "euclidean"
    triplet_parts: float = 1.0
    triplet_global: float = 0.0
    triplet_foreground: float = 0.0
    id_global: float = 1.0
    id_foreground: float = 1.0
    id_parts: float = 1.0
    label_smoothing: float = 0.1
    team_weight: float = 0.1
    team_margin: float = 0.4
    team_loss: TeamLoss = "triplet"
    team_temperature: float = 0.1
    team_roles: tuple[str, ...] = ("player",)
    kit_negatives: bool = True
    role_weight: float = 1.5
    focal_gamma: float = 2.0
    role_alpha: tuple[float, ...] = ()
    mask_weight: float = 0.35
    mask_label_smoothing: float = 0.0

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, (int, float)) and not isinstance(value, bool) and value < 0:
                raise ConfigError(f"{f.name}: must be non-negative, got {value}")
        for name in ("label_smoothing", "mask_label_smoothing"):
            if getattr(self, name) >= 1:
                raise ConfigError(f"{name}: must be below 1, got {getattr(self, name)}")
        if self.team_temperature <= 0:
            raise ConfigError(f"team_temperature: must be positive, got {self.team_temperature}")
        if any(a < 0 for a in self.role_alpha):
            raise ConfigError(f"role_alpha: weights must be non-negative, got {self.role_alpha}")


def identity_loss(
    logits: torch.Tensor, pids: torch.Tensor, label_smoothing: float = 0.1, weights: torch.Tensor | None = None
) -> torch.Tensor:
    """Cross-entropy with label smoothing of identity logits (B, N), or per part (B, K, N).

    For per-part logits, ``weights`` (B, K) (e.g. part visibility) weight each part's term; the
    result is the weighted mean (zero when all weights are zero).
    """
    if logits.dim() == 2:
        return F.cross_entropy(logits, pids, label_smoothing=label_smoothing)
    num_parts = logits.shape[1]
    per_part = F.cross_entropy(
        logits.flatten(0, 1), pids.repeat_interleave(num_parts), label_smoothing=label_smoothing, reduction="none"
    ).view(-1, num_parts)
    if weights is None:
        return per_part.mean()
    return (weights * per_part).sum() / weights.sum().clamp_min(1e-12)


def focal_loss(
    logits: torch.Tensor,
    targets: torch.Tensor,
    gamma: float = 2.0,
    alpha: torch.Tensor | None = None,
    ignore_index: int = -1,
) -> torch.Tensor:
    """Focal loss (Lin et al. 2017) ``-alpha_t (1 - p_t)^gamma log p_t`` of (B, C) logits.

    With ``alpha`` the mean is weighted by ``alpha_t`` (as ``F.cross_entropy(weight=alpha)``), so
    ``gamma = 0`` gives exactly the cross-entropy. Targets equal to ``ignore_index`` are skipped;
    with none left the loss is zero.
    """
    valid = targets != ignore_index
    safe_targets = torch.where(valid, targets, torch.zeros_like(targets))
    log_pt = F.log_softmax(logits, dim=1).gather(1, safe_targets.unsqueeze(1)).squeeze(1)
    # clamped: at p_t == 1 the power's gradient is infinite for gamma < 1 (and inf * 0 is NaN)
    losses = -((1.0 - log_pt.exp()).clamp_min(1e-12) ** gamma) * log_pt
    weights = valid.to(losses.dtype)
    if alpha is not None:
        weights = weights * alpha[safe_targets]
    return (weights * losses).sum() / weights.sum().clamp_min(1e-12)


def part_mask_loss(
    part_logits: torch.Tensor, part_labels: torch.Tensor, label_smoothing: float = 0.0
) -> torch.Tensor:
    """Pixel-wise cross-entropy of part logits (B, K+1, h, w) against labels (B, H, W).

    Labels are downsampled to (h, w) by the label at each cell's centre (``nearest-exact``; plain
    ``nearest`` reads a cell's top-left pixel, half a cell off); pixels labelled -1 (crops without
    a mask) are ignored, and the loss is zero when every pixel is.
    """
    num_classes = part_logits.shape[1]
    highest = int(part_labels.max())
    if highest >= num_classes:
        raise ValueError(f"part labels reach {highest} but the model predicts {num_classes - 1} parts")
    labels = F.interpolate(part_labels.unsqueeze(1).float(), size=part_logits.shape[-2:], mode="nearest-exact")
    labels = labels.squeeze(1).long()
    total = F.cross_entropy(part_logits, labels, ignore_index=-1, label_smoothing=label_smoothing, reduction="sum")
    return total / (labels >= 0).sum().clamp_min(1)


class MultiTaskLoss(nn.Module):
    """PRTReID's joint loss: re-id (triplets, identity), team triplet, role focal, part masks.

    Args:
        cfg: weights and hyper-parameters.
        role_names: the dataset's role names (to resolve ``cfg.team_roles``).

    Calling it with ``(output, batch)`` returns the enabled terms by name, unweighted
    (``triplet_parts``, ``triplet_global``, ``triplet_foreground``, ``id_global``,
    ``id_foreground``, ``id_parts``, ``team``, ``role``, ``mask``), and ``total``, their weighted
    sum. A term is enabled when its weight is positive and its inputs exist (identity logits,
    ``parts`` in the batch).
    """

    def __init__(self, cfg: LossConfig, role_names: Sequence[str] = DEFAULT_ROLE_NAMES) -> None:
        super().__init__()
        unknown = [name for name in cfg.team_roles if name not in role_names]
        if unknown:
            raise ConfigError(f"team_roles: {unknown} not among the dataset roles {list(role_names)}")
        self.cfg = cfg
        self.role_names = tuple(role_names)
        self.team_role_ids = tuple(self.role_names.index(name) for name in cfg.team_roles)

    def forward(self, output: ModelOutput, batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Named loss terms and their weighted ``"total"``."""
        weighted = self._reid_terms(output, batch) + self._team_role_mask_terms(output, batch)
        terms = {name: value for name, _, value in weighted}
        # every output joins the total with weight 0, so a disabled term's head still gets a (zero)
        # gradient: DistributedDataParallel stops at the second step on parameters without one
        unused = sum(t.float().sum() for t in output.tensors()) * 0.0
        terms["total"] = sum((w * value for _, w, value in weighted), unused)
        return terms

    def _reid_terms(self, output: ModelOutput, batch: Mapping[str, torch.Tensor]) -> list[_Term]:
        cfg, pids = self.cfg, _get(batch, "pid")
        visibility = output.visibility.detach()
        terms = []
        if cfg.triplet_parts > 0:
            parts = output.embeddings["parts"]
            loss = part_averaged_triplet_loss(parts, visibility, pids, cfg.reid_margin, cfg.distance)
            terms.append(("triplet_parts", cfg.triplet_parts, loss))
        for name in ("global", "foreground"):
            weight = getattr(cfg, f"triplet_{name}")
            if weight > 0:
                loss = triplet_loss(output.embeddings[name], pids, cfg.reid_margin, cfg.distance)
                terms.append((f"triplet_{name}", weight, loss))
        if output.id_logits is not None:
            for name, logits in output.id_logits.items():
                weight = getattr(cfg, f"id_{name}")
                if weight > 0:
                    part_weights = visibility if logits.dim() == 3 else None
                    loss = identity_loss(logits, pids, cfg.label_smoothing, part_weights)
                    terms.append((f"id_{name}", weight, loss))
        return terms

    def _team_role_mask_terms(self, output: ModelOutput, batch: Mapping[str, torch.Tensor]) -> list[_Term]:
        cfg = self.cfg
        terms = []
        if cfg.team_weight > 0:
            teams, eligible = self._kits(batch)
            if cfg.team_loss == "supcon":
                loss = team_supcon_loss(output.team, teams, _get(batch, "match"), cfg.team_temperature, eligible)
            else:
                loss = team_triplet_loss(output.team, teams, _get(batch, "match"), cfg.team_margin, eligible)
            terms.append(("team", cfg.team_weight, loss))
        if cfg.role_weight > 0:
            terms.append(("role", cfg.role_weight, self._role_loss(output.role_logits, _get(batch, "role"))))
        if cfg.mask_weight > 0 and "parts" in batch:
            loss = part_mask_loss(output.part_logits, batch["parts"], cfg.mask_label_smoothing)
            terms.append(("mask", cfg.mask_weight, loss))
        return terms

    def _kits(self, batch: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Kit label of each sample for the team triplet, and which samples take part."""
        teams = _get(batch, "team")
        if not self.team_role_ids:
            return teams, None
        roles = _get(batch, "role")
        in_team = torch.isin(roles, torch.tensor(self.team_role_ids, device=roles.device))
        if not self.cfg.kit_negatives:
            return teams, in_team
        # team sides are 0/1; the referees' kit is 2; everyone else is a kit of their own (3 + pid)
        referee = self.role_names.index("referee") if "referee" in self.role_names else -1
        outsider = torch.where(roles == referee, torch.full_like(teams, 2), 3 + _get(batch, "pid"))
        kits = torch.where(in_team, teams, outsider)
        return kits, ~in_team | (teams >= 0)

    def _role_loss(self, logits: torch.Tensor, roles: torch.Tensor) -> torch.Tensor:
        alpha = None
        if self.cfg.role_alpha:
            if len(self.cfg.role_alpha) != logits.shape[1]:
                raise ConfigError(f"role_alpha: {len(self.cfg.role_alpha)} weights for {logits.shape[1]} roles")
            alpha = torch.tensor(self.cfg.role_alpha, dtype=logits.dtype, device=logits.device)
        return focal_loss(logits, roles, self.cfg.focal_gamma, alpha)


def _get(batch: Mapping[str, torch.Tensor], key: str) -> torch.Tensor:
    try:
        return batch[key]
    except KeyError:
        raise KeyError(f"the loss needs batch[{key!r}]; batch has {sorted(batch)}") from None
