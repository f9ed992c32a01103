"""The training loop: one implementation, device-agnostic, with no Ray in it.

:func:`fit` trains a :class:`~prtreid.model.prtreid.PRTReID` on a crop store. Distribution is
injected through a :class:`Runtime`: rank and world size (for the sampler's shards), the device,
a model wrapper (DDP) and an end-of-epoch callback. Locally the defaults apply; Ray Train passes
its own (see :mod:`prtreid.distributed.train`).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import random
import re
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from prtreid.config import to_plain
from prtreid.data.recolour import recolour_kits
from prtreid.data.reid_dataset import ReidDataset
from prtreid.data.sampler import MatchBatchSampler
from prtreid.errors import ConfigError
from prtreid.model.losses import MultiTaskLoss
from prtreid.model.prtreid import PRTReID
from prtreid.storage import remove_stale_temps
from prtreid.train.budget import cpu_bf16_native, epochs_within, saved_epochs, slowest_rank
from prtreid.train.checkpoint import load_checkpoint, model_meta, save_checkpoint, save_model, unwrap
from prtreid.train.config import ExperimentConfig, TrainConfig
from prtreid.train.evaluate import check_eval_splits, evaluate_store

log = logging.getLogger(__name__)

CHECKPOINT = "checkpoint.pt"
MODEL = "model.pt"


def resolve_device(name: str) -> torch.device:
    """``auto`` means CUDA when available, else CPU.

    Raises:
        ConfigError: a name other than ``auto``, ``cpu``, ``cuda`` and ``cuda:N``, or CUDA where there is none.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name != "cpu" and not re.fullmatch(r"cuda(:\d+)?", name):
        raise ConfigError(f"device {name!r}: use auto, cpu, cuda or cuda:N")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r}: this machine has no CUDA GPU that torch can use")
    return torch.device(name)


@dataclass
class Runtime:
    """How the loop is distributed. The defaults run one local process.

    Attributes:
        rank, world_size: this process's place among the training workers.
        device: where to train; ``None`` means the config's ``train.device``.
        wrap_model: wraps the model for data parallelism (identity locally).
        on_epoch: called on every rank after each epoch with ``(epoch, metrics, checkpoint_dir, model)``;
            ``checkpoint_dir`` holds ``checkpoint.pt`` on rank 0 and is ``None`` elsewhere; ``model`` is
            this rank's model, unwrapped (read it, don't train it).
        resume_from: a checkpoint file to resume from (default: ``out_dir/checkpoint.pt`` if present).
        progress: draw a progress bar (rank 0 only).
    """

    rank: int = 0
    world_size: int = 1
    device: torch.device | None = None
    wrap_model: Callable[[nn.Module], nn.Module] = lambda m: m
    on_epoch: Callable[[int, dict[str, Any], Path | None, nn.Module], None] | None = None
    resume_from: Path | None = None
    progress: bool = True


def seed_everything(seed: int, *keys: int) -> None:
    """Seed Python, NumPy and torch from ``seed``, or from ``seed`` and ``keys`` (rank, epoch) mixed."""
    if keys:
        seed = int(np.random.SeedSequence([seed, *keys]).generate_state(1)[0])
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def lr_lambda(cfg: TrainConfig, iters_per_epoch: int) -> Callable[[int], float]:
    """Per-iteration LR factor: linear warm-up (at most half the run), then cosine decay or step decay."""
    warmup = min(cfg.warmup_epochs, cfg.epochs / 2) * iters_per_epoch
    total = cfg.epochs * iters_per_epoch

    def factor(it: int) -> float:
        if it < warmup:
            return cfg.warmup_factor + (1 - cfg.warmup_factor) * it / warmup
        if cfg.schedule == "step":
            return cfg.gamma ** sum(it >= m * iters_per_epoch for m in cfg.milestones)
        progress = (it - warmup) / max(1.0, total - warmup)
        return cfg.min_lr_factor + (1 - cfg.min_lr_factor) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))

    return factor


def reschedule(scheduler: torch.optim.lr_scheduler.LambdaLR, cfg: TrainConfig, iters_per_epoch: int) -> None:
    """Give ``scheduler`` the schedule of ``cfg`` (a new epoch count) from the step it has reached.

    The optimizer's learning rates change now, not at the next step (which would run at the old one).
    """
    fn = lr_lambda(cfg, iters_per_epoch)
    scheduler.lr_lambdas = [fn] * len(scheduler.base_lrs)
    for group, base in zip(scheduler.optimizer.param_groups, scheduler.base_lrs):
        group["lr"] = base * fn(scheduler.last_epoch)


def role_priors(roles: np.ndarray, sampler: MatchBatchSampler, num_roles: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Role counts of the training crops and of one epoch of sampled batches (all ranks)."""
    drawn = np.concatenate([roles[b] for b in sampler.epoch_batches()]) if len(sampler) else roles
    return (torch.from_numpy(np.bincount(roles, minlength=num_roles)),
            torch.from_numpy(np.bincount(drawn, minlength=num_roles)))


def build_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """Adam or AdamW over every trainable parameter."""
    params = [p for p in model.parameters() if p.requires_grad]
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def fit(cfg: ExperimentConfig, store: str | Path, out_dir: str | Path,
        runtime: Runtime | None = None) -> list[dict[str, Any]]:
    """Train on the ``train`` split of a crop store, evaluating on its query/gallery splits.

    Writes ``out_dir/checkpoint.pt`` after every epoch (rank 0) and ``out_dir/model.pt`` at the
    end; resumes from a checkpoint when one exists. Returns the per-epoch metrics.
    """
    rt = runtime or Runtime()
    out_dir = Path(out_dir)
    device = rt.device or resolve_device(cfg.train.device)
    seed_everything(cfg.train.seed + rt.rank)
    role_names = cfg.crops.roles
    train_set = ReidDataset(store, "train", image_size=cfg.model.image_size, augment=cfg.augment,
                            role_names=role_names)
    check_eval_splits(store)
    sampler = MatchBatchSampler.from_dataset(train_set, cfg.sampler, rank=rt.rank, world_size=rt.world_size)
    loader = DataLoader(train_set, batch_sampler=sampler, num_workers=cfg.train.num_workers,
                        pin_memory=device.type == "cuda", persistent_workers=cfg.train.num_workers > 0)
    meta = model_meta(cfg.model, len(role_names), train_set.num_ids, tuple(role_names))
    with torch.random.fork_rng(devices=[]):  # identical initial weights on every rank, own draws after
        torch.manual_seed(cfg.train.seed)
        model = PRTReID.from_config(cfg.model, num_roles=len(role_names), num_ids=train_set.num_ids)
    model.role_head.set_prior_correction(*role_priors(train_set.roles, sampler, len(role_names)))
    model = model.to(device)
    criterion = MultiTaskLoss(cfg.loss, role_names=tuple(role_names))
    amp_dtype = autocast_dtype(cfg.train, device)
    if rt.rank == 0:  # what a run killed while it saved left behind (a checkpoint is large)
        remove_stale_temps(out_dir, (CHECKPOINT, MODEL))
    checkpoint = Path(rt.resume_from or out_dir / CHECKPOINT)
    saved = load_checkpoint(checkpoint) if checkpoint.exists() else None
    budgeted = cfg.train.budget_minutes > 0
    cfg = _as_resumed(cfg, saved)
    if saved is not None:
        _check_same_run(checkpoint, saved, cfg, meta)
    optimizer = build_optimizer(model, cfg.train)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(cfg.train, max(1, len(sampler))))
    scaler = torch.amp.GradScaler("cuda") if amp_dtype == torch.float16 else None
    start, history = _resume(checkpoint, saved, model, optimizer, scheduler, scaler)
    del saved  # its tensors are copied into the model and optimizer; don't hold a second copy
    model = rt.wrap_model(model)
    experiment = dataclasses.asdict(cfg)
    epoch = start
    while epoch < cfg.train.epochs:
        sampler.set_epoch(epoch)
        # a resumed epoch draws what it would have (in this process; DataLoader workers are seeded once a run)
        seed_everything(cfg.train.seed, rt.rank, epoch)
        began = time.perf_counter()
        metrics = {"epoch": epoch + 1} | train_epoch(model, loader, criterion, optimizer, scheduler, scaler,
                                                      device, cfg.train, show=rt.progress and rt.rank == 0,
                                                      desc=f"epoch {epoch + 1}/{cfg.train.epochs}",
                                                      kit_hue_p=cfg.augment.kit_hue_p, amp_dtype=amp_dtype)
        if budgeted and epoch == 0:
            cfg = _cut_to_budget(cfg, slowest_rank(time.perf_counter() - began))
            reschedule(scheduler, cfg.train, max(1, len(sampler)))
            experiment = dataclasses.asdict(cfg)
        last = epoch + 1 == cfg.train.epochs
        if rt.rank == 0 and (last or (epoch + 1) % cfg.train.eval_every == 0):
            metrics |= _scalar(evaluate_store(unwrap(model), store, device, image_size=cfg.model.image_size,
                                              role_names=tuple(role_names), batch_size=cfg.train.batch_eval,
                                              min_frame_gap=cfg.train.min_frame_gap))
        history.append(metrics)
        if rt.rank == 0:
            log.info("epoch %d: %s", epoch + 1, _fmt(metrics))
            if last:  # before the checkpoint: a resume after the last epoch would never write it
                save_model(out_dir / MODEL, model, meta, metrics)
            save_checkpoint(out_dir / CHECKPOINT, model=model, optimizer=optimizer, scheduler=scheduler,
                            scaler=scaler, epoch=epoch, meta=meta, history=history, experiment=experiment)
        if rt.on_epoch is not None:
            rt.on_epoch(epoch, metrics, out_dir if rt.rank == 0 else None, unwrap(model))
        epoch += 1
    return history


def autocast_dtype(cfg: TrainConfig, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of training on ``device`` (``None``: full precision).

    ``cpu_amp`` gives bfloat16 only on a CPU that has it in hardware; elsewhere it is emulated and
    many times slower than float32, so the run stays in float32 and says so.
    """
    if device.type == "cuda" and cfg.amp:
        return getattr(torch, cfg.amp_dtype)
    if device.type == "cpu" and cfg.cpu_amp:
        if cpu_bf16_native():
            return torch.bfloat16
        log.warning("train.cpu_amp: this CPU has no AVX512-BF16 or AMX-BF16, where bfloat16 is many times "
                    "slower than float32; training in float32")
    return None


def _with_epochs(cfg: ExperimentConfig, epochs: int) -> ExperimentConfig:
    """``cfg`` trained for ``epochs``; a step schedule's milestones shrink or grow with the run."""
    scale = epochs / cfg.train.epochs
    milestones = tuple(sorted(max(1, round(m * scale)) for m in cfg.train.milestones))  # equal ones: both decays
    return dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, epochs=epochs, milestones=milestones))


def _as_resumed(cfg: ExperimentConfig, saved: dict[str, Any] | None) -> ExperimentConfig:
    """``cfg`` as a run resumed from ``saved`` trains it: a budgeted run keeps the epoch count it chose,
    and so its LR schedule."""
    if cfg.train.budget_minutes <= 0:
        return cfg
    return _with_epochs(cfg, saved_epochs(saved) or cfg.train.epochs)


def _cut_to_budget(cfg: ExperimentConfig, first_epoch_s: float) -> ExperimentConfig:
    """``cfg`` with as many epochs as ``train.budget_minutes`` affords, judged by the first epoch's time."""
    epochs = epochs_within(cfg.train.budget_minutes, first_epoch_s, cfg.train.epochs)
    log.info("train.budget_minutes=%g: the first epoch trained in %.0f s -> %d of %d epochs",
             cfg.train.budget_minutes, first_epoch_s, epochs, cfg.train.epochs)
    return _with_epochs(cfg, epochs)


def train_epoch(model: nn.Module, loader: DataLoader, criterion: MultiTaskLoss,
                optimizer: torch.optim.Optimizer, scheduler: Any, scaler: Any, device: torch.device,
                cfg: TrainConfig, show: bool = True, desc: str = "train",
                kit_hue_p: float = 0.0, amp_dtype: torch.dtype | None = None) -> dict[str, float]:
    """One pass over the loader; returns the mean of every loss term and the throughput.

    ``amp_dtype`` runs forward and loss under autocast on ``device``; float16 needs ``scaler``.

    ``kit_hue_p`` > 0 recolours the kits of whole matches (:func:`recolour_kits`) on the device.

    ``time/data`` is the time spent waiting for batches (loading and the copy to the device),
    ``time/step`` the time of forward, backward and optimizer steps, both in seconds over the epoch
    (the per-step ``float`` of each loss term synchronises CUDA, so the split is honest on GPU too).
    """
    model.train()
    sums: dict[str, float] = {}
    samples = 0
    data_time = step_time = 0.0
    bar = tqdm(loader, desc=desc, disable=not show, dynamic_ncols=True, leave=False)
    tick = time.perf_counter()
    for batch in bar:
        batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
        batch["image"] = recolour_kits(batch["image"], batch["parts"], batch["match"], kit_hue_p)
        fetched = time.perf_counter()
        autocast = torch.autocast(device.type, dtype=amp_dtype) if amp_dtype is not None else nullcontext()
        with autocast:
            terms = criterion(model(batch["image"]), batch)
        if _step(terms["total"], model, optimizer, scaler, cfg.grad_clip):
            scheduler.step()
        samples += len(batch["image"])
        for k, v in terms.items():
            sums[k] = sums.get(k, 0.0) + float(v.detach())
        bar.set_postfix(loss=f"{float(terms['total'].detach()):.3f}")
        done = time.perf_counter()
        data_time, step_time, tick = data_time + fetched - tick, step_time + done - fetched, done
    n = max(1, len(loader))
    return ({f"loss/{k}": v / n for k, v in sums.items()}
            | {"lr": scheduler.get_last_lr()[0], "samples": samples, "time/data": data_time, "time/step": step_time})


def _step(loss: torch.Tensor, model: nn.Module, optimizer: torch.optim.Optimizer, scaler: Any,
          grad_clip: float) -> bool:
    """Backward and optimizer step; False when the float16 grad scaler skipped the step (inf/NaN
    gradients, as on the first steps while it finds its scale), so the LR schedule counts only updates."""
    optimizer.zero_grad(set_to_none=True)
    if scaler is None:
        loss.backward()
    else:
        scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
    if grad_clip > 0:
        nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    if scaler is None:
        optimizer.step()
        return True
    scale = scaler.get_scale()
    scaler.step(optimizer)
    scaler.update()
    return scaler.get_scale() >= scale


RESUMABLE = ("epochs", "budget_minutes", "device", "num_workers", "batch_eval", "eval_every", "amp", "amp_dtype",
             "cpu_amp", "min_frame_gap")
"""``train`` settings a resumed run may change: its length, and where and how fast it runs."""


class RunMismatch(ConfigError):
    """A checkpoint to resume from holds a run of other settings or data (``differences`` says which)."""

    def __init__(self, message: str, differences: str) -> None:
        super().__init__(message)
        self.differences = differences


def _settings_differences(saved: dict[str, Any], cfg: ExperimentConfig) -> list[str]:
    """``section.key: then -> now`` for every experiment setting a resumed run may not change."""
    now, then = to_plain(dataclasses.asdict(cfg)), dict(saved["experiment"])
    for part in (now, then):
        part["train"] = {k: v for k, v in part["train"].items() if k not in RESUMABLE}
    return [f"{section}.{key}: {then.get(section, {}).get(key)!r} -> {value!r}"
            for section, fields in now.items() for key, value in fields.items()
            if then.get(section, {}).get(key) != value]


def _mismatch(path: Path, diffs: list[str]) -> RunMismatch:
    differences = "; ".join(diffs[:5])
    return RunMismatch(f"{path}: holds a run with other settings or data ({differences}); train into a new "
                       "--out, or delete the checkpoint to start over", differences)


def check_resumable(out_dir: str | Path, cfg: ExperimentConfig) -> None:
    """Raise :class:`RunMismatch` when ``out_dir`` holds a checkpoint of other settings.

    :func:`fit` checks the same and the data's identities too; this lets a caller refuse before
    it prepares the data (``prtreid train`` rebuilds ``RUN/crops`` when the crop settings change).
    """
    path = Path(out_dir) / CHECKPOINT
    if not path.exists():
        return
    saved = load_checkpoint(path)
    diffs = _settings_differences(saved, _as_resumed(cfg, saved))
    if diffs:
        raise _mismatch(path, diffs)


def _check_same_run(path: Path, saved: dict[str, Any], cfg: ExperimentConfig, meta: dict[str, Any]) -> None:
    """Raise RunMismatch unless the checkpoint at ``path`` is of this run (settings, identities, roles)."""
    diffs = _settings_differences(saved, cfg)
    diffs += [f"model file {key}: {saved['meta'].get(key)!r} -> {value!r}" for key, value in to_plain(meta).items()
              if key != "model_config" and saved["meta"].get(key) != value]
    if diffs:
        raise _mismatch(path, diffs)


def _resume(path: Path, state: dict[str, Any] | None, model: nn.Module, optimizer: torch.optim.Optimizer,
            scheduler: Any, scaler: Any) -> tuple[int, list[dict[str, Any]]]:
    """Load ``state`` (the checkpoint read from ``path``, if any): the next epoch and the history so far."""
    if state is None:
        return 0, []
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    if scaler is not None and state.get("scaler"):
        scaler.load_state_dict(state["scaler"])
    log.info("resumed from %s after epoch %d", path, state["epoch"] + 1)
    return state["epoch"] + 1, list(state["history"])


def _scalar(metrics: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in metrics.items() if isinstance(v, (int, float))}


def _fmt(metrics: dict[str, Any]) -> str:
    return " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in metrics.items())
