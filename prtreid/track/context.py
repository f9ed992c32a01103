"""Roles from match context: a kit worn by several people at once is a team kit.

A role classifier sees one crop. On a broadcast, a crop alone can be ambiguous: a team in black
shorts and socks under a bright shirt dresses like a referee, a steward in a bib like a keeper.
The match settles it: two teams of up to eleven wear two kits, while a referee shares a kit with
two assistants at most and each goalkeeper wears his own. So the people of a video (tracklets,
or the crops of a sequence) are grouped by kit, each group is sized by the largest number of its
members visible in one frame (people seen together are different people, while the fragments of
one track never overlap), and:

* every member of a group of at least ``min_people`` is a player, but a match has two teams: groups
  take team slots from the most people seen at once down, and a group seen on more people at once
  than one team fields (``team_size``) is both teams' kits merged (close kits) and takes both slots;
  a group left without a slot is a team kit only if the head calls its members players on average.
  A referee and two assistants seen together are 3 people in one kit; without the slots they were
  a team kit whenever close kits merged the two teams (unseen set 5003 of the README: referees
  called players in 125 crops of one clip);
* with ``small_second_team`` on (the default), when only one team kit is seen on ``min_people`` at
  once, the other team is the group the head calls players with the most people at once (unless
  two such groups tie): near a goal the attacking team may show only one or two players, and a
  keeper the head half takes for a player is then the third kit, not a team;
* with ``outsiders`` on (the default), when both team slots are filled (both teams are found), the
  people outside them are not players unless the head is sure they are (player probability at
  least ``outsider_keep_prob``): they take the head's most likely non-player role. It needs a
  compact kit per team in the embedding: a patterned kit or a team seen in parts can spread past
  the cut, and its players are then pushed out. With the 9-epoch 96x48 preset and a cut at 0.7,
  over three unseen sets of 8 clips it lifted tracklet-frame role accuracy 0.960 -> 0.973 and team
  accuracy 0.936 -> 0.958 (fewer non-players in the team clustering); with weaker 5-epoch models
  it had cost team accuracy, so it stays a setting;
* with ``one_keeper_in_view`` on (the default), where two people called goalkeeper are seen in one
  frame, only the more keeper-like stays one and the other takes his most likely other role: a
  broadcast view shows one goal, and so one keeper (no clip of the unseen sets 5001-5005 and
  5011-5013 shows both at once). That role may be player, unless the outsider rule has put him
  outside both team kits: near a goal a lone opponent in a third kit looks as keeper-like as the
  keeper (unseen set 5005: a player at 0.49 keeper and 0.42 player probability, who had fallen to
  referee at 0.04);
* people outside the team kits called one of ``shared_kit_roles`` (referee, then other) share a
  role per kit group, the first of that list any of them is called: an assistant in the referee's
  kit is a referee. On the touchline a crop of an assistant looks like staff: on unseen sets
  5001-5005 the head called 8 assistants "other", and the rule fixed 5. A vote by mean probability
  instead lost a main referee to "other" with his assistant;
* everyone else keeps the head's most likely role.

Kits are compared through the team-affiliation embedding (unit length), grouped by average-linkage
agglomerative clustering cut at ``kit_radius``. The team head is trained with a triplet margin of
0.4 between the kits of a match; a cut at 0.7 keeps a patterned or partly seen team in one group
(0.5 split such teams on unseen clips) while the two teams of a match and the referees stay apart.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.cluster import AgglomerativeClustering


@dataclass(frozen=True)
class RoleContext:
    """Settings of the match-context role decision.

    Attributes:
        enabled: use the context; off, every item takes the head's argmax.
        kit_radius: average-linkage distance cut between unit team embeddings of one kit.
        min_people: a kit seen on at least this many people in one frame is a team kit.
        team_size: most people of one team on the pitch; a kit seen on more at once is both teams'.
        outsiders: once both team kits are found, nobody else is a player...
        outsider_keep_prob: ... but for those the head calls a player with at least this probability.
        small_second_team: with one team kit found, the largest other group the head calls players
            is the second team's, even if fewer than ``min_people`` wear it at once.
        one_keeper_in_view: at most one goalkeeper per frame; the less keeper-like of two seen together
            takes his next most likely role (not player where the outsider rule barred it).
        shared_kit_roles: non-player roles decided per kit group, in priority order (empty: per person).
        player_role, keeper_role: the names of the player and goalkeeper roles.
    """

    enabled: bool = True
    kit_radius: float = 0.7
    min_people: int = 3
    team_size: int = 11
    outsiders: bool = True
    outsider_keep_prob: float = 0.75
    small_second_team: bool = True
    one_keeper_in_view: bool = True
    shared_kit_roles: tuple[str, ...] = ("referee", "other")
    player_role: str = "player"
    keeper_role: str = "goalkeeper"

    def __post_init__(self) -> None:
        if not 0.0 < self.kit_radius <= 2.0:
            raise ValueError(f"kit_radius must be in (0, 2] (unit embeddings), got {self.kit_radius}")
        if not 0.0 <= self.outsider_keep_prob <= 1.0:
            raise ValueError(f"outsider_keep_prob must be in [0, 1], got {self.outsider_keep_prob}")
        if self.min_people < 2:
            raise ValueError(f"min_people must be at least 2, got {self.min_people}")
        if self.keeper_role == self.player_role:
            raise ValueError(f"keeper_role and player_role must differ, got {self.keeper_role!r} for both")
        if self.player_role in self.shared_kit_roles:
            raise ValueError(f"shared_kit_roles must not hold the player role {self.player_role!r}")
        if self.team_size < self.min_people:
            raise ValueError(f"team_size must be at least min_people ({self.min_people}), got {self.team_size}")


def kit_groups(kit_emb: np.ndarray, radius: float) -> np.ndarray:
    """Group label of each row of ``kit_emb`` (rows L2-normalised first), average linkage cut at ``radius``."""
    x = np.asarray(kit_emb, np.float64)
    if len(x) < 2:
        return np.zeros(len(x), np.int64)
    x = x / np.linalg.norm(x, axis=1, keepdims=True).clip(1e-12)
    clusterer = AgglomerativeClustering(n_clusters=None, distance_threshold=radius, linkage="average")
    return clusterer.fit_predict(x).astype(np.int64)


def people_per_group(groups: np.ndarray, item_of_row: np.ndarray, frame_of_row: np.ndarray) -> np.ndarray:
    """For each group, the largest number of its distinct items seen in one frame.

    Args:
        groups: ``(n_items,)`` group label of each item (0..G-1).
        item_of_row, frame_of_row: one row per sighting (item index, frame number).
    """
    pairs = np.unique(np.stack([np.asarray(item_of_row), np.asarray(frame_of_row)], 1), axis=0)
    num_groups = int(groups.max()) + 1 if len(groups) else 0
    out = np.zeros(num_groups, np.int64)
    if len(pairs) == 0:
        return out
    keys, counts = np.unique(np.stack([groups[pairs[:, 0]], pairs[:, 1]], 1), axis=0, return_counts=True)
    np.maximum.at(out, keys[:, 0], counts)
    return out


def _team_kits(people: np.ndarray, groups: np.ndarray, probs: np.ndarray, player: int,
               ctx: RoleContext) -> tuple[np.ndarray, bool]:
    """Which groups are team kits (at least ``min_people`` at once, within the match's two team
    slots), and whether both teams were found (both slots filled).

    Groups take the slots from the most people at once down (ties: the more player-like by the head);
    a group of more than ``team_size`` at once is both teams and fills both slots. A group left
    without a slot (a team's kit split in two by the cut, say) still counts if the head calls its
    members players on average. With one slot left, ``small_second_team`` gives it to the
    player-like group with the most people at once, if no other such group has as many.
    """
    mean = np.zeros((len(people), probs.shape[1]))
    np.add.at(mean, groups, probs)
    mean /= np.maximum(np.bincount(groups, minlength=len(people)), 1)[:, None]
    big = people >= ctx.min_people
    player_like = mean.argmax(1) == player
    team = big & player_like
    slots = 2
    order = np.lexsort((-mean[:, player], -people))
    for g in order:
        if slots <= 0 or not big[g]:
            break
        team[g] = True
        slots -= 2 if people[g] > ctx.team_size else 1
    if slots == 1 and ctx.small_second_team:
        small = [g for g in order if player_like[g] and not team[g]]
        if small and (len(small) == 1 or people[small[0]] > people[small[1]]):
            team[small[0]] = True
            slots = 0
    return team, slots <= 0


def contextual_roles(
    kit_emb: np.ndarray,
    role_probs: np.ndarray,
    item_of_row: np.ndarray,
    frame_of_row: np.ndarray,
    role_names: Sequence[str],
    ctx: RoleContext = RoleContext(),
) -> np.ndarray:
    """Role index of each item of one video (see the module docstring for the rule).

    Args:
        kit_emb: ``(n, Dt)`` team embedding of each item (a tracklet's mean, or one crop's).
        role_probs: ``(n, R)`` role probabilities of each item.
        item_of_row, frame_of_row: the frames each item is seen in, one row per sighting.
        role_names: the R role names, in column order.
        ctx: settings; with ``ctx.enabled`` False, or without a player role, the head's argmax.
    """
    probs = np.asarray(role_probs, np.float64)
    pred = probs.argmax(1) if len(probs) else np.zeros(0, np.int64)
    if not ctx.enabled or ctx.player_role not in role_names or len(probs) == 0:
        return pred
    player = list(role_names).index(ctx.player_role)
    groups = kit_groups(kit_emb, ctx.kit_radius)
    people = people_per_group(groups, item_of_row, frame_of_row)
    team_kit, both_teams = _team_kits(people, groups, probs, player, ctx)
    in_team = team_kit[groups]
    pred[in_team] = player
    out = np.zeros(len(probs), bool)
    if ctx.outsiders and both_teams and probs.shape[1] > 1:
        others = np.delete(np.arange(probs.shape[1]), player)
        out = ~in_team & (probs[:, player] < ctx.outsider_keep_prob)
        pred[out] = others[probs[out][:, others].argmax(1)]
    if ctx.one_keeper_in_view and ctx.keeper_role in role_names:
        _one_keeper_per_frame(pred, probs, item_of_row, frame_of_row, list(role_names).index(ctx.keeper_role),
                              player, out)
    shared = np.array([list(role_names).index(r) for r in ctx.shared_kit_roles if r in role_names], np.int64)
    if len(shared) > 1:
        _vote_shared_kit_roles(pred, probs, groups, ~in_team, shared)
    return pred


def _vote_shared_kit_roles(pred: np.ndarray, probs: np.ndarray, groups: np.ndarray, free: np.ndarray,
                           shared: np.ndarray) -> None:
    """In place: per kit group, the free items whose role is in ``shared`` all take the first role of
    ``shared`` that one of them has (a group needs two such items)."""
    voting = free & np.isin(pred, shared)
    for g in np.unique(groups[voting]):
        members = voting & (groups == g)
        if members.sum() >= 2:
            pred[members] = next(r for r in shared if (pred[members] == r).any())


def _one_keeper_per_frame(pred: np.ndarray, probs: np.ndarray, item_of_row: np.ndarray, frame_of_row: np.ndarray,
                          keeper: int, player: int, no_player: np.ndarray) -> None:
    """In place: items called ``keeper`` keep the role from the most keeper-like down, unless seen in a
    frame of one that kept it; those take their most likely other role, player excepted where
    ``no_player`` (the outsiders of both team kits)."""
    called = np.flatnonzero(pred == keeper)
    if len(called) < 2 or probs.shape[1] < 3:
        return
    item_of_row, frame_of_row = np.asarray(item_of_row), np.asarray(frame_of_row)
    fallback = probs.copy()
    fallback[:, keeper] = -np.inf
    fallback[no_player, player] = -np.inf
    taken: set[int] = set()
    for i in called[np.argsort(-probs[called, keeper], kind="stable")]:
        frames = set(frame_of_row[item_of_row == i].tolist())
        if frames & taken:
            pred[i] = fallback[i].argmax()
        else:
            taken |= frames
