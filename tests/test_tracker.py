"""PRT-Track on synthetic scenes built here: crossings, occlusions, re-entries, camera pans; matching."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from prtreid.config import from_dict
from prtreid.eval.reid import part_distance as torch_part_distance
from prtreid.track import Appearance, Detections, PRTTracker, TrackerConfig, warp_boxes
from prtreid.track.matching import assign, fuse_motion_appearance, iou_matrix, l2_normalize, part_distance, team_gate

W, H = 40.0, 100.0  # player box size
P, D = 3, 32  # parts (incl. global) and descriptor size of the synthetic appearance


def _scene(
    pos: np.ndarray, seed: int, ident: np.ndarray | None = None, teams: np.ndarray | None = None,
    camera: list[np.ndarray] | None = None,
) -> list[tuple[Detections, Appearance, np.ndarray]]:
    """Frames of a scene: ``pos`` (T, K, 2) top-left corners in world pixels (NaN = not detected).

    Each identity has a fixed random unit descriptor per part (or ``ident`` (K, P, D)) plus noise;
    ``teams`` (K,) picks a team embedding; ``camera`` gives a 2x3 world->image affine per frame.
    Detections are shuffled so that the tracker cannot rely on their order.
    """
    rng = np.random.default_rng(seed)
    n_frames, k = pos.shape[:2]
    ident = l2_normalize(rng.normal(size=(k, P, D))) if ident is None else ident
    team_dirs = np.eye(8)[:2] * 1.0
    teams = np.zeros(k, int) if teams is None else teams
    frames = []
    for t in range(n_frames):
        present = np.flatnonzero(np.isfinite(pos[t, :, 0]))
        order = rng.permutation(present)
        boxes = np.concatenate([pos[t, order], pos[t, order] + [W, H]], axis=1) + rng.normal(0, 0.5, (len(order), 4))
        if camera is not None:
            boxes = warp_boxes(boxes, camera[t])
        feats = ident[order] + rng.normal(0, 0.03, (len(order), P, D))
        team = team_dirs[teams[order]] + rng.normal(0, 0.1, (len(order), 8))
        app = Appearance(feats.astype(np.float32), np.ones((len(order), P), np.float32), team)
        frames.append((Detections(boxes, np.full(len(order), 0.9)), app, order))
    return frames


def _run(
    tracker: PRTTracker, frames: list, use_app: bool = True, warps: list[np.ndarray | None] | None = None
) -> list[dict[int, int]]:
    """Per frame, truth identity -> output track id."""
    out = []
    for t, (dets, app, truth) in enumerate(frames):
        tracks = tracker.update(dets, app if use_app else None, None if warps is None else warps[t])
        out.append({int(truth[d]): int(i) for i, d in zip(tracks.ids, tracks.det_index)})
    return out


def _ids_per_identity(assignments: list[dict[int, int]]) -> dict[int, set[int]]:
    seen: dict[int, set[int]] = {}
    for frame in assignments:
        for truth, tid in frame.items():
            seen.setdefault(truth, set()).add(tid)
    return seen


def _assert_kept(assignments: list[dict[int, int]], identities: int) -> None:
    """Every identity has exactly one track id, ids are distinct, everyone is tracked at the end."""
    seen = _ids_per_identity(assignments)
    assert sorted(seen) == list(range(identities))
    assert all(len(ids) == 1 for ids in seen.values()), seen
    assert len({next(iter(ids)) for ids in seen.values()}) == identities, seen
    assert sorted(assignments[-1]) == list(range(identities))


def _bounce(n_frames: int = 61, meet: int = 30, speed: float = 3.0) -> np.ndarray:
    """Two players walk towards each other, overlap, and turn back to where they came from."""
    t = np.arange(n_frames)[:, None]
    d = speed * np.abs(t - meet)
    return np.stack([np.concatenate([500 - d, 300 + 0 * d], 1), np.concatenate([500 + d, 306 + 0 * d], 1)], 1)


def _linear(n_frames: int, starts: list[tuple[float, float]], vel: list[tuple[float, float]]) -> np.ndarray:
    t = np.arange(n_frames)[:, None, None]
    return np.asarray(starts, float)[None] + t * np.asarray(vel, float)[None]


def _distractors(n_frames: int) -> np.ndarray:
    return _linear(n_frames, [(100, 500), (1000, 100)], [(1.0, -1.0), (-1.0, 1.5)])


# -- matching ---------------------------------------------------------------------------------------


def test_iou_matrix_known_boxes() -> None:
    a = np.array([[0, 0, 2, 2], [0, 0, 1, 1]], float)
    b = np.array([[0, 0, 2, 2], [1, 0, 3, 2], [5, 5, 6, 6]], float)
    np.testing.assert_allclose(iou_matrix(a, b), [[1, 1 / 3, 0], [0.25, 0, 0]])
    assert iou_matrix(np.zeros((0, 4)), b).shape == (0, 3)


def test_part_distance_weights_visible_parts() -> None:
    t = l2_normalize(np.array([[[1.0, 0.0], [1.0, 0.0]]]))
    d = l2_normalize(np.array([[[0.0, 1.0], [1.0, 0.0]], [[0.0, 1.0], [1.0, 0.0]], [[1.0, 0.0], [0.0, 1.0]]]))
    d_vis = np.array([[1.0, 1.0], [0.0, 1.0], [1.0, 0.0]])
    out = part_distance(t, np.ones((1, 2)), d, d_vis)
    np.testing.assert_allclose(out, [[0.5, 0.0, 0.0]])  # mean of (1, 0); part 2 only; part 1 only
    assert part_distance(t, np.zeros((1, 2)), d, d_vis)[0, 0] == np.inf


def test_euclidean_part_distance_equals_eval_version() -> None:
    rng = np.random.default_rng(0)
    tf, df = rng.normal(size=(4, 5, 8)), rng.normal(size=(6, 5, 8))
    tv, dv = rng.uniform(0.1, 1, (4, 5)), rng.uniform(0.1, 1, (6, 5))
    ours = part_distance(tf, tv, df, dv, metric="euclidean")
    ref = torch_part_distance(*(torch.from_numpy(x) for x in (tf, tv, df, dv))).numpy()
    np.testing.assert_allclose(ours, ref, rtol=1e-4)


def test_assign_respects_allowed_pairs() -> None:
    cost = np.array([[0.1, 0.2], [0.05, 0.9]])
    allowed = np.array([[True, True], [False, False]])
    matches, un_rows, un_cols = assign(cost, allowed)
    assert matches.tolist() == [[0, 0]] and un_rows.tolist() == [1] and un_cols.tolist() == [1]
    # Maximum number of allowed pairs first, then least cost: 0-1 and 1-0 beat 0-0 alone.
    matches, _, _ = assign(np.array([[0.01, 0.1], [0.1, 5.0]]), np.array([[True, True], [True, False]]))
    assert sorted(matches.tolist()) == [[0, 1], [1, 0]]
    assert assign(np.zeros((0, 3)), np.zeros((0, 3), bool))[2].tolist() == [0, 1, 2]


def _lost_then_far(cfg: TrackerConfig, missed: int, shift: float) -> tuple[int, list[int]]:
    """A confirmed track, ``missed`` empty frames, then a look-alike detection ``shift`` px away."""
    tracker = PRTTracker(cfg)
    look = np.zeros((1, 1, 4), np.float32)
    look[0, 0, 0] = 1
    box = np.array([[100.0, 100, 140, 200]])
    for _ in range(3):
        first = tracker.update(Detections(box, np.array([0.9])), Appearance(look)).ids[0]
    for _ in range(missed):
        tracker.update(Detections(np.zeros((0, 4)), np.zeros(0)), Appearance(np.zeros((0, 1, 4), np.float32)))
    out = tracker.update(Detections(box + [shift, 0, shift, 0], np.array([0.9])), Appearance(look))
    return first, out.ids.tolist()


def test_the_motion_gate_holds_until_relax_gate_after_frames_unseen() -> None:
    cfg = TrackerConfig(max_age=30, relax_gate_after=30)  # StrongSORT: the gate applies to the end
    first, ids = _lost_then_far(cfg, missed=30, shift=800)
    assert first not in ids
    relaxed = dataclasses.replace(cfg, relax_gate_after=10)
    assert _lost_then_far(relaxed, missed=10, shift=800)[1] == []  # 10 frames unseen: still gated
    first, ids = _lost_then_far(relaxed, missed=11, shift=800)
    assert ids == [first]  # 11: re-identified by appearance alone


def test_boxes_without_area_are_ignored() -> None:
    tracker = PRTTracker(TrackerConfig(n_init=1))
    boxes = np.array([[1920.0, 500, 1920, 580], [300, 500, 340, 600], [50, 80, 90, 80]])  # zero width, height
    for _ in range(3):  # tracked, they made the Kalman covariance singular: an error on the second frame
        out = tracker.update(Detections(boxes, np.full(3, 0.9)))
    assert len(out.ids) == 1 and out.boxes[0].tolist() == pytest.approx([300, 500, 340, 600])


def test_fusion_gates_and_relaxes_for_long_lost_tracks() -> None:
    app = np.array([[0.1, 0.1, 0.3], [0.1, 0.18, 0.3]])
    maha = np.array([[1.0, 50.0, 1.0], [50.0, 50.0, 50.0]])
    cost, allowed = fuse_motion_appearance(app, maha, np.array([False, True]), 9.4877, 0.2, 0.15, 0.98)
    assert allowed.tolist() == [[True, False, False], [True, False, False]]
    assert cost[0, 0] == pytest.approx(0.98 * 0.1 + 0.02 * 1.0)
    assert cost[1, 0] == pytest.approx(0.98 * 0.1 + 0.02 * 9.4877)


def test_team_gate_only_for_settled_tracks() -> None:
    team_a, team_b = np.array([1.0, 0.0]), np.array([0.0, 1.0])
    sums = np.stack([10 * team_a, 2 * team_a, 5 * team_a + 5 * team_b])
    counts = np.array([10, 2, 10])
    allowed = team_gate(sums, counts, np.stack([team_a, team_b, [np.nan, np.nan]]), 0.5, 5, 0.8)
    # settled on A: B forbidden; too few observations: free; inconsistent (both kits): free; NaN det: free
    assert allowed.tolist() == [[True, False, True], [True, True, True], [True, True, True]]


def test_config_round_trip_and_sports_preset() -> None:
    sports = TrackerConfig.sports()
    assert sports.max_age > TrackerConfig().max_age and not sports.iou_app_gate
    assert from_dict(TrackerConfig, dataclasses.asdict(sports)) == sports
    assert TrackerConfig.sports(max_age=50).max_age == 50


# -- tracker ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("speed", [3.0, 5.0])
def test_same_team_players_bouncing_keep_ids_with_appearance(speed: float) -> None:
    pos = np.concatenate([_bounce(speed=speed), _distractors(61)], axis=1)
    frames = _scene(pos, seed=1)
    _assert_kept(_run(PRTTracker(TrackerConfig.sports()), frames), 4)


def test_same_team_players_passing_through_keep_ids() -> None:
    pos = np.concatenate([_linear(60, [(400, 300), (640, 306)], [(4, 0), (-4, 0)]), _distractors(60)], axis=1)
    _assert_kept(_run(PRTTracker(TrackerConfig()), _scene(pos, seed=2)), 4)


def test_opposing_players_with_identical_looks_are_kept_apart_by_team_gating() -> None:
    pos = _bounce(speed=4.0)
    ident = np.repeat(l2_normalize(np.random.default_rng(3).normal(size=(1, P, D))), 2, axis=0)
    frames = _scene(pos, seed=3, ident=ident, teams=np.array([0, 1]))
    _assert_kept(_run(PRTTracker(TrackerConfig.sports(team_gating=True)), frames), 2)


@pytest.mark.parametrize("use_app", [True, False])
def test_occluded_player_comes_back_with_same_id(use_app: bool) -> None:
    pos = np.concatenate([_linear(80, [(300, 300)], [(3, 0.5)]), _distractors(80)], axis=1)
    pos[30:45, 0] = np.nan  # 15 frames without a detection
    assignments = _run(PRTTracker(TrackerConfig()), _scene(pos, seed=4), use_app=use_app)
    assert all(0 not in a for a in assignments[30:45])
    _assert_kept(assignments, 3)


def test_player_reentering_elsewhere_after_100_frames_gets_id_back() -> None:
    n = 200
    pos = np.concatenate([_linear(n, [(300, 300)], [(3, 0)]), _distractors(n)], axis=1)
    pos[40:140, 0] = np.nan  # leaves the view for 100 frames ...
    pos[140:, 0] = _linear(n - 140, [(1100, 500)], [(-2, 0)])[:, 0]  # ... and comes back on the other side
    assignments = _run(PRTTracker(TrackerConfig.sports()), _scene(pos, seed=5))
    _assert_kept(assignments, 3)
    assert 0 in assignments[140]  # re-identified on its first frame back


def test_camera_pan_is_absorbed_when_the_warp_is_given() -> None:
    n = 60
    pos = _linear(n, [(200, 200), (500, 300), (800, 250)], [(1, 0), (-1, 0.5), (0.5, 0.5)])
    camera, warps = [np.eye(2, 3)], [None]
    for t in range(1, n):  # a jerky pan every 10 frames, one with a zoom
        step = np.array([[1.0, 0, 0], [0, 1.0, 0]])
        if t % 10 == 0:
            step = np.array([[1.1, 0, -30.0], [0, 1.1, 20.0]]) if t == 30 else np.array([[1.0, 0, 80.0], [0, 1.0, -40.0]])
        camera.append(np.vstack([step, [0, 0, 1]])[:2] @ np.vstack([camera[-1], [0, 0, 1]]))
        warps.append(step)
    frames = _scene(pos, seed=6, camera=camera)
    _assert_kept(_run(PRTTracker(TrackerConfig()), frames, use_app=False, warps=warps), 3)
    lost = _ids_per_identity(_run(PRTTracker(TrackerConfig()), frames, use_app=False))
    assert sum(len(ids) for ids in lost.values()) > 3  # without the warp the jumps break the tracks


def test_tentative_tracks_filtering_and_det_index() -> None:
    cfg = TrackerConfig(output_box="detection")
    tracker = PRTTracker(cfg)
    box = np.array([[100.0, 100.0, 140.0, 200.0]])
    first = tracker.update(Detections(box, np.array([0.9])))
    assert first.ids.tolist() == [1]  # born on the first frame: confirmed at once
    spurious = np.array([[600.0, 100.0, 640.0, 200.0], [900.0, 100.0, 940.0, 200.0]])
    out = tracker.update(Detections(np.concatenate([spurious, box + 1]), np.array([0.9, 0.1, 0.95])))
    assert out.ids.tolist() == [1] and out.det_index.tolist() == [2]  # the 0.1 row is ignored
    np.testing.assert_allclose(out.boxes, box + 1)
    out = tracker.update(Detections(box + 2, np.array([0.9])))  # the spurious tentative track dies here
    out = tracker.update(Detections(np.concatenate([box + 3, spurious[:1]]), np.array([0.9, 0.9])))
    assert out.ids.tolist() == [1]
    assert sorted(tracker.tracks.ids.tolist()) == [1, 3]  # a new tentative track, id 2 is gone


def test_track_dies_after_max_age_and_reset_restarts_ids() -> None:
    tracker = PRTTracker(TrackerConfig(max_age=5))
    box = np.array([[100.0, 100.0, 140.0, 200.0]])
    tracker.update(Detections(box, np.array([0.9])))
    for _ in range(6):
        tracker.update(Detections(np.zeros((0, 4)), np.zeros(0)))
    assert len(tracker.tracks) == 0
    tracker.reset()
    assert tracker.update(Detections(box, np.array([0.9]))).ids.tolist() == [1]


def test_appearance_update_is_visibility_aware() -> None:
    tracker = PRTTracker(TrackerConfig(ema_alpha=0.9, vis_threshold=0.5))
    box = np.array([[100.0, 100.0, 140.0, 200.0]])
    e = np.eye(3, dtype=np.float32)
    tracker.update(Detections(box, np.array([0.9])), Appearance(e[None, [0, 0, 0]], np.array([[1.0, 1.0, 0.0]])))
    u = l2_normalize(np.array([1.0, 0.2, 0.0], np.float32))
    det = np.stack([u, e[1], e[1]])[None]
    tracker.update(Detections(box, np.array([0.9])), Appearance(det, np.array([[1.0, 0.1, 1.0]])))
    assert tracker.tracks.ids.tolist() == [1]
    feats, vis = tracker.tracks.feats[0], tracker.tracks.vis[0]
    np.testing.assert_allclose(feats[0], l2_normalize(0.9 * e[0] + 0.1 * u), rtol=1e-6)  # plain EMA
    np.testing.assert_allclose(feats[1], e[0])  # hidden in the detection: unchanged
    np.testing.assert_allclose(feats[2], e[1])  # never seen by the track: takes the detection's
    np.testing.assert_allclose(vis, [1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match=r"Appearance\.vis must be \(1, 3\), got \(2, 3\)"):
        tracker.update(Detections(box, np.array([0.9])), Appearance(det, np.ones((2, 3))))
    with pytest.raises(ValueError, match=r"Appearance\.vis must be \(1, 3\), got \(1, 4\)"):
        tracker.update(Detections(box, np.array([0.9])), Appearance(det, np.ones((1, 4))))
    with pytest.raises(ValueError, match=r"Appearance\.team must be \(1, Dt\), got \(1,\)"):
        tracker.update(Detections(box, np.array([0.9])), Appearance(det, np.ones((1, 3)), team=np.ones(1)))


def test_zero_team_embeddings_are_unknown_not_observations() -> None:
    tracker = PRTTracker(TrackerConfig())
    box = np.array([[100.0, 100.0, 140.0, 200.0]])
    feats = np.ones((1, 3, 4), np.float32)
    for team in ([1.0, 0.0], [0.0, 0.0], [np.nan, np.nan]):
        tracker.update(Detections(box, np.array([0.9])), Appearance(feats, team=np.array([team])))
    assert tracker.tracks.team_n.tolist() == [1]
    np.testing.assert_allclose(tracker.tracks.team_sum, [[1.0, 0.0]])


def test_tentative_tracks_are_reported_apart_until_confirmed() -> None:
    tracker = PRTTracker(TrackerConfig(n_init=3, confirm_first_frame=False))
    box = np.array([[100.0, 100, 140, 200]])
    confirmed, tentative = [], []
    for _ in range(4):
        out = tracker.update(Detections(box, np.array([0.9])))
        confirmed.append(out.ids.tolist())
        tentative.append(tracker.tentative.ids.tolist())
    assert confirmed == [[], [], [1], [1]]  # confirmed on its third hit
    assert tentative == [[1], [1], [], []]
    assert tracker.tentative.det_index.dtype == np.int64
    tracker.update(Detections(np.zeros((0, 4)), np.zeros(0)))
    assert len(tracker.tentative) == 0
