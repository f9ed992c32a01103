"""The PRTReID model (timm backbone, part-based re-id, team and role heads) and its losses."""

from prtreid.model.backbone import Backbone, check_backbone_name
from prtreid.model.losses import (
    DEFAULT_ROLE_NAMES,
    LossConfig,
    MultiTaskLoss,
    focal_loss,
    identity_loss,
    part_mask_loss,
)
from prtreid.model.metric import (
    batch_hard_triplet,
    pairwise_distance,
    part_averaged_distance,
    part_averaged_triplet_loss,
    team_supcon_loss,
    team_triplet_loss,
    triplet_loss,
)
from prtreid.model.prtreid import EMBEDDING_NAMES, ModelConfig, ModelOutput, PRTReID

__all__ = [
    "DEFAULT_ROLE_NAMES",
    "EMBEDDING_NAMES",
    "Backbone",
    "LossConfig",
    "ModelConfig",
    "ModelOutput",
    "MultiTaskLoss",
    "PRTReID",
    "batch_hard_triplet",
    "check_backbone_name",
    "focal_loss",
    "identity_loss",
    "pairwise_distance",
    "part_averaged_distance",
    "part_averaged_triplet_loss",
    "part_mask_loss",
    "team_supcon_loss",
    "team_triplet_loss",
    "triplet_loss",
]
