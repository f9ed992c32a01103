"""Kit colour under the part maps, and team clustering on it (crops, tracklets, evaluation)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from prtreid.data.reid_dataset import IMAGENET_MEAN, IMAGENET_STD
from prtreid.data.types import PARTS
from prtreid.errors import ConfigError
from prtreid.eval.reid import team_accuracy
from prtreid.model.kit import LIGHTNESS_WEIGHT, kit_colour, rgb_to_lab
from prtreid.track import assign_teams
from prtreid.track.teams import KIT_WEIGHT, team_features

H, W = 96, 48
SHIRT, SHORTS, GRASS = (200, 30, 40), (250, 250, 250), (40, 140, 60)


def _lab(rgb: tuple[int, int, int]) -> np.ndarray:
    return cv2.cvtColor(np.float32([[rgb]]) / 255, cv2.COLOR_RGB2LAB)[0, 0]


def _player(shirt: tuple[int, int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """A normalised crop with a shirt (rows 20-50) and shorts (rows 50-65) on grass, and part logits
    (12 x 6 cells) that put the torso and legs there, with soft edges."""
    image = np.tile(np.float32(GRASS), (H, W, 1))
    image[20:50, 12:36] = shirt
    image[50:65, 12:36] = SHORTS
    labels = np.zeros((H, W), np.int64)
    labels[20:50, 12:36], labels[50:65, 12:36] = PARTS.index("torso"), PARTS.index("legs")
    logits = 8.0 * F.one_hot(torch.from_numpy(labels), len(PARTS)).permute(2, 0, 1).float()[None]
    logits = F.avg_pool2d(logits, 8)  # blurred at the cells the parts only partly cover
    mean, std = np.float32(IMAGENET_MEAN), np.float32(IMAGENET_STD)
    x = torch.from_numpy((image / 255 - mean) / std).permute(2, 0, 1)[None]
    return x, logits


def test_lab_conversion_matches_opencv() -> None:
    rgb = np.random.default_rng(0).random((1, 3, 16, 16)).astype(np.float32)
    ours = rgb_to_lab(torch.from_numpy(rgb))[0].permute(1, 2, 0).numpy()
    theirs = cv2.cvtColor(rgb[0].transpose(1, 2, 0), cv2.COLOR_RGB2LAB)
    np.testing.assert_allclose(ours, theirs, atol=0.5)


def test_kit_colour_reads_the_shirt_and_the_shorts_under_the_part_maps() -> None:
    image, logits = _player(SHIRT)
    kit = kit_colour(image, logits)[0].numpy()
    scale = np.float32([LIGHTNESS_WEIGHT, 1, 1])
    np.testing.assert_allclose(kit[:3], _lab(SHIRT) * scale, atol=2.0)  # the grass at the edges barely counts
    np.testing.assert_allclose(kit[3:], _lab(SHORTS) * scale, atol=2.0)
    with pytest.raises(ConfigError, match="num_parts"):
        kit_colour(image, logits[:, :4])
    hidden = logits.clone()
    hidden[:, PARTS.index("legs")] = -1e4  # shorts not in view: the whole crop's colour, not NaN
    crop = rgb_to_lab(image * torch.tensor(IMAGENET_STD).view(3, 1, 1) + torch.tensor(IMAGENET_MEAN).view(3, 1, 1))
    np.testing.assert_allclose(kit_colour(image, hidden)[0, 3:].numpy(), crop.mean((2, 3))[0].numpy() * scale,
                               rtol=1e-4, atol=1e-3)


def test_teams_are_clustered_on_kit_colours_as_they_are() -> None:
    # two kits along one ray from the origin: L2-normalised they would be one point
    rng = np.random.default_rng(1)
    kit = np.array([[10.0, 10.0]] * 6 + [[30.0, 30.0]] * 3) + rng.normal(0, 0.5, (9, 2))
    emb = rng.normal(size=(9, 4))  # an embedding that knows nothing of the teams
    teams, matches = np.array([0] * 6 + [1] * 3), np.zeros(9, int)
    assert team_accuracy(emb, teams, matches, kit=kit, team_from="kit")[0] == 1.0
    assert team_accuracy(kit, teams, matches)[0] < 0.9  # the same numbers taken as embeddings
    assert team_accuracy(emb, teams, matches, kit=kit, team_from="both")[0] == 1.0
    ids = np.repeat(np.arange(9), 6)
    for team_from in ("kit", "both"):
        out = assign_teams(ids, np.repeat(emb, 6, axis=0), None, kit_rows=np.repeat(kit, 6, axis=0),
                           team_from=team_from)
        assert {out[i] for i in range(6)} == {out[0]} and {out[i] for i in range(6, 9)} == {1 - out[0]}


def test_both_descriptors_weigh_alike_whatever_their_units() -> None:
    rng = np.random.default_rng(2)
    emb, kit = rng.normal(size=(50, 8)), 1000.0 * rng.normal(size=(50, 6))
    x = team_features(emb, kit, "both")
    spread = lambda v: np.sqrt(((v - v.mean(0)) ** 2).sum(1).mean())  # noqa: E731
    assert spread(x[:, :8]) == pytest.approx(1.0) and spread(x[:, 8:]) == pytest.approx(KIT_WEIGHT)
    np.testing.assert_allclose(team_features(emb, None, "embedding"), emb / np.linalg.norm(emb, axis=1)[:, None])
    with pytest.raises(ValueError, match="use 'embedding'"):
        team_features(emb, None, "both")
    with pytest.raises(ValueError, match="must be one of"):
        team_features(emb, kit, "colour")


def test_evaluation_scores_teams_on_either_descriptor(crop_store, untrained_model, tmp_path) -> None:
    from prtreid.model.prtreid import ModelConfig, PRTReID
    from prtreid.pipeline.video import PipelineConfig, VideoPipeline
    from prtreid.train.checkpoint import load_model, model_meta, save_model
    from prtreid.train.evaluate import evaluate_store

    model, meta = load_model(untrained_model, "cpu")
    args = {"image_size": (64, 32), "role_names": tuple(meta["role_names"])}
    default = evaluate_store(model, crop_store, torch.device("cpu"), **args)
    assert default["team_acc"] == default["team_acc_both"] and {"team_acc_kit", "team_acc_embedding"} <= set(default)
    kmeans = evaluate_store(model, crop_store, torch.device("cpu"), team_split="kmeans", **args)
    assert kmeans["team_acc"] == kmeans["team_acc_kmeans"] == default["team_acc_kmeans"]
    embedding = evaluate_store(model, crop_store, torch.device("cpu"), team_from="embedding", **args)
    assert embedding["team_acc"] == embedding["team_acc_embedding"] == default["team_acc_embedding"]

    cfg = ModelConfig(backbone="resnet10t", image_size=(64, 32), embed_dim=16, team_dim=8, num_parts=3)
    three_parts = PRTReID.from_config(cfg, num_roles=len(args["role_names"]))
    out = evaluate_store(three_parts, crop_store, torch.device("cpu"), team_from="embedding", **args)
    assert "team_acc_kit" not in out and "team_acc_both" not in out
    with pytest.raises(ConfigError, match="kit colour needs the part masks' parts"):
        evaluate_store(three_parts, crop_store, torch.device("cpu"), **args)
    path = tmp_path / "three.pt"
    save_model(path, three_parts, model_meta(cfg, len(args["role_names"]), 0, args["role_names"]))
    with pytest.raises(ConfigError, match="set team_from: embedding"):
        VideoPipeline(PipelineConfig(device="cpu"), path)
    VideoPipeline(PipelineConfig(device="cpu", team_from="embedding"), path)


def test_the_command_line_offers_the_team_descriptors_and_splits_of_the_library() -> None:
    from prtreid.cli import build_parser
    from prtreid.track.teams import DEFAULT_TEAM_FROM, DEFAULT_TEAM_SPLIT, TEAM_DESCRIPTORS, TEAM_SPLITS

    commands = build_parser()._subparsers._group_actions[0].choices
    options = {a.option_strings[0]: a for a in commands["eval-reid"]._actions if a.option_strings}
    assert tuple(options["--team-from"].choices) == TEAM_DESCRIPTORS
    assert options["--team-from"].default == DEFAULT_TEAM_FROM
    assert tuple(options["--team-split"].choices) == TEAM_SPLITS
    assert options["--team-split"].default == DEFAULT_TEAM_SPLIT
