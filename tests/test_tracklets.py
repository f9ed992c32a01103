"""Tracklet post-processing: team clustering, role vote by probabilities, gap interpolation, smoothing."""

from __future__ import annotations

import numpy as np
import pytest

from prtreid.data.types import ROLES
from prtreid.detect import BALL_CLASS, PERSON_CLASS, FrameDetections
from prtreid.track import (Appearance, BallTrack, TrackTable, Tracks, assign_teams, backfill_tentative,
                           interpolate_gaps, smooth_boxes, vote_roles)


def _softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def _one_hot_rows(role: str, n: int) -> np.ndarray:
    probs = np.full((n, len(ROLES)), 0.02)
    probs[:, ROLES.index(role)] = 1 - 0.02 * (len(ROLES) - 1)
    return probs


def test_teams_of_separable_embeddings_are_perfect_up_to_permutation() -> None:
    rng = np.random.default_rng(0)
    kits = rng.normal(size=(4, 16))  # team A, team B, referee kit, goalkeeper-of-A kit
    truth = {tid: tid % 2 for tid in range(1, 13)}  # 12 player tracklets
    ids, emb, roles = [], [], []
    for tid, team in truth.items():
        n = int(rng.integers(3, 30))
        ids += [tid] * n
        emb.append(kits[team] + rng.normal(0, 0.3, (n, 16)))
        roles.append(_one_hot_rows("player", n))
    ids += [20] * 10 + [21] * 10  # a referee and a goalkeeper whose kit leans to team A
    emb += [kits[2] + rng.normal(0, 0.3, (10, 16)), 0.6 * kits[0] + 0.4 * kits[3] + rng.normal(0, 0.3, (10, 16))]
    roles += [_one_hot_rows("referee", 10), _one_hot_rows("goalkeeper", 10)]
    emb_rows = np.concatenate(emb)
    emb_rows[0] = np.nan  # an interpolated row is ignored
    teams = assign_teams(np.array(ids), emb_rows, vote_roles(np.array(ids), np.concatenate(roles), ROLES))
    flip = teams[1] != truth[1]
    assert all(teams[t] == (truth[t] ^ flip) for t in truth)
    assert teams[20] is None
    assert teams[21] == teams[2]  # goalkeeper: nearer centroid, team A's


def test_goalkeeper_joins_the_team_seen_in_numbers_around_him() -> None:
    rng = np.random.default_rng(1)
    kits = rng.normal(size=(3, 16))  # team A, team B, a keeper's kit leaning to team A
    ids, frames, emb, roles = [], [], [], []

    def add(tid: int, kit: np.ndarray, first: int, last: int, role: str) -> None:
        n = last - first + 1
        ids.extend([tid] * n)
        frames.extend(range(first, last + 1))
        emb.append(kit + rng.normal(0, 0.3, (n, 16)))
        roles.append(_one_hot_rows(role, n))

    for tid in range(1, 7):  # team A: six players, all in frames 1-60
        add(tid, kits[0], 1, 60, "player")
    for tid in range(7, 10):  # team B: three players in frames 1-60, five more in frames 61-100
        add(tid, kits[1], 1, 60, "player")
    for tid in range(10, 15):
        add(tid, kits[1], 61, 100, "player")
    add(20, 0.7 * kits[0] + 0.3 * kits[2], 61, 100, "goalkeeper")  # seen with team B only
    add(21, 0.7 * kits[1] + 0.3 * kits[2], 1, 60, "goalkeeper")  # seen where team A outnumbers B
    track_ids, role_rows = np.array(ids), np.concatenate(roles)
    voted = vote_roles(track_ids, role_rows, ROLES)
    emb_rows = np.concatenate(emb)
    crowd = assign_teams(track_ids, emb_rows, voted, frames=np.array(frames))
    assert crowd[20] == crowd[7] != crowd[1]
    assert crowd[21] == crowd[1]
    nearest = assign_teams(track_ids, emb_rows, voted)  # without frames: the nearer centroid
    assert nearest[20] == nearest[1] and nearest[21] == nearest[7]
    tie = np.array(frames)
    tie[track_ids == 21] = 0  # a frame with nobody else: no crowd, the nearer centroid
    assert assign_teams(track_ids, emb_rows, voted, frames=tie)[21] == crowd[7]


def test_role_vote_averages_probabilities_not_logits() -> None:
    logits = np.array([[10.0, 0.0], [0.0, 2.0], [0.0, 2.0], [0.0, 2.0]])  # one overconfident frame
    assert logits.mean(0).argmax() == 0  # averaging logits would say role 0
    assert _softmax(logits).mean(0).argmax() == 1
    ids = np.array([7, 7, 7, 7])
    assert vote_roles(ids, _softmax(logits), ("player", "referee")) == {7: "referee"}
    with pytest.raises(ValueError, match="not logits"):
        vote_roles(ids, logits, ("player", "referee"))


def test_role_vote_per_tracklet_skips_unknown_rows() -> None:
    probs = np.concatenate([_one_hot_rows("referee", 3), _one_hot_rows("player", 2), np.full((1, len(ROLES)), np.nan)])
    ids = np.array([1, 1, 1, 2, 2, 3])
    assert vote_roles(ids, probs, ROLES) == {1: "referee", 2: "player"}


def test_role_vote_with_context_keeps_tracklets_without_team_rows() -> None:
    from prtreid.track import RoleContext

    probs = _one_hot_rows("referee", 2)
    team_rows = np.array([[1.0, 0.0], [np.nan, np.nan]])
    voted = vote_roles([1, 2], probs, ROLES, frames=np.array([1, 1]), team_rows=team_rows, context=RoleContext())
    assert voted == {1: "referee", 2: "referee"}


def test_interpolation_fills_short_gaps_linearly() -> None:
    frame = np.array([1, 2, 5, 1, 9])
    track = np.array([1, 1, 1, 2, 2])
    box = np.array([[0, 0, 10, 20], [3, 0, 13, 20], [12, 6, 22, 26], [100, 0, 110, 20], [108, 0, 118, 20]], float)
    table = TrackTable(frame, track, box, np.array([0.9, 0.9, 0.6, 0.8, 0.8]), team=np.ones((5, 2)))
    out = interpolate_gaps(table, max_gap=3)
    assert len(out) == 7  # frames 3 and 4 of track 1 added; track 2's gap of 7 is too long
    new = out.select(out.interpolated)
    assert new.frame.tolist() == [3, 4] and new.track_id.tolist() == [1, 1]
    np.testing.assert_allclose(new.box, [[6, 2, 16, 22], [9, 4, 19, 24]])
    np.testing.assert_allclose(new.score, [0.8, 0.7])
    assert np.isnan(new.team).all() and not np.isnan(out.team[~out.interpolated]).any()
    assert out.frame.tolist() == sorted(out.frame.tolist())


def test_smoothing_takes_out_jitter_and_keeps_accelerating_motion() -> None:
    rng = np.random.default_rng(0)
    frame = np.arange(1, 61)
    truth = np.stack([3.0 * frame + 0.05 * frame**2, 200 - 0.5 * frame, 3.0 * frame + 0.05 * frame**2 + 20,
                      240 - 0.5 * frame], axis=1)
    table = TrackTable(frame, np.full(60, 7), truth + rng.normal(0, 2.0, truth.shape), np.full(60, 0.9))
    out = smooth_boxes(table, window=9)
    assert np.abs(out.box - truth).mean() < 0.6 * np.abs(table.box - truth).mean()
    exact = smooth_boxes(TrackTable(frame, np.full(60, 7), truth, np.full(60, 0.9)), window=9)
    np.testing.assert_allclose(exact.box, truth, atol=1e-9)  # order 2: a parabola passes, ends included
    np.testing.assert_array_equal(out.score, table.score)


def test_smoothing_stays_within_runs_of_consecutive_frames() -> None:
    # track 1 jumps across a gap; track 2 has a run of 3 rows, too short for order 2, left as is
    frame = np.array([1, 2, 3, 4, 5, 6, 20, 21, 22, 23, 24, 25, 1, 2, 3])
    track = np.array([1] * 12 + [2] * 3)
    box = np.array([[f, 0, f + 10, 20] for f in frame[:6]] + [[500 + f, 0, 510 + f, 20] for f in frame[6:12]]
                   + [[0, 0, 5, 5], [9, 9, 20, 20], [0, 0, 5, 5]], float)
    out = smooth_boxes(TrackTable(frame, track, box, np.ones(15)), window=9)
    assert out.frame.tolist() == sorted(out.frame.tolist())
    back = out.select(np.lexsort((out.frame, out.track_id)))
    np.testing.assert_allclose(back.box, box, atol=1e-9)  # each run is linear, so nothing moves
    with pytest.raises(ValueError, match="window must be odd"):
        smooth_boxes(TrackTable(frame, track, box, np.ones(15)), window=4)


def test_table_from_tracker_output_and_to_mot() -> None:
    tracks = Tracks(ids=np.array([4, 2]), boxes=np.array([[0, 0, 10, 30], [5, 5, 25, 45]], float),
                    scores=np.array([0.9, 0.8]), det_index=np.array([1, 0]))
    app = Appearance(feats=np.zeros((2, 1, 4)), team=np.array([[0.0, 1.0], [1.0, 0.0]]),
                     role_probs=_one_hot_rows("player", 2))
    table = TrackTable.concat([TrackTable.from_tracks(3, tracks, app), TrackTable.from_tracks(4, tracks)])
    assert table.team.shape == (4, 2) and np.isnan(table.team[2:]).all()
    np.testing.assert_allclose(table.team[:2], [[1.0, 0.0], [0.0, 1.0]])  # rows follow det_index
    mot = table.to_mot()
    assert mot.frame.tolist() == [3, 3, 4, 4]
    np.testing.assert_allclose(mot.box[1], [5, 5, 20, 40])


def test_team_and_role_rows_stay_float32_through_post_processing() -> None:
    # a 90-minute match is about 1.4 million rows: float64 team embeddings would double their memory
    tracks = Tracks(ids=np.array([1]), boxes=np.array([[0, 0, 10, 30]], float), scores=np.array([0.9]),
                    det_index=np.array([0]))
    app = Appearance(feats=np.zeros((1, 1, 4)), team=np.array([[0.6, 0.8]]), role_probs=_one_hot_rows("player", 1))
    table = TrackTable.concat([TrackTable.from_tracks(1, tracks, app), TrackTable.from_tracks(2, tracks),
                               TrackTable.from_tracks(6, tracks, app)])
    out = interpolate_gaps(table, max_gap=5)
    assert len(out) == 6 and out.team.dtype == out.role_probs.dtype == np.float32
    np.testing.assert_array_equal(out.team[0], np.float32([0.6, 0.8]))


def test_backfill_adds_the_tentative_frames_of_confirmed_tracks_only() -> None:
    def rows(frames: list[int], ids: list[int]) -> TrackTable:
        n = len(frames)
        return TrackTable(np.array(frames), np.array(ids), np.tile([0.0, 0, 10, 30], (n, 1)), np.full(n, 0.9))

    confirmed = rows([3, 4, 4], [7, 7, 9])
    tentative = rows([1, 2, 2, 3], [7, 7, 8, 9])  # 8 died tentative
    out = backfill_tentative(confirmed, tentative)
    assert list(zip(out.frame.tolist(), out.track_id.tolist())) == [(1, 7), (2, 7), (3, 7), (3, 9), (4, 7), (4, 9)]
    assert len(backfill_tentative(confirmed, rows([], []))) == 3


def test_ball_track_keeps_the_most_confident_ball_of_each_frame() -> None:
    ball = BallTrack()
    ball.update(1, FrameDetections([[0, 0, 10, 30], [5, 5, 9, 9], [20, 20, 24, 24]], [0.9, 0.4, 0.7],
                                   [PERSON_CLASS, BALL_CLASS, BALL_CLASS]))
    ball.update(2, FrameDetections([[0, 0, 10, 30]], [0.95], [PERSON_CLASS]))  # the ball is not seen
    ball.update(3, FrameDetections([[6, 6, 10, 10]], [0.5], [BALL_CLASS]))
    table = ball.table(track_id=12)
    assert table.frame.tolist() == [1, 3] and table.track_id.tolist() == [12, 12]
    np.testing.assert_allclose(table.box, [[20, 20, 24, 24], [6, 6, 10, 10]])
    np.testing.assert_allclose(table.score, [0.7, 0.5])
