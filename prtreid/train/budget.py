"""What the machine can afford: native bfloat16 on the CPU, and epochs that fit a time budget.

The CPU preset's speed depends on the CPU far more than on its core count. On 2 cores of an AMD
EPYC with AVX512-BF16, bfloat16 autocast trains 1.3-1.7x faster than float32; on 2 cores of an
AVX2-only EPYC a step takes 0.62 s in float32 and about 15 s under bfloat16 autocast (emulated).
So bfloat16 is used only where the CPU has it, and a run can be given minutes instead of epochs
(``train.budget_minutes``): after its first epoch, the slowest worker's time for that epoch sets how
many epochs fit, and the learning-rate schedule is stretched over that many. The warm-up, at most
half the run, is then cut with it: where the first epoch ended mid-ramp (a warm-up of several
epochs), the rate steps up to its peak at the second epoch.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch


def cpu_bf16_native() -> bool:
    """Whether this CPU runs bfloat16 matrix maths in hardware (AVX512-BF16 or AMX-BF16)."""
    caps = getattr(torch.cpu, "get_capabilities", dict)()
    return bool(caps.get("avx512_bf16") or caps.get("amx_bf16"))


def slowest_rank(seconds: float) -> float:
    """The largest of ``seconds`` over the ranks of the process group (``seconds`` itself without one)."""
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return seconds
    value = torch.tensor([seconds], dtype=torch.float64)
    if torch.distributed.get_backend() == "nccl":
        value = value.cuda()
    torch.distributed.all_reduce(value, op=torch.distributed.ReduceOp.MAX)
    return float(value.item())


def epochs_within(budget_minutes: float, epoch_seconds: float, max_epochs: int) -> int:
    """The most epochs of ``epoch_seconds`` each (at least 1, at most ``max_epochs``) in ``budget_minutes``."""
    return max(1, min(max_epochs, math.floor(budget_minutes * 60.0 / max(epoch_seconds, 1e-9))))


def saved_epochs(checkpoint: Mapping[str, Any] | None) -> int | None:
    """The epoch count a loaded checkpoint's run chose (so a resumed budgeted run keeps its schedule)."""
    if checkpoint is None:
        return None
    epochs = checkpoint.get("experiment", {}).get("train", {}).get("epochs")
    return int(epochs) if epochs is not None else None
