"""Ray Train on a local Ray: DDP over 2 workers, checkpoints in S3, a lost worker, relaunches."""

from __future__ import annotations

import dataclasses
import math
import os
import signal
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from prtreid.storage import Storage
from prtreid.train.checkpoint import load_checkpoint, load_model
from prtreid.train.config import ExperimentConfig, experiment_from_dict

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", autouse=True)
def _ship_this_module() -> None:
    """Ray workers cannot import this test module: its epoch hooks travel by value."""
    import sys

    from prtreid.distributed.runtime import pickle_by_value

    pickle_by_value(sys.modules[__name__])

WORKER = {"CPU": 0.9}


def tiny_config(epochs: int) -> ExperimentConfig:
    """resnet18 at 64x32, evaluated only after the last epoch."""
    return experiment_from_dict({
        "crops": {"eval_fraction": 0.5, "max_per_identity": 8, "store_height": 64},
        "model": {"backbone": "resnet18", "image_size": [64, 32], "embed_dim": 64},
        "sampler": {"p_ids": 8, "k_instances": 4},
        "train": {"epochs": epochs, "lr": 1e-3, "warmup_epochs": 0.5, "device": "cpu", "batch_eval": 128,
                  "eval_every": 100},
    })


@pytest.fixture(scope="module")
def small_store(synth_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A crop store of at most 8 crops per identity, 64 pixels high (a few batches per epoch)."""
    from prtreid.data.crops import build_crops

    out = tmp_path_factory.mktemp("small_crops")
    build_crops(synth_data, out, tiny_config(1).crops)
    return out


def outputs(model: torch.nn.Module) -> torch.Tensor:
    """Foreground embeddings of a fixed batch, on one thread (as on a 1-CPU Ray worker: the
    reduction order of CPU kernels depends on the thread count)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.no_grad():
            x = torch.randn(3, 3, 64, 32, generator=torch.Generator().manual_seed(5))
            return model(x).embeddings["foreground"]
    finally:
        torch.set_num_threads(threads)


@dataclass(frozen=True)
class SaveOutputs:
    """Epoch hook: every rank saves its model's parameters after each epoch (``target.rankR.epochE``),
    and after ``epoch`` rank 0 saves the :func:`outputs` of its checkpoint (``target``)."""

    target: str
    epoch: int

    def __call__(self, rank: int, epoch: int, checkpoint_dir: Path | None, model: torch.nn.Module) -> None:
        params = torch.cat([p.detach().flatten() for p in model.parameters()])
        torch.save(params, f"{self.target}.rank{rank}.epoch{epoch}")
        if epoch == self.epoch and rank == 0 and checkpoint_dir is not None:
            saved, _ = load_model(checkpoint_dir / "checkpoint.pt")
            torch.save(outputs(saved), self.target)


@dataclass(frozen=True)
class KillOnce:
    """Epoch hook: SIGKILL the worker of ``rank`` once ``epoch`` is reported (so while the other
    worker starts the next epoch), the first time only."""

    marker: str
    rank: int
    epoch: int

    def __call__(self, rank: int, epoch: int, checkpoint_dir: Path | None, model: torch.nn.Module) -> None:
        if rank == self.rank and epoch == self.epoch and not os.path.exists(self.marker):
            Path(self.marker).write_text(str(os.getpid()))
            os.kill(os.getpid(), signal.SIGKILL)


def test_ddp_two_workers_keeps_checkpoints_in_s3(ray_session, s3_bucket: str, small_store: Path,
                                                  tmp_path: Path) -> None:
    from prtreid.distributed.train import train_distributed

    saved = tmp_path / "worker_outputs.pt"
    summary = train_distributed(tiny_config(2), str(small_store), f"{s3_bucket}/runs", "ddp", num_workers=2,
                                resources_per_worker=WORKER, max_failures=0,
                                epoch_hook=SaveOutputs(str(saved), epoch=2))
    assert [h["epoch"] for h in summary.history] == [1, 2] and summary.start_epoch == 1
    assert summary.metrics["epoch"] == 2 and math.isfinite(summary.metrics["loss/total"])
    assert 0.0 <= summary.metrics["mAP"] <= 1.0
    assert summary.history[-1]["loss/total"] < summary.history[0]["loss/total"] * 1.5
    assert summary.model_uri == f"{s3_bucket}/runs/ddp/model.pt"
    assert summary.checkpoint_uri == f"{s3_bucket}/runs/ddp/epoch_0002"

    names = Storage(summary.run_uri).list()
    assert {"model.pt", "history.json", "epoch_0001/checkpoint.pt", "epoch_0002/checkpoint.pt",
            "epoch_0002/model.pt"} <= set(names), names
    for name in ("model.pt", "epoch_0002/checkpoint.pt"):
        download(f"{summary.run_uri}/{name}", tmp_path / name.replace("/", "_"))
    state = load_checkpoint(tmp_path / "epoch_0002_checkpoint.pt")
    assert state["epoch"] == 1 and [h["epoch"] for h in state["history"]] == [1, 2]
    worker = torch.load(saved, weights_only=True)
    # DDP: every rank trained on its own half of the batches, and the ranks end with the same weights,
    # which the second epoch moved
    params = [torch.load(f"{saved}.rank{r}.epoch2", weights_only=True) for r in (0, 1)]
    assert torch.equal(params[0], params[1])
    assert (params[0] - torch.load(f"{saved}.rank0.epoch1", weights_only=True)).abs().max() > 1e-4
    for name in ("model.pt", "epoch_0002_checkpoint.pt"):
        model, _ = load_model(tmp_path / name)
        assert torch.equal(outputs(model), worker), name
    # Rank 0 trained its half of every epoch's batches (of P x K = 32 crops each).
    assert summary.history[0]["samples"] == 32 * math.ceil(_global_batches(small_store) / 2)


@pytest.fixture(scope="module")
def killed_run(ray_session, small_store: Path, tmp_path_factory: pytest.TempPathFactory):
    """A 3-epoch run whose rank-1 worker is SIGKILLed at the start of epoch 2 on the first attempt."""
    from prtreid.distributed.train import train_distributed

    root = tmp_path_factory.mktemp("ray_runs")
    marker = root / "killed"
    summary = train_distributed(tiny_config(3), str(small_store), str(root / "runs"), "lost-worker",
                                num_workers=2, resources_per_worker=WORKER, max_failures=1,
                                epoch_hook=KillOnce(str(marker), rank=1, epoch=1))
    return root, marker, summary


def test_lost_worker_resumes_from_its_last_checkpoint(killed_run) -> None:
    root, marker, summary = killed_run
    assert marker.exists(), "the worker was never killed"
    assert [h["epoch"] for h in summary.history] == [1, 2, 3]
    assert summary.start_epoch == 2, "the restarted workers must resume after epoch 1, not from scratch"
    assert summary.metrics["start_epoch"] == 2 and summary.metrics["epoch"] == 3
    assert Path(summary.model_uri) == root / "runs" / "lost-worker" / "model.pt"
    assert torch.load(summary.model_uri, weights_only=True)["metrics"]["epoch"] == 3


def test_restarted_workers_remove_what_the_killed_one_left(killed_run) -> None:
    from prtreid.scratch import staging_root

    _, marker, _ = killed_run
    assert not (staging_root() / marker.read_text()).exists()


def test_second_launch_with_the_same_name_resumes(killed_run, small_store: Path) -> None:
    from prtreid.distributed.train import train_distributed

    root, _, first = killed_run
    longer = train_distributed(tiny_config(4), str(small_store), str(root / "runs"), "lost-worker", num_workers=2,
                               resources_per_worker=WORKER, max_failures=0)
    assert longer.start_epoch == 4 and [h["epoch"] for h in longer.history] == [1, 2, 3, 4]
    assert longer.history[:3] == first.history
    assert torch.load(longer.model_uri, weights_only=True)["metrics"]["epoch"] == 4


def test_a_launch_with_other_settings_fails_once_and_keeps_the_run(killed_run, small_store: Path) -> None:
    from prtreid.distributed.train import train_distributed
    from prtreid.errors import ConfigError

    root, _, _ = killed_run
    run = root / "runs" / "lost-worker"
    history = (run / "history.json").read_bytes()
    other = tiny_config(4)
    other = dataclasses.replace(other, loss=dataclasses.replace(other.loss, team_weight=0.5))
    # with restarts allowed: a refusal is not retried (Ray would raise its own error after them)
    with pytest.raises(ConfigError, match=rf"{run}: its latest checkpoint holds a run .*loss\.team_weight.*--name"):
        train_distributed(other, str(small_store), str(root / "runs"), "lost-worker", num_workers=2,
                          resources_per_worker=WORKER, max_failures=2)
    assert (run / "history.json").read_bytes() == history


def test_a_refusal_without_differences_is_raised_as_the_worker_met_it() -> None:
    from prtreid.distributed.train import _raise_refusal

    _raise_refusal({"history": []}, "runs/x")  # trained: nothing to raise
    refused = {"refused": "FileNotFoundError", "message": "/data/no-such-store: no such folder", "differences": None}
    with pytest.raises(FileNotFoundError, match="^/data/no-such-store: no such folder$"):
        _raise_refusal(refused, "runs/x")


def test_storage_in_a_bucket_that_does_not_exist_is_refused_before_any_worker(s3_server: str, small_store: Path,
                                                                                tmp_path: Path) -> None:
    from prtreid.distributed.train import train_distributed

    with pytest.raises(FileNotFoundError, match="^s3://no-such-bucket/runs: no such bucket 'no-such-bucket'$"):
        train_distributed(tiny_config(1), str(small_store), "s3://no-such-bucket/runs", "x", num_workers=2,
                          resources_per_worker=WORKER)


def download(uri: str, path: Path) -> None:
    """One GET per object (moto re-reads a whole object for every ranged GET of a chunked read)."""
    import boto3

    bucket, key = uri[len("s3://"):].split("/", 1)
    body = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"]).get_object(Bucket=bucket, Key=key)["Body"]
    path.write_bytes(body.read())


def _global_batches(store: Path) -> int:
    from prtreid.data.reid_dataset import ReidDataset
    from prtreid.data.sampler import MatchBatchSampler, SamplerConfig

    dataset = ReidDataset(store, "train", image_size=(64, 32))
    return MatchBatchSampler.from_dataset(dataset, SamplerConfig(p_ids=8, k_instances=4)).num_global_batches
