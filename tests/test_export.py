"""ONNX and TorchScript exports give the eager model's outputs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

from prtreid.cli import main as cli
from prtreid.model.export import export_onnx, export_torchscript, max_abs_difference
from prtreid.model.kit import kit_colour
from prtreid.model.prtreid import ModelConfig, PRTReID
from prtreid.train.checkpoint import model_meta, save_model


@pytest.mark.parametrize(("levels", "team_input", "parts"), [((-1,), "foreground", 5), ((2, -1), "clothes", 5),
                                                          ((-1,), "foreground", 3)],
                         ids=["last stage", "fused like the CPU preset, team over the clothes", "3 parts: no kit"])
def test_exports_match_the_eager_model(levels: tuple[int, ...], team_input: str, parts: int, tmp_path: Path) -> None:
    cfg = ModelConfig(image_size=(64, 32), embed_dim=32, team_dim=8, feature_levels=levels, team_input=team_input,
                      num_parts=parts)
    model = PRTReID.from_config(cfg, num_roles=4, num_ids=5)
    model.eval()
    onnx_path = export_onnx(model, tmp_path / "m.onnx")
    script_path = export_torchscript(model, tmp_path / "m.pt")
    diffs = max_abs_difference(model, onnx_path, script_path, batch=3)
    names = ("feats", "visibility", "team", "role_probs") + (("kit",) if parts == 5 else ())
    assert set(diffs) == {f"{k}/{n}" for k in ("onnx", "torchscript") for n in names}
    assert max(diffs.values()) < 1e-4, diffs
    # the files themselves, run here on a batch size the exports were not traced with, against the model
    x = torch.randn(5, 3, 64, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        out = model(x)
        feats, vis = out.reid_features()
        kit = (kit_colour(x, out.part_logits),) if parts == 5 else ()
        want = [t.numpy() for t in (feats, vis, out.team, out.role_probabilities(), *kit)]
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        scripted = [t.numpy() for t in torch.jit.load(str(script_path))(x)]
    for got in (session.run(None, {"images": x.numpy()}), scripted):
        assert len(got) == len(want)
        for a, b in zip(got, want):
            np.testing.assert_allclose(a, b, atol=1e-4, rtol=1e-5)  # kit colours are CIELAB units, up to ~100


def test_export_command_writes_both_files_and_checks_them(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    cfg = ModelConfig(image_size=(64, 32), embed_dim=32, team_dim=8)
    roles = ("player", "goalkeeper", "referee", "other")
    save_model(tmp_path / "model.pt", PRTReID.from_config(cfg, num_roles=4), model_meta(cfg, 4, 0, roles))
    assert cli(["export", "--model", str(tmp_path / "model.pt"), "--out", str(tmp_path / "exported")]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert Path(report["onnx"]).is_file() and Path(report["torchscript"]).is_file()
    assert 0.0 <= report["max_abs_difference"] < 1e-3
    assert cli(["export", "--model", str(tmp_path / "model.pt"), "--out", str(tmp_path / "again"),
                "--tolerance", "-1"]) == 1  # nothing is within a negative tolerance: the check can fail
