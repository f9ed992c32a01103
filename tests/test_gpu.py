"""CUDA paths: mixed-precision training steps, CPU/GPU agreement of the model file, a budgeted run whose
epoch time goes through NCCL, YOLO on the GPU.

Skipped where no CUDA device is present (CI); run on a GPU machine with ``pytest -m gpu``.
"""

from __future__ import annotations

import math
import socket
from pathlib import Path

import numpy as np
import pytest
import torch

from prtreid.train.budget import saved_epochs, slowest_rank
from prtreid.train.checkpoint import load_checkpoint, load_model
from prtreid.train.config import experiment_from_dict
from prtreid.train.loop import fit

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


@pytest.mark.filterwarnings("error:Detected call of `lr_scheduler.step\\(\\)` before `optimizer.step\\(\\)`")
@pytest.mark.parametrize(("amp_dtype", "team_loss"),
                         [("float16", "triplet"), ("bfloat16", "triplet"), ("float16", "supcon")])
def test_amp_training_on_cuda_learns_and_loads_on_cpu(amp_dtype: str, team_loss: str, crop_store: Path,
                                                      tmp_path: Path) -> None:
    cfg = experiment_from_dict({
        "model": {"backbone": "resnet18", "image_size": [128, 64], "embed_dim": 128},
        "loss": {"team_loss": team_loss},
        "sampler": {"p_ids": 6, "k_instances": 3, "matches_per_batch": 2},
        "train": {"epochs": 3, "lr": 1e-3, "warmup_epochs": 0.5, "device": "cuda", "amp": True,
                  "amp_dtype": amp_dtype, "eval_every": 3},
    })
    history = fit(cfg, crop_store, tmp_path)
    losses = [h["loss/total"] for h in history]
    assert all(math.isfinite(v) for v in losses) and losses[-1] < losses[0], losses
    assert history[-1]["team_acc"] > 0.8

    on_cpu, _ = load_model(tmp_path / "model.pt", torch.device("cpu"))
    on_gpu, _ = load_model(tmp_path / "model.pt", torch.device("cuda"))
    x = torch.randn(4, 3, 128, 64)
    with torch.no_grad():
        a = on_cpu(x).embeddings["foreground"]
        b = on_gpu(x.cuda()).embeddings["foreground"].cpu()
    # cuDNN convolutions use TF32 on Ampere and newer: compare directions, which retrieval uses
    assert torch.nn.functional.cosine_similarity(a, b).min() > 0.9999


def test_budgeted_cuda_run_times_its_epoch_through_nccl(crop_store: Path, tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    torch.cuda.set_device(0)
    torch.distributed.init_process_group("nccl", init_method=f"tcp://127.0.0.1:{port}", rank=0, world_size=1)
    try:
        assert slowest_rank(2.5) == 2.5  # the all-reduce runs on the GPU under NCCL
        cfg = experiment_from_dict({
            "model": {"backbone": "resnet18", "image_size": [96, 48], "embed_dim": 128},
            "sampler": {"p_ids": 6, "k_instances": 3, "matches_per_batch": 2},
            "train": {"epochs": 3, "device": "cuda", "amp": True, "budget_minutes": 1e-4, "eval_every": 3},
        })
        history = fit(cfg, crop_store, tmp_path)
    finally:
        torch.distributed.destroy_process_group()
    assert [h["epoch"] for h in history] == [1] and "mAP" in history[0]
    assert saved_epochs(load_checkpoint(tmp_path / "checkpoint.pt")) == 1


def test_yolo_detects_on_cuda() -> None:
    pytest.importorskip("ultralytics")
    from prtreid.detect.factory import make_detector
    from prtreid.detect.base import DetectorConfig

    det = make_detector("yolo:yolov8n.yaml", cfg=DetectorConfig(imgsz=320, conf=0.0, batch=4, device="0",
                                                                half=True, max_det=10))
    frames = [np.random.default_rng(i).integers(0, 255, (360, 640, 3), dtype=np.uint8) for i in range(5)]
    out = det.detect(frames, list(range(1, 6)))
    assert len(out) == 5 and all(0 < len(d.boxes) <= 10 for d in out)  # conf 0: an untrained net boxes something
    assert next(det.model.model.parameters()).device.type == "cuda"
