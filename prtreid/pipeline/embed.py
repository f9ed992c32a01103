"""Batched appearance embedding of detections: crops cut with RoIAlign, one model call per batch."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torchvision.ops import roi_align

from prtreid.data.reid_dataset import IMAGENET_MEAN, IMAGENET_STD
from prtreid.model.kit import KIT_PARTS, has_kit_parts, kit_colour
from prtreid.model.prtreid import PRTReID, inference_layout


@dataclass(frozen=True)
class Embeddings:
    """Per-detection model outputs of one frame (rows follow the detections).

    Attributes:
        feats: (N, P, D) re-id descriptors (parts, foreground, global).
        vis: (N, P) visibility.
        team: (N, Dt) team embeddings.
        role_probs: (N, R) softmax role probabilities.
        kit: (N, Dk) kit colours, or ``None`` where the model's parts are not the part masks'.
    """

    feats: np.ndarray
    vis: np.ndarray
    team: np.ndarray
    role_probs: np.ndarray
    kit: np.ndarray | None = None


class Embedder:
    """Runs PRTReID on the detections of a batch of frames.

    Crops are cut from the frames on the model's device with RoIAlign (bilinear, aligned corners),
    so a whole batch of frames is one tensor transfer and one forward pass. The model runs in the
    device's :func:`~prtreid.model.prtreid.inference_layout` (``channels_last`` on a CPU).
    """

    def __init__(self, model: PRTReID, device: torch.device, max_crops: int = 256, amp: bool = False) -> None:
        self.model = model.to(device, memory_format=inference_layout(device)).eval()
        self.device = device
        self.size = tuple(model.cfg.image_size)
        self.max_crops = max_crops
        self.amp = amp and device.type == "cuda"
        self.mean = torch.tensor(IMAGENET_MEAN, device=device).view(1, 3, 1, 1) * 255
        self.std = torch.tensor(IMAGENET_STD, device=device).view(1, 3, 1, 1) * 255
        self.has_kit = has_kit_parts(model.cfg.num_parts)

    @torch.no_grad()
    def embed(self, frames: Sequence[np.ndarray], boxes: Sequence[np.ndarray]) -> list[Embeddings]:
        """Embeddings for ``boxes[i]`` ((N_i, 4) xyxy pixels) of BGR ``frames[i]``."""
        counts = [len(b) for b in boxes]
        if sum(counts) == 0:
            return [self._empty() for _ in frames]
        crops = self._crops(frames, boxes)
        outs = [self._forward(crops[i:i + self.max_crops]) for i in range(0, len(crops), self.max_crops)]
        merged = {k: np.concatenate([o[k] for o in outs]) for k in outs[0]}
        split = np.cumsum(counts)[:-1]
        parts = {k: np.split(v, split) for k, v in merged.items()}
        return [Embeddings(**{k: v[i] for k, v in parts.items()}) for i in range(len(frames))]

    def _crops(self, frames: Sequence[np.ndarray], boxes: Sequence[np.ndarray]) -> torch.Tensor:
        # boxes are clipped to their frame, as the training crops are (RoIAlign would fill the outside with black)
        rois = [torch.as_tensor(_clip(b, f.shape), device=self.device) for b, f in zip(boxes, frames)]
        images = torch.stack([torch.from_numpy(np.ascontiguousarray(f[:, :, ::-1])) for f in frames])
        images = images.to(self.device).permute(0, 3, 1, 2).float()  # RGB, 0..255
        crops = roi_align(images, rois, output_size=self.size, spatial_scale=1.0, sampling_ratio=2, aligned=True)
        return (crops - self.mean) / self.std

    def _forward(self, crops: torch.Tensor) -> dict[str, np.ndarray]:
        with torch.autocast("cuda", dtype=torch.float16, enabled=self.amp):
            out = self.model(crops)
        feats, vis = out.reid_features()
        kit = {"kit": kit_colour(crops, out.part_logits).cpu().numpy()} if self.has_kit else {}
        return kit | {"feats": feats.float().cpu().numpy(), "vis": vis.float().cpu().numpy(),
                      "team": out.team.float().cpu().numpy(),
                      "role_probs": out.role_probabilities().float().cpu().numpy()}

    def _empty(self) -> Embeddings:
        p = self.model.cfg.num_parts + 2
        d, dt = self.model.cfg.embed_dim, self.model.cfg.team_dim
        r = self.model.num_roles
        kit = np.zeros((0, 3 * len(KIT_PARTS)), np.float32) if self.has_kit else None
        return Embeddings(np.zeros((0, p, d), np.float32), np.zeros((0, p), np.float32),
                          np.zeros((0, dt), np.float32), np.zeros((0, r), np.float32), kit)


def _clip(boxes: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """``(N, 4)`` xyxy float32 boxes clipped to an image of ``shape`` (H, W, ...)."""
    out = np.asarray(boxes, np.float32).reshape(-1, 4).copy()
    out[:, [0, 2]] = out[:, [0, 2]].clip(0, shape[1])
    out[:, [1, 3]] = out[:, [1, 3]].clip(0, shape[0])
    return out
