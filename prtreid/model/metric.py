"""Distances and metric-learning losses of PRTReID: re-id triplets and the team losses.

Plain functions on tensors. Anchors with nothing to compare contribute zero (no data-dependent
branching), so every process of a distributed run does the same work.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

Metric = Literal["euclidean", "cosine"]


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
    # float32 even under autocast: float16 cannot hold the fill, nor exp(s / t) at small t
    with torch.autocast(device_type=team_embeddings.device.type, enabled=False):
        unit = F.normalize(team_embeddings.float(), dim=1)
        similarity = unit @ unit.T / temperature
    # a finite fill keeps rows with nothing comparable free of NaN (they are not anchors)
    logits = similarity.masked_fill(~(positive | negative), -1e9)
    log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    anchors = positive.any(dim=1) & negative.any(dim=1)
    per_anchor = -torch.where(positive, log_prob, torch.zeros_like(log_prob)).sum(1) / positive.sum(1).clamp_min(1)
    return torch.where(anchors, per_anchor, torch.zeros_like(per_anchor)).sum() / anchors.sum().clamp_min(1)
