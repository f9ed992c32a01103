"""What players are clustered into two teams on, in evaluation (crops) and tracking (tracklets).

* ``embedding``: the team head's embedding, L2-normalised (the paper's).
* ``kit``: the kit colour under the model's part maps (:mod:`prtreid.model.kit`), in CIELAB units.
* ``both`` (the default): the two side by side, each divided by its spread over the people
  clustered (so neither dominates by its units), the kit colour weighted twice.

On eight unseen sets and three CPU-trained models, ``both`` gave the best mean team accuracy on
crops (0.977-0.978, against 0.966-0.970 from the embedding) and on identities' means (0.988-0.995,
against 0.973-0.979): docs/experiments.md, "Kit colour under the part maps".

How they are split in two (:func:`split_teams`):

* ``mixture`` (the default): KMeans(2), then a two-component Gaussian mixture with one covariance
  shared by both teams, started from the KMeans centres. Both teams' players vary the same way
  (shading, pose, part maps that spill over), so the shared covariance learns those directions and
  the split follows what the kits differ in: KMeans, which weighs every direction alike, can cut a
  team along its own spread instead.
* ``kmeans``: KMeans(2) alone, the paper's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np
from sklearn.cluster import KMeans
from sklearn.mixture import GaussianMixture

TeamFrom = Literal["both", "kit", "embedding"]
TEAM_DESCRIPTORS: tuple[str, ...] = get_args(TeamFrom)
DEFAULT_TEAM_FROM: TeamFrom = "both"
KIT_WEIGHT = 2.0
"""Weight of the kit colour against the embedding in ``both`` (after each is divided by its spread)."""
TeamSplit = Literal["mixture", "kmeans"]
TEAM_SPLITS: tuple[str, ...] = get_args(TeamSplit)
DEFAULT_TEAM_SPLIT: TeamSplit = "mixture"
"""For crops (``eval-reid``). Tracklets keep ``kmeans``: their means have already averaged away the
per-crop spread the mixture models, and a clip's dozen tracklets cannot estimate a covariance (unseen
set 5011: tracklet-frame team 0.988 with KMeans, 0.951 with the mixture; docs/experiments.md, "Teams
split by a mixture")."""
TRACKLET_TEAM_SPLIT: TeamSplit = "kmeans"
MIXTURE_REG = 0.3
"""The mixture's covariance regulariser, as a fraction of the rows' mean variance per dimension (the
descriptors' units differ). From 0.03 to 1 it gave the same accuracy; at 3 the kit colour alone
merged into one component."""


def team_features(embedding: np.ndarray, kit: np.ndarray | None, team_from: str,
                  scale_rows: np.ndarray | None = None) -> np.ndarray:
    """The rows to cluster into two teams, one per person (a crop, or a tracklet's means).

    Args:
        embedding: ``(N, Dt)`` team embeddings.
        kit: ``(N, Dk)`` kit colours, or ``None`` where the model has none.
        team_from: one of :data:`TEAM_DESCRIPTORS`.
        scale_rows: the rows (a boolean mask) whose spread scales ``both``; default: all.

    Raises:
        ValueError: an unknown ``team_from``, or one that needs the kit colour without it.
    """
    if team_from not in TEAM_DESCRIPTORS:
        raise ValueError(f"team_from must be one of {TEAM_DESCRIPTORS}, got {team_from!r}")
    if team_from != "embedding" and kit is None:
        raise ValueError(f"team_from {team_from!r} needs the kit colour, which this model does not give "
                         "(its parts are not the part masks'): use 'embedding'")
    unit = unit_rows(np.asarray(embedding, np.float64))
    if team_from == "embedding":
        return unit
    kit = np.asarray(kit, np.float64)
    if team_from == "kit":
        return kit
    ref = slice(None) if scale_rows is None else scale_rows
    return np.concatenate([unit / _spread(unit[ref]), KIT_WEIGHT * kit / _spread(kit[ref])], axis=1)


def unit_rows(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (zero rows stay zero)."""
    return x / np.linalg.norm(x, axis=1, keepdims=True).clip(1e-12)


def _spread(x: np.ndarray) -> float:
    """Root-mean-square distance of rows from their mean (1 where they do not spread)."""
    spread = float(np.sqrt(((x - x.mean(axis=0)) ** 2).sum(axis=1).mean())) if len(x) else 0.0
    return spread if spread > 1e-12 else 1.0


@dataclass(frozen=True)
class Teams:
    """Two teams fitted on players' descriptors (:func:`split_teams`)."""

    centres: np.ndarray
    """``(2, D)`` team centres: KMeans', or the mixture's means."""
    mixture: GaussianMixture | None = None

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Team (0 or 1) of each row of ``x``."""
        if self.mixture is not None:
            return self.mixture.predict(x).astype(np.int64)
        return np.linalg.norm(x[:, None, :] - self.centres[None, :, :], axis=2).argmin(1)


def split_teams(x: np.ndarray, weights: np.ndarray | None = None, seed: int = 0,
                method: str = DEFAULT_TEAM_SPLIT) -> Teams:
    """Split the rows of ``x`` (players' descriptors, :func:`team_features`) into two teams.

    Args:
        x: ``(N, D)`` rows, N >= 1 (a single row is one team's centre).
        weights: ``(N,)`` integer weight of each row (a tracklet's number of frames), or ``None``.
        seed: seed of KMeans (10 starts) and of the mixture.
        method: one of :data:`TEAM_SPLITS` (module docstring); a mixture that leaves a team empty
            falls back to KMeans.

    Raises:
        ValueError: an unknown ``method``.
    """
    if method not in TEAM_SPLITS:
        raise ValueError(f"team_split must be one of {TEAM_SPLITS}, got {method!r}")
    x = np.asarray(x, np.float64)
    if len(x) < 2:
        return Teams(centres=x[:1])
    km = KMeans(n_clusters=2, n_init=10, random_state=seed).fit(x, sample_weight=weights)
    kmeans = Teams(centres=km.cluster_centers_)
    reg = MIXTURE_REG * float(x.var(axis=0).mean())
    if method == "kmeans" or len(x) < 3 or reg <= 0.0:
        return kmeans
    # GaussianMixture takes no sample weights: integer weights are the same fit over repeated rows
    rows = x if weights is None else np.repeat(x, np.asarray(weights, np.int64), axis=0)
    gm = GaussianMixture(n_components=2, covariance_type="tied", means_init=km.cluster_centers_, reg_covar=reg,
                         random_state=seed).fit(rows)
    mixture = Teams(centres=gm.means_, mixture=gm)
    return mixture if len(np.unique(mixture.predict(x))) == 2 else kmeans
