"""Export the embedding model to ONNX and TorchScript, checked against the eager model.

The exported graph takes a batch of normalised crops ``(B, 3, H, W)`` and returns four tensors:
re-id descriptors ``(B, K+2, D)``, their visibility ``(B, K+2)``, team embeddings ``(B, Dt)`` and
role probabilities ``(B, R)`` — what the tracker consumes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from prtreid.model.prtreid import PRTReID

OUTPUT_NAMES = ("feats", "visibility", "team", "role_probs")


class EmbeddingHead(nn.Module):
    """PRTReID with a tuple output, for exporters (which need plain tensors).

    It puts ``model`` itself in eval mode: exports are for inference.
    """

    def __init__(self, model: PRTReID) -> None:
        super().__init__()
        self.model = model
        self.eval()

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        out = self.model(images)
        feats, vis = out.reid_features()
        return feats, vis, out.team, out.role_probabilities()


def export_onnx(model: PRTReID, path: str | Path, batch: int = 2, opset: int = 18) -> Path:
    """Write an ONNX graph with a dynamic batch dimension."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    h, w = model.cfg.image_size
    example = torch.randn(batch, 3, h, w, device=_device(model))
    torch.onnx.export(EmbeddingHead(model), (example,), str(path), input_names=["images"],
                      output_names=list(OUTPUT_NAMES), opset_version=opset,
                      dynamic_shapes={"images": {0: torch.export.Dim("batch", min=1, max=1024)}},
                      dynamo=True, external_data=False)
    return path


def export_torchscript(model: PRTReID, path: str | Path) -> Path:
    """Write a traced TorchScript module (fixed input size, any batch)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    h, w = model.cfg.image_size
    traced = torch.jit.trace(EmbeddingHead(model), torch.randn(2, 3, h, w, device=_device(model)), check_trace=False)
    traced.save(str(path))
    return path


@torch.no_grad()
def max_abs_difference(model: PRTReID, onnx_path: str | Path | None = None,
                       script_path: str | Path | None = None, batch: int = 3, seed: int = 0) -> dict[str, float]:
    """Largest absolute difference per output between the eager model and the exports."""
    h, w = model.cfg.image_size
    x = torch.randn(batch, 3, h, w, generator=torch.Generator().manual_seed(seed)).to(_device(model))
    ref = [t.cpu().numpy() for t in EmbeddingHead(model)(x)]
    out: dict[str, float] = {}
    if onnx_path is not None:
        import onnxruntime as ort

        session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
        got = session.run(list(OUTPUT_NAMES), {"images": x.cpu().numpy()})
        out |= {f"onnx/{n}": float(np.abs(a - b).max()) for n, a, b in zip(OUTPUT_NAMES, ref, got)}
    if script_path is not None:
        scripted = torch.jit.load(str(script_path))
        got = [t.cpu().numpy() for t in scripted(x)]
        out |= {f"torchscript/{n}": float(np.abs(a - b).max()) for n, a, b in zip(OUTPUT_NAMES, ref, got)}
    return out


def _device(model: nn.Module) -> torch.device:
    """Where the model's weights are: example inputs go there (a traced graph keeps that device)."""
    return next(model.parameters()).device
