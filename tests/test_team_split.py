"""Splitting players into two teams: KMeans, and the shared-covariance mixture refined from it."""

from __future__ import annotations

import numpy as np
import pytest

from prtreid.eval.reid import team_accuracy
from prtreid.track import teams as team_module
from prtreid.track.teams import split_teams


def _two_kits(seed: int, n: int = 60) -> tuple[np.ndarray, np.ndarray]:
    """Two teams 3 apart along x, whose players spread alike: a lot along the diagonal (shading,
    pose), little across it. KMeans' boundary stands square to the centres and cuts that spread."""
    rng = np.random.default_rng(seed)
    along, across = np.array([1.0, 1.0]) / np.sqrt(2), np.array([1.0, -1.0]) / np.sqrt(2)

    def spread() -> np.ndarray:
        return rng.normal(0, 1.0, (n, 1)) * along + rng.normal(0, 0.15, (n, 1)) * across

    return np.r_[spread(), spread() + [3.0, 0.0]], np.repeat([0, 1], n)


def _accuracy(pred: np.ndarray, truth: np.ndarray) -> float:
    agree = float((pred == truth).mean())
    return max(agree, 1.0 - agree)


def test_the_mixture_draws_the_boundary_along_the_spread_the_teams_share() -> None:
    scores = {"kmeans": [], "mixture": []}
    for seed in range(6):
        x, truth = _two_kits(seed)
        for method in scores:
            scores[method].append(_accuracy(split_teams(x, method=method).predict(x), truth))
    assert min(scores["mixture"]) >= 0.99
    assert np.mean(scores["mixture"]) > np.mean(scores["kmeans"]) + 0.015
    assert min(scores["kmeans"]) < 0.98


def test_evaluation_splits_crops_by_the_method_asked() -> None:
    x, truth = _two_kits(0)
    matches = np.zeros(len(x), int)
    kmeans, _ = team_accuracy(x, truth, matches, kit=x, team_from="kit", team_split="kmeans")
    mixture, per_match = team_accuracy(x, truth, matches, kit=x, team_from="kit", team_split="mixture")
    assert kmeans == pytest.approx(_accuracy(split_teams(x, method="kmeans").predict(x), truth)) and kmeans < 0.99
    assert mixture == per_match[0] == 1.0


def test_integer_weights_count_as_repeated_rows() -> None:
    x, _ = _two_kits(1, n=20)
    weights = np.random.default_rng(1).integers(1, 5, len(x))
    weighted = split_teams(x, weights).predict(x)
    repeated = split_teams(np.repeat(x, weights, axis=0)).predict(x)
    assert _accuracy(weighted, repeated) == 1.0


def test_a_mixture_that_merges_the_teams_falls_back_to_kmeans(monkeypatch: pytest.MonkeyPatch) -> None:
    x, truth = _two_kits(0)
    monkeypatch.setattr(team_module, "MIXTURE_REG", 1e4)  # one wide component takes every player
    fallen = split_teams(x, method="mixture")
    assert fallen.mixture is None
    np.testing.assert_array_equal(fallen.predict(x), split_teams(x, method="kmeans").predict(x))


def test_one_player_is_one_team_and_an_unknown_method_is_refused() -> None:
    one = split_teams(np.array([[1.0, 2.0]]))
    assert one.predict(np.array([[0.0, 0.0], [5.0, 5.0]])).tolist() == [0, 0]
    with pytest.raises(ValueError, match="team_split must be one of"):
        split_teams(np.zeros((4, 2)), method="spectral")
