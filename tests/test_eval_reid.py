"""Re-id, team and role metrics against hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from prtreid.eval.reid import part_distance, reid_metrics, role_metrics, team_accuracy


def test_part_distance_weights_by_shared_visibility() -> None:
    q = torch.tensor([[[0.0, 0.0], [0.0, 0.0]]])  # one query, two parts
    g = torch.tensor([[[3.0, 4.0], [0.0, 1.0]], [[3.0, 4.0], [0.0, 1.0]], [[9.0, 9.0], [9.0, 9.0]]])
    qv = torch.tensor([[1.0, 1.0]])
    gv = torch.tensor([[1.0, 1.0], [0.0, 1.0], [0.0, 0.0]])
    d = part_distance(q, qv, g, gv)
    assert d[0, 0] == pytest.approx(3.0)  # mean of 5 and 1
    assert d[0, 1] == pytest.approx(1.0)  # only the second part is visible in both
    assert d[0, 2] == pytest.approx(4.0)  # nothing shared: largest finite distance + 1


def test_average_precision_by_hand() -> None:
    # One query of identity 1; gallery ranked by distance: 1, 2, 1, 3, 1 -> AP = (1/1 + 2/3 + 3/5) / 3
    dist = np.array([[0.1, 0.2, 0.3, 0.4, 0.5]])
    g = np.array([1, 2, 1, 3, 1])
    zeros, frames = np.zeros(5, int), np.arange(5) * 100
    out = reid_metrics(dist, np.array([1]), g, np.array([0]), zeros, np.array([1000]), frames)
    assert out["mAP"] == pytest.approx((1 + 2 / 3 + 3 / 5) / 3)
    assert out["rank1"] == 1.0 and out["num_queries"] == 1


def test_protocol_drops_near_duplicates_and_other_matches() -> None:
    # Closest gallery item is the same identity 3 frames away: excluded; the next is a wrong identity.
    dist = np.array([[0.0, 0.1, 0.2, 0.05]])
    g_pids, g_match = np.array([1, 2, 1, 1]), np.array([0, 0, 0, 1])
    g_frames = np.array([13, 50, 90, 90])
    out = reid_metrics(dist, np.array([1]), g_pids, np.array([0]), g_match, np.array([10]), g_frames,
                       min_frame_gap=10)
    assert out["rank1"] == 0.0 and out["rank5"] == 1.0 and out["mAP"] == pytest.approx(0.5)
    none_left = reid_metrics(dist, np.array([4]), g_pids, np.array([0]), g_match, np.array([10]), g_frames)
    assert none_left["skipped_queries"] == 1 and none_left["num_queries"] == 0


def test_team_accuracy_is_permutation_invariant_and_per_match() -> None:
    rng = np.random.default_rng(0)
    emb = np.concatenate([rng.normal([5, 0], 0.1, (10, 2)), rng.normal([0, 5], 0.1, (10, 2))])
    teams = np.array([0] * 10 + [1] * 10)
    acc, per = team_accuracy(emb, teams, np.zeros(20, int))
    assert acc == 1.0 and per == {0: 1.0}
    acc_flipped, _ = team_accuracy(emb, 1 - teams, np.zeros(20, int))
    assert acc_flipped == 1.0
    # Two matches where the clusters are the other way round still score 1; noise lowers it.
    emb2 = np.concatenate([emb, emb])
    acc2, per2 = team_accuracy(emb2, np.concatenate([teams, 1 - teams]), np.repeat([0, 1], 20))
    assert acc2 == 1.0 and set(per2) == {0, 1}
    noisy, _ = team_accuracy(rng.normal(size=(20, 2)), teams, np.zeros(20, int))
    assert noisy < 0.9


def test_team_accuracy_ignores_samples_without_team() -> None:
    emb = np.array([[1.0, 0], [1.0, 0.1], [0, 1.0], [0.1, 1.0], [5.0, 5.0]])
    acc, _ = team_accuracy(emb, np.array([0, 0, 1, 1, -1]), np.zeros(5, int))
    assert acc == 1.0


def test_role_metrics() -> None:
    logits = np.array([[2.0, 0, 0], [0, 2.0, 0], [2.0, 0, 0], [0, 0, 2.0]])
    out = role_metrics(logits, np.array([0, 1, 1, 2]), ["player", "goalkeeper", "referee"])
    assert out["role_acc"] == 0.75
    # F1: player 2/3, goalkeeper 2/3, referee 1
    assert out["role_macro_f1"] == pytest.approx((2 / 3 + 2 / 3 + 1) / 3)
    assert out["role_confusion"] == [[1, 0, 0], [1, 1, 0], [0, 0, 1]]
