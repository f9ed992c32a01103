"""Checkpoints: training state for resume, and a self-describing model file for inference.

Both are plain ``torch.save`` dicts of tensors and built-in types, so they load with
``torch.load(..., weights_only=True)`` (no pickled code). A model file carries the model config
and the dataset-derived sizes (roles, identities) needed to rebuild the network.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch
from torch import nn

from prtreid.config import from_dict, to_plain
from prtreid.errors import FormatError, first_line
from prtreid.model.prtreid import ModelConfig, PRTReID
from prtreid.storage import atomic_path

FORMAT_VERSION = 1
_CHECKPOINT_KEYS = {"meta", "model", "optimizer", "scheduler", "scaler", "epoch", "history", "experiment"}


def atomic_torch_save(obj: Any, path: Path) -> None:
    """``torch.save`` to a temporary file beside ``path``, then rename it into place."""
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def model_meta(model_cfg: ModelConfig, num_roles: int, num_ids: int, role_names: tuple[str, ...]) -> dict[str, Any]:
    """What it takes to rebuild a model: its config and the dataset-derived sizes."""
    cfg = dataclasses.asdict(model_cfg)
    cfg["pretrained"] = False  # weights come from the checkpoint, never from a hub
    return {"format": FORMAT_VERSION, "model_config": cfg, "num_roles": num_roles,
            "num_ids": num_ids, "role_names": list(role_names)}


def unwrap(model: nn.Module) -> nn.Module:
    """The bare model under DistributedDataParallel / DataParallel wrappers."""
    return model.module if hasattr(model, "module") else model


def save_model(path: Path, model: nn.Module, meta: dict[str, Any], metrics: dict[str, Any] | None = None) -> None:
    """Write an inference model file (weights, meta, last metrics)."""
    state = {k: v.detach().cpu() for k, v in unwrap(model).state_dict().items()}
    atomic_torch_save({"meta": meta, "state_dict": state, "metrics": to_plain(metrics or {})}, path)


def load_model(path: str | Path, device: str | torch.device = "cpu") -> tuple[PRTReID, dict[str, Any]]:
    """Rebuild a :class:`PRTReID` from a model file or a training checkpoint, in eval mode.

    Raises:
        FileNotFoundError: no file at ``path``.
        FormatError: the file is not a PRTReID model file or checkpoint.
    """
    not_ours = "not a prtreid model file or checkpoint"
    blob = _torch_load(path, not_ours)
    meta_ok = isinstance(blob, dict) and isinstance(blob.get("meta"), dict) and {
        "model_config", "num_roles", "num_ids"} <= blob["meta"].keys()
    if not meta_ok or not {"state_dict", "model"} & blob.keys():
        raise FormatError(path, None, not_ours)
    meta = blob["meta"]
    cfg = from_dict(ModelConfig, meta["model_config"], f"{path} (model_config)")
    model = PRTReID.from_config(cfg, num_roles=meta["num_roles"], num_ids=meta["num_ids"])
    try:
        model.load_state_dict(blob["state_dict"] if "state_dict" in blob else blob["model"])
    except RuntimeError as exc:
        raise FormatError(path, None, f"its weights do not fit its model_config ({first_line(exc)})") from None
    return model.to(device).eval(), meta


def save_checkpoint(path: Path, *, model: nn.Module, optimizer: torch.optim.Optimizer,
                    scheduler: Any, scaler: Any, epoch: int, meta: dict[str, Any],
                    history: list[dict[str, Any]], experiment: dict[str, Any]) -> None:
    """Write the full training state after ``epoch`` (0-based, completed)."""
    atomic_torch_save({
        "meta": meta,
        "model": {k: v.detach().cpu() for k, v in unwrap(model).state_dict().items()},
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "scaler": scaler.state_dict() if scaler is not None else None,
        "epoch": epoch,
        "history": to_plain(history),
        "experiment": to_plain(experiment),
    }, path)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a training checkpoint written by :func:`save_checkpoint` (``weights_only``).

    Raises:
        FormatError: the file is not such a checkpoint.
    """
    blob = _torch_load(path, "not a prtreid training checkpoint")
    if not isinstance(blob, dict):
        raise FormatError(path, None, f"not a prtreid training checkpoint (a {type(blob).__name__})")
    missing = sorted(_CHECKPOINT_KEYS - blob.keys())
    if missing:
        raise FormatError(path, None, f"not a prtreid training checkpoint (missing: {', '.join(missing)})")
    return blob


def _torch_load(path: str | Path, not_ours: str) -> Any:
    """``torch.load(weights_only=True)`` on the CPU; a file torch cannot read is a FormatError."""
    try:
        return torch.load(str(path), map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as exc:  # torch raises many types for a file it cannot read
        raise FormatError(path, None, f"{not_ours} ({type(exc).__name__}: {first_line(exc)})") from None
