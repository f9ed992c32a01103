"""Experiment configuration: data, model, losses and optimisation in one typed tree.

A YAML file (``configs/*.yaml``) has the sections ``crops``, ``sampler``, ``augment``, ``model``,
``loss`` and ``train``; each maps onto the dataclass of its component. ``dataclasses.asdict`` of an
:class:`ExperimentConfig` round-trips through :func:`experiment_from_dict` (Ray workers and Tune
trials rebuild it that way).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from prtreid.config import from_dict, load_yaml, merge, parse_override, to_plain
from prtreid.data.crops import CropConfig
from prtreid.data.reid_dataset import AugmentConfig
from prtreid.data.sampler import SamplerConfig
from prtreid.errors import ConfigError
from prtreid.model.losses import LossConfig
from prtreid.model.prtreid import ModelConfig


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings.

    Attributes:
        epochs: number of epochs.
        optimizer: ``adam`` or ``adamw``.
        lr: peak learning rate; ``weight_decay``: decoupled for AdamW, L2 for Adam.
        warmup_epochs: linear warm-up from ``warmup_factor * lr`` (may be fractional; at most half
            of ``epochs``, so a short or budget-cut run still reaches ``lr`` and decays).
        schedule: ``cosine`` (to ``min_lr_factor * lr``) or ``step`` (times ``gamma`` at ``milestones``).
        amp: mixed precision autocast when training on CUDA.
        amp_dtype: ``float16`` (with a grad scaler) or ``bfloat16`` (no scaler; Ampere and newer).
        cpu_amp: bfloat16 autocast when training on CPU: 1.3-1.7x the samples/s on a CPU with
            AVX512-BF16 (benchmarks/train_throughput.py). Ignored, with a warning, on a CPU without
            AVX512-BF16 or AMX-BF16, where emulated bfloat16 was 24x slower than float32.
        budget_minutes: when above 0, after the first epoch ``epochs`` becomes the most epochs
            whose training (timed on that epoch, the slowest worker; evaluation not counted) fits
            in about this many minutes, never more than ``epochs``; the LR schedule follows. For
            demos on machines of unknown speed; runs meant to be compared leave it at 0.
        grad_clip: max gradient norm, 0 to disable.
        batch_eval: batch size of feature extraction.
        num_workers: data-loader worker processes.
        eval_every: evaluate every N epochs (and always after the last).
        device: ``auto`` (CUDA when available), ``cpu`` or ``cuda``.
        seed: seed of weights init and augmentation; which crops make each batch comes from ``sampler.seed``.
        min_frame_gap: re-id evaluation drops same-identity gallery crops closer than this many frames.
    """

    epochs: int = 10
    optimizer: Literal["adam", "adamw"] = "adamw"
    lr: float = 3.5e-4
    weight_decay: float = 5e-4
    warmup_epochs: float = 1.0
    warmup_factor: float = 0.1
    schedule: Literal["cosine", "step"] = "cosine"
    min_lr_factor: float = 0.01
    milestones: tuple[int, ...] = ()
    gamma: float = 0.1
    amp: bool = True
    amp_dtype: Literal["float16", "bfloat16"] = "float16"
    cpu_amp: bool = False
    budget_minutes: float = 0.0
    grad_clip: float = 5.0
    batch_eval: int = 64
    num_workers: int = 0
    eval_every: int = 1
    device: Literal["auto", "cpu", "cuda"] = "auto"
    seed: int = 0
    min_frame_gap: int = 10

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise ConfigError(f"train.epochs: must be at least 1, got {self.epochs}")
        if not self.lr > 0:  # written so that NaN fails too
            raise ConfigError(f"train.lr: must be positive, got {self.lr}")
        if not self.weight_decay >= 0:
            raise ConfigError(f"train.weight_decay: must be 0 or positive, got {self.weight_decay}")
        if not self.budget_minutes >= 0:
            raise ConfigError(f"train.budget_minutes: must be 0 (off) or positive, got {self.budget_minutes}")
        for name in ("eval_every", "batch_eval"):
            if getattr(self, name) < 1:
                raise ConfigError(f"train.{name}: must be at least 1, got {getattr(self, name)}")
        for name in ("warmup_factor", "min_lr_factor", "gamma"):  # factors of the learning rate
            if not getattr(self, name) > 0:
                raise ConfigError(f"train.{name}: must be positive, got {getattr(self, name)}")


@dataclass(frozen=True)
class ExperimentConfig:
    """Everything a training run needs besides the data location."""

    crops: CropConfig = field(default_factory=CropConfig)
    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


def experiment_from_dict(data: dict[str, Any] | None, source: str = "<dict>") -> ExperimentConfig:
    """Build and validate an :class:`ExperimentConfig` from a nested mapping."""
    return from_dict(ExperimentConfig, data, source)


def load_experiment(path: str | Path | None = None, overrides: list[str] | None = None) -> ExperimentConfig:
    """Load a YAML experiment file (or the defaults) and apply ``section.key=value`` overrides.

    Overrides apply to the resolved config, so ``sampler.role_minimums.referee=2`` changes one entry
    of that dict and keeps the others.
    """
    data: dict[str, Any] = load_yaml(path) if path else {}
    source = str(path) if path else "<defaults>"
    if not overrides:
        return experiment_from_dict(data, source)
    data = to_plain(asdict(experiment_from_dict(data, source)))
    for text in overrides:
        data = merge(data, parse_override(text))
    return experiment_from_dict(data, f"{source} with --set overrides")
