"""MatchBatchSampler: one match per batch, composition minimums, rank sharding, determinism."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from prtreid.config import from_dict
from prtreid.data.sampler import MatchBatchSampler, SamplerConfig
from prtreid.errors import ConfigError

PLAYER, GOALKEEPER, REFEREE, OTHER = range(4)


def _labels() -> dict[str, np.ndarray]:
    """Three matches; identity = (match, n). Crop counts vary, some below K."""
    spec = {  # match -> list of (team, role, crops)
        0: [(0, PLAYER, 6)] * 6 + [(1, PLAYER, 5)] * 6 + [(0, GOALKEEPER, 4), (-1, REFEREE, 3), (-1, OTHER, 2)],
        1: [(0, PLAYER, 4)] * 3 + [(1, PLAYER, 4)] * 2 + [(-1, REFEREE, 1)],  # fewer than P identities
        2: [(0, PLAYER, 8)] * 9 + [(1, PLAYER, 8)] * 1,  # a single right-team identity
    }
    cols: dict[str, list[int]] = {"pids": [], "matches": [], "teams": [], "roles": []}
    pid = 0
    for match, people in spec.items():
        for team, role, crops in people:
            for key, value in zip(cols, (pid, match, team, role)):
                cols[key] += [value] * crops
            pid += 1
    order = np.random.default_rng(0).permutation(len(cols["pids"]))  # items not grouped on disk
    return {k: np.array(v)[order] for k, v in cols.items()}


LABELS = _labels()
MINIMUMS = {GOALKEEPER: 1, REFEREE: 1, OTHER: 1}


def _sampler(**kw) -> MatchBatchSampler:
    args = {"p_ids": 8, "k_instances": 4, "min_per_team": 2, "role_minimums": MINIMUMS, "seed": 7} | kw
    return MatchBatchSampler(**LABELS, **args)


def test_batches_are_p_by_k_from_one_match() -> None:
    sampler = _sampler()
    batches = list(sampler)
    assert len(batches) == len(sampler) == 2 + 1 + 2  # ceil(15/8) + ceil(6/8) + ceil(10/8)
    for batch in batches:
        assert len(batch) == 32
        assert len(set(LABELS["matches"][batch])) == 1
        per_id = Counter(LABELS["pids"][batch].tolist())
        assert all(n % 4 == 0 for n in per_id.values())  # K crops per identity slot
        match = LABELS["matches"][batch[0]]
        n_ids = len(np.unique(LABELS["pids"][LABELS["matches"] == match]))
        assert len(per_id) == min(8, n_ids)


def test_composition_minimums_when_the_match_has_them() -> None:
    sampler = _sampler()
    for epoch in range(5):
        sampler.set_epoch(epoch)
        for batch in sampler:
            match = LABELS["matches"][batch[0]]
            in_match = LABELS["matches"] == match
            ids = np.unique(LABELS["pids"][batch])
            first = {p: int(np.flatnonzero(LABELS["pids"] == p)[0]) for p in ids}
            teams = Counter(int(LABELS["teams"][i]) for i in first.values())
            roles = Counter(int(LABELS["roles"][i]) for i in first.values())
            for team in (0, 1):
                available = len(np.unique(LABELS["pids"][in_match & (LABELS["teams"] == team)]))
                assert teams[team] >= min(2, available), (epoch, match, team)
            for role, minimum in MINIMUMS.items():
                available = len(np.unique(LABELS["pids"][in_match & (LABELS["roles"] == role)]))
                assert roles[role] >= min(minimum, available), (epoch, match, role)


def _fewest_players_per_team(sampler: MatchBatchSampler, match: int) -> int:
    fewest = 99
    for epoch in range(5):
        sampler.set_epoch(epoch)
        for batch in sampler:
            if LABELS["matches"][batch[0]] != match:
                continue
            players = LABELS["roles"][batch] == PLAYER
            for team in (0, 1):
                fewest = min(fewest, len(np.unique(LABELS["pids"][batch][players & (LABELS["teams"][batch] == team)])))
    return fewest


def test_team_minimum_counts_players_not_the_goalkeeper() -> None:
    # 3 role minimums + 2 players of each team fill P = 7; the keeper has team 0 but its own kit
    assert _fewest_players_per_team(_sampler(p_ids=7, team_role=PLAYER), match=0) >= 2
    assert _fewest_players_per_team(_sampler(p_ids=7), match=0) < 2


def test_short_identities_are_drawn_with_replacement() -> None:
    sampler = _sampler()
    referee = int(LABELS["pids"][(LABELS["matches"] == 1) & (LABELS["roles"] == REFEREE)][0])
    crops = set(np.flatnonzero(LABELS["pids"] == referee).tolist())
    batch = next(b for b in sampler if LABELS["matches"][b[0]] == 1)
    drawn = [i for i in batch if LABELS["pids"][i] == referee]
    assert len(drawn) >= 4 and set(drawn) == crops  # one crop, repeated K times


@pytest.mark.parametrize("world_size", [2, 3, 4])
def test_rank_shards_pad_to_equal_length_and_cover_the_epoch(world_size: int) -> None:
    full = [tuple(b) for b in _sampler()]
    shards = [[tuple(b) for b in _sampler(rank=r, world_size=world_size)] for r in range(world_size)]
    n = -(-len(full) // world_size)
    assert all(len(s) == n == len(_sampler(rank=r, world_size=world_size)) for r, s in enumerate(shards))
    padded = full + full[: n * world_size - len(full)]
    assert all(s == padded[r::world_size] for r, s in enumerate(shards))  # disjoint positions
    assert set().union(*map(set, shards)) == set(full)


def test_rank_shards_drop_to_equal_length_disjoint() -> None:
    full = [tuple(b) for b in _sampler()]
    shards = [[tuple(b) for b in _sampler(rank=r, world_size=2, uneven="drop")] for r in range(2)]
    assert len(shards[0]) == len(shards[1]) == len(full) // 2
    assert sorted(shards[0] + shards[1]) == sorted(full[: 2 * (len(full) // 2)])


def test_deterministic_and_set_epoch_changes_the_order() -> None:
    a, b = _sampler(), _sampler()
    first = list(a)
    assert first == list(b) == list(a)
    a.set_epoch(1)
    second = list(a)
    assert second != first and len(second) == len(first)
    a.set_epoch(0)
    assert list(a) == first
    assert list(_sampler(seed=8)) != first


def test_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="rank"):
        _sampler(rank=2, world_size=2)
    with pytest.raises(ValueError, match="p_ids"):
        _sampler(p_ids=0)
    with pytest.raises(ValueError, match="one entry per item"):
        MatchBatchSampler(LABELS["pids"], LABELS["matches"][:-1], LABELS["teams"], LABELS["roles"])
    with pytest.raises(ConfigError, match="unknown role 'goalkeper'"):
        from_dict(SamplerConfig, {"role_minimums": {"goalkeper": 1}}, "exp.yaml")
    with pytest.raises(ConfigError, match="role_minimums.referee: expected a whole number"):
        from_dict(SamplerConfig, {"role_minimums": {"referee": "two"}}, "exp.yaml")


def test_batches_can_mix_matches_for_batchnorm() -> None:
    pids = np.repeat(np.arange(40), 4)
    matches = pids // 10
    teams = (pids % 2).astype(np.int64)
    roles = np.zeros_like(pids)
    one = MatchBatchSampler(pids, matches, teams, roles, p_ids=4, k_instances=2, epoch="identities")
    two = MatchBatchSampler(pids, matches, teams, roles, p_ids=4, k_instances=2, epoch="identities",
                            matches_per_batch=2)
    assert len(two) == len(one) // 2
    batches = list(two)
    assert all(len(b) == 16 for b in batches)
    assert np.mean([len(set(matches[b])) for b in batches]) > 1.5  # mostly two matches per batch
