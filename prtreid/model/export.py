"""Export the embedding model to ONNX and TorchScript, checked against the eager model.

The exported graph takes a batch of normalised crops ``(B, 3, H, W)`` and returns what the tracker
consumes: re-id descriptors ``(B, K+2, D)``, their visibility ``(B, K+2)``, team embeddings
``(B, Dt)``, role probabilities ``(B, R)`` and, for a model with the part masks' parts, kit colours
``(B, 6)`` (:func:`~prtreid.model.kit.kit_colour`, which teams are clustered on with the embedding).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from prtreid.model.kit import has_kit_parts, kit_colour
from prtreid.model.prtreid import PRTReID

OUTPUT_NAMES = ("feats", "visibility", "team", "role_probs")
KIT_OUTPUT = "kit"


def output_names(model: PRTReID) -> tuple[str, ...]:
    """The exported graph's outputs: :data:`OUTPUT_NAMES`, then ``kit`` where the model has the kit's parts."""
    return OUTPUT_NAMES + ((KIT_OUTPUT,) if has_kit_parts(model.cfg.num_parts) else ())


class EmbeddingHead(nn.Module):
    """PRTReID with a tuple output, for exporters (which need plain tensors).

    It puts ``model`` itself in eval mode: exports are for inference.
    """

    def __init__(self, model: PRTReID) -> None:
        super().__init__()
        self.model = model
        self.kit = has_kit_parts(model.cfg.num_parts)
        self.eval()

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.model(images)
        feats, vis = out.reid_features()
        tensors = (feats, vis, out.team, out.role_probabilities())
        return tensors + (kit_colour(images, out.part_logits),) if self.kit else tensors


def export_onnx(model: PRTReID, path: str | Path, batch: int = 2, opset: int = 18) -> Path:
    """Write an ONNX graph with a dynamic batch dimension."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    h, w = model.cfg.image_size
    example = torch.randn(batch, 3, h, w, device=_device(model))
    torch.onnx.export(EmbeddingHead(model), (example,), str(path), input_names=["images"],
                      output_names=list(output_names(model)), opset_version=opset,
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
    names = output_names(model)
    ref = [t.cpu().numpy() for t in EmbeddingHead(model)(x)]
    runs: dict[str, list[np.ndarray]] = {}
    if onnx_path is not None:
        import onnxruntime as ort

        session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
        runs["onnx"] = session.run(list(names), {"images": x.cpu().numpy()})
    if script_path is not None:
        runs["torchscript"] = [t.cpu().numpy() for t in torch.jit.load(str(script_path))(x)]
    return {f"{kind}/{n}": float(np.abs(a - b).max()) for kind, got in runs.items() for n, a, b in zip(names, ref, got)}


def _device(model: nn.Module) -> torch.device:
    """Where the model's weights are: example inputs go there (a traced graph keeps that device)."""
    return next(model.parameters()).device
