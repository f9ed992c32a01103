"""Multi-task losses of PRTReID: part-based re-id, team affiliation, role and part masks.

Every loss is a plain function on tensors; :class:`MultiTaskLoss` reads a :class:`ModelOutput` and
a batch (the re-id dataset's dict: ``pid``, ``team``, ``role``, ``match``, ``parts``), returns each
term by name (unweighted) and their weighted sum as ``"total"``. Nothing here moves tensors
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
from prtreid.model.prtreid import ModelOutput

Metric = Literal["euclidean", "cosine"]
TeamLoss = Literal["triplet", "supcon"]
_Term = tuple[str, float, torch.Tensor]  # name, weight, unweighted value
DEFAULT_ROLE_NAMES: tuple[str, ...] = ("player", "goalkeeper", "referee", "other")
"""The re-id dataset's default ``role_names``; pass the dataset's own to :class:`MultiTaskLoss`."""


@dataclass(frozen=True)
class LossConfig:
    """Weights and hyper-parameters of :class:`MultiTaskLoss` (``loss:`` section of a config).

    Defaults follow the papers: re-id margin 0.3 and label smoothing 0.1 (BPBReID's GiLt loss:
    identity on holistic embeddings, part-averaged triplet on parts), part-mask weight 0.35
    (BPBReID), team margin 0.4, team weight 0.1, role weight 1.5 and focal gamma 2 (PRTReID).

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
            if isinstance(value, float) and value < 0:
                raise ConfigError(f"{f.name}: must be non-negative, got {value}")
        for name in ("label_smoothing", "mask_label_smoothing"):
            if getattr(self, name) >= 1:
                raise ConfigError(f"{name}: must be below 1, got {getattr(self, name)}")
        if self.team_temperature <= 0:
            raise ConfigError(f"team_temperature: must be positive, got {self.team_temperature}")
        if any(a < 0 for a in self.role_alpha):
            raise ConfigError(f"role_alpha: weights must be non-negative, got {self.role_alpha}")


def pairwise_distance(x: torch.Tensor, y: torch.Tensor, metric: Metric = "euclidean") -> torch.Tensor:
    """Distances between rows: ``(..., N, D)`` and ``(..., M, D)`` give ``(..., N, M)``, in float32.

    Computed outside autocast: in float16 the expansion below cancels badly for close vectors.
    """
    with torch.autocast(device_type=x.device.type, enabled=False):
        return _pairwise_distance(x.float(), y.float(), metric)


def _pairwise_distance(x: torch.Tensor, y: torch.Tensor, metric: Metric) -> torch.Tensor:
    if metric == "cosine":
        return 1.0 - F.normalize(x, dim=-1) @ F.normalize(y, dim=-1).transpose(-1, -2)
    if metric != "euclidean":
        raise ValueError(f"unknown metric {metric!r}")
    squared = (x * x).sum(-1, keepdim=True) + (y * y).sum(-1).unsqueeze(-2) - 2.0 * x @ y.transpose(-1, -2)
    # the floor keeps the gradient of sqrt finite for identical vectors
    return squared.clamp_min(1e-12).sqrt()


def part_averaged_distance(
    feats_a: torch.Tensor,
    vis_a: torch.Tensor,
    feats_b: torch.Tensor,
    vis_b: torch.Tensor,
    metric: Metric = "euclidean",
) -> tuple[torch.Tensor, torch.Tensor]:
    """BPBReID's part-averaged distance between part-based descriptors.

    The distance of samples i and j is the mean over parts k of the per-part distance, each part
    weighted by ``sqrt(vis_a[i, k] * vis_b[j, k])``: with binary visibility, the plain mean over
    the parts visible in both.

    Args:
        feats_a: (Na, P, D) part features; vis_a: (Na, P) visibility in [0, 1].
        feats_b: (Nb, P, D); vis_b: (Nb, P).
        metric: per-part distance.

    Returns:
        ``dist`` (Na, Nb), 0 where invalid, and ``valid`` (Na, Nb): the pair shares a visible part.
    """
    per_part = pairwise_distance(feats_a.transpose(0, 1), feats_b.transpose(0, 1), metric)  # (P, Na, Nb)
    weights = (vis_a.t().unsqueeze(2) * vis_b.t().unsqueeze(1)).clamp_min(0).sqrt()
    total = weights.sum(0)
    valid = total > 0
    dist = (weights * per_part).sum(0) / total.clamp_min(1e-12)
    return torch.where(valid, dist, torch.zeros_like(dist)), valid


def batch_hard_triplet(
    dist: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor, margin: float
) -> torch.Tensor:
    """Batch-hard triplet loss (Hermans et al. 2017) with explicit pair masks.

    For each anchor i, the hardest positive is the farthest j with ``positive[i, j]`` and the
    hardest negative the closest j with ``negative[i, j]``; anchors lacking either are skipped.

    Args:
        dist: (N, N) non-negative distances.
        positive, negative: (N, N) boolean masks of the pairs allowed as positive / negative.
        margin: the margin m of ``relu(d(a, p) - d(a, n) + m)``.

    Returns:
        The mean over usable anchors, or a zero still attached to the graph when there is none.
    """
    hardest_pos = torch.where(positive, dist, torch.zeros_like(dist)).amax(dim=1)
    far = torch.finfo(dist.dtype).max
    hardest_neg = torch.where(negative, dist, torch.full_like(dist, far)).amin(dim=1)
    usable = positive.any(dim=1) & negative.any(dim=1)
    losses = torch.where(usable, F.relu(hardest_pos - hardest_neg + margin), torch.zeros_like(hardest_pos))
    return losses.sum() / usable.sum().clamp_min(1)


def _same_and_different(labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    same = labels.unsqueeze(0) == labels.unsqueeze(1)
    eye = torch.eye(len(labels), dtype=torch.bool, device=labels.device)
    return same & ~eye, ~same


def triplet_loss(
    embeddings: torch.Tensor, pids: torch.Tensor, margin: float, metric: Metric = "euclidean"
) -> torch.Tensor:
    """Batch-hard triplet loss of (B, D) embeddings with identity labels (B,)."""
    positive, negative = _same_and_different(pids)
    return batch_hard_triplet(pairwise_distance(embeddings, embeddings, metric), positive, negative, margin)


def part_averaged_triplet_loss(
    parts: torch.Tensor, visibility: torch.Tensor, pids: torch.Tensor, margin: float, metric: Metric = "euclidean"
) -> torch.Tensor:
    """BPBReID's part-averaged triplet: batch-hard on :func:`part_averaged_distance`.

    Pairs without a part visible in both samples are neither positives nor negatives.
    ``parts`` is (B, K, D), ``visibility`` (B, K) (used as given: detach it beforehand if it must
    not receive gradients), ``pids`` (B,).
    """
    dist, valid = part_averaged_distance(parts, visibility, parts, visibility, metric)
    positive, negative = _same_and_different(pids)
    return batch_hard_triplet(dist, positive & valid, negative & valid, margin)


def team_triplet_loss(
    team_embeddings: torch.Tensor,
    teams: torch.Tensor,
    matches: torch.Tensor,
    margin: float,
    eligible: torch.Tensor | None = None,
) -> torch.Tensor:
    """Batch-hard triplet on team embeddings within each match (Euclidean distance).

    Team sides are only comparable inside one match: positives share match and team, negatives
    share the match with the other team. Samples with ``team < 0`` (and, if given, where
    ``eligible`` is False) take no part.
    """
    positive, negative = _team_pairs(teams, matches, eligible)
    dist = pairwise_distance(team_embeddings, team_embeddings, "euclidean")
    return batch_hard_triplet(dist, positive, negative, margin)


def _team_pairs(
    teams: torch.Tensor, matches: torch.Tensor, eligible: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Positive (same match and team) and negative (same match, other team) pair masks."""
    usable = teams >= 0 if eligible is None else (teams >= 0) & eligible
    comparable = (matches.unsqueeze(0) == matches.unsqueeze(1)) & usable.unsqueeze(0) & usable.unsqueeze(1)
    positive, negative = _same_and_different(teams)
    return positive & comparable, negative & comparable


def team_supcon_loss(
    team_embeddings: torch.Tensor,
    teams: torch.Tensor,
    matches: torch.Tensor,
    temperature: float,
    eligible: torch.Tensor | None = None,
) -> torch.Tensor:
    """Supervised contrastive loss on team embeddings within each match (cosine similarity).

    Same pairs as :func:`team_triplet_loss`, but every positive and negative of an anchor counts:
    ``-mean_p log(exp(s_ap / t) / sum_(b != a) exp(s_ab / t))`` over the anchor's match.
    """
    positive, negative = _team_pairs(teams, matches, eligible)
    unit = F.normalize(team_embeddings.float(), dim=1)
    # a finite fill keeps rows with nothing comparable free of NaN (they are not anchors)
    logits = (unit @ unit.T / temperature).masked_fill(~(positive | negative), -1e9)
    log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    anchors = positive.any(dim=1) & negative.any(dim=1)
    per_anchor = -torch.where(positive, log_prob, torch.zeros_like(log_prob)).sum(1) / positive.sum(1).clamp_min(1)
    return torch.where(anchors, per_anchor, torch.zeros_like(per_anchor)).sum() / anchors.sum().clamp_min(1)


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
    losses = -((1.0 - log_pt.exp()) ** gamma) * log_pt
    weights = valid.to(losses.dtype)
    if alpha is not None:
        weights = weights * alpha[safe_targets]
    return (weights * losses).sum() / weights.sum().clamp_min(1e-12)


def part_mask_loss(
    part_logits: torch.Tensor, part_labels: torch.Tensor, label_smoothing: float = 0.0
) -> torch.Tensor:
    """Pixel-wise cross-entropy of part logits (B, K+1, h, w) against labels (B, H, W).

    Labels are downsampled (nearest) to (h, w); pixels labelled -1 (crops without a mask) are
    ignored, and the loss is zero when every pixel is.
    """
    num_classes = part_logits.shape[1]
    highest = int(part_labels.max())
    if highest >= num_classes:
        raise ValueError(f"part labels reach {highest} but the model predicts {num_classes - 1} parts")
    labels = F.interpolate(part_labels.unsqueeze(1).float(), size=part_logits.shape[-2:], mode="nearest")
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
        terms["total"] = sum((w * value for _, w, value in weighted), output.role_logits.new_zeros(()))
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
