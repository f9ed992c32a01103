"""What players are clustered into two teams on, in evaluation (crops) and tracking (tracklets).

* ``embedding``: the team head's embedding, L2-normalised (the paper's).
* ``kit``: the kit colour under the model's part maps (:mod:`prtreid.model.kit`), in CIELAB units.
* ``both`` (the default): the two side by side, each divided by its spread over the people
  clustered (so neither dominates by its units), the kit colour weighted twice.

On eight unseen sets and three CPU-trained models, ``both`` gave the best mean team accuracy on
crops (0.977-0.978, against 0.966-0.970 from the embedding) and on identities' means (0.988-0.995,
against 0.973-0.979): docs/experiments.md, "Kit colour under the part maps".
"""

from __future__ import annotations

from typing import Literal, get_args

import numpy as np

TeamFrom = Literal["both", "kit", "embedding"]
TEAM_DESCRIPTORS: tuple[str, ...] = get_args(TeamFrom)
DEFAULT_TEAM_FROM: TeamFrom = "both"
KIT_WEIGHT = 2.0
"""Weight of the kit colour against the embedding in ``both`` (after each is divided by its spread)."""


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
