"""Roles from match context: team kits are the kits worn by several people at once."""

from __future__ import annotations

import numpy as np
import pytest

from prtreid.data.types import ROLES
from prtreid.track import RoleContext, TrackTable, contextual_roles, vote_roles
from prtreid.track.context import people_per_group

PLAYER, GOALKEEPER, REFEREE, OTHER = (ROLES.index(r) for r in ("player", "goalkeeper", "referee", "other"))
KITS = np.eye(8)  # unit kit embeddings, sqrt(2) apart


def _probs(role: int, n: int, confidence: float = 0.6) -> np.ndarray:
    p = np.full((n, len(ROLES)), (1 - confidence) / (len(ROLES) - 1))
    p[:, role] = confidence
    return p


def _row(**probs: float) -> np.ndarray:
    return np.array([[probs.get(role, 0.0) for role in ROLES]])


def _items(kits: list[int], spans: list[tuple[int, int]], rng: np.random.Generator):
    """Kit embeddings of items (a little noise) and their sightings (item, frame) over frame spans."""
    emb = KITS[kits] + rng.normal(0, 0.02, (len(kits), KITS.shape[1]))
    item = np.concatenate([np.full(b - a, i) for i, (a, b) in enumerate(spans)])
    frame = np.concatenate([np.arange(a, b) for a, b in spans])
    return emb, item, frame


def test_a_kit_worn_by_many_at_once_is_a_team_kit_whatever_the_head_says() -> None:
    rng = np.random.default_rng(0)
    # five people in a referee-like kit seen together, one real referee in another kit
    emb, item, frame = _items([0] * 5 + [1], [(0, 50)] * 6, rng)
    probs = np.concatenate([_probs(REFEREE, 5), _probs(REFEREE, 1)])
    out = contextual_roles(emb, probs, item, frame, ROLES)
    assert out.tolist() == [PLAYER] * 5 + [REFEREE]
    assert contextual_roles(emb, probs, item, frame, ROLES, RoleContext(enabled=False)).tolist() == [REFEREE] * 6


def test_fragments_of_one_person_never_make_a_team() -> None:
    rng = np.random.default_rng(1)
    # one referee tracked as four fragments that never overlap in time: still one person
    emb, item, frame = _items([2] * 4, [(0, 10), (12, 20), (25, 40), (41, 60)], rng)
    out = contextual_roles(emb, _probs(REFEREE, 4), item, frame, ROLES)
    assert out.tolist() == [REFEREE] * 4


def test_with_both_teams_found_an_outsider_is_not_a_player() -> None:
    rng = np.random.default_rng(2)
    kits = [0] * 4 + [1] * 4 + [3]  # two teams and a goalkeeper the head takes for a player
    emb, item, frame = _items(kits, [(0, 30)] * 9, rng)
    probs = np.concatenate([_probs(PLAYER, 8), _row(player=0.5, goalkeeper=0.3, referee=0.1, other=0.1)])
    outsiders = RoleContext(outsiders=True)
    out = contextual_roles(emb, probs, item, frame, ROLES, outsiders)
    assert out.tolist() == [PLAYER] * 8 + [GOALKEEPER]
    kept = contextual_roles(emb, probs, item, frame, ROLES, RoleContext(outsiders=False))
    assert kept.tolist() == [PLAYER] * 9
    sure = np.concatenate([probs[:8], _probs(PLAYER, 1, 0.8)])  # the head is sure: a player off the cut
    assert contextual_roles(emb, sure, item, frame, ROLES, outsiders).tolist() == [PLAYER] * 9


def test_with_one_team_found_a_lone_opponent_keeps_the_heads_role() -> None:
    rng = np.random.default_rng(3)
    emb, item, frame = _items([0] * 4 + [1], [(0, 30)] * 5, rng)
    out = contextual_roles(emb, _probs(PLAYER, 5), item, frame, ROLES, RoleContext(outsiders=True))
    assert out.tolist() == [PLAYER] * 5


def test_with_one_team_found_the_largest_other_player_kit_is_the_second_team() -> None:
    rng = np.random.default_rng(8)
    # team A (5 at once), two players of team B together, and a keeper the head half takes for a player
    emb, item, frame = _items([0] * 5 + [1] * 2 + [3], [(0, 30)] * 8, rng)
    keeper = _row(player=0.55, goalkeeper=0.3, referee=0.1, other=0.05)
    probs = np.concatenate([_probs(PLAYER, 7), keeper])
    assert contextual_roles(emb, probs, item, frame, ROLES).tolist() == [PLAYER] * 7 + [GOALKEEPER]
    no_rule = RoleContext(small_second_team=False)
    assert contextual_roles(emb, probs, item, frame, ROLES, no_rule).tolist() == [PLAYER] * 8
    # one player of team B and the keeper, one person each: which is the other team is unknown
    emb, item, frame = _items([0] * 5 + [1] + [3], [(0, 30)] * 7, rng)
    probs = np.concatenate([_probs(PLAYER, 6), keeper])
    assert contextual_roles(emb, probs, item, frame, ROLES).tolist() == [PLAYER] * 7


def test_a_match_has_two_team_kits_so_a_referee_trio_is_not_a_third() -> None:
    rng = np.random.default_rng(5)
    # two teams (the second's kit split in two by the cut) and a referee with two assistants
    kits = [0] * 6 + [1] * 5 + [3] * 3 + [2] * 3
    emb, item, frame = _items(kits, [(0, 30)] * 17, rng)
    probs = np.concatenate([_probs(PLAYER, 14), _probs(REFEREE, 3)])
    out = contextual_roles(emb, probs, item, frame, ROLES)
    assert out.tolist() == [PLAYER] * 14 + [REFEREE] * 3  # past two slots, only what the head calls players


def test_a_kit_on_more_people_than_a_team_fields_is_both_teams() -> None:
    rng = np.random.default_rng(6)
    kits = [0] * 16 + [2] * 3  # close kits merged into one group of 16, and the referee trio
    emb, item, frame = _items(kits, [(0, 30)] * 19, rng)
    probs = np.concatenate([_probs(PLAYER, 16), _probs(REFEREE, 3)])
    assert contextual_roles(emb, probs, item, frame, ROLES).tolist() == [PLAYER] * 16 + [REFEREE] * 3
    one_team = RoleContext(team_size=16)  # were 16 one team, the trio would be the other
    assert contextual_roles(emb, probs, item, frame, ROLES, one_team).tolist() == [PLAYER] * 19
    # both teams found in one kit: a keeper the head half takes for a player is an outsider
    emb, item, frame = _items([0] * 14 + [3], [(0, 30)] * 15, rng)
    probs = np.concatenate([_probs(PLAYER, 14), _row(player=0.5, goalkeeper=0.3, referee=0.1, other=0.1)])
    assert contextual_roles(emb, probs, item, frame, ROLES).tolist() == [PLAYER] * 14 + [GOALKEEPER]


def test_an_assistant_in_the_referees_kit_is_a_referee() -> None:
    rng = np.random.default_rng(7)
    # two teams; the referee and an assistant in his kit, whom the head takes for staff; a steward in his own
    kits = [0] * 4 + [1] * 4 + [2, 2] + [4]
    emb, item, frame = _items(kits, [(0, 30)] * 11, rng)
    assistant = _row(player=0.05, goalkeeper=0.05, referee=0.35, other=0.55)
    probs = np.concatenate([_probs(PLAYER, 8), _probs(REFEREE, 1), assistant, _probs(OTHER, 1)])
    out = contextual_roles(emb, probs, item, frame, ROLES)
    assert out.tolist() == [PLAYER] * 8 + [REFEREE, REFEREE, OTHER]
    per_person = contextual_roles(emb, probs, item, frame, ROLES, RoleContext(shared_kit_roles=()))
    assert per_person.tolist() == [PLAYER] * 8 + [REFEREE, OTHER, OTHER]


def test_one_keeper_in_view_at_a_time() -> None:
    rng = np.random.default_rng(9)
    # two teams, a keeper, and a referee the head takes for a keeper, seen together
    kits = [0] * 4 + [1] * 4 + [3, 2]
    emb, item, frame = _items(kits, [(0, 30)] * 10, rng)
    keeper = _row(player=0.3, goalkeeper=0.6, referee=0.05, other=0.05)
    referee = _row(player=0.02, goalkeeper=0.55, referee=0.35, other=0.08)
    probs = np.concatenate([_probs(PLAYER, 8), keeper, referee])
    assert contextual_roles(emb, probs, item, frame, ROLES).tolist() == [PLAYER] * 8 + [GOALKEEPER, REFEREE]
    both = RoleContext(one_keeper_in_view=False)
    assert contextual_roles(emb, probs, item, frame, ROLES, both).tolist() == [PLAYER] * 8 + [GOALKEEPER] * 2
    # the two keepers of a match, at either end of the clip: never in one frame, both keepers
    emb, item, frame = _items(kits, [(0, 30)] * 8 + [(0, 10), (20, 30)], rng)
    assert contextual_roles(emb, probs, item, frame, ROLES).tolist() == [PLAYER] * 8 + [GOALKEEPER] * 2


def test_a_second_keeper_in_view_falls_back_to_player_unless_pushed_out_of_the_teams() -> None:
    rng = np.random.default_rng(10)
    keeper = _row(player=0.3, goalkeeper=0.66, referee=0.02, other=0.02)
    lone = _row(player=0.42, goalkeeper=0.49, referee=0.05, other=0.04)  # the head half takes him for a keeper
    # one team in view, its keeper, and a lone opponent in a third kit: he is the other team's player
    emb, item, frame = _items([0] * 4 + [3, 4], [(0, 30)] * 6, rng)
    probs = np.concatenate([_probs(PLAYER, 4), keeper, lone])
    assert contextual_roles(emb, probs, item, frame, ROLES).tolist() == [PLAYER] * 4 + [GOALKEEPER, PLAYER]
    # both team kits found: an outsider is not a player, so a second keeper takes his next non-player role
    emb, item, frame = _items([0] * 4 + [1] * 4 + [3, 4], [(0, 30)] * 10, rng)
    probs = np.concatenate([_probs(PLAYER, 8), keeper, lone])
    assert contextual_roles(emb, probs, item, frame, ROLES).tolist() == [PLAYER] * 8 + [GOALKEEPER, REFEREE]


def test_people_per_group_counts_distinct_items_in_one_frame() -> None:
    groups = np.array([0, 0, 0, 1])
    item = np.array([0, 0, 1, 2, 2, 3])
    frame = np.array([1, 1, 1, 2, 2, 2])  # item 0 seen twice in frame 1 counts once
    assert people_per_group(groups, item, frame).tolist() == [2, 1]


def test_tracklet_vote_uses_the_context() -> None:
    rng = np.random.default_rng(4)
    rows = []
    for tid in range(1, 6):  # five tracklets of one kit, seen together in frames 1..10
        emb = KITS[0] + rng.normal(0, 0.02, (10, 8))
        rows.append(TrackTable(np.arange(1, 11), np.full(10, tid), np.zeros((10, 4)), np.ones(10),
                               team=emb, role_probs=_probs(REFEREE, 10)))
    table = TrackTable.concat(rows)
    plain = vote_roles(table.track_id, table.role_probs, ROLES)
    ctx = vote_roles(table.track_id, table.role_probs, ROLES, frames=table.frame, team_rows=table.team,
                     context=RoleContext())
    assert set(plain.values()) == {"referee"} and set(ctx.values()) == {"player"}


@pytest.mark.parametrize("kwargs", [{"kit_radius": 0.0}, {"min_people": 1}, {"outsider_keep_prob": 1.5},
                                    {"min_people": 4, "team_size": 3}, {"shared_kit_roles": ("player", "other")},
                                    {"keeper_role": "player"}])
def test_bad_context_settings_are_refused(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        RoleContext(**kwargs)
