"""Losses of PRTReID against small cases computed by hand."""

from __future__ import annotations

import math

from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

from prtreid.config import from_dict
from prtreid.errors import ConfigError
from prtreid.model import (
    LossConfig,
    ModelOutput,
    MultiTaskLoss,
    batch_hard_triplet,
    focal_loss,
    identity_loss,
    pairwise_distance,
    part_averaged_distance,
    part_averaged_triplet_loss,
    part_mask_loss,
    team_supcon_loss,
    team_triplet_loss,
    triplet_loss,
)

# four points in 2D: a=(0,0), b=(3,0) share identity 0; c=(0,4), d=(4,4) share identity 1
POINTS = torch.tensor([[0.0, 0.0], [3.0, 0.0], [0.0, 4.0], [4.0, 4.0]])
PIDS = torch.tensor([0, 0, 1, 1])


def test_pairwise_distances_by_hand() -> None:
    dist = pairwise_distance(POINTS, POINTS)
    assert dist[0, 1].item() == pytest.approx(3.0)
    assert dist[0, 3].item() == pytest.approx(math.sqrt(32))
    assert dist[1, 3].item() == pytest.approx(math.sqrt(17))
    assert dist[2, 2].item() == pytest.approx(0.0, abs=1e-5)
    cosine = pairwise_distance(torch.tensor([[1.0, 0.0]]), torch.tensor([[1.0, 1.0], [0.0, 2.0]]), "cosine")
    assert torch.allclose(cosine, torch.tensor([[1 - 1 / math.sqrt(2), 1.0]]))


def test_batch_hard_triplet_by_hand() -> None:
    margin = 2.0
    # a: hardest positive b (3), hardest negative c (4);  b: 3 vs d (sqrt 17)
    # c: positive d (4), negative a (4);                  d: 4 vs b (sqrt 17)
    expected = [3 - 4 + margin, 3 - math.sqrt(17) + margin, 4 - 4 + margin, 4 - math.sqrt(17) + margin]
    loss = triplet_loss(POINTS, PIDS, margin)
    assert loss.item() == pytest.approx(sum(expected) / 4, rel=1e-5)
    # at margin 0.3 anchors a and b are satisfied; c gives 0.3 and d 4.3 - sqrt(17)
    assert triplet_loss(POINTS, PIDS, 0.3).item() == pytest.approx((0.3 + 4.3 - math.sqrt(17)) / 4, rel=1e-5)


def test_batch_hard_triplet_skips_anchors_without_pairs_and_keeps_graph() -> None:
    x = POINTS.clone().requires_grad_(True)
    dist = pairwise_distance(x, x)
    nothing = torch.zeros(4, 4, dtype=torch.bool)
    loss = batch_hard_triplet(dist, nothing, nothing, 0.3)
    assert loss.item() == 0.0
    loss.backward()
    assert x.grad is not None and torch.all(x.grad == 0)
    # only anchor a has a positive (b) and a negative (d): loss = 3 - sqrt(32) + 5
    positive = torch.zeros(4, 4, dtype=torch.bool)
    negative = torch.zeros(4, 4, dtype=torch.bool)
    positive[0, 1] = negative[0, 3] = True
    assert batch_hard_triplet(dist, positive, negative, 5.0).item() == pytest.approx(3 - math.sqrt(32) + 5, rel=1e-5)


def _parts() -> tuple[torch.Tensor, torch.Tensor]:
    # 4 samples, 2 parts, 1-D features; ids 0, 0, 1, 1
    parts = torch.tensor([[[0.0], [0.0]], [[1.0], [3.0]], [[2.0], [10.0]], [[5.0], [5.0]]])
    vis = torch.tensor([[1.0, 1.0], [1.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    return parts, vis


def test_part_averaged_distance_excludes_invisible_parts() -> None:
    parts, vis = _parts()
    dist, valid = part_averaged_distance(parts, vis, parts, vis)
    assert dist[0, 1].item() == pytest.approx((1 + 3) / 2, rel=1e-5)
    assert dist[0, 2].item() == pytest.approx(2.0, rel=1e-5)  # part 1 of sample 2 is hidden
    assert dist[1, 3].item() == pytest.approx((4 + 2) / 2, rel=1e-5)
    assert bool(valid.all())
    # the hidden part's feature does not matter
    moved = parts.clone()
    moved[2, 1] = -100.0
    assert torch.allclose(part_averaged_distance(moved, vis, moved, vis)[0], dist)


def test_part_averaged_triplet_by_hand() -> None:
    parts, vis = _parts()
    margin = 1.0
    # distances: d01 = 2, d02 = 2, d03 = 5, d12 = 1, d13 = 3, d23 = 3
    # a0: pos 2, neg min(2, 5) = 2 -> 1;  a1: pos 2, neg min(1, 3) = 1 -> 2
    # a2: pos 3, neg min(2, 1) = 1 -> 3;  a3: pos 3, neg min(5, 3) = 3 -> 1
    loss = part_averaged_triplet_loss(parts, vis, PIDS, margin)
    assert loss.item() == pytest.approx((1 + 2 + 3 + 1) / 4, rel=1e-5)


def test_pairs_without_a_shared_visible_part_are_excluded() -> None:
    parts, _ = _parts()
    # sample 2 shows only part 1 and sample 0 only part 0: they cannot be compared
    vis = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 1.0], [1.0, 1.0]])
    dist, valid = part_averaged_distance(parts, vis, parts, vis)
    assert not bool(valid[0, 2]) and not bool(valid[2, 0]) and dist[0, 2].item() == 0.0
    # distances: d01 = 1, d03 = 5, d12 = 7, d13 = 3, d23 = 5
    # a0: pos 1, neg 5 (2 excluded) -> 0 at margin 1; a1: pos 1, neg min(7, 3) = 3 -> 0
    # a2: pos 5, neg 7 (0 excluded) -> 0;             a3: pos 5, neg min(5, 3) = 3 -> 3
    loss = part_averaged_triplet_loss(parts, vis, PIDS, 1.0)
    assert loss.item() == pytest.approx(3 / 4, rel=1e-5)


def test_team_triplet_ignores_other_matches_and_unknown_teams() -> None:
    # match 0: samples 0, 1 (team 0), 2 (team 1), 3 (team -1, a referee right on top of sample 0)
    # match 1: sample 4 (team 1) sits on sample 0 but belongs to another match
    emb = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 3.0], [0.0, 0.1], [0.1, 0.0], [5.0, 5.0]])
    teams = torch.tensor([0, 0, 1, -1, 1, 0])
    matches = torch.tensor([0, 0, 0, 0, 1, 1])
    # match 0: a0 has positive 1 at 1 and negative 2 at 3; a1 positive 0 at 1, negative 2 at sqrt(10);
    # a2 has no positive; match 1 (samples 4, 5) has no positive pair. At margin 0.4 all hinge at 0,
    # at margin 2.5: a0 -> 0.5 and a1 -> 3.5 - sqrt(10)
    assert team_triplet_loss(emb, teams, matches, 0.4).item() == pytest.approx(0.0, abs=1e-6)
    expected = ((1 - 3 + 2.5) + (1 - math.sqrt(10) + 2.5)) / 2
    assert team_triplet_loss(emb, teams, matches, 2.5).item() == pytest.approx(expected, rel=1e-5)
    # excluding sample 1 (e.g. a goalkeeper) leaves no positive at all
    eligible = torch.tensor([True, False, True, True, True, True])
    assert team_triplet_loss(emb, teams, matches, 2.5, eligible).item() == 0.0


def test_team_supcon_against_hand_computed_case() -> None:
    # match 0: samples 0, 1 (team 0), 2 (team 1), 3 (team -1); match 1: one sample per team
    emb = torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0], [1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    teams = torch.tensor([0, 0, 1, -1, 1, 0])
    matches = torch.tensor([0, 0, 0, 0, 1, 1])
    # anchors with a positive: a0 (cosines 0.6 to its positive, 0 to its negative) and a1 (0.6, 0.8)
    t = 0.5
    a0 = -math.log(math.exp(0.6 / t) / (math.exp(0.6 / t) + math.exp(0.0)))
    a1 = -math.log(math.exp(0.6 / t) / (math.exp(0.6 / t) + math.exp(0.8 / t)))
    assert team_supcon_loss(emb, teams, matches, t).item() == pytest.approx((a0 + a1) / 2, rel=1e-5)
    assert team_supcon_loss(3 * emb, teams, matches, t).item() == pytest.approx((a0 + a1) / 2, rel=1e-5)
    lone = torch.tensor([True, False, True, True, True, True])  # no positive left: zero, and no NaN
    emb.requires_grad_(True)
    loss = team_supcon_loss(emb, teams, matches, t, lone)
    loss.backward()
    assert loss.item() == 0.0 and torch.isfinite(emb.grad).all()


def test_team_supcon_under_float16_autocast_matches_float32() -> None:
    # CUDA AMP runs matmuls in float16, which cannot hold the mask's fill (this broke GPU training)
    emb = torch.randn(8, 16, generator=torch.Generator().manual_seed(0))
    teams = torch.tensor([0, 0, 1, 1, 0, 0, 1, 1])
    matches = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])
    with torch.autocast("cpu", dtype=torch.float16):
        mixed = team_supcon_loss(emb, teams, matches, 0.1)
    assert mixed.dtype == torch.float32
    assert mixed.item() == pytest.approx(team_supcon_loss(emb, teams, matches, 0.1).item(), rel=1e-6)


def test_team_loss_choice_is_checked() -> None:
    with pytest.raises(ConfigError, match="team_loss"):
        from_dict(LossConfig, {"team_loss": "arcface"}, source="loss.yaml")
    with pytest.raises(ConfigError, match="team_temperature"):
        LossConfig(team_loss="supcon", team_temperature=0.0)


def test_focal_loss_equals_cross_entropy_at_gamma_zero() -> None:
    torch.manual_seed(0)
    logits = torch.randn(6, 4)
    targets = torch.tensor([0, 1, 2, 3, 1, 0])
    assert torch.allclose(focal_loss(logits, targets, gamma=0.0), F.cross_entropy(logits, targets))
    alpha = torch.tensor([1.0, 2.0, 0.5, 3.0])
    assert torch.allclose(focal_loss(logits, targets, 0.0, alpha), F.cross_entropy(logits, targets, weight=alpha))


def test_focal_loss_down_weights_confident_correct_predictions() -> None:
    logits = torch.tensor([[4.0, 0.0, 0.0], [0.0, 5.0, 0.0]])
    targets = torch.tensor([0, 1])
    ce = F.cross_entropy(logits, targets, reduction="none")
    p = torch.softmax(logits, dim=1)[[0, 1], [0, 1]]
    expected = ((1 - p) ** 2 * ce).mean()
    focal = focal_loss(logits, targets, gamma=2.0)
    assert focal.item() == pytest.approx(expected.item(), rel=1e-5)
    assert focal.item() < 0.01 * F.cross_entropy(logits, targets).item()


def test_focal_loss_gradient_stays_finite_on_a_certain_prediction() -> None:
    logits = torch.tensor([[30.0, 0.0, 0.0], [0.0, 1.0, 0.0]], requires_grad=True)  # row 0: p_t == 1.0
    for gamma in (0.0, 0.5, 2.0):
        logits.grad = None
        focal_loss(logits, torch.tensor([0, 1]), gamma).backward()
        assert torch.isfinite(logits.grad).all(), gamma
        assert logits.grad[1].abs().sum() > 0


def test_focal_loss_ignores_unlabelled_samples() -> None:
    logits = torch.tensor([[2.0, 0.0], [0.0, 9.0], [1.0, 1.0]])
    targets = torch.tensor([0, -1, 1])
    assert torch.allclose(focal_loss(logits, targets, 0.0), F.cross_entropy(logits[[0, 2]], targets[[0, 2]]))
    assert focal_loss(logits, torch.full((3,), -1), 2.0).item() == 0.0


def test_identity_loss_weights_parts_by_visibility() -> None:
    logits = torch.tensor([[[3.0, 0.0], [0.0, 3.0]], [[0.0, 1.0], [1.0, 0.0]]])  # (B=2, K=2, N=2)
    pids = torch.tensor([0, 1])
    per_part = F.cross_entropy(logits.flatten(0, 1), torch.tensor([0, 0, 1, 1]), label_smoothing=0.1, reduction="none")
    weights = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    expected = (per_part[0] + per_part[2] + per_part[3]) / 3
    assert identity_loss(logits, pids, 0.1, weights).item() == pytest.approx(expected.item(), rel=1e-6)
    assert identity_loss(logits[:, 0], pids, 0.0).item() == pytest.approx(F.cross_entropy(logits[:, 0], pids).item())


def test_part_mask_loss_downsamples_and_ignores_unlabelled_pixels() -> None:
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 2, 2)
    small = torch.tensor([[[0, 1], [2, -1]], [[-1, -1], [-1, -1]]])
    big = small.repeat_interleave(4, dim=1).repeat_interleave(4, dim=2)  # (2, 8, 8), nearest-exact blocks
    flat_logits = logits.permute(0, 2, 3, 1).reshape(-1, 3)
    expected = F.cross_entropy(flat_logits[:3], torch.tensor([0, 1, 2]))
    assert part_mask_loss(logits, big).item() == pytest.approx(expected.item(), rel=1e-6)
    unlabelled = logits.clone().requires_grad_(True)
    loss = part_mask_loss(unlabelled, torch.full((2, 8, 8), -1))
    assert loss.item() == 0.0
    loss.backward()
    assert torch.all(unlabelled.grad == 0)
    with pytest.raises(ValueError, match="parts"):
        part_mask_loss(logits, torch.full((2, 8, 8), 5))
    # each cell takes the label at its centre: a one-pixel band at a cell's top edge is not its label
    band = torch.ones(1, 8, 4, dtype=torch.long)
    band[0, 0] = 0
    one_cell = torch.randn(1, 2, 2, 1)
    expected = F.cross_entropy(one_cell.permute(0, 2, 3, 1).reshape(-1, 2), torch.tensor([1, 1]))
    assert part_mask_loss(one_cell, band).item() == pytest.approx(expected.item(), rel=1e-6)


def _output(num_roles: int = 3, with_ids: bool = True) -> ModelOutput:
    torch.manual_seed(1)
    b, k, d, n = 6, 2, 4, 3
    emb = {"global": torch.randn(b, d), "foreground": torch.randn(b, d), "parts": torch.randn(b, k, d)}
    ids = {"global": torch.randn(b, n), "foreground": torch.randn(b, n), "parts": torch.randn(b, k, n)}
    return ModelOutput(
        embeddings=emb,
        bn_embeddings=emb,
        visibility=torch.tensor([[1.0, 1.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [1.0, 1.0], [1.0, 0.0]]),
        part_logits=torch.randn(b, k + 1, 4, 2),
        team=F.normalize(torch.randn(b, 8), dim=1),
        role_logits=torch.randn(b, num_roles),
        id_logits=ids if with_ids else None,
    )


def _loss_batch() -> dict[str, torch.Tensor]:
    parts = torch.randint(0, 3, (6, 16, 8))
    parts[4:] = -1
    return {
        "pid": torch.tensor([0, 0, 1, 1, 2, 2]),
        "team": torch.tensor([0, 0, 1, 1, -1, 0]),
        "role": torch.tensor([0, 0, 0, 1, 2, 0]),
        "match": torch.tensor([0, 0, 0, 0, 0, 1]),
        "parts": parts,
    }


def test_multitask_total_is_the_weighted_sum_of_named_terms() -> None:
    cfg = LossConfig(triplet_global=0.5, team_weight=0.3, role_weight=2.0, mask_weight=0.7, team_roles=())
    out, batch = _output(), _loss_batch()
    terms = MultiTaskLoss(cfg, role_names=("player", "goalkeeper", "referee"))(out, batch)
    weights = {
        "triplet_parts": 1.0, "triplet_global": 0.5, "id_global": 1.0, "id_foreground": 1.0,
        "id_parts": 1.0, "team": 0.3, "role": 2.0, "mask": 0.7,
    }
    assert set(terms) == set(weights) | {"total"}
    assert terms["total"].item() == pytest.approx(sum(w * terms[n].item() for n, w in weights.items()), rel=1e-6)
    pids = batch["pid"]
    assert terms["triplet_global"].item() == pytest.approx(triplet_loss(out.embeddings["global"], pids, 0.3).item())
    assert terms["role"].item() == pytest.approx(focal_loss(out.role_logits, batch["role"], 2.0).item())
    assert terms["mask"].item() == pytest.approx(part_mask_loss(out.part_logits, batch["parts"]).item())
    expected_parts = part_averaged_triplet_loss(out.embeddings["parts"], out.visibility, pids, 0.3)
    assert terms["triplet_parts"].item() == pytest.approx(expected_parts.item())


def test_multitask_terms_follow_weights_and_inputs() -> None:
    cfg = LossConfig(id_foreground=0.0, mask_weight=0.0, team_weight=0.0)
    out = _output(with_ids=False)
    batch = _loss_batch()
    terms = MultiTaskLoss(cfg, role_names=("player", "goalkeeper", "referee"))(out, batch)
    assert set(terms) == {"triplet_parts", "role", "total"}
    del batch["parts"]
    terms = MultiTaskLoss(LossConfig(), role_names=("player", "goalkeeper", "referee"))(_output(), batch)
    assert "mask" not in terms and "id_foreground" in terms


def test_team_roles_select_team_triplet_samples() -> None:
    out, batch = _output(), _loss_batch()
    names = ("player", "goalkeeper", "referee")
    players = MultiTaskLoss(LossConfig(kit_negatives=False), role_names=names)(out, batch)["team"]
    eligible = batch["role"] == 0
    expected = team_triplet_loss(out.team, batch["team"], batch["match"], 0.4, eligible)
    assert players.item() == pytest.approx(expected.item())
    everyone = MultiTaskLoss(LossConfig(team_roles=()), role_names=names)(out, batch)["team"]
    assert everyone.item() == pytest.approx(team_triplet_loss(out.team, batch["team"], batch["match"], 0.4).item())


def test_team_term_follows_team_loss() -> None:
    out, batch = _output(), _loss_batch()
    cfg = LossConfig(kit_negatives=False, team_loss="supcon", team_temperature=0.2)
    got = MultiTaskLoss(cfg, role_names=("player", "goalkeeper", "referee"))(out, batch)["team"]
    expected = team_supcon_loss(out.team, batch["team"], batch["match"], 0.2, batch["role"] == 0)
    assert got.item() == pytest.approx(expected.item())


def test_kit_negatives_push_referees_and_keepers_away_from_team_kits() -> None:
    names = ("player", "goalkeeper", "referee")
    # one match: two players of team 0, two of team 1, two referees, one keeper seen twice
    batch = {"pid": torch.tensor([0, 1, 2, 3, 4, 5, 6, 6]), "team": torch.tensor([0, 0, 1, 1, -1, -1, 0, 0]),
             "role": torch.tensor([0, 0, 0, 0, 2, 2, 1, 1]), "match": torch.zeros(8, dtype=torch.long)}
    a, b, c = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0]), torch.tensor([-1.0, 0.0])
    team = torch.stack([a, a, b, b, a, a, c, c])  # the referees wear what the model takes for team 0's kit
    out = replace(_output(with_ids=False), team=team)
    team_only = LossConfig(triplet_parts=0.0, role_weight=0.0, mask_weight=0.0)
    players_only = MultiTaskLoss(replace(team_only, kit_negatives=False), role_names=names)(out, batch)["team"]
    assert players_only.item() == pytest.approx(0.0, abs=1e-6)
    kits = MultiTaskLoss(team_only, role_names=names)(out, batch)["team"]
    # kit labels 0 0 1 1 2 2 9 9: the four team-0 and referee anchors have a zero-distance negative
    labels = torch.tensor([0, 0, 1, 1, 2, 2, 9, 9])
    expected = team_triplet_loss(team, labels, batch["match"], 0.4)
    assert kits.item() == pytest.approx(expected.item()) and kits.item() == pytest.approx(4 * 0.4 / 8)


def test_loss_config_errors() -> None:
    with pytest.raises(ConfigError, match="team_margin"):
        from_dict(LossConfig, {"team_margin": -0.1}, source="loss.yaml")
    with pytest.raises(ConfigError, match="label_smoothing"):
        LossConfig(label_smoothing=1.0)
    with pytest.raises(ConfigError, match="team_roles"):
        MultiTaskLoss(LossConfig(team_roles=("keeper",)))
    with pytest.raises(ConfigError, match="role_alpha"):
        MultiTaskLoss(LossConfig(role_alpha=(1.0, 2.0)), role_names=("player", "goalkeeper", "referee"))(
            _output(), _loss_batch()
        )
    with pytest.raises(KeyError, match="pid"):
        MultiTaskLoss(LossConfig())(_output(), {"team": torch.zeros(6, dtype=torch.long)})


def test_loss_config_defaults_are_the_papers() -> None:
    cfg = from_dict(LossConfig, {})
    assert (cfg.reid_margin, cfg.team_margin, cfg.team_weight, cfg.role_weight) == (0.3, 0.4, 0.1, 1.5)
    assert (cfg.focal_gamma, cfg.label_smoothing) == (2.0, 0.1)
