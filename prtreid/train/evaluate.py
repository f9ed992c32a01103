"""Evaluate a model on the query/gallery splits of a crop store (re-id, team and role)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from prtreid.data.crops import read_crop_index
from prtreid.data.reid_dataset import ReidDataset
from prtreid.errors import ConfigError
from prtreid.eval.reid import part_distance, reid_metrics, role_metrics, team_accuracy
from prtreid.model.kit import has_kit_parts, kit_colour
from prtreid.track.context import RoleContext, contextual_roles
from prtreid.track.teams import DEFAULT_TEAM_FROM, DEFAULT_TEAM_SPLIT, TEAM_DESCRIPTORS


@torch.no_grad()
def extract(model: nn.Module, dataset: ReidDataset, device: torch.device, batch_size: int = 64,
            num_workers: int = 0,
            on_batch: Callable[[int], None] | None = None) -> dict[str, np.ndarray | torch.Tensor]:
    """Run the model over a dataset: re-id descriptors, visibility, team embeddings, role logits and,
    where the model's parts are the part masks', kit colours (:func:`~prtreid.model.kit.kit_colour`).

    ``on_batch(n)`` is called after each batch with its number of crops.
    """
    was_training = model.training
    model.eval()
    feats, vis, team, role, kit = [], [], [], [], []
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers)
    for batch in loader:
        images = batch["image"].to(device)
        out = model(images)
        if has_kit_parts(out.part_logits.shape[1] - 1):
            kit.append(kit_colour(images, out.part_logits).cpu())
        f, v = out.reid_features()
        feats.append(f.float().cpu())
        vis.append(v.float().cpu())
        team.append(out.team.float().cpu())
        role.append(out.role_logits.float().cpu())
        if on_batch is not None:
            on_batch(len(batch["image"]))
    model.train(was_training)
    return {"feats": torch.cat(feats), "vis": torch.cat(vis), "team": torch.cat(team).numpy(),
            "role_logits": torch.cat(role).numpy(), "kit": torch.cat(kit).numpy() if kit else None}


def evaluate_store(model: nn.Module, store: str | Path, device: torch.device, *,
                   image_size: tuple[int, int], role_names: tuple[str, ...],
                   batch_size: int = 64, min_frame_gap: int = 10, num_workers: int = 0,
                   role_context: RoleContext = RoleContext(), team_from: str = DEFAULT_TEAM_FROM,
                   team_split: str = DEFAULT_TEAM_SPLIT,
                   progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Re-id mAP/rank-k (query vs gallery), team accuracy and role metrics on the held-out sequences.

    Team accuracy uses the players (role ``player``) of query and gallery together, per sequence,
    clustered on ``team_from`` and split by ``team_split`` (:mod:`prtreid.track.teams`;
    ``team_acc_both``, ``team_acc_kit`` and ``team_acc_embedding`` give each descriptor, the first two
    where the model has the kit colour, and ``team_acc_kmeans`` ``team_from`` split by KMeans alone);
    ``team_acc_per_sequence`` maps each sequence with players of both teams to its own.
    Role metrics use every held-out crop; the roles are decided per sequence with the match
    context (:mod:`prtreid.track.context`, the decision tracking makes over tracklets, here over
    the sequence's crops: a kit seen on several people in one frame is a team kit, whose wearers are
    players), and ``role_acc_crop`` is the accuracy of the role head on each crop alone.
    ``progress(done, total)`` counts the crops embedded.
    """
    check_eval_splits(store)
    query = ReidDataset(store, "query", image_size=image_size, train=False, role_names=role_names)
    gallery = ReidDataset(store, "gallery", image_size=image_size, train=False, role_names=role_names)
    done, total = 0, len(query) + len(gallery)

    def on_batch(n: int) -> None:
        nonlocal done
        done += n
        if progress is not None:
            progress(done, total)

    q = extract(model, query, device, batch_size, num_workers, on_batch)
    g = extract(model, gallery, device, batch_size, num_workers, on_batch)
    dist = part_distance(q["feats"], q["vis"], g["feats"], g["vis"]).numpy()
    out = reid_metrics(dist, query.pids, gallery.pids, query.matches, gallery.matches,
                       query.frames, gallery.frames, min_frame_gap=min_frame_gap)
    roles = np.concatenate([query.roles, gallery.roles])
    teams = np.concatenate([query.teams, gallery.teams])
    player = role_names.index("player") if "player" in role_names else -1
    teams = np.where(roles == player, teams, -1)
    team_emb = np.concatenate([q["team"], g["team"]])
    matches = np.concatenate([query.matches, gallery.matches])
    kit = None if q["kit"] is None else np.concatenate([q["kit"], g["kit"]])
    by_descriptor = {name: team_accuracy(team_emb, teams, matches, kit=kit, team_from=name, team_split=team_split)
                     for name in TEAM_DESCRIPTORS if kit is not None or name == "embedding"}
    if team_from not in by_descriptor:
        raise ConfigError(f"team_from {team_from!r}: this model gives {sorted(by_descriptor)} "
                          f"(of {', '.join(TEAM_DESCRIPTORS)}; the kit colour needs the part masks' parts)")
    out["team_acc"], per_match = by_descriptor[team_from]
    out |= {f"team_acc_{name}": acc for name, (acc, _) in by_descriptor.items()}
    out["team_acc_kmeans"] = out["team_acc"] if team_split == "kmeans" else team_accuracy(
        team_emb, teams, matches, kit=kit, team_from=team_from, team_split="kmeans")[0]
    out["team_acc_per_sequence"] = {query.match_names[m]: acc for m, acc in per_match.items()}
    logits = np.concatenate([q["role_logits"], g["role_logits"]])
    pred = _roles_in_context(logits, team_emb, matches,
                             np.concatenate([query.frames, gallery.frames]), role_names, role_context)
    out |= role_metrics(pred, roles, role_names)
    out["role_acc_crop"] = float((logits.argmax(1) == roles).mean()) if len(roles) else 0.0
    return out


def check_eval_splits(store: str | Path) -> None:
    """Fail (before training) where a crop store has nothing to evaluate on.

    Raises:
        ConfigError: no query or no gallery crop.
    """
    counts = read_crop_index(store)["split"].value_counts()
    missing = [s for s in ("query", "gallery") if counts.get(s, 0) == 0]
    if missing:
        raise ConfigError(f"{store}: the crop store has no {' and no '.join(missing)} crops to evaluate on: "
                          "crops.eval_fraction must be above 0, and the data must hold at least two sequences "
                          "(whole sequences are held out)")


def _roles_in_context(logits: np.ndarray, team_emb: np.ndarray, matches: np.ndarray, frames: np.ndarray,
                      role_names: tuple[str, ...], ctx: RoleContext) -> np.ndarray:
    """Role index of each crop, decided per sequence by :func:`contextual_roles`."""
    probs = torch.softmax(torch.from_numpy(logits).double(), dim=1).numpy()
    pred = logits.argmax(1)
    for m in np.unique(matches):
        sel = np.flatnonzero(matches == m)
        pred[sel] = contextual_roles(team_emb[sel], probs[sel], np.arange(len(sel)), frames[sel], role_names, ctx)
    return pred
