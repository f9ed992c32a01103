"""Shared fixtures: offline switches, and small generated data made once per test session."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

pytest_plugins = ["s3_fixtures", "ray_fixtures"]

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # Ray listens on 127.0.0.1 only
os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")


_YOLO_SETTINGS = Path(tempfile.mkdtemp(prefix="prtreid-yolo-"))


def pytest_configure(config: pytest.Config) -> None:
    """Point ultralytics at a per-run settings folder (with its font) before anything imports it."""
    from prtreid.detect.yolo_train import prepare_offline_ultralytics

    prepare_offline_ultralytics(_YOLO_SETTINGS)


def pytest_unconfigure(config: pytest.Config) -> None:
    """Remove the per-run ultralytics settings folder."""
    shutil.rmtree(_YOLO_SETTINGS, ignore_errors=True)


@pytest.fixture(scope="session")
def synth_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Eight short generated sequences (matches): kit variety is what team and role learning needs."""
    from prtreid.data.synth import SynthConfig, generate_dataset

    out = tmp_path_factory.mktemp("synth")
    generate_dataset(out, SynthConfig(seqs=8, frames=30, width=640, height=360, seed=11))
    return out


@pytest.fixture(scope="session")
def crop_store(synth_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A crop store over :func:`synth_data`, a quarter of the sequences held out."""
    from prtreid.data.crops import CropConfig, build_crops

    out = tmp_path_factory.mktemp("crops")
    build_crops(synth_data, out, CropConfig(eval_fraction=0.25, max_per_identity=10, store_height=128))
    return out


@pytest.fixture(scope="session")
def untrained_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small PRTReID (resnet10t) saved as a model file (random weights: plumbing, not quality)."""
    from prtreid.model.prtreid import ModelConfig, PRTReID
    from prtreid.train.checkpoint import model_meta, save_model

    cfg = ModelConfig(backbone="resnet10t", image_size=(64, 32), embed_dim=32, team_dim=8)
    roles = ("player", "goalkeeper", "referee", "other")
    path = tmp_path_factory.mktemp("model") / "model.pt"
    save_model(path, PRTReID.from_config(cfg, num_roles=len(roles)), model_meta(cfg, len(roles), 0, roles))
    return path
