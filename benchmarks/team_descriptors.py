"""Team accuracy by what players are clustered on: the team embedding, the kit colour, or both.

One model, the same crops for every column (the `eval-reid` crops of each folder of sequences):
a split in two per clip over the players' crops, and over each player's mean (what a tracklet
gives), one table per way of splitting (`prtreid.track.teams.split_teams`: the mixture, KMeans alone).
"kit, true masks" reads the kit colour under the generator's own part masks instead of the
model's part maps: how far better part maps would take the kit colour.

    python benchmarks/team_descriptors.py --model RUN/model.pt --data SET1 SET2 ...
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from prtreid.data.crops import CropConfig, build_crops
from prtreid.data.reid_dataset import ReidDataset
from prtreid.data.types import PARTS
from prtreid.model.kit import kit_colour
from prtreid.track.teams import DEFAULT_TEAM_SPLIT, TEAM_SPLITS, split_teams, team_features
from prtreid.train.checkpoint import load_model

COLUMNS = ("embedding", "kit", "both", "kit, true masks")


@torch.no_grad()
def descriptors(model: torch.nn.Module, dataset: ReidDataset) -> dict[str, np.ndarray]:
    """Team embeddings, kit colours under the model's part maps and under the crops' own part masks
    (one-hot part logits at the crop's pixels), in one pass over the crops."""
    model.eval()
    rows: dict[str, list[torch.Tensor]] = {"team": [], "kit": [], "true_kit": []}
    for batch in DataLoader(dataset, batch_size=64):
        out = model(batch["image"])
        masks = 50.0 * F.one_hot(batch["parts"].clamp_min(0), len(PARTS)).permute(0, 3, 1, 2).float()
        rows["team"].append(out.team.float())
        rows["kit"].append(kit_colour(batch["image"], out.part_logits))
        rows["true_kit"].append(kit_colour(batch["image"], masks))
    return {name: torch.cat(values).numpy() for name, values in rows.items()}


def accuracies(emb: np.ndarray, kit: np.ndarray, true_kit: np.ndarray, teams: np.ndarray, matches: np.ndarray,
               people: np.ndarray, split: str = DEFAULT_TEAM_SPLIT) -> dict[str, tuple[float, float]]:
    """(crop-level, person-level) accuracy of each column, weighted by crops, split by ``split``."""
    out = {}
    for column in COLUMNS:
        team_from, k = ("kit", true_kit) if column == "kit, true masks" else (column, kit)
        hits, total = np.zeros(2), 0
        for m in np.unique(matches):
            sel = (matches == m) & (teams >= 0)
            if len(np.unique(teams[sel])) < 2:
                continue
            crops = team_features(emb[sel], k[sel], team_from)
            hits[0] += _split_hits(crops, teams[sel], np.ones(sel.sum(), int), split)
            ids, inverse, counts = np.unique(people[sel], return_inverse=True, return_counts=True)
            means = [np.array([x[sel][inverse == j].mean(0) for j in range(len(ids))]) for x in (emb, k)]
            person_teams = np.array([teams[sel][inverse == j][0] for j in range(len(ids))])
            hits[1] += _split_hits(team_features(means[0], means[1], team_from), person_teams, counts, split)
            total += int(sel.sum())
        out[column] = (hits[0] / total, hits[1] / total)
    return out


def _split_hits(x: np.ndarray, teams: np.ndarray, weights: np.ndarray, split: str) -> float:
    pred = split_teams(x, weights, method=split).predict(x)
    agree = float(weights[pred == teams].sum())
    return max(agree, float(weights.sum()) - agree)


def evaluate_folder(model, meta: dict, data: Path) -> dict[str, dict[str, tuple[float, float]]]:
    """The table rows of one folder of sequences, one per way of splitting."""
    roles = tuple(meta["role_names"])
    size = tuple(meta["model_config"]["image_size"])
    with tempfile.TemporaryDirectory() as tmp:
        build_crops(data, Path(tmp), dataclasses.replace(CropConfig(), eval_fraction=1.0, roles=roles))
        parts = [ReidDataset(Path(tmp), split, image_size=size, train=False, role_names=roles)
                 for split in ("query", "gallery")]
        outs = [descriptors(model, ds) for ds in parts]
    player = roles.index("player")
    teams = np.concatenate([np.where(ds.roles == player, ds.teams, -1) for ds in parts])
    cat = {k: np.concatenate([o[k] for o in outs]) for k in outs[0]}
    matches, pids = np.concatenate([ds.matches for ds in parts]), np.concatenate([ds.pids for ds in parts])
    return {split: accuracies(cat["team"], cat["kit"], cat["true_kit"], teams, matches, pids, split)
            for split in TEAM_SPLITS}


def main(argv: list[str] | None = None) -> int:
    """Print the table; returns 0."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, required=True, help="model.pt (with the part masks' parts)")
    parser.add_argument("--data", type=Path, nargs="+", required=True, help="folders of unseen sequences")
    args = parser.parse_args(argv)
    model, meta = load_model(args.model, "cpu")
    rows: dict[str, dict[str, dict[str, tuple[float, float]]]] = {split: {} for split in TEAM_SPLITS}
    for data in args.data:
        for split, row in evaluate_folder(model, meta, data).items():
            rows[split][data.name] = row
            print(f"{data.name}, {split}: " + ", ".join(f"{c} {a:.3f} / {b:.3f}" for c, (a, b) in row.items()),
                  flush=True)
    for split, table in rows.items():
        _print_table(table, split)
    return 0


def _print_table(rows: dict[str, dict[str, tuple[float, float]]], split: str) -> None:
    print(f"\nteam accuracy, crops / players' means ({split} per clip, weighted by crops)\n")
    print("| set | " + " | ".join(COLUMNS) + " |")
    print("|---|" + "---|" * len(COLUMNS))
    mean = {c: tuple(np.mean([r[c] for r in rows.values()], axis=0)) for c in COLUMNS}
    for name, row in list(rows.items()) + [("mean", mean)]:
        print(f"| {name} | " + " | ".join(f"{row[c][0]:.3f} / {row[c][1]:.3f}" for c in COLUMNS) + " |")


if __name__ == "__main__":
    raise SystemExit(main())
