"""benchmarks/embed_layout.py on a tiny generated clip, and the Embedder's CPU layout itself."""

from __future__ import annotations

import re

import pytest
import torch

from prtreid.model.prtreid import ModelConfig, PRTReID
from prtreid.pipeline.embed import Embedder

from bench_scripts import load_script


def test_embedder_runs_the_model_channels_last_on_cpu() -> None:
    model = PRTReID.from_config(ModelConfig(image_size=(64, 32)), num_roles=4)
    conv = Embedder(model, torch.device("cpu")).model.backbone.model.conv1.weight
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()


def test_both_layouts_are_timed_and_give_the_same_features(capsys: pytest.CaptureFixture) -> None:
    bench = load_script("embed_layout")
    assert bench.main(["--seqs", "1", "--frames", "4", "--batch-frames", "2", "--rounds", "1"]) == 0
    out = capsys.readouterr().out
    rows = re.findall(r"^(channels_last|default).*?\s(\S+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)x$", out, re.MULTILINE)
    assert [r[:2] for r in rows] == [("channels_last", "channels_last"), ("default", "contiguous")]
    assert float(rows[1][4]) == 1.0 and all(float(r[2]) > 0 for r in rows)
    diff = float(re.search(r"between layouts: (\S+)", out)[1])
    assert diff < 1e-4
