"""P x K batches drawn from one match at a time, with a team and role composition.

Team labels are only comparable within one match, so every group of identities comes from a single
sequence (a batch may merge groups of several matches, ``matches_per_batch``, for BatchNorm).
Each batch holds ``p_ids`` identities with ``k_instances`` crops each, and includes, when the match
has them, at least ``min_per_team`` identities of each team and ``role_minimums[r]`` identities of
each listed role, so that the team triplet loss and the role loss always have material.

Per epoch, a match with ``n`` identities gives ``ceil(n / p_ids)`` groups of ``p_ids`` identities
(``epoch="identities"``) or, by default (``epoch="crops"``), one group per ``p_ids * k_instances``
of its crops where that is more; ``matches_per_batch`` groups of different matches make one batch.
Identities are taken from a shuffled queue of the match, so an epoch shows nearly all of them; the
identities that fill the minimums (rare roles, a short team) recur in every group of their match.
The epoch's batches are shuffled across matches, then shared between distributed ranks
(``rank::world_size``); every rank gets the same number of batches.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import numpy as np
from torch.utils.data import Sampler

from prtreid.data.types import ROLES
from prtreid.errors import ConfigError

if TYPE_CHECKING:
    from prtreid.data.reid_dataset import ReidDataset

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SamplerConfig:
    """Batch composition of :class:`MatchBatchSampler`.

    Attributes:
        p_ids: identities per batch.
        k_instances: crops per identity (with replacement when an identity has fewer).
        min_per_team: identities of each team per batch, when the match has them.
        team_role: the role that counts towards ``min_per_team`` (``""``: any role). Goalkeepers
            have a team but their own kit, so with the default the team triplet sees at least
            ``min_per_team`` different *players* per team: with a single one, its only positives
            are crops of the same person and the team embedding learns identity, not kit.
        role_minimums: identities per batch of each named role, when the match has them.
        uneven: ``"pad"`` repeats the first batches so every rank gets ``ceil(B / world)``;
            ``"drop"`` leaves the last ones out so every rank gets ``floor(B / world)``.
        epoch: epoch length per match: ``identities`` gives ``ceil(n_ids / p_ids)`` batches (each
            identity about once), ``crops`` at least ``n_crops // (p_ids * k_instances)`` batches
            (each crop about once, as torchreid's identity sampler).
        matches_per_batch: groups of ``p_ids`` identities from this many matches (shuffled, so
            usually different ones) make one batch. Losses compare teams only within a match, but
            BatchNorm layers normalise over the whole batch: one-match batches make their
            statistics match-specific, unlike the running statistics used at inference.
        seed: seed of the batch draw (combined with the epoch).
    """

    p_ids: int = 8
    k_instances: int = 4
    min_per_team: int = 2
    team_role: str = "player"
    role_minimums: dict[str, int] = field(default_factory=lambda: {"goalkeeper": 1, "referee": 1, "other": 1})
    uneven: Literal["pad", "drop"] = "pad"
    epoch: Literal["identities", "crops"] = "crops"
    matches_per_batch: int = 1
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("p_ids", "k_instances", "matches_per_batch"):
            if getattr(self, name) < 1:
                raise ConfigError(f"sampler.{name}: must be at least 1, got {getattr(self, name)}")
        for role, minimum in self.role_minimums.items():
            if role not in ROLES:
                raise ConfigError(f"sampler.role_minimums: unknown role {role!r} (known: {', '.join(ROLES)})")
            if not isinstance(minimum, int) or minimum < 0:
                raise ConfigError(f"sampler.role_minimums.{role}: expected a whole number >= 0, got {minimum!r}")


@dataclass(frozen=True)
class _Match:
    ids: np.ndarray  # identity labels of the match
    team_of: dict[int, int]
    role_of: dict[int, int]


class MatchBatchSampler(Sampler[list[int]]):
    """Yields batches (lists of dataset positions) of P identities x K crops from one match each.

    Deterministic given ``seed`` and the epoch set by :meth:`set_epoch`; the global list of an
    epoch's batches does not depend on ``world_size``, ranks only take disjoint shares of it.
    """

    def __init__(
        self,
        pids: np.ndarray,
        matches: np.ndarray,
        teams: np.ndarray,
        roles: np.ndarray,
        p_ids: int = 8,
        k_instances: int = 4,
        *,
        min_per_team: int = 2,
        team_role: int | None = None,
        role_minimums: Mapping[int, int] | None = None,
        uneven: Literal["pad", "drop"] = "pad",
        epoch: Literal["identities", "crops"] = "crops",
        matches_per_batch: int = 1,
        rank: int = 0,
        world_size: int = 1,
        seed: int = 0,
    ) -> None:
        """Index the items by match and identity.

        Args:
            pids, matches, teams, roles: one int label per dataset item (teams: 0/1, -1 = none).
            p_ids, k_instances: identities per batch and crops per identity.
            min_per_team: identities of each team (0 and 1) per batch, when the match has them.
            team_role: role index of the identities counted by ``min_per_team`` (``None``: any).
            role_minimums: role index -> identities of that role per batch, when the match has them.
            uneven: ``"pad"`` or ``"drop"`` to give every rank the same number of batches.
            epoch: ``"identities"`` or ``"crops"``, the epoch length (see :class:`SamplerConfig`).
            matches_per_batch: match groups merged into one batch (see :class:`SamplerConfig`).
            rank, world_size: this process's share for distributed training.
            seed: seed of the batch draw.
        """
        if p_ids < 1 or k_instances < 1 or matches_per_batch < 1:
            raise ValueError("p_ids, k_instances and matches_per_batch must be >= 1")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside 0..{world_size - 1}")
        if uneven not in ("pad", "drop"):
            raise ValueError(f"uneven must be 'pad' or 'drop', got {uneven!r}")
        self.p_ids, self.k_instances = p_ids, k_instances
        self.min_per_team, self.team_role = min_per_team, team_role
        self.role_minimums = dict(role_minimums or {})
        if epoch not in ("identities", "crops"):
            raise ValueError(f"epoch must be 'identities' or 'crops', got {epoch!r}")
        self.uneven, self.rank, self.world_size, self.seed = uneven, rank, world_size, seed
        self.epoch_mode = epoch
        self.matches_per_batch = matches_per_batch
        self.epoch = 0
        self._crops, self._matches = _group(pids, matches, teams, roles)

    @classmethod
    def from_dataset(cls, dataset: ReidDataset, cfg: SamplerConfig | None = None,
                     rank: int = 0, world_size: int = 1) -> MatchBatchSampler:
        """A sampler over a :class:`~prtreid.data.reid_dataset.ReidDataset`; role names map to indices."""
        cfg = cfg or SamplerConfig()
        names = dataset.role_names
        minimums = {names.index(r): n for r, n in cfg.role_minimums.items() if r in names}
        if cfg.team_role and cfg.team_role not in names:
            raise ValueError(f"sampler.team_role {cfg.team_role!r} is not a role of the dataset {names}")
        team_role = names.index(cfg.team_role) if cfg.team_role else None
        return cls(dataset.pids, dataset.matches, dataset.teams, dataset.roles, cfg.p_ids, cfg.k_instances,
                   min_per_team=cfg.min_per_team, team_role=team_role, role_minimums=minimums, uneven=cfg.uneven,
                   epoch=cfg.epoch, matches_per_batch=cfg.matches_per_batch, rank=rank, world_size=world_size, seed=cfg.seed)

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose batches the next iteration yields."""
        self.epoch = epoch

    @property
    def num_global_batches(self) -> int:
        """Batches of one epoch over all ranks, before padding or dropping."""
        return math.ceil(sum(self._num_batches(m) for m in self._matches) / self.matches_per_batch)

    def _num_batches(self, match: _Match) -> int:
        by_ids = math.ceil(len(match.ids) / self.p_ids)
        if self.epoch_mode == "identities":
            return by_ids
        crops = sum(len(self._crops[int(p)]) for p in match.ids)
        return max(by_ids, crops // (self.p_ids * self.k_instances))

    def __len__(self) -> int:
        total = self.num_global_batches
        if self.uneven == "pad":
            return math.ceil(total / self.world_size)
        return total // self.world_size

    def __iter__(self) -> Iterator[list[int]]:
        batches = self.epoch_batches()
        n = len(self)
        if self.uneven == "pad" and batches:
            batches += [batches[i % len(batches)] for i in range(n * self.world_size - len(batches))]
        yield from batches[self.rank : n * self.world_size : self.world_size]

    def epoch_batches(self) -> list[list[int]]:
        """All batches of the current epoch, over all ranks, in order (no padding)."""
        rng = np.random.default_rng([self.seed, self.epoch])
        batches = [b for m in self._matches for b in self._match_batches(m, rng)]
        order = rng.permutation(len(batches))
        groups = [batches[i] for i in order]
        m = self.matches_per_batch
        return [[c for g in groups[i:i + m] for c in g] for i in range(0, len(groups), m)]

    def _match_batches(self, match: _Match, rng: np.random.Generator) -> list[list[int]]:
        queue = list(rng.permutation(match.ids))
        out = []
        for _ in range(self._num_batches(match)):
            chosen = self._compose(match, queue, rng)
            out.append([int(c) for pid in chosen for c in self._draw_crops(pid, rng)])
        return out

    def _compose(self, match: _Match, queue: list[int], rng: np.random.Generator) -> list[int]:
        """Choose P identities: role and team minimums first, then the queue, then random repeats."""
        chosen: list[int] = []
        for role, minimum in self.role_minimums.items():
            self._fill(chosen, match, queue, rng, lambda p, r=role: match.role_of[p] == r, minimum)
        for team in (0, 1):
            self._fill(chosen, match, queue, rng, lambda p, t=team: self._in_team(match, p, t), self.min_per_team)
        self._fill(chosen, match, queue, rng, lambda p: True, self.p_ids)
        while len(chosen) < self.p_ids:  # a match with fewer than P identities repeats some
            chosen.append(int(rng.choice(match.ids)))
        return chosen

    def _in_team(self, match: _Match, pid: int, team: int) -> bool:
        return match.team_of[pid] == team and self.team_role in (None, match.role_of[pid])

    def _fill(self, chosen: list[int], match: _Match, queue: list[int], rng: np.random.Generator,
              wanted: Callable[[int], bool], minimum: int) -> None:
        """Add identities satisfying ``wanted`` until ``minimum`` of them (or all the match has) are in."""
        have = sum(1 for p in chosen if wanted(p))
        while have < minimum and len(chosen) < self.p_ids:
            fresh = [p for p in queue if wanted(p) and p not in chosen]
            if fresh:
                queue.remove(fresh[0])
                chosen.append(fresh[0])
            else:
                spare = [p for p in match.ids.tolist() if wanted(p) and p not in chosen]
                if not spare:
                    return
                chosen.append(int(rng.choice(spare)))
            have += 1

    def _draw_crops(self, pid: int, rng: np.random.Generator) -> np.ndarray:
        crops = self._crops[pid]
        return rng.choice(crops, size=self.k_instances, replace=len(crops) < self.k_instances)


def _group(pids: np.ndarray, matches: np.ndarray, teams: np.ndarray,
           roles: np.ndarray) -> tuple[dict[int, np.ndarray], list[_Match]]:
    """Crop positions per identity and the identities of each match (matches with < 2 skipped)."""
    pids, matches = np.asarray(pids, np.int64), np.asarray(matches, np.int64)
    teams, roles = np.asarray(teams, np.int64), np.asarray(roles, np.int64)
    if not len(pids) == len(matches) == len(teams) == len(roles):
        raise ValueError("pids, matches, teams and roles must have one entry per item")
    order = np.argsort(pids, kind="stable")
    ids, starts = np.unique(pids[order], return_index=True)
    crops = dict(zip(ids.tolist(), np.split(order, starts[1:])))
    out = []
    for m in np.unique(matches):
        ids = np.unique(pids[matches == m])
        if len(ids) < 2:
            log.warning("match %d has %d identity; no batch is drawn from it", m, len(ids))
            continue
        first = {int(p): crops[int(p)][0] for p in ids}
        out.append(_Match(ids, {p: int(teams[i]) for p, i in first.items()},
                          {p: int(roles[i]) for p, i in first.items()}))
    return crops, out
