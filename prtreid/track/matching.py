"""Cost matrices and assignment for PRT-Track, vectorised over track x detection pairs.

* :func:`iou_matrix`: IoU of two box sets.
* :func:`part_distance`: the visibility-aware part distance of BPBReID (as
  :func:`prtreid.eval.reid.part_distance`, in numpy for small per-frame matrices), cosine per part
  by default so that StrongSORT's thresholds keep their meaning.
* :func:`fuse_motion_appearance`: StrongSORT's ``mc_lambda`` fusion with the chi-square motion
  gate and the appearance limits, relaxed for long-lost tracks.
* :func:`team_gate`: forbids pairs whose team embeddings disagree.
* :func:`assign`: Hungarian assignment (``scipy.optimize.linear_sum_assignment``) restricted to
  allowed pairs.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from scipy.optimize import linear_sum_assignment


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU between ``(A, 4)`` and ``(B, 4)`` xyxy boxes -> ``(A, B)`` (0 for degenerate boxes)."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area_a = np.prod(np.clip(a[:, 2:] - a[:, :2], 0, None), axis=1)
    area_b = np.prod(np.clip(b[:, 2:] - b[:, :2], 0, None), axis=1)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def l2_normalize(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """Unit vectors along ``axis`` (zero vectors stay zero)."""
    norm = np.linalg.norm(x, axis=axis, keepdims=True)
    return x / np.where(norm > 0, norm, 1.0)


def part_distance(
    t_feats: np.ndarray,
    t_vis: np.ndarray,
    d_feats: np.ndarray,
    d_vis: np.ndarray,
    metric: Literal["cosine", "euclidean"] = "cosine",
) -> np.ndarray:
    """Visibility-weighted mean per-part distance, ``(T, P, D) x (N, P, D) -> (T, N)``.

    The distance of a pair is ``sum_p w_p d_p / sum_p w_p`` with ``w_p = t_vis[p] * d_vis[p]``:
    parts hidden in either box do not count. ``cosine`` expects unit vectors and gives
    ``1 - cos`` per part (in [0, 2]); ``euclidean`` is the per-part L2 distance of
    :func:`prtreid.eval.reid.part_distance`. Pairs with no part visible in both are ``inf``
    (appearance cannot decide them).
    """
    tf = np.transpose(t_feats, (1, 0, 2)).astype(np.float32, copy=False)  # (P, T, D)
    df = np.transpose(d_feats, (1, 2, 0)).astype(np.float32, copy=False)  # (P, D, N)
    dot = tf @ df  # (P, T, N)
    if metric == "cosine":
        d = 1.0 - dot
    else:
        sq = (tf**2).sum(2)[:, :, None] + (df**2).sum(1)[:, None, :] - 2 * dot
        d = np.sqrt(np.clip(sq, 0, None))
    w = t_vis.T[:, :, None] * d_vis.T[:, None, :]  # (P, T, N)
    wsum = w.sum(0)
    num = (d * w).sum(0)
    return np.where(wsum > 1e-12, num / np.where(wsum > 1e-12, wsum, 1.0), np.inf).astype(np.float64)


def fuse_motion_appearance(
    app: np.ndarray,
    maha: np.ndarray,
    long_lost: np.ndarray,
    gate: float,
    max_app_dist: float,
    reid_max_dist: float,
    mc_lambda: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Stage-1 cost ``mc_lambda * app + (1 - mc_lambda) * maha`` and the allowed pairs.

    A pair is allowed when its squared Mahalanobis distance is within ``gate`` and its appearance
    distance within ``max_app_dist``. For long-lost tracks (``long_lost``, one flag per row) the
    prediction is stale: the motion gate is dropped, the motion term is set to ``gate`` (its
    largest allowed value, so a motion-consistent candidate wins at equal appearance), and the
    appearance limit becomes ``reid_max_dist``.
    """
    lost = long_lost[:, None]
    motion = np.where(lost, gate, maha)
    limit = np.where(lost, reid_max_dist, max_app_dist)
    allowed = (lost | (maha <= gate)) & (app <= limit)
    cost = mc_lambda * np.where(np.isfinite(app), app, 0.0) + (1.0 - mc_lambda) * motion
    return cost, allowed


def team_gate(
    track_sum: np.ndarray,
    track_n: np.ndarray,
    det_team: np.ndarray,
    min_sim: float,
    min_obs: int,
    min_consistency: float,
) -> np.ndarray:
    """Pairs allowed by team agreement, ``(T, N)`` booleans.

    ``track_sum`` is the sum of a track's unit team embeddings over ``track_n`` observations, so
    ``track_sum / track_n`` is their mean and its norm (1 = all observations agreed) measures how
    settled the track's team is. A track constrains its pairs only when it has at least
    ``min_obs`` observations and a mean norm of at least ``min_consistency``; then a detection whose
    unit team embedding has cosine similarity below ``min_sim`` with the mean direction is
    forbidden. Detections with a zero or non-finite team embedding are never forbidden.
    """
    mean = track_sum / np.maximum(track_n, 1)[:, None]
    consistency = np.linalg.norm(mean, axis=1)
    settled = (track_n >= min_obs) & (consistency >= min_consistency)
    det_ok = np.isfinite(det_team).all(1) & (np.linalg.norm(np.nan_to_num(det_team), axis=1) > 0)
    sim = l2_normalize(mean) @ l2_normalize(np.nan_to_num(det_team)).T
    return ~settled[:, None] | ~det_ok[None, :] | (sim >= min_sim)


def assign(cost: np.ndarray, allowed: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Minimum-cost matching over allowed pairs.

    Among the matchings that use only allowed pairs, the one with the most pairs, then the least
    total cost, is returned (forbidden pairs carry a cost larger than any set of allowed ones).
    StrongSORT's rule instead charges a forbidden pair the cost threshold, so that a matching with
    more pairs must also cost less; on generated clips it tracked no better with the sports preset
    and worse with the defaults (docs/experiments.md, "Assignment rule").

    Returns:
        ``(K, 2)`` matched (row, column) pairs, unmatched rows, unmatched columns.
    """
    n_rows, n_cols = cost.shape
    rows = np.zeros(0, np.int64)
    cols = np.zeros(0, np.int64)
    if allowed.any():
        finite = np.where(allowed, cost, 0.0)
        big = 1.0 + min(n_rows, n_cols) * (np.abs(finite).max() + 1.0)
        r, c = linear_sum_assignment(np.where(allowed, cost, big))
        keep = allowed[r, c]
        rows, cols = r[keep].astype(np.int64), c[keep].astype(np.int64)
    un_rows = np.setdiff1d(np.arange(n_rows), rows)
    un_cols = np.setdiff1d(np.arange(n_cols), cols)
    return np.stack([rows, cols], axis=1), un_rows, un_cols
