"""Re-identification, team and role metrics.

Re-id protocol (SoccerNet-ReID style, adapted to tracking clips): queries and gallery come from
held-out sequences, and a query is ranked only against gallery crops **of its own sequence**
(re-id serves tracking within a match). Gallery crops of the query's identity closer than
``min_frame_gap`` frames to the query are removed from its ranking: they are near-duplicates of the
query (same pose, same background) and would make rank-1 trivial. Crops of other identities in the
same frame stay: they are exactly the confusions a tracker faces. Queries with no remaining true
match are skipped (and counted in ``skipped_queries``; mAP and rank-k average over the others). A tie in
distance counts against the query: at equal distance, crops of other identities rank first, so the
metrics never depend on the order of the gallery.

Distance: the visibility-aware part distance of BPBReID: for descriptors of shape (N, P, D)
(parts plus foreground plus global) with visibility (N, P), the distance of a pair is the mean of
the per-part Euclidean distances over the parts visible in both, weighted by the product of the
visibility scores.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from sklearn.metrics import confusion_matrix, f1_score

from prtreid.track.teams import split_teams, team_features


def part_distance(
    q_feats: torch.Tensor, q_vis: torch.Tensor, g_feats: torch.Tensor, g_vis: torch.Tensor, chunk: int = 256
) -> torch.Tensor:
    """Visibility-weighted mean per-part Euclidean distance, (Q, P, D) x (G, P, D) -> (Q, G).

    Pairs with no part visible in both get the largest finite distance of the matrix plus one.
    """
    g_feats = g_feats.float().transpose(0, 1)  # (P, G, D)
    out = []
    for start in range(0, len(q_feats), chunk):
        qf = q_feats[start:start + chunk].float().transpose(0, 1)  # (P, q, D)
        d = torch.cdist(qf, g_feats)  # (P, q, G)
        w = q_vis[start:start + chunk].float().T[:, :, None] * g_vis.float().T[:, None, :]  # (P, q, G)
        wsum = w.sum(0)
        out.append(torch.where(wsum > 0, (d * w).sum(0) / wsum.clamp_min(1e-12), torch.nan))
    dist = torch.cat(out) if out else torch.zeros(0, len(g_vis))
    finite = dist[torch.isfinite(dist)]
    fill = (finite.max() + 1) if finite.numel() else torch.tensor(1.0)
    return torch.nan_to_num(dist, nan=float(fill))


def reid_metrics(
    dist: np.ndarray,
    q_pids: np.ndarray, g_pids: np.ndarray,
    q_match: np.ndarray, g_match: np.ndarray,
    q_frames: np.ndarray, g_frames: np.ndarray,
    min_frame_gap: int = 10,
    ranks: Sequence[int] = (1, 5),
) -> dict[str, float]:
    """mAP and CMC ranks under the protocol of this module (fractions in 0..1), ties against the query.

    Returns ``{"mAP", "rank1", "rank5", ..., "num_queries", "skipped_queries"}``.
    """
    aps, cmc_hits = [], {r: [] for r in ranks}
    skipped = 0
    for i in range(len(q_pids)):
        same_match = g_match == q_match[i]
        near_dup = (g_pids == q_pids[i]) & (np.abs(g_frames - q_frames[i]) < min_frame_gap)
        keep = same_match & ~near_dup
        relevant = g_pids[keep] == q_pids[i]
        matches = relevant[np.lexsort((relevant, dist[i, keep]))]  # by distance; on a tie, wrong identities first
        if not matches.any():
            skipped += 1
            continue
        aps.append(_average_precision(matches))
        first = int(np.argmax(matches))
        for r in ranks:
            cmc_hits[r].append(first < r)
    out = {"mAP": float(np.mean(aps)) if aps else 0.0}
    out |= {f"rank{r}": float(np.mean(h)) if h else 0.0 for r, h in cmc_hits.items()}
    return out | {"num_queries": len(aps), "skipped_queries": skipped}


def _average_precision(matches: np.ndarray) -> float:
    """AP of a ranked boolean relevance list (every relevant item is in the list)."""
    hits = np.cumsum(matches)
    precision_at_hits = hits[matches] / (np.flatnonzero(matches) + 1)
    return float(precision_at_hits.mean())


def team_accuracy(
    team_emb: np.ndarray, teams: np.ndarray, matches: np.ndarray, seed: int = 0,
    kit: np.ndarray | None = None, team_from: str = "embedding", team_split: str = "kmeans",
) -> tuple[float, dict[int, float]]:
    """Team accuracy by a split in two (``team_split``, :func:`~prtreid.track.teams.split_teams`;
    ``kmeans``: KMeans(2), the paper's), per match, over the players' L2-normalised team embeddings,
    or their kit colours, or both (``team_from``, :func:`~prtreid.track.teams.team_features`).

    Only samples with a team label (0/1) take part; each match is scored with the better of the
    two cluster-to-team assignments. Returns the sample-weighted overall accuracy and the
    accuracy per match (matches with a single team are skipped).
    """
    per_match: dict[int, float] = {}
    correct = total = 0
    for m in np.unique(matches):
        sel = (matches == m) & (teams >= 0)
        if len(np.unique(teams[sel])) < 2:
            continue
        x = team_features(team_emb[sel], None if kit is None else kit[sel], team_from)
        pred = split_teams(x, seed=seed, method=team_split).predict(x)
        agree = int((pred == teams[sel]).sum())
        best = max(agree, int(sel.sum()) - agree)
        per_match[int(m)] = best / int(sel.sum())
        correct, total = correct + best, total + int(sel.sum())
    return (correct / total if total else 0.0), per_match


def role_metrics(role_pred: np.ndarray, roles: np.ndarray, role_names: Sequence[str]) -> dict[str, object]:
    """Role accuracy, macro-F1 (over roles present in truth or prediction) and the confusion matrix.

    Macro-F1 is sklearn's ``f1_score(average="macro")``: a role absent from both truth and prediction
    does not count. The confusion matrix has one row per true role and one column per predicted role,
    in ``role_names`` order. Without samples, accuracy and macro-F1 are 0.

    ``role_pred`` is the predicted role index of each sample, or ``(N, R)`` scores (argmax taken).
    """
    pred = np.asarray(role_pred)
    pred = pred.argmax(1) if pred.ndim == 2 else pred
    labels = list(range(len(role_names)))
    if len(roles) == 0:  # sklearn refuses empty inputs
        return {"role_acc": 0.0, "role_macro_f1": 0.0, "role_confusion": [[0] * len(labels) for _ in labels],
                "role_names": list(role_names)}
    present = sorted(set(roles.tolist()) | set(pred.tolist()))
    return {
        "role_acc": float((pred == roles).mean()),
        "role_macro_f1": float(f1_score(roles, pred, labels=present, average="macro", zero_division=0)),
        "role_confusion": confusion_matrix(roles, pred, labels=labels).tolist(),
        "role_names": list(role_names),
    }
