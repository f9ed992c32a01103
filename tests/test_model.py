"""PRTReID model: shapes, configuration, gradients, weights loading (tiny inputs, resnet18, CPU)."""

from __future__ import annotations

import dataclasses

import pytest
import timm
import torch

from prtreid.config import from_dict
from prtreid.errors import ConfigError
from prtreid.model import LossConfig, ModelConfig, ModelOutput, MultiTaskLoss, PRTReID
from prtreid.model.heads import attention_pool, global_pool, part_visibility

H, W, B = 64, 32, 8


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    torch.manual_seed(0)


def _batch(num_roles: int = 4) -> dict[str, torch.Tensor]:
    parts = torch.randint(0, 6, (B, H, W))
    parts[-2:] = -1  # two crops without a mask
    return {
        "image": torch.randn(B, 3, H, W),
        "parts": parts,
        "pid": torch.tensor([0, 0, 1, 1, 2, 2, 3, 3]),
        "team": torch.tensor([0, 0, 1, 1, 0, 1, -1, -1]),
        "role": torch.tensor([0, 0, 0, 0, 1, 0, 2, num_roles - 1]),
        "match": torch.tensor([0, 0, 0, 0, 0, 0, 1, 1]),
    }


def _model(num_roles: int = 4, num_ids: int = 4, **overrides: object) -> PRTReID:
    cfg = from_dict(ModelConfig, {"image_size": [H, W], **overrides})
    return PRTReID.from_config(cfg, num_roles=num_roles, num_ids=num_ids)


@pytest.mark.parametrize(
    ("overrides", "num_roles", "num_ids", "fmap"),
    [
        ({}, 4, 4, (4, 2)),
        ({"num_parts": 3, "embed_dim": 32, "team_dim": 16, "role_input": "concat", "team_input": "global"},
         3, 7, (4, 2)),
        ({"global_pool": "avgmax", "visibility": "max", "output_stride": 32}, 5, 0, (2, 1)),
        ({"feature_levels": [2, -1], "id_classifier": False, "dropout": 0.2}, 2, 9, (8, 4)),
        ({"team_input": "clothes", "team_dim": 8}, 4, 4, (4, 2)),
    ],
)
def test_output_shapes(overrides: dict, num_roles: int, num_ids: int, fmap: tuple[int, int]) -> None:
    model = _model(num_roles, num_ids, **overrides).eval()
    cfg = model.cfg
    k, d = cfg.num_parts, cfg.embed_dim
    with torch.no_grad():
        out = model(torch.randn(B, 3, H, W))
    assert out.embeddings["global"].shape == (B, d)
    assert out.embeddings["foreground"].shape == (B, d)
    assert out.embeddings["parts"].shape == (B, k, d)
    assert {n: t.shape for n, t in out.bn_embeddings.items()} == {n: t.shape for n, t in out.embeddings.items()}
    assert out.visibility.shape == (B, k)
    assert float(out.visibility.min()) >= 0.0 and float(out.visibility.max()) <= 1.0
    assert out.part_logits.shape == (B, k + 1, *fmap)
    assert model.feature_size == fmap
    assert out.team.shape == (B, cfg.team_dim)
    assert out.role_logits.shape == (B, num_roles)
    if num_ids and cfg.id_classifier:
        assert out.id_logits is not None
        assert out.id_logits["global"].shape == (B, num_ids)
        assert out.id_logits["foreground"].shape == (B, num_ids)
        assert out.id_logits["parts"].shape == (B, k, num_ids)
    else:
        assert out.id_logits is None
    features, visibility = out.reid_features()
    assert features.shape == (B, k + 2, d) and visibility.shape == (B, k + 2)


def test_fused_levels_concatenate_channels() -> None:
    model = _model(feature_levels=[2, -1])
    # resnet18 stage 2 (128 ch, stride 8) + stage 4 (512 ch, dilated to stride 16), fused at stride 8
    assert model.backbone.out_channels == 128 + 512
    assert model.backbone.stride == 8


def test_team_embedding_is_unit_norm_and_visibility_modes() -> None:
    model = _model(visibility="max").eval()
    with torch.no_grad():
        out = model(torch.randn(B, 3, H, W))
    assert torch.allclose(out.team.norm(dim=1), torch.ones(B), atol=1e-5)
    # continuous visibility is the max part probability: strictly between 0 and 1 for softmax maps
    assert 0.0 < float(out.visibility.min()) and float(out.visibility.max()) < 1.0
    raw = _model(team_normalize=False).eval()
    with torch.no_grad():
        assert not torch.allclose(raw(torch.randn(B, 3, H, W)).team.norm(dim=1), torch.ones(B), atol=1e-3)


def test_reid_features_order_and_visibility() -> None:
    model = _model().eval()
    with torch.no_grad():
        out = model(torch.randn(B, 3, H, W))
    features, visibility = out.reid_features()
    k = model.cfg.num_parts
    assert torch.equal(features[:, :k], out.embeddings["parts"])
    assert torch.equal(features[:, k], out.embeddings["foreground"])
    assert torch.equal(features[:, k + 1], out.embeddings["global"])
    assert torch.equal(visibility[:, :k], out.visibility)
    assert torch.equal(visibility[:, k:], torch.ones(B, 2))
    bn_features, _ = out.reid_features(use_bn=True)
    assert torch.equal(bn_features[:, k + 1], out.bn_embeddings["global"])
    assert torch.allclose(out.role_probabilities().sum(dim=1), torch.ones(B))
    half = out.apply(lambda t: t.half())
    assert half.team.dtype == torch.float16 and half.embeddings["parts"].dtype == torch.float16


@pytest.mark.parametrize("team_input", ["foreground", "clothes"])
def test_gradients_reach_every_parameter_from_total_loss(team_input: str) -> None:
    # timm zero-initialises each block's last BN scale, which blocks gradients to the convs
    # before it at initialisation only; turn that off to see gradients everywhere
    model = _model(num_roles=4, num_ids=4, backbone_kwargs={"zero_init_last": False}, team_input=team_input).train()
    batch = _batch()
    out = model(batch["image"])
    losses = MultiTaskLoss(LossConfig())(out, batch)
    assert set(losses) == {"triplet_parts", "id_global", "id_foreground", "id_parts", "team", "role", "mask", "total"}
    losses["total"].backward()
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    missing = [n for n, p in trainable if p.grad is None or not p.grad.abs().sum() > 0]
    assert missing == []
    assert model.backbone.model.conv1.weight.grad.abs().sum() > 0


def test_disabled_terms_still_give_every_parameter_a_gradient() -> None:
    # DistributedDataParallel stops at the second step on a parameter that got no gradient
    model = _model(num_roles=4, num_ids=4).train()
    batch = _batch()
    off = LossConfig(team_weight=0.0, role_weight=0.0, id_global=0.0, id_foreground=0.0, id_parts=0.0,
                     mask_weight=0.0)
    terms = MultiTaskLoss(off)(model(batch["image"]), batch)
    assert set(terms) == {"triplet_parts", "total"}
    assert terms["total"].item() == pytest.approx(terms["triplet_parts"].item())
    terms["total"].backward()
    assert [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None] == []
    assert all(p.grad.abs().sum() == 0 for p in model.team_head.parameters())


def test_eval_is_deterministic_and_accepts_one_crop() -> None:
    model = _model().eval()
    x = torch.randn(1, 3, H, W)
    with torch.no_grad():
        a, b = model(x), model(x)
    assert torch.equal(a.embeddings["parts"], b.embeddings["parts"])
    assert torch.equal(a.role_logits, b.role_logits)
    # in eval mode no layer (BatchNorm above all) uses batch statistics: a crop's output is its own
    with torch.no_grad():
        batched = model(torch.cat([x, 3 * torch.randn(3, 3, H, W) + 1]))
    torch.testing.assert_close(batched.embeddings["parts"][:1], a.embeddings["parts"], atol=1e-5, rtol=0)
    torch.testing.assert_close(batched.role_logits[:1], a.role_logits, atol=1e-5, rtol=0)


def test_forward_is_features_then_head() -> None:
    model = _model().eval()
    x = torch.randn(2, 3, H, W)
    with torch.no_grad():
        fmap = model.forward_features(x)
        assert fmap.shape == (2, 512, 4, 2)
        assert torch.equal(model.forward_head(fmap).team, model(x).team)


def test_num_roles_and_num_ids_come_from_arguments() -> None:
    model = _model(num_roles=7, num_ids=13)
    assert model.role_head.linear.out_features == 7
    assert model(torch.randn(2, 3, 64, 32)).id_logits["global"].shape[1] == 13
    assert _model(num_ids=0).id_heads is None
    with pytest.raises(ConfigError, match="num_roles"):
        _model(num_roles=0)


def test_unknown_backbone_gives_clear_config_error() -> None:
    with pytest.raises(ConfigError) as info:
        from_dict(ModelConfig, {"backbone": "resnet1888"}, source="train.yaml", prefix="model.")
    message = str(info.value)
    assert "train.yaml" in message and "resnet1888" in message and "resnet18" in message


@pytest.mark.parametrize(
    ("data", "key"),
    [
        ({"num_parts": 0}, "num_parts"),
        ({"output_stride": 12}, "output_stride"),
        ({"dropout": 1.0}, "dropout"),
        ({"team_input": "parts"}, "team_input"),
        ({"role_input": "clothes"}, "role_input"),
        ({"team_input": "clothes", "num_parts": 3}, "team_input"),
        ({"feature_levels": "last"}, "feature_levels"),
    ],
)
def test_invalid_model_config(data: dict, key: str) -> None:
    with pytest.raises(ConfigError, match=key):
        from_dict(ModelConfig, data)


def test_bad_feature_level_and_unsupported_stride() -> None:
    with pytest.raises(ConfigError, match="feature_levels"):
        _model(feature_levels=[9])
    with pytest.raises(ConfigError, match="hrnet_w18_small"):
        _model(backbone="hrnet_w18_small", output_stride=16)


def test_config_round_trips_through_asdict() -> None:
    cfg = from_dict(ModelConfig, {"feature_levels": [2, -1], "image_size": [64, 32], "pretrained": "/w.pth"})
    assert cfg.feature_levels == (2, -1) and cfg.image_size == (64, 32) and cfg.pretrained == "/w.pth"
    assert from_dict(ModelConfig, dataclasses.asdict(cfg)) == cfg


def test_local_pretrained_weights_are_loaded(tmp_path) -> None:
    source = timm.create_model("resnet18", pretrained=False)
    path = tmp_path / "resnet18.pth"
    torch.save(source.state_dict(), path)
    model = _model(pretrained=str(path))
    assert torch.equal(model.backbone.model.conv1.weight, source.conv1.weight)
    assert torch.equal(model.backbone.model.layer4[1].conv2.weight, source.layer4[1].conv2.weight)
    with pytest.raises(ConfigError, match="does not exist"):
        _model(pretrained=str(tmp_path / "missing.pth"))


def test_hub_weights_out_of_reach_are_a_config_error(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    # offline, as in the tests and CI, with an empty cache: the weights cannot be had
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(ConfigError, match=r"model\.pretrained: could not fetch .*'resnet18'.*local weights file"):
        _model(pretrained=True)


def test_pooling_and_visibility_helpers_by_hand() -> None:
    features = torch.arange(8, dtype=torch.float32).view(1, 2, 2, 2)  # channel 0: 0..3, channel 1: 4..7
    weights = torch.tensor([[[[1.0, 0.0], [0.0, 0.0]], [[0.0, 1.0], [0.0, 3.0]]]])
    pooled = attention_pool(features, weights)
    assert torch.allclose(pooled, torch.tensor([[[0.0, 4.0], [(1 + 9) / 4, (5 + 21) / 4]]]))
    assert torch.allclose(global_pool(features, "avg"), torch.tensor([[1.5, 5.5]]))
    assert torch.allclose(global_pool(features, "avgmax"), torch.tensor([[2.25, 6.25]]))
    # 3 channels (background + 2 parts) over 2 pixels: part 2 never wins a pixel
    probs = torch.tensor([[[[0.2, 0.5]], [[0.7, 0.1]], [[0.1, 0.4]]]])
    assert torch.equal(part_visibility(probs, "argmax"), torch.tensor([[1.0, 0.0]]))
    assert torch.allclose(part_visibility(probs, "max"), torch.tensor([[0.7, 0.4]]))


def test_model_output_is_a_typed_object() -> None:
    assert dataclasses.is_dataclass(ModelOutput)
    assert {f.name for f in dataclasses.fields(ModelOutput)} >= {
        "embeddings", "visibility", "part_logits", "team", "role_logits", "id_logits",
    }
